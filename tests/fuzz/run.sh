#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (ASan + UBSan) and runs each for
# SECONDS (default 60) on a corpus seeded from the tests.
#   tests/fuzz/run.sh [SECONDS] [HARNESS...]   (default: parse pipeline check dag)
# Each input has at most 4096 bytes, 5 s and 1 GB (issue 15).
# Needs clang and the generated lexer/parser in build/ (meson compile -C build).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
out=build/fuzz
mkdir -p "$out/corpus"
[ -f build/parser.c ] || meson compile -C build
shift || true
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(parse pipeline check dag)
[ -f build/rules_frozen.c ] || meson compile -C build
# the engine's sources (not main.c, nor api.c, the library's public face
# over the same calls), with the generated ones; the prompt without libedit
srcs=()
# The passes over nodes are built without libFuzzer's comparison tracing
# (trace-cmp): their comparisons are of node ids, shapes and counters,
# not of input bytes, and the tracing hooks were half the time of the
# normal form of a long chain (regress/dag-chain-normal-form-34: 4.8 s
# a run, 2.4 s without; the CLI answers in 0.4 s).  The front end (the
# lexer, the parser, the rules, check's reader) keeps it, and every
# module its coverage counters.  LaTeX's measure of width (print_latex.c
# width_of) reads the text the printer wrote, a character at a time
# against each of TeX's classes: traced, it was half the time of a
# where chain whose derivative is 4.5 MB of text (regress/
# dag-factor-multilinear-26: 9.9 G of 19.3 G instructions).
# So does the NumPy printer's sharing of sub-chains (print_numpy.c
# repair, Re-Pair over node pointers: 70% of the 17 G instructions of
# regress/dag-numpy-repair-36 in the harness).
hot=(src/normal.c src/ewise.c src/shape.c src/expr.c src/simplify.c
  src/print_latex.c src/print_numpy.c)
