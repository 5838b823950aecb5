# The two commands a user needs: `make chaos` (the main job) and `make test`.
# Both run `make setup` first; neither needs configuration: without DATABASE_URL and
# REDIS_URL the harness starts throwaway Postgres and Redis servers itself.

CARGO ?= cargo
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: setup bins build test chaos matrix signoff explore repro sut-vexa bench load lint fmt

## Install what the harness needs that the machine lacks (Debian packages).
setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --workspace --all-targets

## Every test: unit, integration (real Postgres, Redis, processes, signals).
test: setup
ifeq ($(NEXTEST),yes)
	$(CARGO) nextest run --workspace --no-fail-fast
else
	$(CARGO) test --workspace --no-fail-fast
endif

CHAOS := target/debug/chaos
# Runs at once: what the machine holds unless JOBS is set (chaos prints what bound it).
JOBS ?=
JOBS_FLAG := $(if $(JOBS),--jobs $(JOBS))

bins: setup
	$(CARGO) build --workspace --bins

# Runs (not tests) start Postgres and Redis as containers when a Docker daemon answers
# (chaos --infra auto): then setup need not install them.
chaos matrix signoff explore repro sut-vexa: export STOPFLOW_SETUP_FOR := runs

## The main job: run the scenario catalogue under legacy and fixed, write reports/<run-id>/.
chaos: bins
	$(CHAOS) run scenarios/ --profile legacy,fixed $(JOBS_FLAG)

## The ablation matrix: every scenario under every profile (each fix alone), matrix.md/.html.
matrix: bins
	$(CHAOS) matrix scenarios/ $(JOBS_FLAG)

## The acceptance sign-off: the criteria's scenarios under fixed, 20 runs each; signoff.html/.md.
signoff: bins
	$(CHAOS) signoff $(JOBS_FLAG)

## Explore: random plans under legacy for BUDGET (default 5m), every stuck meeting found
## shrunk and written to reports/explore-<id>/found/ (PROFILE=fixed to hunt the fixes').
BUDGET ?= 5m
PROFILE ?= legacy
explore: bins
	$(CHAOS) explore --profile $(PROFILE) --budget $(BUDGET) $(JOBS_FLAG)

## Reproduce the incident (H1, legacy profile) and print the witness.
repro: bins
	$(CHAOS) run scenarios/h1-leave-hangs.toml --profile legacy

## The applicable catalogue against the production service, from a Vexa checkout:
## make sut-vexa VEXA_DIR=/path/to/vexa (the first run builds its virtual environment).
sut-vexa: bins
	@test -n "$(VEXA_DIR)" || { echo "make sut-vexa: set VEXA_DIR to a checkout of Vexa-ai/vexa" >&2; exit 2; }
	$(CHAOS) run scenarios/ --sut vexa-bot-manager --sut-dir $(VEXA_DIR) $(JOBS_FLAG)

## Figures (not asserted anywhere): lifecycle wall times and throughput, in release.
bench: setup
	$(CARGO) build --release --workspace --bins
	$(CARGO) run --release -p bot-manager --example lifecycle_bench

## Load: LOAD_N meetings at once through the real stack under legacy and fixed, all
## stopped; time to converge against the bound, lost stops, stuck meetings, orphans, each
## program's CPU and memory; reports/load-<id>/load.md, load.json, load.svg (release).
LOAD_N ?= 100,300,1000
LOAD_SEED ?= 20261201
load: setup
	$(CARGO) build --release --workspace --bins
	target/release/chaos load --meetings $(LOAD_N) --profile legacy,fixed --seed $(LOAD_SEED)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all
