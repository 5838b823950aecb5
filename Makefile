# The two commands a user needs: `make chaos` (the main job) and `make test`.
# Both run `make setup` first; neither needs configuration: without DATABASE_URL and
# REDIS_URL the harness starts throwaway Postgres and Redis servers itself.

CARGO ?= cargo
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: setup build test chaos repro bench lint fmt clean-reports

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

## Reproduce the incident (legacy profile) and print what proves it.
repro: setup
	$(CARGO) nextest run -p bot-manager --test stack -E 'test(/^incident::/)' --no-fail-fast --success-output final

## The main job: run the scenario catalogue and write reports under reports/.
chaos: setup
	bash scripts/chaos.sh

## Figures (not asserted anywhere): lifecycle wall times and throughput, in release.
bench: setup
	$(CARGO) build --release --workspace --bins
	$(CARGO) run --release -p bot-manager --example lifecycle_bench

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all
