#!/usr/bin/env bash
# tests/fuzz/run.sh - builds the libFuzzer targets (build.sh) and runs each
# for a bounded time over a temporary copy of its seed corpus
# (tests/fuzz/corpus/<target>/; nothing is written into the repo).
#   bash tests/fuzz/run.sh SECONDS_PER_TARGET [PARALLEL] [TARGET...]
# Prints one "ok"/"FAIL" line per target (executions, coverage; for a crash,
# leak, timeout or broken invariant: the reproducer path, kept with the log
# under the work dir), then "N passed, N failed". Exit 1 on any failure.
# Environment: FUZZ_WORK_DIR (default: a new mktemp dir), FUZZ_RSS_MB
# (2048), FUZZ_KEEP=1 keeps the work dir (grown corpora) even when green.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SECS="${1:?usage: run.sh SECONDS [PARALLEL] [TARGET...]}"
PAR="${2:-2}"
shift $(($# >= 2 ? 2 : 1))
WORK="${FUZZ_WORK_DIR:-$(mktemp -d /tmp/fuzz-run.XXXXXX)}"
mkdir -p "$WORK"

if ! BIN="$(bash "$ROOT/tests/fuzz/build.sh" 2>"$WORK/build.log" | tail -1)" || [[ ! -d "$BIN" ]]; then
  tail -40 "$WORK/build.log"
  echo "FAIL - build of the fuzz targets (log: $WORK/build.log)"
  echo "0 passed, 1 failed"
  exit 1
fi

targets=("$@")
if ((${#targets[@]} == 0)); then
  for d in "$ROOT"/tests/fuzz/corpus/*/; do targets+=("$(basename "$d")"); done
fi

run_one() { # target -> $WORK/<t>/result ("ok ..." or "FAIL ...")
  local t="$1" d="$WORK/$1"
  mkdir -p "$d/corpus" "$d/artifacts"
  cp -r "$ROOT/tests/fuzz/corpus/$t/." "$d/corpus/"
  local start=$SECONDS rc
  # -max_total_time bounds the fuzzing; timeout(1) guards against a hang in
  # the fuzzer itself. -timeout: one input taking > 10 s counts as a failure.
  timeout -k 10 $((SECS + 120)) "$BIN/fuzz_$t" "$d/corpus" -max_total_time="$SECS" \
    -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -timeout=10 -max_len=8192 -print_final_stats=1 \
    -artifact_prefix="$d/artifacts/" >"$d/log" 2>&1
  rc=$?
  local execs cov repro
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$d/log" | grep -o '[0-9]*$')"
  cov="$(grep -o 'cov: [0-9]*' "$d/log" | tail -1)"
  repro="$(ls "$d"/artifacts/* 2>/dev/null | head -1)"
  if ((rc == 0)) && [[ -z "$repro" ]]; then
    echo "ok   - fuzz_$t: ${execs:-?} executions in $((SECONDS - start)) s, ${cov:-cov: ?}, no crash" >"$d/result"
  else
    local why
    why="$(grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|fuzz invariant failed' "$d/log")"
    echo "FAIL - fuzz_$t: exit $rc: ${why:-see log}; reproducer: ${repro:-none}; log: $d/log" >"$d/result"
  fi
}

running=0
for t in "${targets[@]}"; do
  if [[ ! -x "$BIN/fuzz_$t" ]]; then
    mkdir -p "$WORK/$t"; echo "FAIL - fuzz_$t: no such target" >"$WORK/$t/result"; continue
  fi
  run_one "$t" &
  running=$((running + 1))
  if ((running >= PAR)); then wait -n; running=$((running - 1)); fi
done
wait

pass=0 fail=0
for t in "${targets[@]}"; do
  line="$(cat "$WORK/$t/result" 2>/dev/null || echo "FAIL - fuzz_$t: no result")"
  echo "$line"
  case "$line" in ok*) pass=$((pass + 1)) ;; *) fail=$((fail + 1)) ;; esac
done
if ((fail == 0)) && [[ "${FUZZ_KEEP:-0}" != 1 ]]; then
  rm -rf "$WORK"
else
  echo "# work dir (logs, grown corpora, reproducers): $WORK"
fi
echo "$pass passed, $fail failed"
((fail == 0))
