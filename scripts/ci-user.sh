#!/usr/bin/env bash
# The stop-flow harness in the CI of a repository that owns a bot-manager: the steps of
# docs/ci/github-actions.yml as one script, for any CI system (or a laptop).
#
#   <harness>/scripts/ci-user.sh [install|run|all]      (default: all)
#
# Run it from your repository, with the harness checked out anywhere (its location is
# this script's). `install` builds the harness's programs (release) and, when neither a
# Docker daemon nor DATABASE_URL/REDIS_URL is there, installs PostgreSQL and Redis from
# Debian's packages (the harness's scripts/setup.sh, as root or through sudo). `run` runs the catalogue, or a partition
# of it, against your service and leaves the reports in $STOPFLOW_OUT/<run-id>/ (JUnit:
# junit.xml; its path is also written to $STOPFLOW_OUT/junit-path and, on GitHub, to the
# step's outputs `junit` and `run_dir`).
#
# Environment (all optional but the first):
#   STOPFLOW_SUT        your service's adapter file (see the harness's
#                       fixtures/sut/reference-external.toml); `reference` runs the harness's own
#   STOPFLOW_SUT_DIR    your service's checkout, for {sut_dir} (default: the current folder)
#   STOPFLOW_SCENARIOS  scenario files or folders, space-separated (default: the harness's scenarios/)
#   STOPFLOW_PROFILE    profiles to run (default: what the adapter and scenarios state)
#   STOPFLOW_PARTITION  K/N: run shard K of N (every shard needs the same STOPFLOW_SEED)
#   STOPFLOW_SEED       the plan's seed (default: $GITHUB_RUN_ID, else 1)
#   STOPFLOW_OUT        where run folders go (default: reports)
#   STOPFLOW_INFRA      auto (containers when Docker answers, else local servers),
#                       containers, local, env (default: auto)
#   JOBS                runs at once (default: what the machine holds)
#   STOPFLOW_BIN        where the built programs are (default: the harness's target/release)
#
# Exit: chaos's own: 0 every verdict as expected; 1 an unexpected or inconclusive verdict
# (or an invalid scenario); 2 a harness error (a run that crashed, ran past its deadline,
# or was interrupted); 3 the harness could not be installed.
set -uo pipefail

HARNESS="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${STOPFLOW_BIN:-$HARNESS/target/release}"
STEP="${1:-all}"

say() { echo "ci-user: $*" >&2; }

install() {
  command -v cargo >/dev/null || { say "failed to find cargo: install Rust (https://rustup.rs)"; return 3; }
  say "building the harness in $HARNESS (release)"
  cargo build --release --locked --workspace --bins --manifest-path "$HARNESS/Cargo.toml" \
    || { say "failed to build the harness"; return 3; }
  # The servers: the environment's URLs, containers when a Docker daemon answers, else
  # PostgreSQL and Redis from Debian's packages (setup.sh decides, as for `make chaos`).
  local sudo=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo="sudo -E"
  STOPFLOW_SETUP_FOR=runs $sudo bash "$HARNESS/scripts/setup.sh" \
    || { say "failed to install what the runs need (PostgreSQL and Redis)"; return 3; }
}

run() {
  [ -x "$BIN/chaos" ] || { say "failed to find $BIN/chaos: run the install step first"; return 3; }
  [ -n "${STOPFLOW_SUT:-}" ] || { say "failed to run: set STOPFLOW_SUT to your service's adapter file (or reference)"; return 2; }
  local out="${STOPFLOW_OUT:-reports}"
  local seed="${STOPFLOW_SEED:-${GITHUB_RUN_ID:-1}}"
  local scenarios=(${STOPFLOW_SCENARIOS:-$HARNESS/scenarios})
  local args=(run "${scenarios[@]}" --sut "$STOPFLOW_SUT" --sut-dir "${STOPFLOW_SUT_DIR:-$PWD}"
    --seed "$seed" --out "$out" --quiet --infra "${STOPFLOW_INFRA:-auto}")
  [ -n "${STOPFLOW_PROFILE:-}" ] && args+=(--profile "$STOPFLOW_PROFILE")
  [ -n "${STOPFLOW_PARTITION:-}" ] && args+=(--partition "$STOPFLOW_PARTITION")
  [ -n "${JOBS:-}" ] && args+=(--jobs "$JOBS")
  mkdir -p "$out"
  local before
  before="$(ls -1 "$out" 2>/dev/null)"
  say "$BIN/chaos ${args[*]}"
  "$BIN/chaos" "${args[@]}"
  local code=$?
  # The run folder this run made: the one that was not there before.
  local run_dir=""
  for dir in $(ls -1t "$out"); do
    if [ -d "$out/$dir" ] && ! grep -qxF "$dir" <<<"$before"; then run_dir="$out/$dir"; break; fi
  done
  if [ -n "$run_dir" ] && [ -f "$run_dir/junit.xml" ]; then
    echo "$run_dir/junit.xml" > "$out/junit-path"
    say "reports in $run_dir (JUnit: $run_dir/junit.xml)"
    if [ -n "${GITHUB_OUTPUT:-}" ]; then
      { echo "junit=$run_dir/junit.xml"; echo "run_dir=$run_dir"; } >> "$GITHUB_OUTPUT"
    fi
  else
    say "no run folder with a junit.xml in $out (chaos exited $code before writing one)"
  fi
  case $code in
    0) say "every verdict as expected" ;;
    1) say "failing: an unexpected or inconclusive verdict (see the reports)" ;;
    *) say "failing: a harness error (exit $code; see the reports)" ;;
  esac
  return $code
}

case "$STEP" in
  install) install ;;
  run) run ;;
  all) install && run ;;
  *) say "failed to read the step \"$STEP\": expected install, run or all"; exit 2 ;;
esac
