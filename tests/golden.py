#!/usr/bin/env python3
"""Golden CLI tests for matdiff, reported as TAP.

Usage: golden.py --matdiff PATH/TO/matdiff [--timeout S] [-j N] [-k TEXT]
                 FILE...

A test file holds cases separated by blank lines; '#' lines are comments.

    $ matdiff simplify 'A +'          the command, run by /bin/sh -c
    < x + x                           a line of stdin ('<' alone: empty line)
    A                                 an expected line of stdout
    | $x                              expected stdout starting with $ ! ? < # |
    |                                 ... or an empty expected line
    ! matdiff: <expr>:1:4: error: ... an expected line of stderr ('!' alone:
    !    ^                            empty line); none means stderr is empty
    ? 2                               the expected exit status (default 0)

Each command runs with cwd = the directory of its test file, LC_ALL=C.UTF-8,
the directory of the binary first on PATH (so `matdiff` is the built one),
MATDIFF set to the same program, stdin from the '<' lines or /dev/null, and
a timeout (20 s by default, or $MATDIFF_TIMEOUT, or --timeout).

If MATDIFF_WRAPPER is set (e.g. 'valgrind --error-exitcode=99 -q'), `matdiff`
and $MATDIFF run through it: a temporary `matdiff` script that does
`exec $MATDIFF_WRAPPER /real/matdiff "$@"` comes first on PATH.

Output and expectations are compared as bytes.  When stdout is not a
terminal, failures are also written to stderr, for harnesses that parse
stdout and show only stderr (meson test --print-errorlogs).  The runner
exits 0 when every case passes and 1 otherwise; a malformed test file is a
failing case.  Python standard library only.
"""

import argparse
import concurrent.futures
import difflib
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

DEFAULT_TIMEOUT = 20.0
OUTPUT_LIMIT = 8 << 20  # bytes per stream; more is a runaway program
DIFF_INPUT = 2000  # lines of each side compared for the report
DIFF_LIMIT = 60  # diagnostic lines shown per stream


class Case:
    """One '$' command with its stdin and expectations (or a parse error)."""

    def __init__(self, path, lineno, command=None, error=None):
        self.path = path
        self.lineno = lineno
        self.command = command
        self.error = error  # set: the case is malformed and is not run
        self.stdin = []
        self.stdout = []
        self.stderr = []
        self.status = None

    def describe(self, shown_path):
        text = "%s:%d" % (shown_path, self.lineno)
        if self.command is not None:
            text += ": " + self.command
        # '#' starts a TAP directive; escape it so a command cannot be a SKIP.
        return show_text(text).replace("#", "\\#")


def encode(text):
    return text.encode("utf-8", "surrogateescape")


