#!/usr/bin/env python3
"""`matdiff -f numpy` agrees with finite differences (SPEC 6).

Usage: numpy_check.py --matdiff PATH [--count N] [--seed S]
                      [--identities-dir DIR]... [--skip-status N] [FILE.mdi]...

For every derivative on the left of an identity (`d/dX f`, `d/dvec(X) f`,
`diff(f, X)`, `grad(f, X)`, `hess(f, x)`) in the files given, and for the
random compositions of tests/diffcheck.py, runs

    matdiff -D ... -f numpy --wrt X f     (--hessian for hess)
    matdiff -D ... simplify -f numpy f

executes both functions with NumPy at random points (sizes 2..4, the
declarations respected: symmetric, spd, diagonal; positive values where
log or sqrt need them) and compares the derivative with central finite
differences of f, in the layout of SPEC 3 (gradients shaped like the
variable, projected for symmetric and diagonal ones; Jacobians n×k;
Hessians by differences of the gradient).  It also checks the calling
conventions of the generated code (float for a scalar, 1-D for a vector,
2-D for a matrix; vectors may be given 1-D or as columns), and for the
identities without derivatives that both sides compute the same values.

A failure prints the expression, the point and both values.  Prints TAP.
NumPy is looked for in this interpreter, then in /usr/bin/python3 (which
then runs this script); without it the test is skipped (exit 77).
"""
import argparse
import glob
import itertools
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def find_numpy():
    """Imports numpy, re-running this script under a Python that has it."""
    try:
        import numpy  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("NUMPY_CHECK_REEXEC"):
        candidates = []
    else:
        candidates = ["/usr/bin/python3", "/usr/local/bin/python3"]
    for py in candidates:
        if not os.path.exists(py) or os.path.realpath(py) == \
                os.path.realpath(sys.executable):
            continue
        r = subprocess.run([py, "-c", "import numpy"],
                           capture_output=True)
        if r.returncode == 0:
            env = dict(os.environ, NUMPY_CHECK_REEXEC="1")
            os.execve(py, [py, os.path.abspath(__file__)] + sys.argv[1:],
                      env)
    print("1..0 # SKIP no Python with NumPy (tried %s and %s)"
          % (sys.executable, ", ".join(candidates) or "nothing else"))
    # 77 says "skipped" to most harnesses; meson's TAP reader takes the
    # plan above and wants 0 (--skip-status 0)
    status = 77
    if "--skip-status" in sys.argv[1:-1]:
        status = int(sys.argv[sys.argv.index("--skip-status") + 1])
    sys.exit(status)


find_numpy()
import numpy as np  # noqa: E402

sys.path.insert(0, HERE)
import diffcheck  # noqa: E402

GREEK = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta",
         "theta", "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron",
         "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi",
         "omega"]

DECL = re.compile(r"([A-Za-z]\w*)\s*:\s*(scalar|vector|matrix|symmetric|spd|"
                  r"diagonal)\s*(?:\(([^)]*)\))?")


def default_kind(name):
    """src/shape.c md_default_kind: A matrix, alpha scalar, x vector."""
    if name[0].isupper():
        return "matrix"
    for g in GREEK:
        if name.startswith(g):
            rest = name[len(g):]
            if rest == "" or rest.startswith("_") or rest.isdigit():
                return "scalar"
    return "vector"


