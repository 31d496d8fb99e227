"""matdiff: symbolic matrix calculus.

Derivatives of matrix expressions in denominator layout, simplification,
and checks of identity files, as the matdiff command computes them (see
matdiff(1) for the language)::

    >>> import matdiff
    >>> d = matdiff.diff("tr(A X^T B)", wrt="X")
    >>> str(d)
    'B A'
    >>> d.latex
    '\\\\mathbf{B} \\\\mathbf{A}'
    >>> str(matdiff.diff("x^T A x", wrt="x", let={"A": "symmetric(n)"}))
    '2 A x'
    >>> all(matdiff.check("d/dx a^T x = a"))
    True

A result shows as a formula in IPython and Jupyter (``_repr_latex_``).
Bad input raises matdiff.Error, with the message, line and column.

The work is done by libmatdiff's C API (the extension _matdiff); each call
has a context of its own and releases the GIL, so threads may call at
once.
"""

import os
from collections.abc import Mapping

from . import _matdiff

__all__ = ["diff", "hessian", "simplify", "check", "Error", "Result",
           "Verdict"]
__version__ = _matdiff.version()

_FORMATS = {
    "text": _matdiff.FORMAT_TEXT,
    "latex": _matdiff.FORMAT_LATEX,
    "numpy": _matdiff.FORMAT_NUMPY,
    "torch": _matdiff.FORMAT_TORCH,
    "octave": _matdiff.FORMAT_OCTAVE,
}
_LAYOUTS = {
    "denominator": _matdiff.LAYOUT_DENOMINATOR,
    "numerator": _matdiff.LAYOUT_NUMERATOR,
    "mixed": _matdiff.LAYOUT_MIXED,
}


class Error(Exception):
    """Bad input or options.

    str(error) is the message as the matdiff command prints it, with the
    offending line and a caret under the column; ``message``, ``source``
    ("<expr>", "<let>", "<wrt>", a file), ``line`` and ``column`` (1-based,
    0 when the error has no place) are its parts, ``errors`` every error
    of the call (this one first).
    """

    def __init__(self, message, source="", line=0, column=0, text=None,
                 errors=None):
        self.message = message
        self.source = source
        self.line = line
        self.column = column
        self.text = text if text is not None else "error: " + message
        self.errors = errors if errors is not None else [self]
        super().__init__(self.text.rstrip("\n"))


def _error(t):
    return Error(*t) if t else None


def _raise(r):
    errors = [Error(*t) for t in r["errors"]]
    if errors:
        first = errors[0]
        first.errors = errors
        raise first
    # --verify refuted the result: the verdict is in the warnings
    raise Error("the result is refuted by the numeric check (verify):\n"
                + r["warnings"].rstrip("\n"))


def _decls(let):
    """let as declarations: {"A": "symmetric(n)"}, ["A : symmetric(n)"],
    or "A : symmetric(n), x : vector(n)"."""
    if let is None:
        return []
    if isinstance(let, str):
        return [let]
    if isinstance(let, Mapping):
        return ["%s : %s" % (k, v) for k, v in let.items()]
    return [str(d) for d in let]


def _rules(rules):
    if rules is None:
        return []
    if isinstance(rules, (str, os.PathLike)):
        rules = [rules]
    return [os.fspath(p) for p in rules]


class _Call:
    """One question (what, of which expression, with which options), to be
    asked again in another format."""

    def __init__(self, kind, expr, wrt, flags, layout, let, rules):
        if not isinstance(expr, str):
            raise TypeError("expected the expression as str, not %s"
                            % type(expr).__name__)
        if isinstance(wrt, (list, tuple)):
            if not all(isinstance(w, str) for w in wrt):
                raise TypeError("expected wrt as a list of str")
            wrt = list(wrt)
        elif wrt is not None and not isinstance(wrt, str):
            raise TypeError("expected wrt as str or a list of str, not %s"
                            % type(wrt).__name__)
        if layout not in _LAYOUTS:
            raise ValueError("unknown layout %r; use %s" % (
                layout, ", ".join(_LAYOUTS)))
        self.kind, self.expr, self.wrt = kind, expr, wrt
        self.flags, self.layout = flags, _LAYOUTS[layout]
        self.decls, self.rules = _decls(let), _rules(rules)

    def run(self, fmt="text", flags=0):
        r = _matdiff.call(self.kind, self.expr, self.wrt, _FORMATS[fmt],
                          self.flags | flags, self.layout, self.decls,
                          self.rules)
        if r["status"] != 0:
            _raise(r)
        return r


