#!/bin/sh
# Every input the fuzzers found (tests/fuzz/regress/) through the CLI:
# simplify, derivative by each symbol found, and check, must end with a
# status of 0, 1 or 2 (never a crash), and simplify must be idempotent on
# what it prints (but for $settles below).  TAP.  Usage: regress.sh MATDIFF DIR
md=$1 dir=$2
# Inputs on which simplify meets its work budgets (simplify.c: WORK_FLOOR,
# ASKED_FLOOR, MAX_ROUNDS): its rounds are cut before they settle, and
# simplifying the output again shortens it (12 067 characters, then
# 12 923); for these the second pass must be final.  With the budgets
# raised they are idempotent too (simplify-peel-runs-7 settles in its
# fifth round).  Any other input must be idempotent from the first pass.
# simplify-verify-false-cancellation-31 (a where chain of 31 levels whose
# result is 77 KB) likewise: 77 228 characters, then 68 271, then the
# same.
settles="simplify-peel-runs-7 simplify-verify-false-cancellation-31"
n=0 fail=0
for f in "$dir"/*; do
  n=$((n + 1))
  ok=1
  out=$("$md" simplify <"$f" 2>/dev/null)
  s=$?
  [ $s -le 2 ] || ok=0
  if [ $s -eq 0 ] && [ -n "$out" ]; then
    again=$(printf '%s\n' "$out" | "$md" simplify 2>/dev/null)
    case " $settles " in
    *" $(basename "$f") "*)
      out=$again
      again=$(printf '%s\n' "$out" | "$md" simplify 2>/dev/null)
      ;;
    esac
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