class Decls:
    """The declarations in force: name -> (kind, [dims]); a dim is a name,
    an int, or None (free: inferred by matdiff, guessed here)."""

    def __init__(self):
        self.d = {}
        self.args = []  # -D options, in order

    def add(self, text):
        self.args += ["-D", text]
        for name, kind, dims in DECL.findall(text):
            ds = [x.strip() for x in dims.split(",")] if dims else []
            ds = [int(x) if x.isdigit() else x for x in ds if x]
            self.d[name] = (kind, ds)

    def copy(self):
        c = Decls()
        c.d = dict(self.d)
        c.args = list(self.args)
        return c

    def shape(self, name, size):
        """Kind and shape of NAME: () scalar, (n,) vector, (m, n).  SIZE
        maps a dim (a name, or (symbol, position) for a free one) to an
        int."""
        kind, ds = self.d.get(name, (default_kind(name), []))

        def dim(i):
            if i < len(ds):
                x = ds[i]
                return x if isinstance(x, int) else size(x)
            return size((name, i))

        if kind == "scalar":
            return kind, ()
        if kind == "vector":
            return kind, (dim(0),)
        if kind == "matrix":
            return kind, (dim(0), dim(1))
        n = dim(0)
        return kind, (n, n)

    def dims(self, name):
        """The names and free positions of NAME's sizes."""
        out = []
        self.shape(name, lambda d: out.append(d) or 2)
        return out

    def concrete(self, names, size):
        """-D options that give every symbol of NAMES integer sizes."""
        args = []
        for n in names:
            kind, shape = self.shape(n, size)
            if kind != "scalar":
                args += ["-D", "%s : %s(%s)" % (
                    n, kind, ", ".join(str(x) for x in
                                       (shape if kind == "matrix" else
                                        shape[:1])))]
        return args


def draw(rng, kind, shape, positive):
    if kind == "scalar":
        v = rng.uniform(0.5, 1.5) if positive else rng.uniform(-1.5, 1.5)
        return float(v)
    x = rng.uniform(0.5, 1.5, size=shape) if positive else \
        rng.normal(size=shape)
    if kind == "symmetric":
        x = (x + x.T) / 2
    elif kind == "spd":
        x = x @ x.T + shape[0] * np.eye(shape[0])
    elif kind == "diagonal":
        x = np.diag(np.diag(x))
    return x


def param_names(fn):
    code = fn.__code__
    return list(code.co_varnames[:code.co_argcount])


def symbol_of(pyname, decls):
    """The matdiff symbol of a Python parameter (lambda_ is lambda)."""
    if pyname in decls.d:
        return pyname
    return pyname.rstrip("_") or pyname


def load(code, name):
    ns = {}
    exec(compile(code, "<matdiff -f numpy>", "exec"), ns)
    return ns[name]


