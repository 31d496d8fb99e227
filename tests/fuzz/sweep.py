#!/usr/bin/env python3
"""sweep.py MATDIFF: hidden variants of issue 15's reproducers (other
sizes, functions and shapes), run one by one under 10 s of CPU and 2 GB
of address space (prlimit), timed in CPU seconds (user + system).  Each must answer (exit 0) or fail with a
clear error (exit 2; for check and --verify, 1 without FALSE is an
error verdict), and --verify must never say FALSE.  Prints a line a
case and "bad: N of M"; exits 1 when N > 0.  Not part of the suite (it
takes a minute, and its bound is CPU time, which a slow machine would
miss); session 16 ran it on 1f6e4a8: 103 of 105, the two bad ones the
log(1 + t .* t) + t / 3 chain; session 17 on 75b5efb: 105 of 105, the
slowest 5.8 s (tanh(t) / 2 + t / 5 at 3 000 levels); session 18 added
the towers' NumPy and Octave code (116 cases); session 19 the loading
of many rules (122); session 21 the nested derivatives (142); session
22 on dadc374: 141 of 142, the nested derivatives by A within 3.8 s (the
order of tall sums), tanh(t) / 2 + t / 5 at 3 000 levels killed at
10.03 s (base 9c90491 takes as long on this machine: 9 to 14 s);
session 23 on c94e856: 142 of 142 on an idle machine, the slowest
4.4 s (log(1 + t .* t) + t / 3 at 3 000 levels, --verify), tanh(t) / 2
+ t / 5 at 3 000 levels 3.1 s (its gradient one factor a level).
"""
import resource, shutil, subprocess, sys, tempfile, time
M = sys.argv[1]
cases = []
def add(name, args, stdin=None, ok=(0, 2)):
    cases.append((name, args, stdin, ok))
def where(n, tmpl, first='x'):
    return 'sum(t%d) where ' % n + ', '.join(['t1 = %s' % first] + [tmpl % {'i': i, 'p': i - 1} for i in range(2, n + 1)])
# 1. silent zero through the depth limit
for n in (200, 359, 360, 361, 1000, 3000):
    for f in ('sin(3 t%(p)d) + cos(t%(p)d)', 'exp(t%(p)d) / 2 + tanh(t%(p)d)', 't%(p)d .* t%(p)d - sigmoid(t%(p)d)', 'log(1 + t%(p)d .* t%(p)d) + t%(p)d / 3'):
        add('1-%d-%s' % (n, f[:12]), ['--verify', '--wrt', 'x'], where(n, 't%(i)d = ' + f))
# 2. deep unary chains with --verify
for n in (1000, 1998, 1999, 2000, 5000, 100000):
    add('2-neg-%d' % n, ['simplify', '--verify'], '-' * n + 'x\n')
    add('2-T-%d' % n, ['simplify', '--verify'], 'X' + '^T' * n + '\n')
    add('2-inv-%d' % n, ['--wrt', 'X'], 'tr(' + 'inv(' * n + 'X' + ')' * n + ')\n')
# 3. Kronecker towers
for k in (8, 10, 12, 16, 20):
    add('3-kron-%d' % k, ['--wrt', 'x'], 'sum(e%d) where e0 = x, ' % k + ', '.join('e%d = kron(e%d, e%d)' % (i, i - 1, i - 1) for i in range(1, k + 1)))
    add('3-kronA-%d' % k, ['--wrt', 'A'], 'tr(e%d) where e0 = A, ' % k + ', '.join('e%d = kron(e%d, e%d^T)' % (i, i - 1, i - 1) for i in range(1, k + 1)))
# 3n. their code: NumPy, Octave (sizes of 2^k factors; session 18)
for k in (6, 10, 16, 20):
    for fmt in ('numpy', 'octave'):
        add('3n-kron-%s-%d' % (fmt, k), ['-f', fmt, '--wrt', 'x'], 'sum(e%d) where e0 = x, ' % k + ', '.join('e%d = kron(e%d, e%d)' % (i, i - 1, i - 1) for i in range(1, k + 1)))
for k in (6, 20, 39):
    add('3n-krho-numpy-%d' % k, ['-f', 'numpy', '--wrt', 'x'], where(k, 't%(i)d = t%(p)d ⊗(t%(p)d)rho'))
# 4. exponential where chains
for n in (25, 40, 60):
    for f in ('t%(p)d + t%(p)d', 't%(p)d t%(p)d', 't%(p)d .* t%(p)d', 't%(p)d^T A t%(p)d', 'exp(t%(p)d) .* t%(p)d'):
        add('4-%d-%s' % (n, f[:8]), ['simplify'], where(n, 't%(i)d = ' + f))
        add('4d-%d-%s' % (n, f[:8]), ['--wrt', 'x'], where(n, 't%(i)d = ' + f))
