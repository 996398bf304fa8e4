#!/usr/bin/env bash
# tests/fuzz/run_fuzzers.sh: builds the libFuzzer harnesses with clang-14 (ASan + UBSan), replays
# each committed corpus, then fuzzes each target for a while. Exits non-zero when a replay or a
# fuzzing run crashes, leaks, hangs or runs out of memory. Findings (the inputs that failed) go to
# a scratch directory, never into the repository.
#
#   tests/fuzz/run_fuzzers.sh [seconds per target, default 60]
#
# Environment: ATTNKIT_FUZZ_BUILD_DIR (default ./build-fuzz), ATTNKIT_FUZZ_WORK (scratch, default
# a new directory under /tmp), ATTNKIT_FUZZ_JOBS (targets fuzzed at once, default the core count).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SECONDS_PER_TARGET=${1:-60}
BUILD=${ATTNKIT_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
WORK=${ATTNKIT_FUZZ_WORK:-$(mktemp -d /tmp/attnkit-fuzz.XXXXXX)}
JOBS=${ATTNKIT_FUZZ_JOBS:-$(nproc)}
TARGETS=(safetensors_fuzz model_metadata_fuzz karpathy_fuzz image_fuzz)

dict_for() {
  case "$1" in
    image_fuzz) echo "$ROOT/tests/fuzz/image.dict" ;;
    *) echo "$ROOT/tests/fuzz/json.dict" ;;
  esac
}

corpus_for() { echo "$ROOT/tests/fuzz/corpus/${1%_fuzz}"; }

if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
    -DATTNKIT_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
fi
cmake --build "$BUILD" -j "$(nproc)" --target "${TARGETS[@]}"

# Replay: every committed input (seeds and the regression inputs of fixed bugs) runs once.
failed=0
for target in "${TARGETS[@]}"; do
  if ! "$BUILD/tests/fuzz/$target" -runs=0 "$(corpus_for "$target")" >"$WORK/$target.replay.log" 2>&1; then
    echo "fuzz: $target: replaying $(corpus_for "$target") failed:" >&2
    tail -n 40 "$WORK/$target.replay.log" >&2
    failed=1
  fi
done
if ((failed)); then exit 1; fi

# Fuzz: new inputs go to the scratch corpus (first directory), the committed one is only read.
# -close_fd_mask=2 drops the decoders' own stderr chatter (libjpeg, libpng, OpenCV); libFuzzer and
# the sanitizers still report.
fuzz() {
  local target=$1 rc=0
  mkdir -p "$WORK/$target/corpus" "$WORK/$target/findings"
  "$BUILD/tests/fuzz/$target" "$WORK/$target/corpus" "$(corpus_for "$target")" \
    -dict="$(dict_for "$target")" -max_total_time="$SECONDS_PER_TARGET" -timeout=20 \
    -rss_limit_mb=2048 -close_fd_mask=2 -print_final_stats=1 \
    -artifact_prefix="$WORK/$target/findings/" \
    >"$WORK/$target.log" 2>&1 || rc=$?
  echo "$rc" >"$WORK/$target.rc"
}
for target in "${TARGETS[@]}"; do
  while (($(jobs -rp | wc -l) >= JOBS)); do sleep 1; done
  fuzz "$target" &
done
wait

for target in "${TARGETS[@]}"; do
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/$target.log" | tail -n 1)
  findings=$(find "$WORK/$target/findings" -type f | wc -l)
  echo "fuzz: $target: ${runs:-?} executions in ${SECONDS_PER_TARGET} s, $findings finding(s)"
  if (($(cat "$WORK/$target.rc") != 0 || findings > 0)); then
    echo "fuzz: $target failed; inputs in $WORK/$target/findings, log $WORK/$target.log:" >&2
    grep -m 1 -A 30 "ERROR: \|==ERROR\|runtime error" "$WORK/$target.log" >&2 ||
      tail -n 30 "$WORK/$target.log" >&2
    failed=1
  fi
done
exit "$failed"
