#!/usr/bin/env python3
"""Backpropagation as code (issue 19): the functions of `-f numpy`,
`-f torch` and `-f octave` run, and agree with independent judges.

Usage: backprop_check.py --matdiff PATH [--count N] [--seed S]
                         [--identities-dir DIR]... [FILE.mdi]...

Cases: every derivative on the left of an identity of the files given
(`d/dX f`, `diff`, `grad`, `hess`), and for each such scalar f the
function of all its symbols at once (`--value --wrt P1 --wrt P2 ...`);
then N random compositions with several parameters (neural networks of
1 to 4 layers under five losses, and the scalar compositions of
tests/diffcheck.py), all their symbols at once.

  1. NumPy: each gradient of the several-variable function (`-f numpy
     --value`) against central finite differences of `simplify -f numpy
     f`, and its value against f.
  2. PyTorch: the single derivatives against torch.autograd's Jacobian of
     `simplify -f torch f` (of the gradient for a Hessian); the
     several-variable functions against backward() of the f they return.
  3. Octave: each function of 1 and 2 run by Octave on the inputs NumPy
     had; the outputs must agree.
  4. The cheap-gradient principle: the matrix products of the
     several-variable function (`@`, or Octave's `*`) are at most 3 times
     those of the loss alone (`simplify -f FORMAT f`), in each format.

Prints TAP.  A missing tool is a visible skip (`ok N # SKIP ...`); without
NumPy the whole test is skipped (exit 77, or --skip-status).  Runs under
/usr/bin/python3 when this Python lacks NumPy (as numpy_check.py does).
"""
import argparse
import glob
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def find_numpy():
    try:
        import numpy  # noqa: F401
        return
    except ImportError:
        pass
    if not os.environ.get("BACKPROP_CHECK_REEXEC"):
        for py in ["/usr/bin/python3", "/usr/local/bin/python3"]:
            if not os.path.exists(py) or os.path.realpath(py) == \
                    os.path.realpath(sys.executable):
                continue
            if subprocess.run([py, "-c", "import numpy"],
                              capture_output=True).returncode == 0:
                env = dict(os.environ, BACKPROP_CHECK_REEXEC="1")
                os.execve(py, [py, os.path.abspath(__file__)] + sys.argv[1:],
                          env)
    print("1..0 # SKIP no Python with NumPy")
    status = 77
    if "--skip-status" in sys.argv[1:-1]:
        status = int(sys.argv[sys.argv.index("--skip-status") + 1])
    sys.exit(status)


find_numpy()
import numpy as np  # noqa: E402

sys.path.insert(0, HERE)
os.environ["NUMPY_CHECK_REEXEC"] = "1"  # numpy_check: we have NumPy
import diffcheck  # noqa: E402
import numpy_check as nc  # noqa: E402

try:
    import torch
    torch.set_default_dtype(torch.float64)
    TORCH = None
except ImportError as e:  # a visible skip, below
    torch = None
    TORCH = "no PyTorch in %s (%s)" % (sys.executable, e)

OCTAVE = shutil.which("octave-cli") or shutil.which("octave")

DEF = re.compile(r"^def (\w+)\(", re.M)
FUNCTION = re.compile(r"^function (?:\[?[\w, ]*\]? = )?(\w+)\(", re.M)


def power_products(k):
    """The matrix products of X^k by repeated squaring, as NumPy's
    matrix_power and Octave's ^ take them."""
    k = abs(k)
    return max(0, k.bit_length() - 1 + bin(k).count("1") - 1)


def products(code, fmt):
    """The matrix products in CODE: @, or Octave's * (never .*), and those
    of each matrix power (matrix_power(A, 3), A ^ 3: two)."""
    body = "\n".join(l for l in code.splitlines()
                     if not l.startswith(("function", "def", "import")))
    if fmt == "octave":
        # size(b, 1) * size(A, 1): a size, not a matrix product
        body = re.sub(r"size\([^()]*\)(?:\s*\*\s*size\([^()]*\))+",
                      "SIZE", body)
        n = len(re.findall(r"(?<!\.)\*", body))
        pows = re.findall(r"(?<!\.)\^ ?\(?(-?\d+)", body)
    else:
        n = body.count("@")
        pows = re.findall(r"matrix_power\(.*?, (-?\d+)\)", body)
    return n + sum(power_products(int(k)) for k in pows)


