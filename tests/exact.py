#!/usr/bin/env python3
"""`matdiff --wrt V F` must print exactly the right-hand side of every
`d/dV F = RHS` line of an identity file (SPEC 3: the seed table).

Usage: exact.py --matdiff PATH FILE...    (TAP on stdout)
`let` lines become -D declarations for the lines after them.
"""
import argparse
import re
import subprocess
import sys

LINE = re.compile(r"^d/d(vec\([A-Za-z]\w*\)|[A-Za-z]\w*)\s*(.*?)\s=\s(.*)$")


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--matdiff", required=True)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args(argv[1:])
    results = []
    for path in a.files:
        decls = []
        with open(path, encoding="utf-8") as f:
            for no, raw in enumerate(f, 1):
                line = raw.split("#", 1)[0].strip()
                if line.startswith("let "):
                    decls += ["-D", line[4:]]
                    continue
                m = LINE.match(line)
                if not m or "!=" in line:
                    continue
                var, f_, rhs = m.groups()
                cmd = [a.matdiff] + decls + ["--wrt", var, f_]
                p = subprocess.run(cmd, capture_output=True, text=True,
                                   timeout=60)
                got = p.stdout.strip()
                ok = p.returncode == 0 and got == rhs
                results.append((ok, "%s:%d: d/d%s %s = %s" %
                                (path, no, var, f_, rhs), got, p.stderr))
    print("1..%d" % len(results))
    for i, (ok, desc, got, err) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, desc))
        if not ok:
            print("#   got: %s" % got)
            for l in err.strip().splitlines():
                print("#   " + l)
    return 0 if all(r[0] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
