"""pytest: the Python module matdiff (python/matdiff), from the build tree
(PYTHONPATH=build/python) or an installed copy."""
import os
import threading

import pytest

import matdiff


def test_diff_text_latex_numpy():
    d = matdiff.diff("tr(A X^T B)", wrt="X")
    assert str(d) == "B A"
    assert d.text == "B A"
    assert d == "B A"
    assert repr(d) == "<matdiff.Result 'B A'>"
    assert d.latex == r"\mathbf{B} \mathbf{A}"
    assert d._repr_latex_() == r"$$\mathbf{B} \mathbf{A}$$"
    assert d.numpy == ("import numpy as np\n\ndef df_dX(A, X, B):\n"
                       "    return B @ A")
    assert d.warnings == ""


def test_seed_forms():
    seed = [("a^T x", "x", "a"), ("x^T A x", "x", "(A + A^T) x"),
            ("A x", "x", "A^T"), ("||A x - y||_2^2", "x", "2 A^T (A x - y)"),
            ("tr(X^T A X)", "X", "(A + A^T) X")]
    for expr, wrt, want in seed:
        assert str(matdiff.diff(expr, wrt=wrt)) == want


def test_let():
    assert str(matdiff.diff("x^T A x", wrt="x",
                            let={"A": "symmetric(n)"})) == "2 A x"
    assert str(matdiff.diff("x^T A x", "x", ["A : symmetric(n)"])) == "2 A x"
    assert str(matdiff.diff("x^T A x", "x", "A : symmetric(n)")) == "2 A x"


def test_wrt_default_and_options():
    assert str(matdiff.diff("tr(X)")) == "I"
    assert str(matdiff.diff("A x", "x", layout="numerator")) == "A"
    assert str(matdiff.hessian("x^T A x", "x")) == "A + A^T"
    assert str(matdiff.diff("x^T A x", "x", hessian=True)) == "A + A^T"
    assert str(matdiff.diff("tr(A X^T B)", "X", equation=True)) == \
        "d/dX tr(A X^T B) = B A"
    assert str(matdiff.diff("a^T X b", "X", unicode=True)) == "a bᵀ"
    assert str(matdiff.diff("tr(A S)", "S", {"S": "symmetric(n)"},
                            symmetric="cookbook")) == "A + A^T - A .* I"
    assert str(matdiff.diff("x^T A x", "x", verify=True)) == "(A + A^T) x"


def test_steps():
    d = matdiff.diff("tr(X)", "X")
    assert d.steps.startswith("1.  f = tr(X)\n")
    assert d.steps.endswith("d/dX f = I")
    assert d.steps_latex.startswith("\\begin{align*}")
    assert d.steps_latex.rstrip().endswith("\\end{align*}")


def test_simplify():
    s = matdiff.simplify("(A^T)^T + A")
    assert str(s) == "2 A"
    assert s.latex == r"2 \mathbf{A}"
    assert str(matdiff.simplify("d/dx a^T x")) == "a"


def test_warnings():
    d = matdiff.diff("tr(AX)", "X")
    assert str(d) == "0"
    assert "X does not occur in the expression" in d.warnings
    assert "for a product write A X" in d.warnings


def test_rules(tmp_path):
    rules = tmp_path / "cube.rules"
    rules.write_text("cube(x) := x .* x .* x\n")
    assert str(matdiff.diff("sum(cube(x))", "x", rules=rules)) == "3 x .^ 2"
    assert str(matdiff.diff("sum(cube(x))", "x",
                            rules=[str(rules)])) == "3 x .^ 2"


def test_check_text():
    v = matdiff.check("d/dx a^T x = a\nA B = B A\n(A B)^T = B^T A^T\n"
                      "x +\n")
    assert [bool(x) for x in v] == [True, False, True, False]
    assert [x.status for x in v] == ["verified exactly", "FALSE", "proved",
                                     "error"]
    assert [x.line for x in v] == [1, 2, 3, 4]
    assert v[0].identity == "d/dx a^T x = a"
    assert v[0].file == "<text>"
    assert v[1].detail.startswith("counterexample: ")
    assert v[1].error is None
    e = v[3].error
    assert isinstance(e, matdiff.Error)
    assert (e.message, e.line, e.column) == \
        ("syntax error, unexpected end of input", 4, 4)
    assert str(v[0]) == "<text>:1: verified exactly: d/dx a^T x = a"
    assert all(matdiff.check("d/dx a^T x = a"))


def test_check_path(tmp_path):
    p = tmp_path / "ids.mdi"
    p.write_text("let A : symmetric(n)\nd/dx x^T A x = 2 A x\n")
    for arg in (p, str(p)):
        (v,) = matdiff.check(arg)
        assert v and v.file == str(p) and v.line == 2
    (v,) = matdiff.check("x^T A x = x^T A^T x", let={"x": "vector(n)"})
    assert v


def errors_of(f, *args, **kwargs):
    with pytest.raises(matdiff.Error) as info:
        f(*args, **kwargs)
    return info.value


