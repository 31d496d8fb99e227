#!/usr/bin/env python3
"""Every LaTeX formula matdiff writes must compile with pdflatex and render
in MathJax 3 (SPEC 6).

Usage: check.py --matdiff PATH [--golden FILE]... [--identities FILE]...
                [--identities-dir DIR]... [--steps] [--random PROGRAM]
                [--count N] [--keep DIR] [--only pdflatex|mathjax]

The formulas come from
  --golden FILE      the expected stdout of every `-f latex` / `--format
                     latex` case of a golden test file (tests/latex.test);
  --identities FILE  `matdiff -f latex --equation` on the left side of each
                     `LHS = RHS` line of an identity file: `d/dX f` is
                     `--wrt X f`, any other side is `simplify LHS`; `let`
                     lines become -D declarations for the lines after them
                     (as tests/exact.py reads them), and definitions
                     `f(x) := ...` a --rules file;
  --identities-dir DIR  the same for every DIR/*.mdi (nothing if DIR does
                     not exist: the shared table beside the checkout);
  --steps            for each `d/dX f` identity, `--steps` as well: its
                     align* block is one formula (no \\[ \\] around it);
  --random PROGRAM   `PROGRAM --dump N` (tests/test_latex): N random
                     expressions, one formula a line (skipped if PROGRAM
                     does not exist, as when Check is not installed).
Then (a) one document, \\documentclass{article}\\usepackage{amsmath}, each
formula in its own \\[ \\], goes through `pdflatex -halt-on-error
-interaction=nonstopmode`; a formula that stops it is reported and taken
out, and the rest compiled again (up to 20 failures); (b) node render.js
(beside this script) renders each formula with the pinned MathJax and
names every one with an error node; (c) the formulas of the golden files
(but --steps' align* blocks) must fit an article's \\textwidth: pdflatex
may report no "Overfull \\hbox" for them (long results are broken into
aligned lines, and the short ones must be short).  `--only pdflatex` does
(a) and (c) alone, `--only mathjax` (b) alone, so that each is skipped
only for want of its own tool (meson runs them as the tests
latex-pdflatex and latex-render).

Exit status: 0 all good, 1 a formula failed (or matdiff crashed), 77
(skipped, for meson) when pdflatex, node or tests/latex/node_modules is
missing (of those the checks need): install them with `apt-get install
texlive-latex-base nodejs` and, where npm is installed,
`npm ci --prefix tests/latex` (doc/tests.md).  Python standard library
only.
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77
MAX_TEX_FAILURES = 20
LATEX_OPTION = re.compile(r"(?:-f|--format)(?:\s+|=)latex\b")
DIFF_LHS = re.compile(r"^d/d(vec\([A-Za-z]\w*\)|[A-Za-z]\w*)\s*(.*)$")


class Formula:
    def __init__(self, origin, tex):
        self.origin = origin
        self.tex = tex


def golden_formulas(path):
    """The expected stdout lines of the LaTeX cases of a golden file."""
    out = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    command = None
    block = None  # the environment being read, one formula
    for no, line in enumerate(lines, 1):
        if not line.strip():
            command = None
        elif line.startswith("$ "):
            command = line[2:] if LATEX_OPTION.search(line) else None
        elif command is None or line.startswith(("#", "<", "!", "?")):
            continue
        else:
            tex = line[2:] if line.startswith("| ") else line
            if block is not None:  # inside an environment (--steps)
                block.tex += "\n" + tex
                if tex.startswith("\\end{"):
                    block = None
            elif tex.startswith("\\begin{") and "\\end{" not in tex:
                block = Formula("%s:%d" % (path, no), tex)
                out.append(block)
            elif tex.strip():
                out.append(Formula("%s:%d" % (path, no), tex))
    return out


def run_matdiff(cmd, where, problems, quiet=False):
    """The stdout of CMD, or None (a crash or a timeout is a problem; an
    error is noted unless QUIET)."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        problems.append("%s: matdiff timed out: %s" % (where, " ".join(cmd)))
        return None
    if p.returncode < 0 or p.returncode >= 128:
        problems.append("%s: matdiff crashed (status %d): %s"
                        % (where, p.returncode, " ".join(cmd)))
        return None
    if p.returncode != 0:
        # not a LaTeX matter: the identity tests judge the engine
        if quiet:
            return None
        first = (p.stderr.strip().splitlines() or [""])[0]
        print("# %s: no output (status %d): %s"
              % (where, p.returncode, first))
        return None
    return p.stdout


def is_display(tex):
    """Whether TEX is a display environment of its own (--steps writes
    align*), rather than math to put in \\[ \\] (a long result is an
    aligned environment, on one line)."""
    return tex.startswith("\\begin{align*}")