class Code:
    """The output of one matdiff run, loaded."""

    def __init__(self, fmt, text):
        self.fmt, self.text = fmt, text
        m = (FUNCTION if fmt == "octave" else DEF).search(text)
        self.name = m.group(1) if m else None
        self.fn = None
        if fmt != "octave" and self.name:
            ns = {}
            exec(compile(text, "<matdiff -f %s>" % fmt, "exec"), ns)
            self.fn = ns[self.name]


def flatF(v):
    """A value as a 1-D float array, column-major."""
    if torch is not None and isinstance(v, torch.Tensor):
        v = v.detach().numpy()
    return np.ravel(np.asarray(v, dtype=float), order="F")


def project(G, kind):
    """The structured gradient of SPEC 3 from the unstructured one."""
    if kind in ("symmetric", "spd"):
        return (G + G.T) / 2
    if kind == "diagonal":
        return np.diag(np.diag(G))
    return G


class Octave:
    """Functions to run in one Octave process at the end: each call and
    the outputs NumPy gave for it."""

    def __init__(self):
        self.jobs = []

    def add(self, code, args, want, what):
        self.jobs.append((code, args, want, what))

    @staticmethod
    def literal(v):
        a = np.asarray(v, dtype=float)
        if a.ndim == 0:
            return "%.17g" % float(a)
        if a.ndim == 1:
            a = a.reshape(-1, 1)
        return "[" + "; ".join(" ".join("%.17g" % x for x in row)
                               for row in a) + "]"

    def run(self, ck):
        if not self.jobs:
            return
        d = tempfile.mkdtemp(prefix="matdiff-octave-")
        script = ["1;", "format long;"]
        for i, (code, args, want, what) in enumerate(self.jobs):
            name = "case_%d" % i
            text = FUNCTION.sub(lambda m: m.group(0).replace(
                m.group(1) + "(", name + "("), code.text, count=1)
            with open(os.path.join(d, name + ".m"), "w") as fh:
                fh.write(text)
            outs = ", ".join("o%d" % k for k in range(len(want)))
            script.append("try")
            script.append("  [%s] = %s(%s);" % (
                outs, name, ", ".join(self.literal(a) for a in args)))
            for k in range(len(want)):
                script.append('  printf("%d %d"); printf(" %%.17g", '
                              'double(o%d(:))); printf("\\n");' % (i, k, k))
            script.append("catch err")
            script.append('  printf("%d error %%s\\n", err.message);' % i)
            script.append("end")
        with open(os.path.join(d, "run_all.m"), "w") as fh:
            fh.write("\n".join(script) + "\n")
        p = subprocess.run([OCTAVE, "--no-gui", "--quiet", "--norc",
                            "--no-history", "--eval",
                            "cd('%s'); run_all" % d],
                           capture_output=True, text=True, timeout=1800)
        got = {}
        for line in p.stdout.splitlines():
            parts = line.split(" ", 2)
            if len(parts) >= 2 and parts[1] == "error":
                got[(int(parts[0]), "error")] = line
            elif len(parts) >= 2 and parts[0].isdigit():
                vals = line.split()[2:]
                got[(int(parts[0]), int(parts[1]))] = np.array(
                    [float(v.replace("Inf", "inf").replace("NaN", "nan"))
                     for v in vals])
        for i, (code, args, want, what) in enumerate(self.jobs):
            if (i, "error") in got:
                ck.fail(what, "Octave: %s\n%s" % (got[(i, "error")],
                                                  code.text))
                continue
            bad = None
            for k, w in enumerate(want):
                g = got.get((i, k))
                if g is None:
                    bad = "output %d missing (Octave said: %s)" % (
                        k, (p.stderr or p.stdout)[-400:])
                    break
                w = flatF(w)
                if w.size == 1 and g.size > 1:
                    w = np.full(g.size, w[0])
                ok, err = nc.close(g, w, 1e-8)
                if not ok:
                    bad = "output %d differs from NumPy's by %.3g:\n  " \
                        "octave %s\n  numpy  %s" % (k, err, g, w)
                    break
            if bad:
                ck.fail(what, bad + "\n" + code.text)
            else:
                ck.verified += 1
        shutil.rmtree(d, ignore_errors=True)