# 4n. nested derivatives in a where chain: t_k = d/dx t_(k-1)^T A t_(k-1)
# is (A + A^T)^(2^k - 1) x, 2^k levels deep (session 21, fuzz_dag:
# regress/dag-nested-derivative-41); by A its gradient has 2^k terms
for n in (13, 14, 15, 20, 41):
    for args in (['simplify'], ['--wrt', 'x'], ['--wrt', 'A'], ['--verify', '--wrt', 'x']):
        add('4n-%d-%s' % (n, ''.join(a.strip('-')[0] for a in args[:-1]) + args[-1]), args, where(n, 't%(i)d = d/dx t%(p)d^T A t%(p)d'))
# 5. rules that grow, nested functions
d = tempfile.mkdtemp()
open(d + '/grow.mdr', 'w').write('let s : scalar\nexp(s) = exp(s/2) exp(s/2)\n')
open(d + '/grow2.mdr', 'w').write('let s : scalar\nsin(s) = 2 sin(s/2) cos(s/2)\n')
add('5-rule-exp', ['--rules', d + '/grow.mdr', 'simplify', 'exp(a)'])
add('5-rule-sin', ['--rules', d + '/grow2.mdr', 'simplify', 'sin(a) + 1'])
for n in (20, 39, 60):
    src = 'f1(x) := x .* x\n' + ''.join('f%d(x) := f%d(x) .* f%d(x)\n' % (i, i - 1, i - 1) for i in range(2, n + 1)) + 'f%d(y) = f%d(y)\n' % (n, n)
    open(d + '/f%d.mdi' % n, 'w').write(src)
    add('5-fn-%d' % n, ['check', d + '/f%d.mdi' % n], ok=(0, 1, 2))
# 7r. loading many rules (quadratic: 15 s at 16 000; session 19 found it
# still quadratic, 4.3 s at 32 000 definitions, and made it linear),
# then calls of the functions defined
for n in (16000, 64000, 128000):
    open(d + '/defs%d.mdr' % n, 'w').write(''.join('f%d(x) := x .* x + %d\n' % (i, i) for i in range(n)))
    add('7r-defs-%d' % n, ['--rules', d + '/defs%d.mdr' % n, '--wrt', 'x'], 'sum(' + ' + '.join('f%d(x)' % (i * 97 % n) for i in range(300)) + ')\n')
    open(d + '/rw%d.mdr' % n, 'w').write('let s : scalar\n' + ''.join('exp(s + %d) = exp(s) exp(%d)\n' % (i + 1, i + 1) for i in range(n)))
    add('7r-rw-%d' % n, ['--rules', d + '/rw%d.mdr' % n, 'simplify'], 'exp(alpha + 3) + exp(beta + %d)\n' % (n - 1))
# 6. input reading
add('6-zero', ['simplify'], '\0' * 100000)
add('6-bigline', ['simplify'], 'x + ' * 5000000 + 'x\n')
# 7. super-linear
for n in (1600, 4000):
    add('7-1e1000-%d' % n, ['simplify'], ' '.join(['1e1000'] * n) + ' x\n')
for n in (200, 400):
    add('7-tsin-%d' % n, ['--wrt', 'x'], where(n, 't%(i)d = t%(p)d + sin(t%(p)d)'))
for n in (1000, 3000):
    add('7-trXA-%d' % n, ['--wrt', 'X'], 'tr(' + ' '.join('X A%d' % i for i in range(1, n + 1)) + ')\n')
# hidden variants of the flattened-sum chains (item 7's t + sin(t))
for n in (1000, 3000):
    for f in ('t%(p)d + sin(t%(p)d)', 'softplus(t%(p)d) - t%(p)d/2', 'log(1 + t%(p)d .* t%(p)d) + t%(p)d / 3', 'tanh(t%(p)d) / 2 + t%(p)d / 5', 'exp(-t%(p)d) + t%(p)d / 7'):
        add('7c-%d-%s' % (n, f[:10]), ['--wrt', 'x'], where(n, 't%(i)d = ' + f))
bad = 0
for name, args, stdin, ok in cases:
    t0 = time.time()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.Popen(['prlimit', '--as=2147483648', '--cpu=10', M] + args,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    out, err = p.communicate(stdin.encode() if stdin else b'')
    wall = time.time() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU time, as prlimit counts it: wall time on a loaded machine would
    # judge the machine
    dt = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    rc = p.returncode
    verdict = 'ok'
    if args[:1] == ['--verify'] or args[:1] == ['check']:
        rc_ok = rc in ok or (rc == 1 and b'FALSE' not in err)
    else:
        rc_ok = rc in ok
    if not rc_ok:
        verdict = 'BAD rc'
    elif dt > 10:
        verdict = 'BAD time'
    elif rc == 2 and b'error' not in err:
        verdict = 'BAD msg'
    elif b'FALSE' in out or b'FALSE' in err:
        verdict = 'BAD FALSE'
    bad += verdict != 'ok'
    first = err.decode(errors='replace').strip().split('\n')[0][:90] if rc else ''
    print('%-28s rc=%d %6.2fs CPU %6.2fs wall out=%d %s %s' % (name, rc, dt, wall, len(out), verdict, first))
shutil.rmtree(d)
print('bad:', bad, 'of', len(cases))
sys.exit(1 if bad else 0)
