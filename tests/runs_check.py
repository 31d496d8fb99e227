#!/usr/bin/env python3
"""Random flat products with 1×1 runs inside (SPEC 2: `M u^T u N` is
`M (u^T u) N`), simplified by matdiff and judged by `matdiff check`
(evaluation at random points).

Usage: runs_check.py --matdiff PATH [--count N] [--seed S]

Each line is a product of vectors, their transposes, matrices, scalars
and closed factors (I, ones, ones ones^T, I + ones ones^T), sometimes
transposed or added to another such product.  The lines that parse are
simplified one at a time; `EXPR = RESULT` for each goes to one identity
file, and every identity must pass.  Two bugs lived here: the normal form
read u^T I (y^T x) as one 1×1 run and printed a column for a row, and
the evaluator sized a closed factor by the factor before it in the flat
list, not in its run.  A free-sized I inside a Kronecker product is left
out: sum(kron(I, u)) depends on a size nothing fixes, which each side of
an identity draws on its own.  Prints TAP.
"""
import argparse
import random
import subprocess
import sys
import tempfile

FACTORS = ['u^T', 'y', 'x^T', 'x', 'A', 'B^T', 'I', '(ones ones^T)',
           '(I + ones ones^T)', 'ones^T', 'ones', '(1/2)', '(y^T x)', 'u',
           'v^T', '(u^T A)', '(A y)', 'I^T', '(2 I)', '(u y^T)',
           '(y^T I x)', 'I I', '(x^T A y)', '3']


def product(rng, lo, hi):
    return ' '.join(rng.choice(FACTORS) for _ in range(rng.randint(lo, hi)))


def line(rng):
    e = product(rng, 2, 7)
    r = rng.random()
    if r < 0.2:
        return '(%s)^T' % e
    if r < 0.3:
        return '%s + %s' % (e, product(rng, 1, 3))
    return e


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--matdiff', required=True)
    ap.add_argument('--count', type=int, default=300)
    ap.add_argument('--seed', type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    pairs = []
    tried = 0
    while len(pairs) < a.count and tried < 20 * a.count:
        tried += 1
        e = line(rng)
        p = subprocess.run([a.matdiff, 'simplify', '--', e],
                           capture_output=True, text=True, timeout=60)
        if p.returncode == 2:
            continue  # does not parse: sizes that cannot agree
        if p.returncode != 0 or not p.stdout.strip():
            print('not ok 1 - simplify %r: exit %d\n# %s' %
                  (e, p.returncode, p.stderr.strip()))
            print('1..1')
            return 1
        pairs.append((e, p.stdout.strip()))
    with tempfile.NamedTemporaryFile('w', suffix='.mdi', delete=False) as f:
        for e, r in pairs:
            f.write('%s = %s\n' % (e, r))
        path = f.name
    p = subprocess.run([a.matdiff, 'check', path], capture_output=True,
                       text=True, timeout=600)
    verdicts = [l for l in p.stdout.splitlines() if l.startswith(path)]
    n = 0
    fail = 0
    for l in verdicts:
        n += 1
        ok = ': proved: ' in l or ': verified' in l
        print('%s %d - %s' % ('ok' if ok else 'not ok', n,
                              l[len(path) + 1:]))
        fail += not ok
    if n != len(pairs):
        n += 1
        print('not ok %d - %d verdicts for %d identities\n# %s' %
              (n, len(verdicts), len(pairs), p.stderr.strip()[:2000]))
        fail += 1
    print('1..%d' % n)
    if fail:
        print(p.stdout, file=sys.stderr)
    return 1 if fail else 0


if __name__ == '__main__':
    sys.exit(main())