class Checker(nc.Checker):
    def __init__(self, matdiff, seed):
        super().__init__(matdiff, seed)
        self.ratios = []  # (ratio, format, what)

    def code(self, fmt, args, what):
        """The function of `matdiff -f FMT ARGS`, or None (a refusal is a
        skip, anything else a failure)."""
        if "simplify" in args:
            args = ["simplify"] + [x for x in args if x != "simplify"]
            args = args[:1] + ["-f", fmt] + args[1:]
        else:
            args = ["-f", fmt] + args
        rc, out, err = nc.run(self.matdiff, args)
        if rc not in (0, 2) or "Sanitizer" in err or "runtime error" in err:
            self.fail(what, "matdiff %s: exit status %d\n%s"
                      % (" ".join(args), rc, err))
            return None
        if rc != 0:
            self.skipped.append("%s: %s" % (what, err.strip()))
            return None
        try:
            c = Code(fmt, out)
        except Exception as e:
            self.fail(what, "%s in the generated code:\n%s" % (e, out))
            return None
        if not c.name:
            self.fail(what, "no function in:\n" + out)
            return None
        return c


def args_for(code, pt, decls):
    """The arguments of CODE's function at PT, by parameter name."""
    if code.fn is not None:
        names = nc.param_names(code.fn)
    else:
        m = re.search(r"\(([^)]*)\)", code.text.splitlines()[0])
        names = [x.strip() for x in m.group(1).split(",") if x.strip()]
    syms = [nc.symbol_of(n, decls) for n in names]
    return syms, [pt.get(s) for s in syms]


def to_torch(v, grad=False):
    t = torch.tensor(np.asarray(v, dtype=float))
    return t.requires_grad_(grad)


def torch_jacobian(tcode, pt, decls, sym):
    """J[i, j] = d vec(f)_j / d vec(sym)_i by torch.autograd."""
    syms, vals = args_for(tcode, pt, decls)
    x0 = np.asarray(pt.get(sym), dtype=float)
    shape = x0.shape

    def f(xflat):
        x = xflat.reshape(shape[::-1]).T if len(shape) == 2 else \
            xflat.reshape(shape)
        args = [x if s == sym else to_torch(v) for s, v in zip(syms, vals)]
        r = torch.as_tensor(tcode.fn(*args))
        return r.T.reshape(-1) if r.dim() == 2 else r.reshape(-1)


    J = torch.autograd.functional.jacobian(f, to_torch(flatF(x0)))
    return J.detach().numpy().T


def single(ck_np, ck_t, oct_jobs, decls, var, f, hess, what):
    """One derivative of an identity file, in PyTorch (against autograd)
    and Octave (against NumPy)."""
    opts = (["--hessian"] if hess else []) + ["--wrt", var, "--", f]
    ncode = ck_np.code("numpy", decls.args + opts, what)
    fcode = ck_np.code("numpy", decls.args + ["simplify", "--", f], what)
    if ncode is None or fcode is None:
        return
    tcode = src = None
    if torch is not None:
        tcode = ck_t.code("torch", decls.args + opts, what)
        src = ck_t.code("torch", decls.args + (
            ["--wrt", var, "--", f] if hess else ["simplify", "--", f]),
            what)
    ocode = ck_np.code("octave", decls.args + opts, what) if OCTAVE else None
    sym = var[4:-1] if var.startswith("vec(") else var
    for pt in ck_np.points(decls, [fcode.fn, ncode.fn], f, [sym]):
        try:
            with np.errstate(all="raise", under="ignore"):
                fval = pt.call(fcode.fn, decls)
                got = pt.call(ncode.fn, decls)
        except (FloatingPointError, ZeroDivisionError,
                np.linalg.LinAlgError):
            continue
        if ocode is not None:
            oct_jobs.add(ocode, args_for(ocode, pt, decls)[1], [got],
                         "octave: " + what)
        if tcode is not None and src is not None:
            try:
                tgot = pt.call(tcode.fn, decls)
                J = torch_jacobian(src, pt, decls, sym)
                want = nc.expected(J, fval, "vec" if sym != var else
                                   pt.kinds[sym], np.shape(pt.vals[sym]),
                                   "hess" if hess else "grad", None)
                ok, err = nc.close(flatF(tgot), flatF(want), 1e-7)
            except Exception as e:
                ck_t.fail("torch: " + what, "%s: %s\n%s" % (
                    type(e).__name__, e, tcode.text))
                return
            if not ok or not np.all(np.isfinite(flatF(tgot))):
                ck_t.fail("torch: " + what, "differs from autograd by "
                          "%.3g\n  at %s\n  matdiff %s\n  autograd %s\n%s"
                          % (err, pt.vals, tgot, want, tcode.text))
            else:
                ck_t.verified += 1
        return
    ck_np.no_point(what, "f is finite", fcode.fn)


