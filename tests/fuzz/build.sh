#!/usr/bin/env bash
# tests/fuzz/build.sh - builds the libFuzzer targets (one per parser of
# outside input, tests/fuzz/fuzz_*.c) with clang, ASan and UBSan.
#
# The real sources are compiled directly (not through meson: the daemons'
# meson build stays gcc) into per-component static archives with coverage
# instrumentation; each target links only what it calls.
#   bash tests/fuzz/build.sh [OUT_DIR]
# OUT_DIR defaults to $FUZZ_BUILD_DIR, else ${BUILD_DIR:-/tmp/build}-fuzz.
# Prints the OUT_DIR on the last line. Needs clang and libclang-rt-14-dev
# (services/setup installs both).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-${FUZZ_BUILD_DIR:-${BUILD_DIR:-/tmp/build}-fuzz}}"
CC="${FUZZ_CC:-clang}"
mkdir -p "$OUT/obj"

PKGS="libulfius liborcania libyder jansson librabbitmq libpq libsodium libcurl gnutls libmicrohttpd libsecp256k1 nettle"
PKG_CFLAGS="$(pkg-config --cflags $PKGS)"
PKG_LIBS="$(pkg-config --libs $PKGS) -lpthread -lm"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
CFLAGS=(-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror
        -Wno-unused-parameter $SAN
        -I"$ROOT/libcommon/include" -I"$ROOT/gateway/src" -I"$ROOT/credit-svc/src"
        -I"$ROOT/storage-svc/src" -I"$ROOT/chain-svc/src" $PKG_CFLAGS
        -DCREDIT_SQL_DIR_DEFAULT=\"/nonexistent\" -DSTORAGE_SQL_DIR_DEFAULT=\"/nonexistent\"
        -DCHAIN_SQL_DIR_DEFAULT=\"/nonexistent\")

# component archive <- sources (all but the daemons' main files)
srcs_of() { # every .c of a component's src/ except the daemon's main file
  local f
  for f in "$ROOT/$1"/src/*.c; do
    case "$(basename "$f")" in main.c | credit_main.c) ;; *) echo "${f#"$ROOT"/}" ;; esac
  done
}
declare -A SRCS=(
  [lc]="$(srcs_of libcommon)" [gw]="$(srcs_of gateway)" [credit]="$(srcs_of credit-svc)"
  [storage]="$(srcs_of storage-svc)" [chain]="$(srcs_of chain-svc)"
)
# target -> archives it links (order matters for static linking)
declare -A LINK=(
  [jwt]="lc" [authn]="gw lc" [json_body]="storage lc" [topup]="credit lc" [multipart]="storage lc"
  [names]="storage lc" [sniff]="storage lc" [stripe_sig]="credit lc" [razorpay_sig]="credit lc"
  [msg]="lc" [u256]="chain lc" [payments]="credit lc"
)

for comp in "${!SRCS[@]}"; do
  objs=()
  for s in ${SRCS[$comp]}; do
    o="$OUT/obj/$comp-$(basename "${s%.c}").o"
    if [[ ! -f "$o" || "$ROOT/$s" -nt "$o" ]]; then
      "$CC" "${CFLAGS[@]}" -fsanitize=fuzzer-no-link -c "$ROOT/$s" -o "$o" &
    fi
    objs+=("$o")
  done
  wait
  rm -f "$OUT/lib$comp.a"
  ar rcs "$OUT/lib$comp.a" "${objs[@]}"
done

for t in "${!LINK[@]}"; do rm -f "$OUT/fuzz_$t"; done
for t in "${!LINK[@]}"; do
  libs=()
  for c in ${LINK[$t]}; do libs+=("$OUT/lib$c.a"); done
  # shellcheck disable=SC2086
  "$CC" "${CFLAGS[@]}" -fsanitize=fuzzer "$ROOT/tests/fuzz/fuzz_$t.c" "${libs[@]}" $PKG_LIBS \
    -o "$OUT/fuzz_$t" &
done
wait
for t in "${!LINK[@]}"; do [[ -x "$OUT/fuzz_$t" ]] || { echo "build failed: fuzz_$t" >&2; exit 1; }; done
echo "$OUT"