def split_output(where, out):
    """Formulas of one output: an environment (--steps writes align*) is
    one formula, anything else one formula a line."""
    if is_display(out):
        return [Formula(where, out.strip())]
    return [Formula(where, t) for t in out.splitlines() if t.strip()]


def identity_formulas(matdiff, path, problems, workdir, steps):
    """matdiff -f latex --equation on each identity's left side (and
    --steps too when STEPS)."""
    out = []
    decls = []
    defs = []  # function definitions so far, passed with --rules
    rules = os.path.join(workdir, "defs-%s.rules" % os.path.basename(path))
    with open(path, encoding="utf-8") as f:
        for no, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if line.startswith("let "):
                decls += ["-D", line[4:]]
                continue
            if ":=" in line:
                defs.append(line)
                with open(rules, "w", encoding="utf-8") as r:
                    r.write("\n".join(defs) + "\n")
                continue
            if "!=" in line or "=" not in line:
                continue
            lhs = line.split("=", 1)[0].strip()
            m = DIFF_LHS.match(lhs)
            opts = ["-f", "latex"] + decls
            if defs:
                opts += ["--rules", rules]
            where = "%s:%d" % (path, no)
            if m:
                what = ["--wrt", m.group(1), "--", m.group(2)]
                runs = [["--equation"]] + ([["--steps"]] if steps else [])
                for extra in runs:
                    # --steps is for gradients only: a Jacobian is refused
                    out_ = run_matdiff([matdiff] + opts + extra + what,
                                       where, problems,
                                       quiet=extra[0] == "--steps")
                    if out_ is not None:
                        out += split_output(where + " " + extra[0], out_)
            else:
                cmd = [matdiff, "simplify"] + opts + ["--equation", "--",
                                                      lhs]
                out_ = run_matdiff(cmd, where, problems)
                if out_ is not None:
                    out += split_output(where, out_)
    return out


def random_formulas(program, count):
    if not os.path.exists(program):
        print("# %s not built: no random formulas" % program)
        return []
    p = subprocess.run([program, "--dump", str(count)], capture_output=True,
                       text=True, timeout=120, check=True)
    return [Formula("random #%d" % i, t)
            for i, t in enumerate(p.stdout.splitlines(), 1)]


def pdflatex_failures(formulas, workdir):
    """(formula index, message) for each formula pdflatex stops on."""
    failures = []
    left = list(range(len(formulas)))
    while left and len(failures) < MAX_TEX_FAILURES:
        body = ["\\documentclass{article}", "\\usepackage{amsmath}",
                "\\begin{document}"]
        line_of = {}  # source line -> formula index
        for i in left:
            body.append("%% %s" % formulas[i].origin.replace("%", "\\%"))
            tex = formulas[i].tex
            if not is_display(tex):
                tex = "\\[ %s \\]" % tex
            for k, line in enumerate(tex.split("\n")):
                body.append(line)
                line_of[len(body)] = i
        body.append("\\end{document}")
        tex = os.path.join(workdir, "formulas.tex")
        with open(tex, "w", encoding="utf-8") as f:
            f.write("\n".join(body) + "\n")
        p = subprocess.run(
            ["pdflatex", "-halt-on-error", "-interaction=nonstopmode",
             "-no-shell-escape", "formulas.tex"],
            cwd=workdir, capture_output=True, text=True, errors="replace",
            timeout=600)
        if p.returncode == 0:
            break
        log = p.stdout
        try:
            with open(os.path.join(workdir, "formulas.log"),
                      encoding="utf-8", errors="replace") as f:
                log = f.read()
        except OSError:
            pass
        msg = next((l for l in log.splitlines() if l.startswith("! ")),
                   "! pdflatex failed")
        m = re.search(r"^l\.(\d+)", log, re.M)
        bad = line_of.get(int(m.group(1))) if m else None
        if bad is None:
            failures.append((None, msg + " (formula not found; log in "
                             + workdir + ")"))
            break
        failures.append((bad, msg))
        left.remove(bad)
    return failures


