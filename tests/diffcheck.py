#!/usr/bin/env python3
"""Random compositions, differentiated by matdiff and judged by `matdiff
check` (dual numbers, independent of the engine).  SPEC 3 and 5.
Gradients by a vector and by a matrix, Jacobians of vectors, Hessians,
Jacobians d/dvec(X) vec(F), Kronecker products, vec(F) inside a scalar
and functions defined in a rules file (FUNCTIONS below, given to both with --rules).

Usage: diffcheck.py --matdiff PATH [--count N] [--seed S]

Builds N random well-shaped scalar expressions of a vector x (n) or a
matrix X (n×n), asks `matdiff --wrt VAR EXPR` for each derivative, writes
the identities `d/dVAR (EXPR) = RESULT` to one file and runs `matdiff check`
on it.  Every identity must pass; a failure prints the expression.  An
expression the engine refuses (no rule) is a failure too: the generator
only uses operations that have rules.  Prints TAP.
"""
import argparse
import random
import re
import subprocess
import sys
import tempfile

DECLS = """let x : vector(n), a : vector(n), c : vector(n)
let y : vector(m), b : vector(m)
let A : matrix(n, n), B : matrix(m, n), C : matrix(n, n)
let X : matrix(n, n), S : symmetric(n)
let alpha : scalar, beta : scalar
"""


# Functions defined in the language: cube by its rule, the others through
# their bodies (SPEC 5).
FUNCTIONS = """cube(x) := x .* x .* x
d/dx <G, cube(x)> = 3 G .* x .* x
softsign(x) := x ./ (2 + x .* x)
nsq(x) := sum(x .* x) / 2
swish(x) := x .* sigmoid(x)
"""