def several(cks, oct_jobs, decls, f, what, wrt=None, strict=False):
    """All the symbols of scalar F at once, with --value: NumPy against
    finite differences, PyTorch against backward(), Octave against NumPy,
    and the product counts."""
    ck_np, ck_t, ck_c, ck_w = cks
    if not strict:
        ck_c = ck_w  # measured, reported: see main()
    fcode = ck_np.code("numpy", decls.args + ["simplify", "--", f], what)
    if fcode is None:
        return
    params = [nc.symbol_of(p, decls) for p in nc.param_names(fcode.fn)]
    wrt = wrt or params
    if len(wrt) < 2:
        return
    # gradients: a scalar f (a Jacobian is checked by single())
    for pt in ck_np.points(decls, [fcode.fn], f, wrt):
        try:
            scalar = isinstance(pt.call(fcode.fn, decls), float)
        except Exception:
            continue
        if not scalar:
            return
        break
    else:
        return
    opts = ["--value"]
    for v in wrt:
        opts += ["--wrt", v]
    opts += ["--", f]
    codes = {}
    for fmt in ("numpy", "torch", "octave"):
        if fmt == "torch" and torch is None or fmt == "octave" and not OCTAVE:
            continue
        c = ck_np.code(fmt, decls.args + opts, "%s: %s" % (fmt, what))
        loss = ck_np.code(fmt, decls.args + ["simplify", "--", f],
                          "%s: %s" % (fmt, what))
        if c is None or loss is None:
            return
        codes[fmt] = c
        n, m = products(c.text, fmt), products(loss.text, fmt)
        ratio = n / m if m else (0.0 if n == 0 else float("inf"))
        ck_c.ratios.append((ratio, fmt, what))
        ck_w.all_ratios.append((ratio, fmt, what))
        if n > 3 * m:
            ck_c.fail("%s: %s" % (fmt, what), "%d matrix products, the "
                      "loss alone %d: more than 3 times\n%s%s"
                      % (n, m, c.text, loss.text))
        else:
            ck_c.verified += 1
    ncode = codes["numpy"]
    for pt in ck_np.points(decls, [fcode.fn, ncode.fn], f, wrt):
        try:
            with np.errstate(all="raise", under="ignore"):
                fval = pt.call(fcode.fn, decls)
                value, grads = pt.call(ncode.fn, decls)
                if len(wrt) == 1:
                    grads = (grads,)
                checks = []
                for v, g in zip(wrt, grads):
                    best = None
                    for h in (1e-6, 1e-5, 1e-4):
                        J = nc.numjac(fcode.fn, pt, decls, v, h)
                        want = nc.expected(J, fval, pt.kinds.get(v, "scalar"),
                                           np.shape(pt.vals[v]), "grad", None)
                        ok, err = nc.close(g, want, 1e-5)
                        if best is None or err < best[1]:
                            best = (ok, err, want)
                        if ok:
                            break
                    checks.append((v, g, best))
        except (FloatingPointError, ZeroDivisionError,
                np.linalg.LinAlgError):
            continue
        except Exception as e:
            ck_np.fail(what, "%s: %s\n  at %s\n%s" % (
                type(e).__name__, e, pt.vals, ncode.text))
            return
        bad = [(v, g, b) for v, g, b in checks if not b[0]]
        if not nc.close(value, fval, 1e-9)[0]:
            ck_np.fail(what, "value %r, f %r\n%s" % (value, fval, ncode.text))
        elif bad:
            v, g, b = bad[0]
            ck_np.fail(what, "d/d%s differs from finite differences by %.3g"
                       "\n  at %s\n  matdiff %s\n  differences %s\n%s"
                       % (v, b[1], pt.vals, g, b[2], ncode.text))
        else:
            ck_np.verified += 1
        if "octave" in codes:
            oc = codes["octave"]
            oct_jobs.add(oc, args_for(oc, pt, decls)[1],
                         [value] + list(grads), "octave: " + what)
        if "torch" in codes:
            tc = codes["torch"]
            syms, vals = args_for(tc, pt, decls)
            ts = [to_torch(x, True) for x in vals]
            try:
                tval, tgrads = tc.fn(*ts)
                if len(wrt) == 1:
                    tgrads = (tgrads,)
                tval.backward()
                bad = None
                for v, g in zip(wrt, tgrads):
                    t = ts[syms.index(v)]
                    auto = t.grad.numpy() if t.grad is not None else \
                        np.zeros(t.shape)
                    if auto.ndim == 2:
                        auto = project(auto, pt.kinds.get(v))
                    ok, err = nc.close(flatF(g), flatF(auto), 1e-7)
                    if not ok:
                        bad = "d/d%s differs from autograd by %.3g\n  " \
                              "matdiff %s\n  autograd %s" % (v, err, g, auto)
                        break
                if bad is None and not nc.close(float(tval), fval, 1e-9)[0]:
                    bad = "value %r, f %r" % (float(tval), fval)
            except Exception as e:
                bad = "%s: %s" % (type(e).__name__, e)
            if bad:
                ck_t.fail("torch: " + what, "%s\n  at %s\n%s"
                          % (bad, pt.vals, tc.text))
            else:
                ck_t.verified += 1
        return
    ck_np.no_point(what, "f is finite", fcode.fn)


