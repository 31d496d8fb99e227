#!/bin/sh
# The completion script SCRIPT for SHELL (bash, zsh or fish), as matdiff
# --completions SHELL wrote it at build time: SHELL reads it without a
# syntax error, and (bash, fish) it completes what it should.  TAP; the
# whole test is skipped, visibly, when SHELL is not installed.
# Usage: completions.sh SHELL SCRIPT
shell=$1 script=$2
case $script in
/*) ;;
*) script=$PWD/$script ;;
esac
if ! command -v "$shell" >/dev/null 2>&1; then
  echo "1..0 # SKIP $shell is not installed"
  exit 0
fi
n=0 fail=0
ok() { # ok DESCRIPTION COMMAND...: a test point, passing when COMMAND does
  n=$((n + 1))
  desc=$1
  shift
  if out=$("$@" 2>&1); then
    echo "ok $n - $desc"
  else
    echo "not ok $n - $desc"
    printf '%s\n' "$out" | sed 's/^/# /'
    fail=1
  fi
}
# is WANT GOT: GOT (a command's output) is WANT
is() {
  [ "$1" = "$2" ] && return 0
  printf 'want: %s\ngot:  %s\n' "$1" "$2"
  return 1
}

ok "$shell -n reads $(basename "$script")" "$shell" -n "$script"

# The files a completion may offer.
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
touch "$dir/ls.mdi" "$dir/lsq.mdi" "$dir/my.rules"
cd "$dir" || exit 1

case $shell in
bash)
  # What _matdiff offers for the words of a command line, the last one
  # being completed (COMP_WORDS as bash splits them: '=' is a word).
  offers() {
    bash -c '. "$0"
      COMP_WORDS=("$@")
      COMP_CWORD=$(($# - 1))
      COMPREPLY=()
      _matdiff
      echo "${COMPREPLY[*]}"' "$script" matdiff "$@"
  }
  complete_is() { # complete_is WANT WORD...
    want=$1
    shift
    is "$want" "$(offers "$@")"
  }
  ok "--w: --wrt" complete_is "--wrt" --w
  ok "--format n: numpy" complete_is "numpy" --format n
  ok "-f '': every format" complete_is "text latex numpy torch octave" -f ""
  ok "--format=l: latex" complete_is "latex" --format = l
  ok "--layout '': every layout" complete_is "denominator numerator mixed" \
    --layout ""
  ok "--symmetric c: cookbook" complete_is "cookbook" --symmetric c
  ok "first word: the commands" complete_is "simplify check" ""
  ok "check -: check's options" complete_is \
    "--tap --seed -D --let --rules -h --help -V --version" check -
  ok "simplify --l: --let, not --layout" complete_is "--let" simplify --l
  ok "-x check --l: check is -x's value" complete_is "--layout --let" \
    -x check --l
  sorted() { offers "$@" | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//'; }
  ok "check l: files" is "ls.mdi lsq.mdi" "$(sorted check l)"
  ok "--rules '': files" is "ls.mdi lsq.mdi my.rules" "$(sorted --rules "")"
  ok "--wrt '': nothing" complete_is "" --wrt ""
  ok "matdiff is bound to _matdiff" sh -c \
    'bash -c ". \"\$0\"; complete -p matdiff" "$0" | grep -q "_matdiff"' \
    "$script"
  ;;
fish)
  complete_is() { # complete_is WANT COMMANDLINE: the candidates, no help
    is "$1" "$(fish -c 'source $argv[1]; complete -C $argv[2]' "$script" \
      "$2" | cut -f1 | tr '\n' ' ' | sed 's/ $//')"
  }
  ok "--w: --wrt" complete_is "--wrt" "matdiff --w"
  ok "--format n: numpy" complete_is "numpy" "matdiff --format n"
  ok "first word: the commands" complete_is "check simplify" "matdiff "
  ok "check --: check's options" complete_is \
    "--help --let --rules --seed --tap --version" "matdiff check --"
  ok "check l: files" complete_is "ls.mdi lsq.mdi" "matdiff check l"
  ok "--rules m: files" complete_is "my.rules" "matdiff --rules m"
  ;;
esac
echo "1..$n"
exit $fail