class Gen:
    def __init__(self, rng, var, vec=False, kron=True):
        self.r = rng
        self.var = var  # 'x' or 'X'
        # Kronecker products (in Hessians too: the gradient's kron(I, x^T)
        # becomes a product once distributed and simplified)
        self.kron = kron
        # for d/dvec(X) vec(F): no transpose of X, whose Jacobian would
        # need the commutation matrix (an error, tested in diff.test)
        self.vec = vec

    def pick(self, *fs):
        return self.r.choice([f for f in fs if f])()

    def k(self, f):
        """F if Kronecker products are in use, else nothing to pick."""
        return f if self.kron else None

    # vectors of size n that depend on x (or X)
    def vn(self, d):
        if d <= 0:
            return self.r.choice(["x", "A x", "x + a"]) if self.var == "x" \
                else self.r.choice(["X a", "X^T c", "A X a"])
        d -= 1
        return self.pick(
            lambda: "A (%s)" % self.vn(d),
            lambda: "B^T (%s)" % self.vm(d),
            lambda: "(%s) + (%s)" % (self.vn(d), self.vn(d)),
            lambda: "(%s) - a" % self.vn(d),
            lambda: "(%s) .* (%s)" % (self.vn(d), self.vn(d)),
            lambda: "alpha (%s)" % self.vn(d),
            lambda: "exp(%s)" % self.vn(d),
            lambda: "sigmoid(%s)" % self.vn(d),
            lambda: "tanh(%s)" % self.vn(d),
            lambda: "sin(%s)" % self.vn(d),
            lambda: "softmax(%s)" % self.vn(d),
            lambda: "(%s) (%s)" % (self.vn(d), self.sc(d)),
            lambda: "(%s) ./ (2 + exp(%s))" % (self.vn(d), self.vn(d)),
            lambda: "(%s) .^ 2" % self.vn(d),
            lambda: "A (c^T (%s)) (%s)" % (self.vn(d), self.vn(d)),
            lambda: "cube(%s)" % self.vn(d),
            lambda: "softsign(%s)" % self.vn(d),
            lambda: "swish(%s)" % self.vn(d),
            lambda: "a nsq(%s)" % self.vn(d),
        )

    def vm(self, d):
        return self.pick(
            lambda: "B (%s)" % self.vn(d),
            lambda: "B (%s) - y" % self.vn(d),
            lambda: "tanh(B (%s))" % self.vn(d),
        )

    # matrices n×n that depend on X (only in the X family)
    def mat(self, d):
        if self.var != "X" or d <= 0:
            return self.r.choice(["X", "A X", "X C"] +
                                 ([] if self.vec else ["X^T"])) \
                if self.var == "X" else "A"
        d -= 1
        if self.vec:
            return self.pick(
                lambda: "A (%s)" % self.mat(d),
                lambda: "(%s) C" % self.mat(d),
                lambda: "(%s) + (%s)" % (self.mat(d), self.mat(d)),
                lambda: "(%s) .* C" % self.mat(d),
                lambda: "(%s) (%s)" % (self.mat(d), self.mat(d)),
                lambda: "exp(%s)" % self.mat(d),
                lambda: "cube(%s)" % self.mat(d),
                lambda: "swish(%s)" % self.mat(d),
                lambda: "alpha (%s) / 3" % self.mat(d),
                lambda: "inv(%s + 9 I)" % self.mat(0),
            )
        return self.pick(
            lambda: "A (%s)" % self.mat(d),
            lambda: "(%s) C" % self.mat(d),
            lambda: "(%s)^T" % self.mat(d),
            lambda: "(%s) + (%s)" % (self.mat(d), self.mat(d)),
            lambda: "(%s) .* C" % self.mat(d),
            lambda: "(%s) (%s)" % (self.mat(d), self.mat(d)),
            lambda: "exp(%s)" % self.mat(d),
            # a scalar run in the middle of a flat product, with runs of
            # its own inside (README, Shapes)
            lambda: "A (a^T (%s) c) C" % self.mat(d),
            lambda: "cube(%s)" % self.mat(d),
            lambda: "softsign(%s)" % self.mat(d),
        )

    # scalars
    def sc(self, d):
        if self.var == "X":
            return self.pick(
                lambda: "tr(%s)" % self.mat(d),
                lambda: "tr(B (%s) B^T)" % self.mat(d),
                lambda: "a^T (%s) c" % self.mat(d),
                lambda: "||%s||^2" % self.mat(d),
                lambda: "sum(%s)" % self.mat(d),
                lambda: "<C, %s>" % self.mat(d),
                lambda: "logdet(%s + 7 I)" % self.mat(d)
                if d == 0 else "tr(%s)" % self.mat(d),
                lambda: "det(%s)" % self.mat(0),
                lambda: "tr(inv(%s + 9 I) A)" % self.mat(0),
                lambda: "c^T (%s)" % self.vn(d),
                lambda: "nsq(%s)" % self.mat(d),
                # Kronecker products with a vector on the other side
                self.k(lambda: "tr(kron(a, %s)^T kron(c, A))" % self.mat(d)),
                self.k(lambda: "c^T kron(b^T, %s) kron(y, a)" % self.mat(d)),
                self.k(lambda: "sum(y ⊗ (%s) ⊗ b)" % self.mat(d)),
                # vec(F) inside: its gradient passes into F as a matrix
                lambda: "vec(C)^T vec(%s)" % self.mat(d),
                self.k(lambda: "vec(%s)^T kron(C, A) vec(X)" % self.mat(d)),
            )
        return self.pick(
            lambda: "a^T (%s)" % self.vn(d),
            lambda: "(%s)^T A (%s)" % (self.vn(d), self.vn(d)),
            lambda: "||%s||^2" % self.vn(d),
            lambda: "||%s||_2^2" % self.vm(d),
            lambda: "sum(exp(%s))" % self.vn(d),
            lambda: "logsumexp(%s)" % self.vn(d),
            lambda: "<%s, c>" % self.vn(d),
            lambda: "(%s)^T S (%s)" % (self.vn(d), self.vn(d)),
            lambda: "sum(%s)" % self.vn(d),
            lambda: "nsq(%s)" % self.vn(d),
            self.k(lambda: "sum(kron(%s, b))" % self.vn(d)),
            self.k(lambda: "kron(b, %s)^T kron(y, c)" % self.vn(d)),
            self.k(lambda: "kron(%s, (%s))^T kron(a, c)" %
                   (self.vn(d), self.vn(d))),
            self.k(lambda: "sum(b ⊗ (%s) ⊗ y)" % self.vn(d)),
        )


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--matdiff", required=True)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=20261125)
    a = ap.parse_args(argv[1:])
    rng = random.Random(a.seed)
    lines, failures = [DECLS], []
    exprs = []
    for i in range(a.count):
        # gradients by X and by x, Jacobians of vectors, Hessians, and
        # Jacobians of vec(F) by vec(X)
        # and (1 in 8) a matrix or a vector by the scalar beta: the X or
        # x of a generated expression becomes (beta A + C) or (beta a + c)
        kind = ["X", "x", "jac", "X", "x", "hess", "vec", "by-scalar"][i % 8]
        if kind == "by-scalar":
            big = rng.random() < 0.5
            g = Gen(rng, "X" if big else "x", False, True)
            e = g.mat(rng.randint(1, 2)) if big else g.vn(rng.randint(0, 2))
            e = re.sub(r"\bX\b", "(beta A + C)", e) if big else \
                re.sub(r"\bx\b", "(beta a + c)", e)
            if not big and rng.random() < 0.3:
                e = "(%s)^T" % e  # a row: its element-wise derivative
            exprs.append(("beta", e, False))
            continue
        var = {"X": "X", "vec": "vec(X)"}.get(kind, "x")
        g = Gen(rng, "X" if kind in ("X", "vec") else "x", kind == "vec",
                True)
        e = g.vn(rng.randint(0, 2)) if kind == "jac" else \
            "vec(%s)" % g.mat(rng.randint(0, 2)) if kind == "vec" else \
            g.sc(rng.randint(0, 1 if kind == "hess" else 2))
        exprs.append((var, e, kind == "hess"))
    with tempfile.NamedTemporaryFile("w", suffix=".rules",
                                     delete=False) as f:
        f.write(FUNCTIONS)
        rules = f.name
    decl_args = ["--rules", rules]
    for line in DECLS.strip().splitlines():
        decl_args += ["-D", line[len("let "):]]
    for var, e, hess in exprs:
        opts = ["--hessian"] if hess else []
        p = subprocess.run([a.matdiff] + decl_args + opts + ["--wrt", var, e],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0 or not p.stdout.strip():
            failures.append("matdiff %s--wrt %s '%s': %s" %
                            ("--hessian " if hess else "", var, e,
                             p.stderr.strip()))
            continue
        if hess:
            lines.append("hess(%s, %s) = %s" % (e, var, p.stdout.strip()))
        else:
            lines.append("d/d%s (%s) = %s" % (var, e, p.stdout.strip()))
    with tempfile.NamedTemporaryFile("w", suffix=".mdi", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        path = f.name
    p = subprocess.run([a.matdiff, "check", "--tap", "--rules", rules, path],
                       capture_output=True, text=True, timeout=600)
    out = p.stdout.splitlines()
    print("1..2")
    if failures:
        print("not ok 1 - every derivative computed (%d of %d failed)"
              % (len(failures), a.count))
        for f_ in failures[:20]:
            print("# " + f_)
    else:
        print("ok 1 - every derivative computed (%d)" % a.count)
    bad = [l for l in out if l.startswith("not ok")]
    if p.returncode != 0 or bad:
        print("not ok 2 - matdiff check of the derivatives (seed %d)" % a.seed)
        for l in out:
            if l.startswith("not ok") or l.startswith("#"):
                print("# " + l)
        print("# " + p.stderr.strip().replace("\n", "\n# "))
    else:
        print("ok 2 - matdiff check of %d derivatives" % (len(lines) - 1))
    return 0 if not failures and not bad and p.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
