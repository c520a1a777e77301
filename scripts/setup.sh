#!/usr/bin/env bash
# Installs every dependency from Debian, configures and builds sepmech. Idempotent: run it
# again after pulling; only what changed is rebuilt.
#   scripts/setup.sh            # deps + Release build in ./build
#   SKIP_APT=1 scripts/setup.sh # build only
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  cmake g++ make ninja-build ccache pkg-config
  libtorch-dev libopenblas0-pthread      # tensors + autograd; optimised BLAS for it
  libdnnl-dev                            # oneDNN's sgemm (AVX-512) for the hot GEMMs, src/gemm.h
  libgtest-dev libgmock-dev              # unit tests
  libbenchmark-dev                       # Google Benchmark
  nlohmann-json3-dev                     # JSON (safetensors headers, reports)
  libcli11-dev                           # command line
  libzip-dev                             # PyTorch checkpoints are zip archives
  libsndfile1-dev                        # audio files (WAV/FLAC/OGG) for src/audio/
  libsamplerate0-dev                     # sample-rate conversion for src/audio/
  libcairo2-dev                          # drawing the PNG figures (spectrograms, line plots), src/plot/
  fonts-dejavu-core                      # the sans-serif font of the figures' labels
  alsa-utils                             # recorded speech (/usr/share/sounds/alsa/*.wav): built-in input of mix/metrics/spectrogram and babble noise
)

source scripts/apt_missing.sh  # (the script has cd-ed to the project root)
[ "${SKIP_APT:-0}" = 1 ] || apt_install_missing "${PACKAGES[@]}"

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$JOBS"