def test_error_syntax():
    e = errors_of(matdiff.diff, "x +", "x")
    assert e.message == "syntax error, unexpected end of input"
    assert (e.source, e.line, e.column) == ("<expr>", 1, 4)
    assert str(e) == ("<expr>:1:4: error: syntax error, unexpected end of "
                      "input\nx +\n   ^")
    assert e.errors == [e]


def test_error_shape():
    e = errors_of(matdiff.diff, "x + x^T", "x")
    assert e.message == "cannot add x (m×1) and x^T (1×m)"
    assert (e.line, e.column) == (1, 5)


def test_error_let_wrt_rules(tmp_path):
    e = errors_of(matdiff.diff, "A x", "x", {"A": "matrx(m, n)"})
    assert (e.source, e.line, e.column) == ("<let>", 1, 5)
    assert e.message.startswith("unknown kind 'matrx'")
    e = errors_of(matdiff.diff, "A x", "x^T")
    assert (e.source, e.line, e.column) == ("<wrt>", 1, 1)
    assert e.message == ("not a variable to differentiate by: give a "
                         "symbol or vec(X)")
    e = errors_of(matdiff.simplify, "x", rules="/nonexistent/my.rules")
    assert (e.source, e.line, e.column) == ("", 0, 0)
    assert e.message.startswith("cannot read rules '/nonexistent/my.rules'")
    bad = tmp_path / "bad.rules"
    bad.write_text("log(exp(X)) = X + Y\n")
    e = errors_of(matdiff.simplify, "x", rules=bad)
    assert (e.source, e.line, e.column) == (str(bad), 1, 19)


def test_error_several_symbols_and_empty():
    e = errors_of(matdiff.diff, "x^T A x")
    assert e.message.startswith("give the variable with --wrt")
    e = errors_of(matdiff.diff, "", "x")
    assert e.message.startswith("empty input")


def test_error_options():
    e = errors_of(matdiff.diff, "x^T x", "x", unicode=True, verify=True,
                  symmetric="cookbook")
    assert e.message.startswith("MATDIFF_VERIFY checks gradients")
    with pytest.raises(ValueError):
        matdiff.diff("x", "x", layout="sideways")
    with pytest.raises(ValueError):
        matdiff.diff("x", "x", symmetric="entrywise")
    with pytest.raises(TypeError):
        matdiff.diff(42)
    with pytest.raises(ValueError):
        matdiff.diff("x\0", "x")


def test_error_verify_refuted(tmp_path):
    rules = tmp_path / "wrong.rules"
    rules.write_text("cube(x) := x .* x .* x\nd/dX <G, cube(X)> = G .* X\n")
    e = errors_of(matdiff.diff, "sum(cube(x))", "x", rules=rules,
                  verify=True)
    assert "refuted" in e.message
    assert "FALSE: d/dx sum(cube(x)) = x" in e.message


def test_error_check():
    e = errors_of(matdiff.check, "A = A", let={"A": "matrx"})
    assert e.source == "<let>"
    # a str that names no file is the text of identities
    (v,) = matdiff.check("/nonexistent/x.mdi")
    assert not v and v.status == "error"
    import pathlib
    e = errors_of(matdiff.check, pathlib.Path("/nonexistent/x.mdi"))
    assert e.message == ("cannot open '/nonexistent/x.mdi': No such file "
                         "or directory")


def test_threads():
    out, want = [], ["(A + A^T) x", "2 A x"] * 4

    def work(k):
        let = {"A": "symmetric(n)"} if k % 2 else None
        for _ in range(10):
            out.append((k, str(matdiff.diff("x^T A x", "x", let))))

    ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(out) == 80
    assert all(s == want[k] for k, s in out)


def test_version():
    assert matdiff.__version__ == "0.1.0"
    assert os.path.basename(os.path.dirname(matdiff.__file__)) == "matdiff"


def test_docstring_examples():
    import doctest
    assert doctest.testmod(matdiff).failed == 0


def test_doc_library_md():
    doc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                       "doc", "library.md")
    import doctest
    assert doctest.testfile(doc, module_relative=False).failed == 0


def test_several_variables_and_code_formats():
    r = matdiff.diff("||W1 x + b1 - y||^2", wrt=["W1", "b1"], value=True)
    assert str(r) == ("||t1||^2\n2 t1 x^T\n2 t1\n"
                      "where t1 = W1 x + b1 - y")
    ns = {}
    exec(r.numpy, ns)
    import numpy as np
    rng = np.random.default_rng(1)
    W1, x, b1, y = (rng.normal(size=(3, 2)), rng.normal(size=2),
                    rng.normal(size=3), rng.normal(size=3))
    f, (dW1, db1) = ns["f_df_dW1_b1"](W1, x, b1, y)
    assert abs(f - np.sum((W1 @ x + b1 - y) ** 2)) < 1e-12
    assert np.allclose(db1, 2 * (W1 @ x + b1 - y))
    assert "import torch" in r.torch
    assert r.octave.startswith("function [f, dW1, db1] = f_df_dW1_b1(")
    with pytest.raises(TypeError):
        matdiff.diff("x", wrt=["x", 2])
