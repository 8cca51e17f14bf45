#!/usr/bin/env bash
# tests/fuzz/run_long.sh - the long fuzzing run (not part of the test
# command): every target for SECONDS (default 600) over a temporary copy of
# its seed corpus, two at a time. Keeps the work dir (grown corpora, logs,
# reproducers) and prints its path.
#   bash tests/fuzz/run_long.sh [SECONDS] [PARALLEL] [TARGET...]
# Reproduce a failure: $BUILD/fuzz_<target> <reproducer file>
# (BUILD is the directory tests/fuzz/build.sh prints).
set -uo pipefail
SECS="${1:-600}"
PAR="${2:-2}"
shift $(($# >= 2 ? 2 : $#))
FUZZ_KEEP=1 exec bash "$(dirname "${BASH_SOURCE[0]}")/run.sh" "$SECS" "$PAR" "$@"
