// Small C helpers for the Go side: callbacks cannot be written in Go without //export
// trampolines, and these need nothing from Go.
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include "bridge.h"

static bool scribe_abort_cb(void *data) {
	return atomic_load((atomic_int *)data) != 0;
}

static bool scribe_encoder_begin_cb(struct whisper_context *ctx, struct whisper_state *st, void *data) {
	(void)ctx; (void)st;
	return atomic_load((atomic_int *)data) == 0;
}

void scribe_set_abort(struct whisper_full_params *p, atomic_int *flag) {
	p->abort_callback = scribe_abort_cb;
	p->abort_callback_user_data = flag;
	p->encoder_begin_callback = scribe_encoder_begin_cb;
	p->encoder_begin_callback_user_data = flag;
}

atomic_int *scribe_new_flag(void) {
	atomic_int *f = malloc(sizeof(atomic_int));
	if (f) atomic_init(f, 0);
	return f;
}

void scribe_raise_flag(atomic_int *f) { atomic_store(f, 1); }

// Library logging: whisper and ggml print model details on every load. Keep warnings and
// errors (to stderr, where operators look), drop the rest unless verbose is set.
static int scribe_verbose = 0;

static void scribe_log_cb(enum ggml_log_level level, const char *text, void *ud) {
	(void)ud;
	if (scribe_verbose || level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) {
		fputs(text, stderr);
	}
}

void scribe_init_logging(int verbose) {
	scribe_verbose = verbose;
	whisper_log_set(scribe_log_cb, NULL);
	ggml_log_set(scribe_log_cb, NULL);
}