ACTS = ["tanh", "sigmoid", "relu", "softplus", "sin"]
LOSSES = ["||%s - y||^2", "logsumexp(%s) - y^T %s", "sum(softplus(%s))",
          "-y^T log(softmax(%s))", "a^T tanh(%s) + alpha ||%s||^2"]


# Textbook losses, each with all its parameters: held to the bound as the
# networks are.  (Declarations as `let` would give them.)
TEXTBOOK = [
    (["A : matrix(m, n)", "x : vector(n)", "b : vector(m)"],
     "||A x - b||^2 + lambda ||x||^2"),
    (["X : matrix(m, n)", "w : vector(n)", "y : vector(m)"],
     "sum(log(1 + exp(-y .* (X w))))"),
    (["X : matrix(m, n)", "w : vector(n)", "y : vector(m)"],
     "y^T log(sigmoid(X w)) + (1 - y)^T log(1 - sigmoid(X w))"),
    (["W : matrix(k, n)", "b : vector(k)", "x : vector(n)", "y : vector(k)"],
     "-y^T log(softmax(W x + b))"),
    (["X : matrix(m, n)", "U : matrix(m, r)", "V : matrix(n, r)"],
     "||X - U V^T||_F^2 + lambda (||U||_F^2 + ||V||_F^2)"),
    (["A : matrix(m, n)", "X : matrix(n, p)", "B : matrix(p, q)",
      "C : matrix(m, q)"], "||A X B - C||_F^2"),
    (["A : matrix(n, n)", "B : matrix(p, p)", "X : matrix(n, p)"],
     "tr(A X B X^T)"),
    (["X : matrix(n, p)", "A : matrix(n, n)"], "tr(X^T A X)"),
    (["K : matrix(n, n)", "alpha : vector(n)", "y : vector(n)"],
     "||K alpha - y||^2 + lambda alpha^T K alpha"),
    (["W1 : matrix(h, n)", "W2 : matrix(k, h)", "b1 : vector(h)",
      "b2 : vector(k)", "x : vector(n)"],
     "-y^T log(softmax(W2 sigmoid(W1 x + b1) + b2))"),
    (["X : matrix(n, n)", "A : matrix(n, n)"], "tr(inv(X) A) + logdet(X)"),
]


