#ifndef SCRIBE_BRIDGE_H
#define SCRIBE_BRIDGE_H
#include <stdatomic.h>
#include <stdbool.h>
#include <whisper.h>
#include <ggml.h>
#include <ggml-backend.h>

void scribe_set_abort(struct whisper_full_params *p, atomic_int *flag);
atomic_int *scribe_new_flag(void);
void scribe_raise_flag(atomic_int *f);
void scribe_init_logging(int verbose);
#endif
