#!/usr/bin/env python3
"""Runs a Python test of the matdiff module, or skips it (exit 77) with
the reason on stdout.

  run.py [--sanitize B_SANITIZE] [--needs MODULE]... -- COMMAND...

--sanitize: the build's b_sanitize.  An extension built with ASan cannot
be loaded by a python that is not (the ASan runtime must come first), so
under sanitizers the Python tests are skipped; the C API's tests run
there instead.  --needs: Python modules the test needs (pytest,
nbconvert, ...), looked up in the python of COMMAND[0].
"""
import argparse
import os
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sanitize", default="none")
    ap.add_argument("--needs", action="append", default=[])
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if a.sanitize not in ("", "none"):
        print("SKIP: the build uses -Db_sanitize=%s: the extension cannot "
              "be loaded by an uninstrumented python (the C API runs under "
              "the sanitizers in the test capi)" % a.sanitize)
        return 77
    for m in a.needs:
        r = subprocess.run([cmd[0], "-c", "import " + m],
                           capture_output=True)
        if r.returncode != 0:
            print("SKIP: %s has no module %s (Debian: python3-%s)"
                  % (cmd[0], m, m))
            return 77
    sys.stdout.flush()
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main())
