#!/usr/bin/env bash
# setup.sh: installs attnkit's Debian packages, builds it in Release and runs the demo or the tests.
#
#   ./setup.sh          install + build the attn program, then classify, caption and overlay
#                       the bundled samples with the default models
#   ./setup.sh test     install, build with AddressSanitizer + UBSan (./build-sanitize) and run
#                       the whole test suite (ctest) there, then replay the libFuzzer corpora
#                       and fuzz each harness for 40 s (./build-fuzz); any failing stage fails
#                       the run
#   ./setup.sh build    install + build everything (the program and the test programs) only
#   ./setup.sh package  install + build the program and libraries for /usr, then make the Debian
#                       packages build/attnkit_<version>_amd64.deb and attnkit-dev_... (CPack)
#   ./setup.sh install [PREFIX]
#                       install + build, then `cmake --install` to PREFIX (default /usr/local):
#                       bin/attn, the libraries, headers and CMake package, share/attnkit
#
# Idempotent: packages already installed and an up-to-date build are skipped. Run as root or with
# sudo available. The build goes to ./build (override with ATTNKIT_BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
BUILD=${ATTNKIT_BUILD_DIR:-$ROOT/build}
MODE=${1:-demo}

PACKAGES=(
  cmake ninja-build g++ ccache
  clang-14 libclang-rt-14-dev                 # libFuzzer harnesses (tests/fuzz)
  clang-format-14                             # the formatting check (tests/check_format.sh)
  dpkg-dev                                    # CPack's .deb dependencies (dpkg-shlibdeps)
  libtorch-dev libopenblas0-openmp            # LibTorch 1.13 (CPU) + a fast BLAS (the default is ~40x slower)
  libdnnl-dev                                 # oneDNN headers: packed inference kernels (LibTorch's own oneDNN)
  libgloo-dev                                 # Gloo: c10d's CPU collectives (data-parallel training)
  libopencv-dev libboost-program-options-dev nlohmann-json3-dev zlib1g-dev libgtest-dev
  libcpp-httplib-dev pkg-config               # attn serve's HTTP server
  chromium                                    # the browser test of attn serve's page (headless)
  python3-torch python3-torchvision python3-pil python3-nltk python3-numpy   # test oracles
  dataset-fashion-mnist                       # training data
)
# Node.js and npm drive the browser test (tests/browser, puppeteer-core): Debian's, unless the
# machine already has them.
command -v npm >/dev/null || PACKAGES+=(nodejs npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# LibTorch calls the system BLAS through Debian's alternatives: make sure it is OpenBLAS.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
  *openblas*) ;;
  *) echo "setup: warning: libblas.so.3 is $blas, not OpenBLAS: inference will be very slow" >&2 ;;
esac

# build_release [TARGET...]: configures ./build once and builds the targets (default: all).
build_release() {
  if [ ! -f "$BUILD/build.ninja" ]; then
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  if (($#)); then
    cmake --build "$BUILD" -j "$(nproc)" --target "$@"
  else
    cmake --build "$BUILD" -j "$(nproc)"
  fi
}

# install_browser_test_modules: puppeteer-core (tests/browser/package-lock.json) from the npm
# registry, without install scripts: it drives Debian's chromium and downloads no browser.
install_browser_test_modules() {
  local dir="$ROOT/tests/browser"
  if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
     [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  fi
}

case "$MODE" in
  build)
    build_release
    install_browser_test_modules
    ;;
  test)
    install_browser_test_modules
    # The whole suite runs once, in a build with AddressSanitizer + UBSan (./build-sanitize,
    # -O1): one build and one run instead of a Release run and a sanitized rerun keeps CI within
    # 30 minutes on 2 cores (the Release build is the same code; speed lives in benchmarks).
    # A missing Python oracle fails its tests here instead of skipping them.
    ATTNKIT_REQUIRE_ORACLES=1 ATTNKIT_SANITIZE_BUILD_DIR="$BUILD-sanitize" \
      tests/run_sanitized_tests.sh --all
    ATTNKIT_FUZZ_BUILD_DIR="$BUILD-fuzz" tests/fuzz/run_fuzzers.sh 40
    ;;
  demo)
    # Only the program: the test programs (a third of the objects) wait for ./setup.sh test.
    build_release attn
    # The main jobs on the shipped default models (weights/) and the bundled samples.
    ATTN="$BUILD/apps/attn"
    "$ATTN" classify --topk 3 samples/fashion/
    "$ATTN" overlay samples/fashion/ --upscale 224 --out "$BUILD/overlays"
    if [ -f weights/scenes-captioner.safetensors ]; then
      "$ATTN" caption samples/scenes/
      "$ATTN" overlay --method caption samples/scenes/ --upscale 256 --out "$BUILD/overlays"
    fi
    echo "setup: overlays written to $BUILD/overlays/"
    ;;
  package)
    # The packages' programs look for their data under /usr/share/attnkit.
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
      >/dev/null
    build_release attn
    (cd "$BUILD" && cpack -G DEB)
    echo "setup: packages written to $BUILD/ (sudo apt-get install ./attnkit_*.deb)"
    ;;
  install)
    PREFIX=$(realpath -m "${2:-/usr/local}")
    # The prefix is compiled in too: programs linking attnkit find the weights under it.
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX" \
      >/dev/null
    build_release attn
    cmake --install "$BUILD" --prefix "$PREFIX"
    ;;
  *)
    echo "usage: ./setup.sh [demo|test|build|package|install [PREFIX]]" >&2
    exit 2
    ;;
esac
