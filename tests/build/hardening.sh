#!/usr/bin/env bash
# Every Pactum binary is built hardened: position-independent, full RELRO with
# symbols bound at start, a stack protector, and (when fortify is on) the
# checked variants of libc's string and memory calls.
#
#   tests/build/hardening.sh BUILD_DIR FORTIFY(ON|OFF)
set -euo pipefail
build=${1:?usage: hardening.sh BUILD_DIR ON|OFF}
fortify=${2:-ON}
bins=("$build/services/ingest/pactum-ingest" "$build/services/evaluator/pactum-evaluator"
  "$build/services/scorer/pactum-scorer" "$build/services/oracle/pactum-oracle"
  "$build/services/witness/pactum-witness" "$build/services/gateway/pactum-gateway"
  "$build/cli/pactum")
bad=0
for b in "${bins[@]}"; do
  if [ ! -x "$b" ]; then
    echo "missing: $b" >&2
    bad=1
    continue
  fi
  name=$(basename "$b")
  header=$(readelf -h "$b")
  dynamic=$(readelf -d "$b")
  segments=$(readelf -lW "$b")
  symbols=$(readelf --dyn-syms -W "$b")
  grep -q 'Type:.*DYN' <<<"$header" || { echo "$name: not position-independent" >&2; bad=1; }
  grep -q 'GNU_RELRO' <<<"$segments" || { echo "$name: no RELRO segment" >&2; bad=1; }
  grep -qE 'BIND_NOW|FLAGS_1.*NOW' <<<"$dynamic" || { echo "$name: symbols not bound at start (-z now)" >&2; bad=1; }
  grep -q '__stack_chk_fail' <<<"$symbols" || { echo "$name: no stack protector" >&2; bad=1; }
  if [ "$fortify" = ON ] && ! grep -qE '__[a-z]+_chk' <<<"$(grep -v __stack_chk <<<"$symbols")"; then
    echo "$name: no fortified libc calls (_FORTIFY_SOURCE)" >&2
    bad=1
  fi
  [ "$bad" = 0 ] && echo "$name: PIE, full RELRO, stack protector$([ "$fortify" = ON ] && echo ', fortified')"
done
exit "$bad"
