#!/usr/bin/env python3
"""matdiff's interactive prompt, under a pseudo-terminal; TAP.

Usage: prompt.py --matdiff PATH/TO/matdiff [--editing yes|no]

With no EXPR and a terminal on stdin, matdiff shows a prompt on stderr and
answers each line typed; ^D ends it with status 0.  Each case starts
matdiff on a new pseudo-terminal (Python's pty module), types lines,
reads the answers and ends with ^D.  --editing yes (matdiff was built
with libedit) also tests the history: the up arrow brings back a line.
Standard library only; MATDIFF_WRAPPER (e.g. valgrind) is honoured as
golden.py does.
"""

import argparse
import os
import pty
import select
import shlex
import sys
import time

TIMEOUT = float(os.environ.get("MATDIFF_TIMEOUT", "20"))
EOT = b"\x04"  # ^D
UP = b"\x1b[A"  # the up arrow


class Session:
    """matdiff ARGS on a new pseudo-terminal (stdout to OUT_FD if given)."""

    def __init__(self, matdiff, args, out_fd=None):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: stdin, stdout, stderr the terminal
            try:
                if out_fd is not None:
                    os.dup2(out_fd, 1)
                env = dict(os.environ, TERM="dumb", LC_ALL="C.UTF-8")
                argv = [matdiff] + args
                wrapper = os.environ.get("MATDIFF_WRAPPER")
                if wrapper:
                    argv = shlex.split(wrapper) + argv
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.seen = b""

    def expect(self, text):
        """Reads until TEXT has appeared since the last expect; the bytes
        read up to it, or raises AssertionError after the timeout."""
        want = text.encode()
        end = time.monotonic() + TIMEOUT
        while want not in self.seen:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("no %r in %r" % (text, self.seen))
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # EIO: the child is gone
                    chunk = b""
                if not chunk:
                    raise AssertionError(
                        "matdiff ended before %r; it wrote %r"
                        % (text, self.seen))
                self.seen += chunk
        i = self.seen.index(want) + len(want)
        got, self.seen = self.seen[:i], self.seen[i:]
        return got

    def send(self, data):
        os.write(self.fd, data)

    def end(self):
        """Types ^D; the exit status.  A ^D typed ahead, before libedit
        has put the terminal in raw mode, is the line discipline's EOF,
        which the switch of modes drops (a person would press it again):
        so it waits a moment first, and types it again if need be."""
        time.sleep(0.1)
        for _ in range(5):
            self.send(EOT)
            st = self.status(min(2.0, TIMEOUT))
            if st is not None:
                return st
        st = self.status(TIMEOUT)
        if st is None:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
            raise AssertionError("matdiff did not end after ^D")
        return st

    def status(self, timeout):
        """The exit status, after the terminal's last output; None if
        matdiff is still running after TIMEOUT seconds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(st)
            try:
                if select.select([self.fd], [], [], 0.05)[0]:
                    self.seen += os.read(self.fd, 4096)
            except OSError:
                pass
        return None


def answers_a_line(md, editing):
    s = Session(md, ["--wrt", "x"])
    s.expect("Ctrl-D ends.")
    s.expect("matdiff> ")
    s.send(b"x^T A x\n")
    s.expect("(A + A^T) x")
    s.expect("matdiff> ")
    assert s.end() == 0


def shows_errors_and_goes_on(md, editing):
    s = Session(md, ["simplify"])
    s.expect("simplify> ")
    s.send(b"A +\n")
    s.expect("<stdin>:1:4: error: syntax error, unexpected end of input")
    s.expect("simplify> ")
    s.send(b"let s : scalar\n")
    s.expect("simplify> ")
    s.send(b"s A + s A\n")
    s.expect("2 s A")
    s.expect("simplify> ")
    assert s.end() == 0  # the errors were shown as they came


def prompt_on_stderr(md, editing):
    # stdout to a pipe: the answers only, without the prompt
    r, w = os.pipe()
    s = Session(md, ["--wrt", "x"], out_fd=w)
    os.close(w)
    s.expect("matdiff> ")
    s.send(b"a^T x\n")
    s.expect("matdiff> ")
    assert s.end() == 0
    with os.fdopen(r, "rb") as f:
        out = f.read()
    assert out == b"a\n", out


def history(md, editing):
    s = Session(md, ["simplify"])
    s.expect("simplify> ")
    s.send(b"x + x\n")
    s.expect("2 x")
    s.expect("simplify> ")
    s.send(b"A A\n")
    s.expect("A^2")
    s.expect("simplify> ")
    s.send(UP + UP + b"\n")  # x + x again
    s.expect("2 x")
    s.expect("simplify> ")
    assert s.end() == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matdiff", required=True)
    ap.add_argument("--editing", choices=["yes", "no"], default="no")
    a = ap.parse_args()
    md = os.path.abspath(a.matdiff)
    editing = a.editing == "yes"
    cases = [answers_a_line, shows_errors_and_goes_on, prompt_on_stderr,
             history]
    failed = 0
    for n, case in enumerate(cases, 1):
        name = case.__name__.replace("_", " ")
        if case is history and not editing:
            print("ok %d - %s # SKIP matdiff is built without libedit"
                  % (n, name))
            continue
        try:
            case(md, editing)
            print("ok %d - %s" % (n, name))
        except AssertionError as e:
            failed += 1
            print("not ok %d - %s" % (n, name))
            for line in str(e).splitlines():
                print("# " + line)
            if not sys.stdout.isatty():
                print("%s: %s" % (name, e), file=sys.stderr)
    print("1..%d" % len(cases))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
