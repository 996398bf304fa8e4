#!/usr/bin/env bash
# tests/check_format.sh: every C++ file of attnkit is as clang-format-14 writes it (.clang-format:
# Google style, 100 columns). Prints the files that are not and how to fix them; exit 1 then.
set -euo pipefail
cd "$(dirname "$0")/.."
FORMAT=${CLANG_FORMAT:-clang-format-14}
command -v "$FORMAT" >/dev/null || { echo "check_format: $FORMAT not found (apt-get install clang-format-14)" >&2; exit 1; }
mapfile -t files < <(find attention vision apps tests samples -name build -prune -o \
                          \( -name '*.cpp' -o -name '*.h' \) -print | sort)
bad=()
for f in "${files[@]}"; do
  "$FORMAT" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]})); then
  echo "check_format: ${#bad[@]} of ${#files[@]} files are not formatted:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "fix: $FORMAT -i ${bad[*]}" >&2
  exit 1
fi
echo "check_format: ${#files[@]} files formatted"
