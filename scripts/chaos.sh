#!/usr/bin/env bash
# The main job, as far as it exists today: run the incident catalogue (every hypothesis
# of the incident report reproduced against the legacy bot-manager, real processes) and
# write its report under reports/<run-id>/. The scenario engine replaces this script.
set -euo pipefail
cd "$(dirname "$0")/.."

run_id="$(date -u +%Y%m%dT%H%M%SZ)-incident"
out="reports/$run_id"
mkdir -p "$out"

status=0
cargo nextest run --profile chaos -p bot-manager --test stack -E 'test(/^incident::/)' --no-fail-fast 2>&1 | tee "$out/run.log" || status=$?
cp target/nextest/chaos/junit.xml "$out/junit.xml" 2>/dev/null || true

{
  echo "# Incident catalogue, profile legacy ($run_id)"
  echo
  echo "| scenario | expected | result |"
  echo "|---|---|---|"
  grep -E '^ +(PASS|FAIL|TIMEOUT|SIGKILL|SIGSEGV|SIGABRT) ' "$out/run.log" | awk '{print $NF, $1}' | sort -u |
    while read -r name result; do
      verdict=$([ "$result" = PASS ] && echo "reproduced: meeting stuck active" || echo "NOT reproduced")
      echo "| \`${name##*::}\` | meeting stays active after its container is gone | $verdict |"
    done
  echo
  echo "Witnesses (from the run):"
  echo
  grep -E '^REPRODUCED:' "$out/run.log" | sed 's/^/- /' || true
} > "$out/summary.md"

echo
echo "report: $out/summary.md, $out/junit.xml"
exit "$status"
