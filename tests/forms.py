#!/usr/bin/env python3
"""The textbook forms of ../shared/targets/ (issue 16), as TAP.

Usage: forms.py --matdiff PATH --forms TOOL [--at-least N] FILE...

For each FILE: `matdiff check FILE` must pass (one test), and each
derivative must print in the form the file gives (shared/tools/forms -v).
A form not yet reached is reported as `not ok ... # TODO`, which does not
fail the run: the targets are goals, not gates, until all of them print
exactly.  What gates is the ratchet: at least N of them must be exact
(--at-least, raised as the simplifier reaches more), so that no change
loses a form already reached.
"""
import argparse
import re
import subprocess
import sys

ROW = re.compile(r"^(.*?:\d+): (exact|form)\s+(.*)$")


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--matdiff", required=True)
    ap.add_argument("--forms", required=True)
    ap.add_argument("--at-least", type=int, default=0)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args(argv[1:])
    tests = []  # (ok, todo, description, diagnostics)
    exact = 0
    for path in a.files:
        p = subprocess.run([a.matdiff, "check", path], capture_output=True,
                           text=True, timeout=300)
        tests.append((p.returncode == 0, False, "matdiff check %s" % path,
                      (p.stdout + p.stderr).strip().splitlines()[-5:]))
        p = subprocess.run([sys.executable, a.forms, "-v", "--bin", a.matdiff,
                            path], capture_output=True, text=True, timeout=300)
        lines = p.stdout.splitlines()
        for i, line in enumerate(lines):
            m = ROW.match(line)
            if not m:
                continue
            where, verdict, text = m.groups()
            got = []
            if verdict == "form" and i + 1 < len(lines):
                got = [lines[i + 1].strip()]
            exact += verdict == "exact"
            tests.append((verdict == "exact", verdict != "exact",
                          "%s: %s" % (where, text), got))
    tests.append((exact >= a.at_least, False,
                  "at least %d forms exact (%d are)" % (a.at_least, exact), []))
    print("1..%d" % len(tests))
    for n, (ok, todo, desc, diag) in enumerate(tests, 1):
        print("%s %d - %s%s" % ("ok" if ok else "not ok", n, desc,
                                " # TODO not yet in textbook form" if todo else ""))
        if not ok:
            for d in diag:
                print("#   " + d)
    return 0 if all(ok or todo for ok, todo, _, _ in tests) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
