#!/usr/bin/env python3
"""Every ```console example of README.md (and doc/*.md), run and compared,
reported as TAP.

Usage: readme.py --matdiff PATH/TO/matdiff [--timeout S] [--max-lines N]
                 [--ci FILE] [--update] [FILE.md...]

FILE.md defaults to README.md.  Each file is read on its own; a file
without any ```console block is fine unless it is named README.md.

In a fenced block whose info string is `console`, a line starting with `$ `
is a command; lines right after it that start with `> ` continue it (the
shell's second prompt: a here-document, say; a line `>` alone is an empty
line of it), and the lines after those, up
to the next `$ ` line or the end of the block, are what the command prints.
Fences may be indented (inside a list item); the indentation of the fence
is removed from the lines of the block.

Each command runs with /bin/sh -c, stdin /dev/null (a pipe inside the
command feeds it as usual), LC_ALL=C.UTF-8, the directory of the built
binary first on PATH (so `matdiff` is the one under test) and in $MATDIFF.
The commands of one block run in order in one fresh temporary directory,
so that a block may write a file (`cat > ls.mdi <<'EOF'`) and then use it.

Comparison.  The README shows what a terminal shows: stdout and stderr
mixed.  Their interleaving is not reliable when they are captured apart,
so the expected lines pass when they are *some* interleaving of the lines
of stdout and the lines of stderr, each kept in its own order: every line
must be there, exactly, and no other.  The exit status is not compared
(tests/cli.test asserts statuses); it is shown when a command fails.

Checks of a file named README.md, besides its examples:
  --max-lines N   it has at most N lines (so that it stays a page a
                  newcomer reads top to bottom);
  --ci FILE       its quick start (the first ```sh block after the
                  heading "## Quick start") installs with apt-get exactly
                  the packages of the first `apt-get install` of FILE
                  (.ci/run), and FILE runs the quick start's last line,
                  the test command, as a line of its own.

--update writes the output of every example that fails back into its
file, from the binary under test: the lines of stderr, then those of
stdout (put a note that a terminal shows later back in place by hand).
Review the result with git diff.

If MATDIFF_WRAPPER is set (e.g. 'valgrind --error-exitcode=99 -q'), `matdiff`
runs through it, as in tests/golden.py.  Timeout: 60 s per command, or
$MATDIFF_TIMEOUT, or --timeout.  Exit status 0 when every example passes,
1 otherwise.  Python standard library only.
"""

import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile

FENCE = re.compile(r"^( *)(`{3,}|~{3,})\s*(\S*)")
DEFAULT_TIMEOUT = 60.0


class Example:
    def __init__(self, block, lineno, command):
        self.block = block  # index of its ```console block
        self.lineno = lineno  # line of its `$ ` in the README
        self.command = command
        self.expected = []


