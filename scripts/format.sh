#!/usr/bin/env bash
# Format Pactum's C code with the committed .clang-format.
#
#   scripts/format.sh           rewrite every tracked .c and .h file in place
#   scripts/format.sh --check   list the files that differ and exit 1 if any do
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v clang-format >/dev/null 2>&1; then
  scripts/deps.sh clang-format
fi
mapfile -t files < <(git ls-files '*.c' '*.h')
if [ "${1:-}" = "--check" ]; then
  bad=$(clang-format --dry-run "${files[@]}" 2>&1 | grep -oE '^[^:]+\.(c|h)' | sort -u || true)
  if [ -n "$bad" ]; then
    echo "these files differ from .clang-format (scripts/format.sh fixes them):" >&2
    printf '  %s\n' $bad >&2
    exit 1
  fi
  echo "all ${#files[@]} C files match .clang-format"
  exit 0
fi
clang-format -i "${files[@]}"