class Result:
    """A derivative or a simplified expression.

    str(result) is the text form (the language itself: it parses back);
    ``latex``, ``numpy`` (a Python function computing it) and ``steps``
    (the derivation, as text; ``steps_latex`` in LaTeX) are computed when
    first asked for.  ``warnings`` holds what the command would say on
    standard error (a variable that does not occur, ...).
    """

    def __init__(self, call, r):
        self._call = call
        self.text = r["output"]
        self.warnings = r["warnings"]
        self._forms = {}

    def _form(self, key, fmt, flags=0):
        if key not in self._forms:
            self._forms[key] = self._call.run(fmt, flags)["output"]
        return self._forms[key]

    @property
    def latex(self):
        """The result in LaTeX (math mode: amsmath, MathJax)."""
        return self._form("latex", "latex")

    @property
    def numpy(self):
        """A self-contained Python function of the symbols, with NumPy."""
        return self._form("numpy", "numpy")

    @property
    def torch(self):
        """The same function with PyTorch tensors."""
        return self._form("torch", "torch")

    @property
    def octave(self):
        """An Octave/MATLAB function file computing it."""
        return self._form("octave", "octave")

    @property
    def steps(self):
        """The derivation, step by step, ending with the result (text)."""
        return self._form("steps", "text", _matdiff.STEPS)

    @property
    def steps_latex(self):
        """The derivation in LaTeX (an align* environment)."""
        return self._form("steps_latex", "latex", _matdiff.STEPS)

    def __str__(self):
        return self.text

    def __repr__(self):
        return "<matdiff.Result %r>" % self.text

    def __eq__(self, other):
        if isinstance(other, Result):
            return self.text == other.text
        if isinstance(other, str):
            return self.text == other
        return NotImplemented

    def __hash__(self):
        return hash(self.text)

    def _repr_latex_(self):
        latex = self.latex
        # align* (--steps) is a display of its own; a long result is an
        # aligned environment, math to put in $$ $$
        if latex.startswith("\\begin{align*}"):
            return latex
        return "$$" + latex + "$$"


def _flags(unicode=False, equation=False, verify=False, symmetric=None):
    if symmetric not in (None, "frobenius", "cookbook"):
        raise ValueError("unknown symmetric=%r; use 'frobenius' or "
                         "'cookbook'" % (symmetric,))
    return ((_matdiff.UNICODE if unicode else 0)
            | (_matdiff.EQUATION if equation else 0)
            | (_matdiff.VERIFY if verify else 0)
            | (_matdiff.COOKBOOK if symmetric == "cookbook" else 0))


def diff(expr, wrt=None, let=None, *, hessian=False, layout="denominator",
         symmetric=None, rules=None, verify=False, unicode=False,
         equation=False, value=False):
    """The derivative of expr by wrt (a symbol, or "vec(X)"; None: the one
    symbol of expr), in denominator layout unless layout says "numerator"
    or "mixed".

    wrt may be a list of variables: their derivatives from one reverse
    pass, one line each and the where bindings they share (``numpy``,
    ``torch``, ``octave``: one function returning them in order).
    value: the value of expr comes first (code: ``(f, (g1, ...))``).

    let declares symbols: {"A": "symmetric(n)", "s": "scalar"}.
    hessian: the Hessian of a scalar by a vector.  symmetric="cookbook":
    The Matrix Cookbook's gradient for symmetric variables.  rules: files
    of rules and functions.  verify: check the result numerically first.
    unicode, equation: as the command's --unicode, --equation.
    """
    call = _Call("hessian" if hessian else "diff", expr, wrt,
                 _flags(unicode, equation, verify, symmetric)
                 | (_matdiff.VALUE if value else 0), layout, let, rules)
    return Result(call, call.run())


def hessian(expr, wrt=None, let=None, **options):
    """The Hessian of the scalar expr by the vector wrt; see diff."""
    return diff(expr, wrt, let, hessian=True, **options)


def simplify(expr, let=None, *, rules=None, unicode=False):
    """expr simplified, its derivatives (d/dX f) evaluated."""
    call = _Call("simplify", expr, None, _flags(unicode), "denominator",
                 let, rules)
    return Result(call, call.run())


class Verdict:
    """The verdict on one identity of a check: truthy when it holds (an
    identity written with != holds when the sides differ).

    ``status``: "proved", "verified exactly", "verified numerically
    (...)", "FALSE" or "error"; ``identity``, ``file``, ``line``;
    ``detail``: the counterexample or why; ``error``: the Error of a line
    that is no well-formed identity, or None.
    """

    def __init__(self, file, line, identity, holds, status, detail, error):
        self.file, self.line, self.identity = file, line, identity
        self.holds, self.status, self.detail = holds, status, detail
        self.error = _error(error)

    def __bool__(self):
        return self.holds

    def __str__(self):
        if self.error is not None:
            return str(self.error)
        s = "%s:%d: %s: %s" % (self.file, self.line, self.status,
                               self.identity)
        if self.detail:
            s += "\n" + "\n".join("  " + ln
                                  for ln in self.detail.split("\n"))
        return s

    def __repr__(self):
        return "<matdiff.Verdict %s:%d %s: %r>" % (
            self.file, self.line, self.status, self.identity)


def check(text_or_path, let=None, *, rules=None):
    """Checks identities, as matdiff check does, and returns one Verdict
    per identity, in order.

    text_or_path: the text of an identity file ("d/dx a^T x = a", lines
    of them, let lines, comments), or a path (a str naming a file that
    exists and holding no newline, or an os.PathLike).  Raises Error when
    the file cannot be read or let or rules are bad; a bad line is a
    verdict (falsy, with its error).
    """
    if isinstance(text_or_path, os.PathLike):
        kind, text = "check_file", os.fspath(text_or_path)
    elif not isinstance(text_or_path, str):
        raise TypeError("expected identities or a path as str, not %s"
                        % type(text_or_path).__name__)
    elif "\n" not in text_or_path and os.path.isfile(text_or_path):
        kind, text = "check_file", text_or_path
    else:
        kind, text = "check", text_or_path
    r = _matdiff.call(kind, text, None, 0, 0, 0, _decls(let), _rules(rules))
    if r["status"] == 2:
        _raise(r)
    return [Verdict(*v) for v in r["verdicts"]]
