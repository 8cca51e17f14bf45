#!/usr/bin/env bash
# libFuzzer targets (tests/fuzz/): builds them with clang (ASan + UBSan) and
# runs each for FUZZ_SECONDS (default 15) over a temporary copy of its seed
# corpus, two at a time. A crash, leak, timeout or broken invariant fails the
# target and prints the reproducer path. Needs no stack.
# Ends with "N passed, N failed". The long run: bash tests/fuzz/run_long.sh.
exec bash "$(cd "$(dirname "$0")/../fuzz" && pwd)/run.sh" "${FUZZ_SECONDS:-15}" "${FUZZ_PARALLEL:-2}"