def run(matdiff, args):
    p = subprocess.run([matdiff] + args, capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout, p.stderr


class Point:
    """Values for the symbols, drawn lazily by name, of the sizes SIZES."""

    def __init__(self, rng, decls, positive, sizes, columns):
        self.rng, self.decls = rng, decls
        self.positive, self.columns = positive, columns
        self.sizes = sizes
        self.vals = {}
        self.kinds = {}

    def get(self, sym):
        if sym not in self.vals:
            kind, shape = self.decls.shape(sym, self.size)
            self.kinds[sym] = kind
            self.vals[sym] = draw(self.rng, kind, shape, self.positive)
        v = self.vals[sym]
        # vectors go in 1-D or as columns: both are accepted
        if self.kinds[sym] == "vector" and self.columns:
            return v.reshape(-1, 1)
        return v

    def size(self, d):
        return self.sizes.setdefault(d, 3)

    def call(self, fn, decls, override=None):
        args = []
        for p in param_names(fn):
            s = symbol_of(p, decls)
            if override and s in override:
                args.append(override[s])
            else:
                args.append(self.get(s))
        return fn(*args)


def flat(v):
    """A value as a 1-D array, column-major (vec)."""
    return np.ravel(np.asarray(v, dtype=float), order="F")


def numjac(fn, point, decls, var, h):
    """J[i, j] = d vec(fn)_j / d vec(var)_i by central differences."""
    x0 = point.get(var)
    shape = np.shape(x0)
    base = flat(x0)
    cols = []
    for i in range(base.size):
        step = h * max(1.0, abs(base[i]))
        vals = []
        for s in (step, -step):
            x = base.copy()
            x[i] += s
            xv = float(x[0]) if shape == () else x.reshape(shape, order="F")
            vals.append(flat(point.call(fn, decls, {var: xv})))
        cols.append((vals[0] - vals[1]) / (2 * step))
    return np.array(cols)


def kind_of(value):
    if isinstance(value, float):
        return "scalar"
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return "vector"
    if isinstance(value, np.ndarray) and value.ndim == 2:
        return "matrix"
    return "bad"


def expected(J, fval, var_kind, var_shape, result_kind, layout):
    """The derivative as matdiff lays it out (SPEC 3), from J."""
    fk = kind_of(fval)
    if fk == "scalar" and result_kind != "hess":
        g = J[:, 0]
        if var_kind == "vec":
            return g
        if var_shape == ():
            return float(g[0])
        if len(var_shape) == 1:
            return g
        G = g.reshape(var_shape, order="F")
        if var_kind in ("symmetric", "spd"):
            G = (G + G.T) / 2
        elif var_kind == "diagonal":
            G = np.diag(np.diag(G))
        return G
    if fk == "matrix" and var_shape == ():
        return J[0].reshape(np.shape(fval), order="F")
    return J.T if layout == "numerator" else J


def close(a, b, tol):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return False, float("inf")
    scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
    err = float(np.max(np.abs(a - b))) / scale if a.size else 0.0
    return err <= tol, err


class Checker:
    def __init__(self, matdiff, seed):
        self.matdiff = matdiff
        self.rng = np.random.default_rng(seed)
        self.verified = 0
        self.point_error = None
        self.size_cache = {}
        self.skipped = []
        self.failures = []

    def fail(self, what, msg):
        self.failures.append("%s: %s" % (what, msg))

    def no_point(self, what, cond, fn):
        if self.point_error:
            self.fail(what, self.point_error)
            self.point_error = None
        else:
            self.skipped.append("%s: no point where %s" % (what, cond))

    def function(self, args, name, what):
        """The generated function, or None after recording a failure."""
        # the subcommand first, then the options, then -- EXPR
        if "simplify" in args:
            args = ["simplify"] + [x for x in args if x != "simplify"]
        args = args[:1] + ["-f", "numpy"] + args[1:] \
            if args[0] == "simplify" else ["-f", "numpy"] + args
        rc, out, err = run(self.matdiff, args)
        if rc not in (0, 2) or "Sanitizer" in err or "runtime error" in err:
            self.fail(what, "matdiff %s: exit status %d\n%s"
                      % (" ".join(args), rc, err))
            return None, "bad"
        if rc != 0:
            return None, err.strip()
        if not out.startswith("import numpy as np\n\ndef %s(" % name):
            self.fail(what, "unexpected output:\n" + out)
            return None, "bad"
        try:
            return load(out, name), out
        except Exception as e:  # the code must at least compile
            self.fail(what, "%s in the generated code:\n%s" % (e, out))
            return None, "bad"

    def sizes(self, decls, syms, text):
        """Sizes for the symbols SYMS of expression TEXT: distinct ones
        for distinct names where possible.  Sizes matdiff leaves free are
        tried at random until `matdiff simplify` accepts TEXT with every
        size given; failing that, all sizes equal."""
        names, free = [], []
        for sym in syms:
            for d in decls.dims(sym):
                lst = free if isinstance(d, tuple) else names
                if d not in lst:
                    lst.append(d)
        vals = [2, 3, 4]
        self.rng.shuffle(vals)
        base = {d: vals[i % 3] for i, d in enumerate(names)}
        if not free:
            return base
        key = (text, tuple(syms), tuple(decls.args))
        if key in self.size_cache:
            return self.size_cache[key]
        # free sizes: the named ones, their products (kron, vec), 2..4
        cands = sorted(set(base.values()) | {2, 3, 4} |
                       {x * y for x in base.values() for y in base.values()})
        combos = list(itertools.product(cands, repeat=len(free)))
        self.rng.shuffle(combos)
        found = {d: 3 for d in names + free}
        for combo in combos[:300]:
            sizes = dict(base)
            sizes.update(zip(free, combo))
            args = decls.args + decls.concrete(
                syms, lambda d: sizes.setdefault(d, 3))
            if run(self.matdiff, ["simplify"] + args + ["--", text])[0] == 0:
                found = sizes
                break
        self.size_cache[key] = found
        return found

    def points(self, decls, fns, text, extra=()):
        """Yields points where FNS[0] evaluates to finite values: normal
        values first, positive ones if those fail (log, sqrt)."""
        syms = list(extra)
        for fn in fns:
            syms += [symbol_of(p, decls) for p in param_names(fn)]
        syms = list(dict.fromkeys(syms))
        tries = 0
        for positive in (False, True):
            for columns in (False, True, False):
                tries += 1
                sizes = self.sizes(decls, syms, text)
                pt = Point(self.rng, decls, positive, sizes, columns)
                try:
                    with np.errstate(all="raise", under="ignore"):
                        v = pt.call(fns[0], decls)
                        if not np.all(np.isfinite(v)):
                            continue
                except (FloatingPointError, ZeroDivisionError,
                        np.linalg.LinAlgError):
                    continue
                except Exception as e:
                    # not a domain error: the generated code is wrong
                    self.point_error = "%s: %s" % (type(e).__name__, e)
                    return
                yield pt
                if tries > 4:
                    return

    def derivative(self, decls, var, f, hess=False, layout=None, what=None):
        what = what or "d/d%s %s" % (var, f)
        opts = ["--hessian"] if hess else []
        if layout:
            opts += ["--layout", layout]
        sym = var[4:-1] if var.startswith("vec(") else var
        fname = "d2f_d%s2" % var if hess else \
            "df_d%s" % (("vec" + sym) if var.startswith("vec(") else var)
        dfn, dout = self.function(decls.args + opts +
                                  ["--wrt", var, "--", f], fname, what)
        ffn, fout = self.function(decls.args + ["simplify", "--", f], "f",
                                  what)
        gfn = None
        if hess:
            gfn, gout = self.function(decls.args + ["--wrt", var, "--", f],
                                      "df_d%s" % var, what)
        if dfn is None or ffn is None or (hess and gfn is None):
            if "bad" not in (dout, fout):
                self.skipped.append("%s: %s" % (what, dout if dfn is None
                                                else fout))
            return
        src = gfn if hess else ffn
        for pt in self.points(decls, [ffn, dfn], f, [sym]):
            with np.errstate(all="raise", under="ignore"):
                try:
                    fval = pt.call(ffn, decls)
                    got = pt.call(dfn, decls)
                    best = None
                    for h in (1e-6, 1e-5, 1e-4):
                        J = numjac(src, pt, decls, sym, h)
                        want = expected(J, fval, "vec" if sym != var else
                                        pt.kinds[sym],
                                        np.shape(pt.vals[sym]),
                                        "hess" if hess else "grad", layout)
                        ok, err = close(got, want, 1e-5)
                        if best is None or err < best[1]:
                            best = (ok, err, want)
                        if ok:
                            break
                except (FloatingPointError, ZeroDivisionError,
                        np.linalg.LinAlgError):
                    continue  # not smooth or singular here: another point
                except Exception as e:
                    self.fail(what, "%s: %s\n  at %s\n%s"
                              % (type(e).__name__, e, pt.vals, dout))
                    return
            if kind_of(got) != kind_of(best[2]) and \
                    not (kind_of(got) == "matrix" and best[2].ndim == 2):
                self.fail(what, "returned %r, expected a %s\n%s"
                          % (type(got).__name__, kind_of(best[2]), dout))
                return
            if not best[0]:
                self.fail(what, "differs from finite differences by %.3g"
                          "\n  at %s\n  matdiff: %s\n  differences: %s\n%s"
                          % (best[1], pt.vals, got, best[2], dout))
                return
            self.verified += 1
            return
        self.no_point(what, "f is finite", ffn)

    def at(self, args, name, vals, want, what):
        """The function of ARGS at the point VALS gives WANT, with no
        overflow, division by zero or invalid operation on the way."""
        fn, out = self.function(args, name, what)
        if fn is None:
            if out != "bad":
                self.fail(what, "no function: " + out)
            return
        try:
            with np.errstate(all="raise", under="ignore"):
                got = fn(*[vals[p.rstrip("_") or p] for p in
                           param_names(fn)])
        except Exception as e:
            self.fail(what, "%s: %s\n%s" % (type(e).__name__, e, out))
            return
        ok, err = close(got, want, 1e-9)
        if not ok or not np.all(np.isfinite(got)):
            self.fail(what, "gave %s, want %s (error %.3g)\n%s"
                      % (got, want, err, out))
            return
        self.verified += 1

    def compare(self, decls, a_args, a_name, rhs, must_equal, what):
        text = a_args[-1]
        """The function of A_ARGS (named A_NAME) against `simplify RHS`:
        they agree at a random point when MUST_EQUAL, else they differ
        (a false identity must stay false in NumPy)."""
        lfn, lout = self.function(decls.args + a_args, a_name, what)
        rfn, rout = self.function(decls.args + ["simplify", "--", rhs], "f",
                                  what)
        if lfn is None or rfn is None:
            if "bad" not in (lout, rout):
                self.skipped.append("%s: %s" % (what, lout if lfn is None
                                                else rout))
            return
        agreed = 0
        for pt in self.points(decls, [lfn, rfn], text):
            try:
                with np.errstate(all="raise", under="ignore"):
                    a = pt.call(lfn, decls)
                    b = pt.call(rfn, decls)
            except (FloatingPointError, ZeroDivisionError,
                    np.linalg.LinAlgError):
                continue
            except Exception as e:
                # the sizes fit (matdiff accepted them): code that fails
                # on them is wrong
                self.fail(what, "%s: %s\n  at %s\n%s%s"
                          % (type(e).__name__, e, pt.vals, lout, rout))
                return
            # 0 or 1 on one side: a number against an array
            if np.ndim(a) == 0 and np.ndim(b) > 0:
                a = np.broadcast_to(a, np.shape(b))
            if np.ndim(b) == 0 and np.ndim(a) > 0:
                b = np.broadcast_to(b, np.shape(a))
            ok, err = close(a, b, 1e-8)
            if must_equal and not ok:
                self.fail(what, "sides differ by %.3g\n  at %s\n  lhs: %s"
                          "\n  rhs: %s\n%s%s" % (err, pt.vals, a, b, lout,
                                                 rout))
                return
            if must_equal or not ok:
                self.verified += 1
                return
            agreed += 1
            if agreed == 3:
                self.fail(what, "a false identity holds at 3 points "
                          "(last: %s)\n%s%s" % (pt.vals, lout, rout))
                return
        self.no_point(what, "both sides are finite", lfn)


DERIV = re.compile(r"^d/d(vec\([A-Za-z]\w*\)|[A-Za-z]\w*)\s*(.*)$")
CALL = re.compile(r"^(diff|grad|hess)\((.*),\s*(vec\([A-Za-z]\w*\)|"
                  r"[A-Za-z]\w*)\)$")


def split_identity(line):
    for op in (" != ", " = "):
        if op in line:
            lhs, rhs = line.split(op, 1)
            return lhs.strip(), rhs.strip(), op.strip()
    return None


# Constructs the identity files and the generator rarely produce, each
# differentiated and checked like them: (declarations, variable, f).
EXTRA_DECLS = "x : vector(n), a : vector(n), A : matrix(n, n), " \
    "B : matrix(n, n), X : matrix(n, n), alpha : scalar, beta : scalar"
EXTRA = [
    ("x", "a^T x / (x^T x)"),
    ("x", "inv(x^T x + 1) a^T x"),
    ("alpha", "inv(alpha) + alpha^-2"),
    ("alpha", "alpha^beta + alpha^(1/3)"),
    ("x", "sum(x .^ 3) + sum(abs(x) .^ (1/2))"),
    ("alpha", "logdet(alpha) + det(alpha) + logsumexp(alpha x)"),
    ("alpha", "sum(kron(alpha a, x))"),
    ("alpha", "x^T (alpha I + alpha^2 ones ones^T) x"),
    ("alpha", "exp(alpha x)"),
    ("alpha", "tr(alpha A)"),
    ("X", "tr(X^3 A) + tr(inv(X)^2 B)"),
    ("X", "sum(diag(X) .* a) + a^T diag(X .* X)"),
    ("X", "norm1(X) + norm2(X A) + sum(abs(X) .* B)"),
    ("X", "sum(sqrt(X .* X + 1)) + sum(softplus(X)) + sum(relu(X))"),
    ("X", "sum(tan(X / 4)) + sum(sign(X) .* X)"),
    ("X", "a^T X (x^T X a) B x"),
    ("X", "x^T (2 I + ones ones^T) X a"),
    ("X", "logsumexp(X) + logsumexp(X a)"),
    ("X", "<X, A> + <X a, x>"),
    ("x", "softmax(A x)"),
    ("x", "a^T diag(x) a + a^T diag(x .* x) x"),
    ("x", "kron(x, a)"),
    ("vec(X)", "vec(X^2)"),
    ("x", "sum(kron(a, x .* x))"),
    ("x", "x .^ 3 ./ (1 + x .* x)"),
    ("x", "a^T relu(A x) + sum(relu(x) .^ 2) + sum(step(x) .* x)"),
]


def softmax(v):
    e = np.exp(v - np.max(v))
    return e / np.sum(e)


def lse(v):
    m = np.max(v)
    return float(m + np.log(np.sum(np.exp(v - m))))


# Softmax and logsumexp, and their derivatives, where exp overflows:
# (matdiff's arguments, the function's name, the point, the value there
# computed stably).  The generated code must give that value, finite.
BIG_X = np.array([1000.0, 1001.0, 1002.0])
BIG_Y = np.array([0.5, -1.0, 2.0])
BIG_M = np.array([[1000.0, 1001.0], [1002.0, 999.0], [998.0, 1003.0]])
BIG_W = np.array([[1.0, 0.5], [0.25, 1.0], [-0.5, 2.0]])
BIG_V = np.array([700.0, 710.0])
S = softmax(BIG_X)
LARGE = [
    (["simplify", "--", "softmax(x)"], "f", {"x": BIG_X}, S),
    (["simplify", "--", "logsumexp(x)"], "f", {"x": BIG_X}, lse(BIG_X)),
    (["simplify", "--", "logsumexp(M)"], "f", {"M": BIG_M}, lse(BIG_M)),
    (["simplify", "--", "log(sum(exp(x)))"], "f", {"x": BIG_X}, lse(BIG_X)),
    (["simplify", "--", "exp(x) / sum(exp(x))"], "f", {"x": BIG_X}, S),
    (["simplify", "--", "exp(x) ./ (2 sum(exp(x)))"], "f", {"x": BIG_X},
     S / 2),
    (["simplify", "--", "y^T exp(x) / sum(exp(x))"], "f",
     {"x": BIG_X, "y": BIG_Y}, float(BIG_Y @ S)),
    (["--wrt", "x", "--", "logsumexp(x)"], "df_dx", {"x": BIG_X}, S),
    (["--wrt", "M", "--", "logsumexp(M)"], "df_dM", {"M": BIG_M},
     softmax(BIG_M)),
    (["--wrt", "x", "--", "softmax(x)"], "df_dx", {"x": BIG_X},
     np.diag(S) - np.outer(S, S)),
    (["--hessian", "--wrt", "x", "--", "logsumexp(x)"], "d2f_dx2",
     {"x": BIG_X}, np.diag(S) - np.outer(S, S)),
    (["--wrt", "x", "--", "2 logsumexp(x) - y^T x"], "df_dx",
     {"x": BIG_X, "y": BIG_Y}, 2 * S - BIG_Y),
    (["--wrt", "x", "--", "logsumexp(x)^2"], "df_dx", {"x": BIG_X},
     2 * lse(BIG_X) * S),
    (["--wrt", "x", "--", "y^T log(softmax(x))"], "df_dx",
     {"x": BIG_X, "y": BIG_Y}, BIG_Y - np.sum(BIG_Y) * S),
    (["--wrt", "v", "--", "logsumexp(W v)"], "df_dv",
     {"W": BIG_W, "v": BIG_V}, BIG_W.T @ softmax(BIG_W @ BIG_V)),
    (["--wrt", "W", "--", "logsumexp(W v) - y^T W v"], "df_dW",
     {"W": BIG_W, "v": BIG_V, "y": BIG_Y},
     np.outer(softmax(BIG_W @ BIG_V) - BIG_Y, BIG_V)),
    (["--wrt", "alpha", "--", "logsumexp(alpha x)"], "df_dalpha",
     {"alpha": 1.0, "x": BIG_X}, float(BIG_X @ S)),
]


TAP_LINE = re.compile(r"^(ok|not ok) \d+ - .*?:(\d+): ")


def verdicts(matdiff, path):
    """Line number -> whether `matdiff check` says the line holds."""
    p = subprocess.run([matdiff, "check", "--tap", path],
                       capture_output=True, text=True, timeout=600)
    v = {}
    for line in p.stdout.splitlines():
        m = TAP_LINE.match(line)
        if m:
            v[int(m.group(2))] = m.group(1) == "ok"
    return v


def identity_files(matdiff, paths, deriv, pairs):
    """DERIV gets (decls, var, f, hess, what); PAIRS gets (decls, args of
    the left side, its function's name, rhs, sides equal, what)."""
    for path in paths:
        decls = Decls()
        holds = verdicts(matdiff, path)
        defined = set()  # functions the file defines: no NumPy form
        with open(path, encoding="utf-8") as fh:
            for no, raw in enumerate(fh, 1):
                line = raw.split("#", 1)[0].strip()
                if not line:
                    continue
                if line.startswith("let "):
                    decls.add(line[4:])
                    continue
                if ":=" in line:
                    defined.add(line.split("(", 1)[0].strip())
                    continue
                if " where " in line or defined & set(
                        re.findall(r"([A-Za-z]\w*)\(", line)):
                    continue
                parts = split_identity(line)
                if not parts:
                    continue
                lhs, rhs, op = parts
                what = "%s:%d: %s" % (os.path.basename(path), no, line)
                equal = no in holds and holds[no] == (op == "=")
                m = DERIV.match(lhs)
                c = CALL.match(lhs)
                if m:
                    var, f, hess = m.group(1), m.group(2), False
                elif c:
                    var, f, hess = c.group(3), c.group(2), c.group(1) == "hess"
                else:
                    pairs.append((decls.copy(), ["simplify", "--", lhs], "f",
                                  rhs, equal, what))
                    continue
                deriv.append((decls.copy(), var, f, hess, what))
                sym = var[4:-1] if var.startswith("vec(") else var
                name = "d2f_d%s2" % var if hess else "df_d%s" % (
                    "vec" + sym if sym != var else var)
                opts = ["--hessian"] if hess else []
                pairs.append((decls.copy(), opts + ["--wrt", var, "--", f],
                              name, rhs, equal, what))


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--matdiff", required=True)
    ap.add_argument("--count", type=int, default=120)
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--skip-status", type=int, default=77,
                    help="exit status when NumPy is missing")
    ap.add_argument("--identities-dir", action="append", default=[],
                    help="check every *.mdi of DIR too (if DIR exists)")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args(argv[1:])
    for d in a.identities_dir:
        if os.path.isdir(d):
            a.files += sorted(glob.glob(os.path.join(d, "*.mdi")))

    deriv, pairs = [], []
    identity_files(a.matdiff, a.files, deriv, pairs)

    # random compositions, as tests/diffcheck.py builds them (its
    # functions from a rules file have no NumPy form: those are left out)
    import random
    import tempfile
    rng = random.Random(a.seed)
    base = Decls()
    functions = getattr(diffcheck, "FUNCTIONS", "")
    user = set(re.findall(r"^([A-Za-z]\w*)\(", functions, re.M))
    if functions:
        with tempfile.NamedTemporaryFile("w", suffix=".rules",
                                         delete=False) as fh:
            fh.write(functions)
        base.args += ["--rules", fh.name]
    for line in diffcheck.DECLS.strip().splitlines():
        base.add(line[len("let "):])
    randoms = []
    i = 0
    while len(randoms) < a.count and i < 50 * a.count:
        kind = ["X", "x", "jac", "X", "x", "hess", "vec"][i % 7]
        i += 1
        var = {"X": "X", "vec": "vec(X)"}.get(kind, "x")
        try:
            g = diffcheck.Gen(rng, "X" if kind in ("X", "vec") else "x",
                              kind == "vec")
        except TypeError:  # an older generator without vec(X)
            if kind == "vec":
                continue
            g = diffcheck.Gen(rng, var)
        e = g.vn(rng.randint(0, 2)) if kind == "jac" else \
            "vec(%s)" % g.mat(rng.randint(0, 2)) if kind == "vec" else \
            g.sc(rng.randint(0, 1 if kind == "hess" else 2))
        if user & set(re.findall(r"([A-Za-z]\w*)\(", e)):
            continue
        randoms.append((var, e, kind))

    tests = []

    ck = Checker(a.matdiff, a.seed)
    for decls, var, f, hess, what in deriv:
        ck.derivative(decls, var, f, hess, what=what)
    tests.append(("identity derivatives", ck))

    ck2 = Checker(a.matdiff, a.seed + 1)
    for decls, args, name, rhs, equal, what in pairs:
        ck2.compare(decls, args, name, rhs, equal, what)
    tests.append(("identities, both sides (true ones agree, false ones "
                  "differ)", ck2))

    ck4 = Checker(a.matdiff, a.seed + 3)
    extra = Decls()
    extra.add(EXTRA_DECLS)
    for var, e in EXTRA:
        ck4.derivative(extra, var, e)
    tests.append(("constructs beyond the identity files", ck4))

    ck5 = Checker(a.matdiff, a.seed + 4)
    for args, name, vals, want in LARGE:
        ck5.at(args, name, vals, want,
               "%s at entries near 1000" % " ".join(args))
    tests.append(("softmax and logsumexp where exp overflows", ck5))

    ck3 = Checker(a.matdiff, a.seed + 2)
    for var, e, kind in randoms:
        ck3.derivative(base, var, e, hess=kind == "hess")
        if kind == "jac":
            ck3.derivative(base, var, e, layout="numerator",
                           what="--layout numerator d/d%s %s" % (var, e))
    tests.append(("random compositions (seed %d)" % a.seed, ck3))

    print("1..%d" % len(tests))
    bad = False
    for i, (name, c) in enumerate(tests, 1):
        # a run that verifies nothing proves nothing
        ok = not c.failures and (c.verified > 0 or name.startswith("ident")
                                 and not a.files)
        bad |= not ok
        print("%s %d - %s: %d verified, %d skipped, %d failed"
              % ("ok" if ok else "not ok", i, name, c.verified,
                 len(c.skipped), len(c.failures)))
        for f_ in c.failures[:20]:
            for l in f_.splitlines():
                print("#   " + l)
            if sys.stdout.isatty() is False:
                sys.stderr.write(f_ + "\n")
        for s in c.skipped[:40]:
            print("# skipped: " + s.replace("\n", " | "))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