def overfull_failures(formulas, workdir):
    """(formula index, message) for each formula of the golden files wider
    than an article's \\textwidth in pdflatex: matdiff breaks a long
    result into lines that fit (print_latex.c), so no formula but a
    --steps derivation (align*, not broken) may be overfull, nor wider
    than the line before TeX shrinks its spaces."""
    body = ["\\documentclass{article}", "\\usepackage{amsmath}",
            "\\begin{document}"]
    line_of = {}
    for i, x in enumerate(formulas):
        if is_display(x.tex) or "\n" in x.tex:
            continue
        body.append("\\setbox0\\hbox{$\\displaystyle %s$}\\ifdim\\wd0>"
                    "\\textwidth\\typeout{WIDE %d \\the\\wd0}\\fi" % (x.tex, i))
        body.append("\\[ %s \\]" % x.tex)
        line_of[len(body)] = i
    body.append("\\end{document}")
    with open(os.path.join(workdir, "fit.tex"), "w", encoding="utf-8") as f:
        f.write("\n".join(body) + "\n")
    subprocess.run(["pdflatex", "-interaction=nonstopmode",
                    "-no-shell-escape", "fit.tex"], cwd=workdir,
                   capture_output=True, timeout=600)
    failures = []
    try:
        with open(os.path.join(workdir, "fit.log"), encoding="utf-8",
                  errors="replace") as f:
            log = f.read()
    except OSError:
        return [(None, "pdflatex wrote no log (fit.tex in %s)" % workdir)]
    for m in re.finditer(r"^Overfull \\hbox \(([\d.]+)pt too wide\) "
                         r"detected at line (\d+)", log, re.M):
        i = line_of.get(int(m.group(2)))
        failures.append((i, "Overfull \\hbox, %spt too wide" % m.group(1)))
    for m in re.finditer(r"^WIDE (\d+) ([\d.]+)pt", log, re.M):
        failures.append((int(m.group(1)), "%spt wide, more than \\textwidth"
                         % m.group(2)))
    return failures


def mathjax_failures(formulas, workdir):
    path = os.path.join(workdir, "formulas.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump([{"origin": x.origin, "tex": x.tex} for x in formulas], f)
    p = subprocess.run(["node", os.path.join(HERE, "render.js"), path],
                       capture_output=True, text=True, timeout=600)
    failures = []
    for line in p.stdout.splitlines():
        r = json.loads(line)
        failures.append((r["index"], r["error"]))
    if p.returncode != 0 and not failures:
        failures.append((None, "render.js failed: " + p.stderr.strip()))
    return failures


def report(name, formulas, failures):
    if not failures:
        print("ok - %s: %d formulas" % (name, len(formulas)))
        return True
    print("not ok - %s: %d failures" % (name, len(failures)))
    for i, msg in failures:
        if i is None:
            print("  %s" % msg)
        else:
            print("  %s: %s\n    %s" % (formulas[i].origin, msg,
                                        formulas[i].tex))
    return False


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--matdiff", required=True)
    ap.add_argument("--golden", action="append", default=[])
    ap.add_argument("--identities", action="append", default=[])
    ap.add_argument("--identities-dir", action="append", default=[])
    ap.add_argument("--random")
    ap.add_argument("--steps", action="store_true")
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--keep", help="write the work files here")
    ap.add_argument("--only", choices=["pdflatex", "mathjax"],
                    help="run one of the two checks (default: both)")
    a = ap.parse_args(argv[1:])

    tex = a.only != "mathjax"
    mathjax = a.only != "pdflatex"
    missing = []
    if tex and not shutil.which("pdflatex"):
        missing.append("pdflatex (apt-get install texlive-latex-base)")
    if mathjax and not shutil.which("node"):
        missing.append("node (apt-get install nodejs)")
    if mathjax and not os.path.isdir(
            os.path.join(HERE, "node_modules", "mathjax-full")):
        missing.append("MathJax (npm ci --prefix tests/latex, where npm "
                       "is installed; see doc/tests.md)")
    if missing:
        print("skipped: missing " + "; ".join(missing))
        return SKIP

    workdir = a.keep or tempfile.mkdtemp(prefix="matdiff-latex-")
    os.makedirs(workdir, exist_ok=True)
    ok = False
    try:
        problems = []
        formulas = []
        for path in a.golden:
            formulas += golden_formulas(path)
        golden = list(formulas)
        for d in a.identities_dir:
            if os.path.isdir(d):
                a.identities += sorted(glob.glob(os.path.join(d, "*.mdi")))
        for path in a.identities:
            formulas += identity_formulas(a.matdiff, path, problems,
                                          workdir, a.steps)
        if a.random:
            formulas += random_formulas(a.random, a.count)
        if not formulas:
            problems.append("no formulas to check")
        ok = not problems
        for p in problems:
            print("not ok - " + p)
        if tex:
            ok &= report("pdflatex", formulas,
                         pdflatex_failures(formulas, workdir))
            if golden:
                ok &= report("pdflatex, golden formulas within \\textwidth",
                             golden, overfull_failures(golden, workdir))
        if mathjax:
            ok &= report("MathJax", formulas,
                         mathjax_failures(formulas, workdir))
    finally:
        if not a.keep and ok:
            shutil.rmtree(workdir, ignore_errors=True)
    if not ok and not a.keep:
        print("# work files kept in " + workdir)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
