#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each one briefly (CI) or
# for longer (`make fuzz`, pass "long"). A crash fails the run and leaves
# the reproducer in build-fuzz/crashes/.
#
# The short run uses a fixed seed (FUZZ_SEED, default 1) so that a test run
# from a clean checkout explores the same inputs on every machine and a
# failure can be replayed;
# the long run draws a new seed each time to explore further.
set -euo pipefail
cd "$(dirname "$0")/../.."
# One second a target in the short run (twenty targets, inside CI's budget;
# make fuzz runs each for five minutes).
secs=${FUZZ_SECONDS:-1}
seed=(-seed="${FUZZ_SEED:-1}")
if [ "${1:-}" = long ]; then
  secs=${FUZZ_SECONDS:-300}
  seed=()
  [ -n "${FUZZ_SEED:-}" ] && seed=(-seed="$FUZZ_SEED")
fi
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C build-fuzz >build-fuzz/ninja.log 2>&1 || { tail -30 build-fuzz/ninja.log; exit 1; }
mkdir -p build-fuzz/crashes
for bin in build-fuzz/tests/fuzz/fuzz_*; do
  [ -f "$bin" ] && [ -x "$bin" ] || continue
  name=$(basename "$bin")
  corpus=build-fuzz/corpus/$name
  mkdir -p "$corpus"
  seeds=tests/fuzz/seeds/${name#fuzz_}
  dirs=("$corpus")
  [ -d "$seeds" ] && dirs+=("$seeds")
  if ! "$bin" -max_total_time="$secs" -artifact_prefix=build-fuzz/crashes/"$name"- \
       -print_final_stats=0 "${seed[@]}" "${dirs[@]}" >build-fuzz/"$name".log 2>&1; then
    tail -40 build-fuzz/"$name".log
    echo "fuzz: $name found a crash (see build-fuzz/crashes/)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' build-fuzz/"$name".log | tail -1)
  echo "fuzz: $name: ${runs:-?} runs in ${secs}s, no crash"
done
