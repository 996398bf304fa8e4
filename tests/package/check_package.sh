#!/usr/bin/env bash
# tests/package/check_package.sh BUILD_DIR: proves attnkit installs and packages as the README
# says, from a built tree:
#   1. `cmake --install` to a temporary prefix, then samples/cpp (find_package(attnkit),
#      attnkit::api) configured, built and run against it on a shipped sample;
#   2. `cpack -G DEB`, both packages' metadata checked, the runtime package unpacked with
#      `dpkg -x` into a temporary root, and its `attn` run there: it must find its default
#      models in <root>/usr/share/attnkit without being told.
# Exits non-zero at the first thing that does not hold, saying what.
set -euo pipefail
BUILD=$(cd "${1:?usage: check_package.sh BUILD_DIR}" && pwd)
SOURCE=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/attnkit-package.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
fail() { echo "check_package: $*" >&2; exit 1; }
# No ambient setting may stand in for what the package must provide itself.
unset ATTNKIT_WEIGHTS

echo "== install to $WORK/prefix"
cmake --install "$BUILD" --prefix "$WORK/prefix" >/dev/null
PREFIX=$WORK/prefix
for f in bin/attn lib/libattnkit_api.a lib/libattnkit_attention.a include/attnkit/vision/api/attnkit.h \
         lib/cmake/attnkit/attnkitConfig.cmake lib/cmake/attnkit/attnkitConfigVersion.cmake \
         lib/cmake/attnkit/attnkitTargets.cmake share/attnkit/weights/fashion-vit.safetensors \
         share/attnkit/weights/scenes-captioner.safetensors share/attnkit/samples/chelsea.png; do
  [ -e "$PREFIX/$f" ] || fail "the install has no $f"
done

echo "== samples/cpp against the installed package"
GENERATOR=()
command -v ninja >/dev/null && GENERATOR=(-G Ninja)
cmake -S "$SOURCE/samples/cpp" -B "$WORK/example" "${GENERATOR[@]}" \
  -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_BUILD_TYPE=Release >"$WORK/example-configure.log" 2>&1 ||
  { cat "$WORK/example-configure.log" >&2; fail "samples/cpp does not configure"; }
cmake --build "$WORK/example" >"$WORK/example-build.log" 2>&1 ||
  { cat "$WORK/example-build.log" >&2; fail "samples/cpp does not build"; }
WEIGHTS=$PREFIX/share/attnkit/weights
SAMPLE=$PREFIX/share/attnkit/samples/fashion/test0000-ankle-boot.png
OUT=$("$WORK/example/explain_image" "$SAMPLE" "$WORK/explained.png" \
        --model "$WEIGHTS/fashion-vit.safetensors" \
        --captioner "$WEIGHTS/scenes-captioner.safetensors")
echo "$OUT"
echo "$OUT" | head -1 | grep -q "^Ankle boot" || fail "the example did not classify the ankle boot"
echo "$OUT" | grep -q "^map 7x7 (grad-rollout)" || fail "the example gave no 7x7 grad-rollout map"
echo "$OUT" | grep -q "^caption: ." || fail "the example gave no caption"
[ -s "$WORK/explained.png" ] || fail "the example wrote no overlay"

echo "== Debian packages"
(cd "$BUILD" && cpack -G DEB -B "$WORK/deb" >"$WORK/cpack.log" 2>&1) ||
  { cat "$WORK/cpack.log" >&2; fail "cpack failed"; }
RUNTIME=$(ls "$WORK"/deb/attnkit_*.deb 2>/dev/null | head -1)
DEV=$(ls "$WORK"/deb/attnkit-dev_*.deb 2>/dev/null | head -1)
[ -n "$RUNTIME" ] && [ -n "$DEV" ] || fail "cpack made $(ls "$WORK/deb"), not attnkit and attnkit-dev"
dpkg-deb --field "$RUNTIME" Depends | tee "$WORK/depends"
grep -q "libtorch" "$WORK/depends" || fail "attnkit's Depends does not name LibTorch's package"
grep -q "libopencv-imgcodecs" "$WORK/depends" || fail "attnkit's Depends does not name OpenCV's"
dpkg-deb --contents "$RUNTIME" | grep >/dev/null "\./usr/bin/attn$" || fail "attnkit has no /usr/bin/attn"
dpkg-deb --contents "$DEV" | grep >/dev/null "usr/lib/cmake/attnkit/attnkitConfig.cmake" ||
  fail "attnkit-dev has no CMake package"
dpkg -x "$RUNTIME" "$WORK/root"
ATTN=$WORK/root/usr/bin/attn
"$ATTN" classify --topk 1 --json "$WORK/root/usr/share/attnkit/samples/fashion/" >"$WORK/classify.json"
python3 - "$WORK/classify.json" <<'PY' || fail "attn from the package did not classify the samples"
import json, sys
doc = json.load(open(sys.argv[1]))
results = doc["results"]
assert len(results) == 10 and not doc["errors"], doc
assert doc["model"].endswith("/usr/share/attnkit/weights/fashion-vit.safetensors"), doc["model"]
letters = lambda text: "".join(c for c in text.lower() if c.isalpha())
right = sum(letters(r["predictions"][0]["label"]) in letters(r["path"].rsplit("/", 1)[-1]) for r in results)
print(f"attn from the .deb: {right}/10 samples right with {doc['model']}")
assert right >= 9, right
PY
"$ATTN" caption "$WORK/root/usr/share/attnkit/samples/scenes/" >"$WORK/caption.txt" ||
  fail "attn from the package did not caption the scenes"
head -2 "$WORK/caption.txt"
echo "check_package: install, example and packages OK"