def network(rng):
    """A random network's loss with its declarations (named sizes)."""
    depth = rng.randint(1, 4)
    act = rng.choice(ACTS)
    sizes = ["n0"] + ["n%d" % (k + 1) for k in range(depth)]
    decls = ["x : vector(n0)"]
    h = "x"
    for k in range(1, depth + 1):
        decls.append("W%d : matrix(%s, %s)" % (k, sizes[k], sizes[k - 1]))
        pre = "W%d %s" % (k, h)
        if rng.random() < 0.8:
            decls.append("b%d : vector(%s)" % (k, sizes[k]))
            pre += " + b%d" % k
        h = "%s(%s)" % (act if k < depth or rng.random() < 0.5 else "tanh",
                        pre) if k < depth else pre
    loss = rng.choice(LOSSES)
    out = sizes[depth]
    decls += ["y : vector(%s)" % out, "a : vector(%s)" % out,
              "alpha : scalar"]
    return decls, loss.replace("%s", "(%s)" % h)


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--matdiff", required=True)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--seed", type=int, default=20261219)
    ap.add_argument("--skip-status", type=int, default=77)
    ap.add_argument("--identities-dir", action="append", default=[])
    ap.add_argument("files", nargs="*")
    a = ap.parse_args(argv[1:])
    for d in a.identities_dir:
        if os.path.isdir(d):
            a.files += sorted(glob.glob(os.path.join(d, "*.mdi")))

    deriv, pairs = [], []
    nc.identity_files(a.matdiff, a.files, deriv, pairs)
    ck_np = Checker(a.matdiff, a.seed)
    ck_t = Checker(a.matdiff, a.seed + 1)
    ck_c = Checker(a.matdiff, a.seed + 2)
    ck_o = Checker(a.matdiff, a.seed + 3)
    ck_w = Checker(a.matdiff, a.seed + 4)
    ck_w.all_ratios = []
    cks = (ck_np, ck_t, ck_c, ck_w)
    octave = Octave()

    seen = set()
    for decls, var, f, hess, what in deriv:
        single(ck_np, ck_t, octave, decls, var, f, hess, what)
        key = (tuple(decls.args), f)
        if key not in seen:
            seen.add(key)
            several(cks, octave, decls, f, "all symbols of " + what)

    for lines, f in TEXTBOOK:
        decls = nc.Decls()
        for d in lines:
            decls.add(d)
        several(cks, octave, decls, f, "textbook: " + f, strict=True)

    rng = random.Random(a.seed)
    base = nc.Decls()
    for line in diffcheck.DECLS.strip().splitlines():
        base.add(line[len("let "):])
    user = set(re.findall(r"^([A-Za-z]\w*)\(",
                          getattr(diffcheck, "FUNCTIONS", ""), re.M))
    made = tries = 0
    while made < a.count and tries < 50 * a.count:
        tries += 1
        if made % 2 == 0:
            lines, f = network(rng)
            decls = nc.Decls()
            for d in lines:
                decls.add(d)
            several(cks, octave, decls, f, "network: " + f, strict=True)
        else:
            g = diffcheck.Gen(rng, rng.choice(["x", "X"]))
            f = g.sc(rng.randint(0, 2))
            if user & set(re.findall(r"([A-Za-z]\w*)\(", f)):
                continue
            several(cks, octave, base, f, "composition: " + f)
        made += 1

    if OCTAVE:
        octave.run(ck_o)

    tests = [("NumPy: several variables with --value against finite "
              "differences", ck_np, None)]
    tests.append(("PyTorch against torch.autograd", ck_t, TORCH))
    tests.append(("Octave against NumPy on the same inputs", ck_o,
                  None if OCTAVE else "no octave or octave-cli in PATH"))
    tests.append(("networks and textbook losses: matrix products at most 3x "
                  "the loss's", ck_c, None))
    tests.append(("other compositions: matrix products at most 3x the "
                  "loss's", ck_w, None))
    print("1..%d" % len(tests))
    bad = False
    for i, (name, c, skip) in enumerate(tests, 1):
        if skip:
            print("ok %d - %s # SKIP %s" % (i, name, skip))
            continue
        ok = not c.failures and c.verified > 0
        bad |= not ok
        print("%s %d - %s: %d verified, %d skipped, %d failed"
              % ("ok" if ok else "not ok", i, name, c.verified,
                 len(c.skipped), len(c.failures)))
        for f_ in c.failures[:20]:
            for l in f_.splitlines():
                print("#   " + l)
        for s in c.skipped[:20]:
            print("# skipped: " + s.replace("\n", " | ")[:300])
    for c, label in ((ck_c, "networks"), (ck_w, "all")):
        rs = sorted(c.ratios if c is ck_c else c.all_ratios)
        if not rs:
            continue
        for fmt in ("numpy", "torch", "octave"):
            v = [r for r, f_, _ in rs if f_ == fmt]
            if v:
                fin = [r for r in v if r != float("inf")]
                print("# products, %s, %s: %d functions, ratio to the loss: "
                      "max %.2f, mean %.2f%s" % (
                          label, fmt, len(v), max(fin or [0]),
                          sum(fin) / max(1, len(fin)),
                          ", %d with products where the loss has none"
                          % (len(v) - len(fin)) if len(fin) < len(v)
                          else ""))
        r, fmt, what = rs[-1]
        print("# largest ratio, %s: %.2f (%s): %s" % (label, r, fmt, what))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