def read_examples(path):
    """The commands of every ```console block, with their expected lines."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    examples = []
    errors = []
    i = 0
    nblock = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m.group(1)), m.group(2), m.group(3)
        start = i
        i += 1
        body = []
        closed = False
        while i < len(lines):
            line = lines[i]
            stripped = line.lstrip(" ")
            if stripped.startswith(fence) and stripped.strip() == \
                    fence[0] * len(stripped.strip()) and \
                    len(stripped.strip()) >= len(fence):
                closed = True
                i += 1
                break
            # remove up to the fence's indentation
            k = 0
            while k < indent and k < len(line) and line[k] == " ":
                k += 1
            body.append((i + 1, line[k:]))
            i += 1
        if not closed:
            errors.append("%s:%d: fenced block not closed" % (path, start + 1))
        if info != "console":
            continue
        nblock += 1
        cur = None
        continuing = False
        for lineno, line in body:
            if line.startswith("$ "):
                cur = Example(nblock, lineno, line[2:])
                examples.append(cur)
                continuing = True
            elif cur is None:
                if line.strip():
                    errors.append("%s:%d: output before any `$ ` command"
                                  % (path, lineno))
            elif continuing and (line.startswith("> ") or line == ">"):
                cur.command += "\n" + line[2:]
            else:
                continuing = False
                cur.expected.append(line)
    return examples, errors


def interleaves(expected, out, err):
    """True if EXPECTED is a merge of OUT and ERR, each in its own order."""
    n, a, b = len(expected), len(out), len(err)
    if n != a + b:
        return False
    # can[j]: expected[:i + j] is a merge of out[:i] and err[:j]
    can = [True] * (b + 1)
    for j in range(1, b + 1):
        can[j] = can[j - 1] and err[j - 1] == expected[j - 1]
    for i in range(1, a + 1):
        can[0] = can[0] and out[i - 1] == expected[i - 1]
        for j in range(1, b + 1):
            k = i + j - 1
            can[j] = (can[j] and out[i - 1] == expected[k]) or \
                (can[j - 1] and err[j - 1] == expected[k])
    return can[b]


def split_lines(data):
    text = data.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def make_env(matdiff, tmp):
    env = dict(os.environ)
    env["LC_ALL"] = "C.UTF-8"
    env["MATDIFF"] = matdiff
    bindir = os.path.dirname(matdiff)
    wrapper = env.get("MATDIFF_WRAPPER", "").strip()
    if wrapper:
        bindir = os.path.join(tmp, "bin")
        os.mkdir(bindir)
        shim = os.path.join(bindir, "matdiff")
        with open(shim, "w") as f:
            # $MATDIFF_WRAPPER is split into words on purpose.
            f.write("#!/bin/sh\nexec $MATDIFF_WRAPPER %s \"$@\"\n"
                    % shlex.quote(matdiff))
        os.chmod(shim, 0o755)
        env["MATDIFF"] = shim
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def run(example, cwd, env, timeout):
    """Exit status (None on a timeout), stdout lines, stderr lines."""
    p = subprocess.Popen(["/bin/sh", "-c", example.command], cwd=cwd,
                         env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
        status = p.returncode
    except subprocess.TimeoutExpired:
        # the whole group: sh and whatever it started
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        status = None
    return status, split_lines(out), split_lines(err)


def quick_start(path):
    """The lines of the first ```sh block after "## Quick start"."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    try:
        i = lines.index("## Quick start")
    except ValueError:
        return None
    while i < len(lines) and lines[i].strip() != "```sh":
        i += 1
    block = []
    for line in lines[i + 1:]:
        if line.strip().startswith("```"):
            return block
        block.append(line)
    return None


def apt_packages(text):
    """The package names of the first `apt-get install` of TEXT (a shell
    command, with backslash-newlines), up to the end of the command."""
    words = shlex.split(text.replace("\\\n", " "), comments=True)
    try:
        i = words.index("install", words.index("apt-get"))
    except ValueError:
        return None
    out = []
    for w in words[i + 1:]:
        if w in ("&&", "||", ";", "|") or w.endswith(";"):
            break
        if not w.startswith("-"):
            out.append(w)
    return out


def readme_checks(path, max_lines, ci):
    """(ok, description, diagnostics) for the README's own checks."""
    results = []
    shown = os.path.basename(path)
    with open(path, encoding="utf-8") as f:
        n = len(f.read().rstrip("\n").split("\n"))
    if max_lines is not None:
        results.append((n <= max_lines, "%s has %d lines (at most %d)"
                        % (shown, n, max_lines), []))
    if ci is None:
        return results
    qs = quick_start(path)
    if not qs or len(qs) < 2:
        results.append((False, "%s: a quick start of two commands" % shown,
                        ["no ```sh block of two lines after "
                         "'## Quick start'"]))
        return results
    with open(ci, encoding="utf-8") as f:
        ci_text = f.read()
    ci_lines = [l.strip() for l in ci_text.split("\n")]
    # .ci/run's first apt-get install: its lines up to one without "\"
    start = next((k for k, l in enumerate(ci_lines)
                  if "apt-get install" in l), None)
    ci_cmd = ""
    if start is not None:
        for l in ci_lines[start:]:
            ci_cmd += l + "\n"
            if not l.endswith("\\"):
                break
    ours, theirs = apt_packages(qs[0]), apt_packages(ci_cmd)
    diag = []
    if ours is None or theirs is None:
        diag.append("no apt-get install in %s"
                    % ("the quick start" if ours is None else ci))
    else:
        for name in sorted(set(theirs) - set(ours)):
            diag.append("%s installs %s, the quick start does not"
                        % (ci, name))
        for name in sorted(set(ours) - set(theirs)):
            diag.append("the quick start installs %s, %s does not"
                        % (name, ci))
    results.append((not diag, "%s: the quick start installs the packages "
                    "of %s" % (shown, ci), diag))
    test_cmd = qs[-1].strip()
    # the command itself, then at most a redirection or a pipe
    ok = any(l == test_cmd or (l.startswith(test_cmd + " ") and
                               l[len(test_cmd):].strip()[0] in "|>;&2")
             for l in ci_lines)
    results.append((ok, "%s runs the quick start's test command: %s"
                    % (ci, test_cmd),
                    [] if ok else ["no line of %s starts with it" % ci]))
    return results


