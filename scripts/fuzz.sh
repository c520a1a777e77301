#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in build-fuzz and runs each one for a
# bounded time, starting from the committed seeds in fuzz/corpus/<target>/.
#   scripts/fuzz.sh            # 60 s per target
#   scripts/fuzz.sh 300        # 5 minutes per target
#   SEPMECH_BUILD_LOCK=/tmp/sepmech-build.lock scripts/fuzz.sh 300   # compile under flock
# Needs clang and libclang-rt (Debian: clang, libclang-rt-14-dev), installed here with apt-get when
# missing (SKIP_APT=1 to skip; the other dependencies come from scripts/setup.sh). New corpus entries go to
# build-fuzz/corpus/<target>/, crashes to build-fuzz/artifacts/<target>/. Exits non-zero if any
# target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
TARGETS=(safetensors_fuzz checkpoint_fuzz)

source scripts/apt_missing.sh  # (the script has cd-ed to the project root)
[ "${SKIP_APT:-0}" = 1 ] || apt_install_missing clang libclang-rt-14-dev

lock=()
if [ -n "${SEPMECH_BUILD_LOCK:-}" ]; then lock=(flock "$SEPMECH_BUILD_LOCK"); fi

if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  CXX=${CXX:-clang++} cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DSEPMECH_BUILD_FUZZERS=ON -DSEPMECH_BUILD_TESTS=OFF -DSEPMECH_BUILD_BENCH=OFF -DSEPMECH_FAMILIES=models
fi
"${lock[@]}" cmake --build "$BUILD_DIR" -j "${JOBS:-2}" --target "${TARGETS[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
for t in "${TARGETS[@]}"; do
  corpus="$BUILD_DIR/corpus/$t"
  artifacts="$BUILD_DIR/artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  log="$BUILD_DIR/$t.log"
  echo "== $t for ${SECONDS_PER_TARGET}s (log: $log)"
  set +e
  "$BUILD_DIR/fuzz/$t" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 -timeout=25 \
    -print_final_stats=1 -artifact_prefix="$artifacts" "$corpus" "fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | tail -1 || true)
  crashes=$(find "$artifacts" -type f | wc -l)
  echo "   exit $rc; ${runs:-no completion line}; corpus $(find "$corpus" -type f | wc -l) files; artifacts: $crashes"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    failed=1
    tail -40 "$log"
  fi
done
exit $failed