def read_cases(path):
    """Parses one test file into a list of Case (malformed ones included)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return [Case(path, 0, error="cannot read: %s" % e.strerror)]
    text = data.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line, no extra line

    cases = []
    cur = None  # the case being read
    skipping = False  # after an error outside a case, until a blank line

    def fail(case, lineno, message):
        if case.error is None:
            case.error = "line %d: %s" % (lineno, message)

    for lineno, line in enumerate(lines, 1):
        if line == "":
            cur, skipping = None, False
            continue
        if line.endswith("\r"):
            target = cur if cur is not None else Case(path, lineno)
            fail(target, lineno, "CR at end of line (use LF line endings)")
            if cur is None:
                cases.append(target)
                cur = target
            continue
        if line.startswith("#"):
            continue
        if line.strip() == "":
            message = ("whitespace-only line: use an empty line to end a "
                       "case, or '| ' for expected blank-looking output")
            if cur is None:
                cur = Case(path, lineno)
                cases.append(cur)
            fail(cur, lineno, message)
            continue
        if line.startswith("$"):
            if not line.startswith("$ ") or line[2:].strip() == "":
                cur = Case(path, lineno)
                cases.append(cur)
                fail(cur, lineno, "a command line is '$ COMMAND', got '%s'"
                     % show_short(line))
            else:
                cur = Case(path, lineno, command=line[2:])
                cases.append(cur)
            skipping = False
            continue
        if cur is None:
            if not skipping:
                bad = Case(path, lineno)
                fail(bad, lineno, "expected a '$ COMMAND' line to start a "
                     "case, got '%s'" % show_short(line))
                cases.append(bad)
                skipping = True
            continue

        head, rest = line[0], line[2:]
        if head in "<!|" and len(line) > 1 and line[1] != " ":
            fail(cur, lineno, "'%s' must be followed by a space or end the "
                 "line" % head)
        elif head == "<":
            cur.stdin.append(rest)
        elif head == "!":
            cur.stderr.append(rest)
        elif head == "|":
            cur.stdout.append(rest)
        elif head == "?":
            m = re.fullmatch(r"\? ([0-9]{1,3})", line)
            if not m or int(m.group(1)) > 255:
                fail(cur, lineno, "an exit status line is '? N', 0 <= N <= "
                     "255")
            elif cur.status is not None:
                fail(cur, lineno, "a second '?' line in one case")
            else:
                cur.status = int(m.group(1))
        else:
            cur.stdout.append(line)

    if not cases:
        cases.append(Case(path, 0, error="no test cases in this file"))
    return cases


# Running


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_command(command, stdin_bytes, cwd, env, timeout):
    """Runs COMMAND under /bin/sh; returns (status, stdout, stderr, problem).

    STATUS is the exit status, or -N if killed by signal N.  PROBLEM is None
    or a reason the run itself failed (timeout, runaway output, cannot run).
    """
    with tempfile.TemporaryFile() as stdin_file:
        if stdin_bytes is None:
            stdin = subprocess.DEVNULL
        else:
            stdin_file.write(stdin_bytes)
            stdin_file.seek(0)
            stdin = stdin_file
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=cwd,
                                    env=env, stdin=stdin,
                                    stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE,
                                    start_new_session=True)
        except OSError as e:
            return None, b"", b"", "cannot run /bin/sh: %s" % e.strerror

        deadline = time.monotonic() + timeout
        chunks = {proc.stdout: [], proc.stderr: []}
        sizes = {proc.stdout: 0, proc.stderr: 0}
        problem = None
        with selectors.DefaultSelector() as sel:
            for stream in chunks:
                sel.register(stream, selectors.EVENT_READ)
            while sel.get_map() and problem is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    problem = "timed out after %g s" % timeout
                    break
                for key, _ in sel.select(left):
                    data = os.read(key.fd, 65536)
                    if not data:
                        sel.unregister(key.fileobj)
                        continue
                    chunks[key.fileobj].append(data)
                    sizes[key.fileobj] += len(data)
                    if sizes[key.fileobj] > OUTPUT_LIMIT:
                        problem = "more than %d bytes of output" % OUTPUT_LIMIT
        if problem is None:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                problem = "timed out after %g s" % timeout
        if problem is not None:
            kill_group(proc)
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        out = b"".join(chunks[proc.stdout])
        err = b"".join(chunks[proc.stderr])
        return proc.returncode, out, err, problem


# Reporting


def show_short(text, width=60):
    text = show_text(text)
    return text if len(text) <= width else text[:width] + "..."


def show_text(text):
    """Makes a str safe for one TAP line: odd bytes and controls as \\xNN."""
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte
            out.append("\\x%02x" % (code - 0xDC00))
        elif (code < 0x20 and ch != "\t") or code == 0x7F:
            out.append("\\x%02x" % code)
        else:
            out.append(ch)
    return "".join(out)


def show_lines(data):
    text = data.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    elif data:
        lines.append("\\ No newline at end")
    return [show_text(line) for line in lines]


def diff_stream(name, expected, actual):
    # A runaway output is cut before the diff, which is quadratic at worst.
    want, got = show_lines(expected), show_lines(actual)
    if len(got) > DIFF_INPUT:
        got = got[:DIFF_INPUT] + ["... (%d lines in all)" % len(got)]
    diff = list(difflib.unified_diff(want[:DIFF_INPUT], got,
                                     "expected " + name, "actual " + name,
                                     lineterm=""))
    if len(diff) > DIFF_LIMIT:
        more = len(diff) - DIFF_LIMIT
        diff = diff[:DIFF_LIMIT] + ["... (%d more lines)" % more]
    return diff


def describe_status(status):
    if status is None:
        return "no status"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = "signal %d" % -status
        return "killed by %s" % name
    if status > 128:
        try:
            name = signal.Signals(status - 128).name
            return "%d (a shell's report of %s?)" % (status, name)
        except ValueError:
            pass
    return str(status)


def check_case(case, env, timeout):
    """Runs CASE; returns a list of diagnostic lines, empty if it passed."""
    if case.error is not None:
        return ["malformed test: " + show_text(case.error)]
    stdin = None
    if case.stdin:
        stdin = encode("\n".join(case.stdin) + "\n")
    want_out = encode("".join(line + "\n" for line in case.stdout))
    want_err = encode("".join(line + "\n" for line in case.stderr))
    want_status = case.status if case.status is not None else 0
    cwd = os.path.dirname(os.path.abspath(case.path))

    status, out, err, problem = run_command(case.command, stdin, cwd, env,
                                            timeout)
    notes = []
    if problem is not None:
        notes.append(problem)
    if status != want_status:
        notes.append("exit status: expected %d, got %s"
                     % (want_status, describe_status(status)))
    if out != want_out:
        notes.extend(diff_stream("stdout", want_out, out))
    if err != want_err:
        notes.extend(diff_stream("stderr", want_err, err))
    return notes


def shown_path(path):
    rel = os.path.relpath(path)
    return rel if len(rel) < len(path) else path


def make_env(matdiff, wrapdir):
    env = dict(os.environ)
    env["LC_ALL"] = "C.UTF-8"
    program = matdiff
    wrapper = env.get("MATDIFF_WRAPPER", "").strip()
    if wrapper:
        program = os.path.join(wrapdir, "matdiff")
        with open(program, "w") as f:
            # $MATDIFF_WRAPPER is split into words on purpose.
            f.write("#!/bin/sh\nexec $MATDIFF_WRAPPER %s \"$@\"\n"
                    % shlex.quote(matdiff))
        os.chmod(program, 0o755)
    path = os.path.dirname(program)
    env["PATH"] = path + os.pathsep + env.get("PATH", os.defpath)
    env["MATDIFF"] = program
    return env


def main(argv):
    ap = argparse.ArgumentParser(
        description="Run matdiff golden CLI tests and report TAP.")
    ap.add_argument("--matdiff", required=True, help="the binary to test")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds per case (default: $MATDIFF_TIMEOUT or %g)"
                    % DEFAULT_TIMEOUT)
    ap.add_argument("-j", "--jobs", type=int, default=None,
                    help="cases run in parallel (default: CPU count, max 8)")
    ap.add_argument("-k", dest="keyword", default=None,
                    help="run only cases whose command contains this text")
    ap.add_argument("files", nargs="+", metavar="FILE")
    args = ap.parse_args(argv)

    timeout = args.timeout
    if timeout is None:
        try:
            timeout = float(os.environ.get("MATDIFF_TIMEOUT", DEFAULT_TIMEOUT))
        except ValueError:
            timeout = DEFAULT_TIMEOUT
    jobs = args.jobs or min(os.cpu_count() or 1, 8)

    matdiff = args.matdiff
    if os.sep not in matdiff:
        matdiff = shutil.which(matdiff) or matdiff
    matdiff = os.path.abspath(matdiff)
    if not (os.path.isfile(matdiff) and os.access(matdiff, os.X_OK)):
        print("1..0")
        print("Bail out! not an executable file: %s" % show_text(matdiff))
        return 1

    cases = []
    for path in args.files:
        for case in read_cases(path):
            if (args.keyword is None or case.error is not None
                    or args.keyword in case.command):
                cases.append(case)

    # A harness that parses stdout (meson --print-errorlogs) shows only
    # stderr to people, so failures are repeated there.
    echo_failures = not sys.stdout.isatty()
    failed = 0
    print("1..%d" % len(cases), flush=True)
    with tempfile.TemporaryDirectory(prefix="matdiff-golden-") as wrapdir:
        env = make_env(matdiff, wrapdir)
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(check_case, c, env, timeout)
                       for c in cases]
            for n, (case, future) in enumerate(zip(cases, futures), 1):
                try:
                    notes = future.result()
                except Exception as e:  # a runner bug must not hide a case
                    notes = ["runner error: %s: %s"
                             % (type(e).__name__, show_text(str(e)))]
                desc = case.describe(shown_path(case.path))
                report = ["%s %d - %s" % ("not ok" if notes else "ok", n,
                                          desc)]
                report += ["#   " + note for note in notes]
                print("\n".join(report), flush=True)
                if notes and echo_failures:
                    print("\n".join(report), file=sys.stderr, flush=True)
                failed += bool(notes)
    if failed:
        print("# %d of %d failed" % (failed, len(cases)))
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # e.g. piped into head
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
