#!/usr/bin/env python3
"""Rewrites the expected stdout of golden cases whose output changed.

Usage: regolden.py --matdiff PATH/TO/matdiff FILE...

A developer's tool, not a test: after a deliberate change of output, it
runs every case of the test files (golden.py's format) and, where stdout
differs while stderr and the exit status are as expected, writes the
actual stdout into the file in place.  Review the result with git diff.
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden  # noqa: E402


def encode_line(line):
    if line == "":
        return "|"
    if line[0] in "$!?<#|" or line.strip() == "":
        return "| " + line
    return line


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matdiff", required=True)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as wrapdir:
        env = golden.make_env(os.path.abspath(args.matdiff), wrapdir)
        for path in args.files:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                lines = f.read().split("\n")
            changed = 0
            # from the last case up, so that line numbers stay valid
            for case in reversed(golden.read_cases(path)):
                if case.error is not None or case.command is None:
                    continue
                stdin = None
                if case.stdin:
                    stdin = golden.encode("\n".join(case.stdin) + "\n")
                cwd = os.path.dirname(os.path.abspath(path))
                status, out, err, problem = golden.run_command(
                    case.command, stdin, cwd, env, golden.DEFAULT_TIMEOUT)
                want_err = golden.encode("".join(l + "\n" for l in case.stderr))
                want_status = case.status if case.status is not None else 0
                want_out = golden.encode("".join(l + "\n"
                                                 for l in case.stdout))
                if (problem or status != want_status or err != want_err
                        or out == want_out):
                    continue
                start = case.lineno - 1
                end = start + 1
                while end < len(lines) and lines[end] != "":
                    end += 1
                block = lines[start:end]
                keep = [l for l in block
                        if l[:1] in ("$", "<", "!", "?", "#")
                        and not (l.startswith("| "))]
                text = out.decode("utf-8", "surrogateescape")
                new_out = [encode_line(l) for l in text.split("\n")[:-1]]
                # stdout after the command and stdin lines, before the rest
                head = [l for l in keep if l[:1] in "$<"]
                tail = [l for l in keep if l[:1] not in "$<"]
                lines[start:end] = head + new_out + tail
                changed += 1
            if changed:
                with open(path, "w", encoding="utf-8",
                          errors="surrogateescape") as f:
                    f.write("\n".join(lines))
            print("%s: %d case(s) rewritten" % (path, changed))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