def update(path, fixes):
    """Write FIXES (lineno of the `$ ` -> (example, new lines)) into PATH."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for lineno in sorted(fixes, reverse=True):
        ex, new = fixes[lineno]
        indent = re.match(r" *", lines[lineno - 1]).group(0)
        start = lineno - 1 + ex.command.count("\n") + 1
        lines[start:start + len(ex.expected)] = \
            [indent + l if l else l for l in new]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--matdiff", required=True)
    ap.add_argument("--timeout", type=float)
    ap.add_argument("--max-lines", type=int)
    ap.add_argument("--ci")
    ap.add_argument("--update", action="store_true")
    ap.add_argument("files", nargs="*", metavar="FILE.md")
    a = ap.parse_args(argv[1:])
    if not a.files:
        a.files = [os.path.join(here, os.pardir, "README.md")]
    timeout = a.timeout
    if timeout is None:
        try:
            timeout = float(os.environ.get("MATDIFF_TIMEOUT",
                                           DEFAULT_TIMEOUT))
        except ValueError:
            timeout = DEFAULT_TIMEOUT
    matdiff = os.path.abspath(a.matdiff)

    # (description, ok, diagnostics) for the checks that run no command
    checks = []
    per_file = []
    for path in a.files:
        shown = os.path.basename(path)
        is_readme = shown == "README.md"
        examples, errors = read_examples(path)
        for e in errors:
            checks.append((False, e, []))
        if not examples and is_readme:
            checks.append((False, "%s: no ```console example found"
                           % shown, []))
        if is_readme:
            checks += readme_checks(path, a.max_lines, a.ci)
        per_file.append((path, shown, examples))

    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(errors="backslashreplace")
    print("TAP version 13")
    print("1..%d" % (len(checks) + sum(len(e) for _, _, e in per_file)))
    failed = 0
    n = 0
    report_err = not sys.stdout.isatty()

    def report(ok, desc, diag):
        nonlocal n, failed
        n += 1
        print("%s %d - %s" % ("ok" if ok else "not ok", n,
                              desc.replace("#", "\\#")))
        if ok:
            return
        failed += 1
        for l in diag:
            print("# " + l)
        if report_err:
            print("not ok - " + desc, file=sys.stderr)
            for l in diag:
                print("  " + l, file=sys.stderr)

    for ok, desc, diag in checks:
        report(ok, desc, diag)

    with tempfile.TemporaryDirectory(prefix="matdiff-readme-") as top:
        env = make_env(matdiff, top)
        for path, shown, examples in per_file:
            blocks = {}
            fixes = {}
            for ex in examples:
                if ex.block not in blocks:
                    blocks[ex.block] = tempfile.mkdtemp(dir=top)
                status, out, err = run(ex, blocks[ex.block], env, timeout)
                ok = status is not None and interleaves(ex.expected, out,
                                                        err)
                first = ex.command.split("\n")[0]
                more = " ..." if "\n" in ex.command else ""
                desc = "%s:%d: $ %s%s" % (shown, ex.lineno, first, more)
                diag = []
                if not ok:
                    diag = ["%s shows:" % shown]
                    diag += ["  " + l for l in ex.expected]
                    diag += ["stdout:"] + ["  " + l for l in out]
                    diag += ["stderr:"] + ["  " + l for l in err]
                    diag.append("exit status: %s" % (
                        "timed out after %g s" % timeout if status is None
                        else status))
                    if status is not None:
                        fixes[ex.lineno] = (ex, err + out)
                report(ok, desc, diag)
            if a.update and fixes:
                update(path, fixes)
                print("# %s: %d example(s) written again" % (shown,
                                                            len(fixes)))
    sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