for f in src/*.c; do
  case " src/main.c src/api.c ${hot[*]} " in *" $f "*) continue ;; esac
  srcs+=("$f")
done
srcs+=(build/lexer.c build/parser.c build/rules_data.c build/rules_frozen.c)
flags=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
  -D_POSIX_C_SOURCE=200809L -Isrc -Ibuild -Itests/fuzz)
objs=()
for f in "${hot[@]}"; do
  o="$out/$(basename "$f" .c).o"
  clang "${flags[@]}" -fno-sanitize-coverage=trace-cmp -c "$f" -o "$o"
  objs+=("$o")
done
for h in "${harnesses[@]}"; do
  clang "${flags[@]}" -o "$out/fuzz_$h" "tests/fuzz/fuzz_$h.c" "${srcs[@]}" \
    "${objs[@]}" -lflint -lgmp -lm -lpthread
done
# Seeds: every expression of the golden tests, one per file.
if [ -z "$(ls -A "$out/corpus")" ]; then
  python3 - "$out/corpus" <<'PY'
import re, shlex, sys, pathlib
out = pathlib.Path(sys.argv[1]); n = 0
for f in pathlib.Path('tests').glob('*.test'):
    for line in f.read_text(errors='surrogateescape').splitlines():
        if line.startswith('$ matdiff') or line.startswith('< '):
            try:
                words = shlex.split(line[2:]) if line.startswith('$') else [line[2:]]
            except ValueError:
                continue
            for w in words[-1:]:
                n += 1
                (out / ('seed%04d' % n)).write_bytes(w.encode('utf-8', 'surrogateescape'))
PY
fi
# a stack for 10^4 levels of the engine under ASan (MATDIFF_MAX_DEPTH below)
ulimit -s 262144 || echo "run.sh: the stack stays at $(ulimit -s) KiB" >&2
for h in "${harnesses[@]}"; do
  mkdir -p "$out/corpus-$h"
  cp -n "$out"/corpus/* "$out/corpus-$h/" 2>/dev/null || true
  # a harness's own seeds (the DAG templates of fuzz_dag.c)
  if [ -d "tests/fuzz/seeds-$h" ]; then
    cp -n "tests/fuzz/seeds-$h"/* "$out/corpus-$h/" 2>/dev/null || true
  fi
  # ASan records one frame per allocation, not 30: the engine allocates a
  # lot, and full stacks made inputs of 0.1 s in the CLI take 5 s here;
  # and it holds 16 MB of freed memory, not 256, which counted towards
  # the 1 GB limit (an input of 120 MB peaked at 494 MB).
  # The size budget of a piece of work is 2^18 nodes, not 2^24
  # (MATDIFF_MAX_SIZE, expr.h): the same paths to "too large", reached
  # 64 times sooner (a Kronecker tower the CLI refuses in 0.7 s took more
  # than 5 s under ASan and coverage, and one of 10 levels whose
  # derivative the CLI prints in 0.1 s, 2.4 MB, 6 s to print and read
  # back here); 2^18 since session 10: a 27-level chain of 1 000 factors
  # whose gradient by A (Θ(k^2) factors: 390 KB of text, 1.8 MB of LaTeX,
  # 0.34 s in the CLI) the harness simplifies, prints six ways and reads
  # back, took 1.4 s without the sanitizers and over 5 s with them
  # (regress/dag-chain-gradient-print-27)
  # and check's arithmetic budget is 2^19 operations, not 2^22
  # (MATDIFF_EVAL_WORK, eval.h): the same paths to "too much arithmetic",
  # reached 8 times sooner (a second of the CLI's time is six under the
  # sanitizers, and a loaded machine doubles that)
  # and a check run's arithmetic is bounded as a whole, at 2^21 (four
  # identities at their budget; MATDIFF_CHECK_WORK, checker.c): a 1 KB
  # file of 39 identities, eight of them at the budget, took 3 s here,
  # 7 s beside three other fuzzers (regress/check-many-budgets)
  # and the simplifier's work (its floor, and its work per node in
  # proportion) and the normal form's expansion budget are 512, not
  # 20000 (MATDIFF_SIMPLIFY_WORK, simplify.c): the same paths past those
  # budgets, reached 40 times sooner ((alpha A (alpha A + B)^2 + B)^4 a by
  # alpha, 0.34 s in the CLI, took 3.1 s here, now 0.1 s; t_k = t_(k-1)
  # + Sigma t_(k-1) at k = 34, 4.0 s, now 0.15 s; t_k = sigmoid(t_(k-1))
  # .* t_(k-1) - 2 t_(k-1) - ... at k = 39, whose normal form is Θ(k^2)
  # with its sums flattened, 15 s, then 4 s; since the harnesses trace
  # --steps and simplify the steps with one budget, 7.2 s at 1024, 3.2 s
  # at 512, 0.34 s in the CLI)
  # and the depth past which constructors refuse a node is 10^4, not 10^5
  # (MATDIFF_MAX_DEPTH, expr.h), on a stack of 256 MiB (ulimit -s above):
  # the harnesses run the engine on libFuzzer's thread, not on md_deep's
  # (deep.h), and a level takes up to 6 KB of stack under ASan.  A where
  # chain of nested derivatives, t_k = d/dx t_(k-1)^T A t_(k-1), doubles
  # its depth at each level; at k = 41, 80 000 levels deep, it overflowed
  # the 8 MiB stack the harness had (regress/dag-nested-derivative-41;
  # the CLI says "nested too deeply")
  ASAN_OPTIONS=${ASAN_OPTIONS:-malloc_context_size=1:quarantine_size_mb=16} \
    MATDIFF_MAX_DEPTH=${MATDIFF_MAX_DEPTH:-10000} \
    MATDIFF_MAX_SIZE=${MATDIFF_MAX_SIZE:-262144} \
    MATDIFF_EVAL_WORK=${MATDIFF_EVAL_WORK:-524288} \
    MATDIFF_CHECK_WORK=${MATDIFF_CHECK_WORK:-2097152} \
    MATDIFF_SIMPLIFY_WORK=${MATDIFF_SIMPLIFY_WORK:-512} \
    "$out/fuzz_$h" -max_total_time="$secs" -max_len=4096 \
    -dict=tests/fuzz/matdiff.dict -timeout=5 -rss_limit_mb=1024 \
    -artifact_prefix="$out/$h-" "$out/corpus-$h" tests/fuzz/regress
done
