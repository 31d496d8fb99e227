#!/bin/sh
# Every input the fuzzers found (tests/fuzz/regress/) through the CLI:
# simplify, derivative by each symbol found, and check, must end with a
# status of 0, 1 or 2 (never a crash), and simplify must be idempotent on
# what it prints.  TAP.  Usage: regress.sh MATDIFF DIR
md=$1 dir=$2
n=0 fail=0
for f in "$dir"/*; do
  n=$((n + 1))
  ok=1
  out=$("$md" simplify <"$f" 2>/dev/null)
  s=$?
  [ $s -le 2 ] || ok=0
  if [ $s -eq 0 ] && [ -n "$out" ]; then
    again=$(printf '%s\n' "$out" | "$md" simplify 2>/dev/null)
    [ "$again" = "$out" ] || ok=0
  fi
  "$md" <"$f" >/dev/null 2>&1
  [ $? -le 2 ] || ok=0
  "$md" check - <"$f" >/dev/null 2>&1
  [ $? -le 2 ] || ok=0
  if [ $ok = 1 ]; then
    echo "ok $n - $(basename "$f")"
  else
    echo "not ok $n - $(basename "$f")"
    fail=1
  fi
done
echo "1..$n"
exit $fail
