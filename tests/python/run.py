#!/usr/bin/env python3
"""Runs a Python test of the matdiff module, or skips it with the reason.

  run.py [--sanitize B_SANITIZE --cc CC] [--needs MODULE]... [--tap]
         -- COMMAND...

--sanitize: the build's b_sanitize.  An extension built with ASan loads
in an uninstrumented python only when the ASan runtime comes first, so
under sanitizers the runtimes (libasan.so, libubsan.so, found with
CC -print-file-name) are preloaded, and leak detection is turned off:
python's own memory, kept to its exit, would all be reported (the C API's
leaks are the test capi's).  Without the runtimes the test is skipped.
--needs: Python modules the test needs (pytest, nbconvert, ...), looked
up in the python of COMMAND[0]; without them the test is skipped.
A skip is exit status 77 with the reason on stdout, or, with --tap, the
TAP plan "1..0 # SKIP reason".
"""
import argparse
import os
import shlex
import subprocess
import sys

RUNTIMES = {"address": "libasan.so", "undefined": "libubsan.so"}


def skip(reason, tap):
    if tap:
        print("1..0 # SKIP " + reason)
        return 0
    print("SKIP: " + reason)
    return 77


def runtimes(sanitize, cc):
    """The sanitizer runtimes to preload, or a reason why not."""
    libs = []
    for s in sanitize.split(","):
        name = RUNTIMES.get(s)
        if not name:
            return None, "no runtime known for -fsanitize=" + s
        try:
            path = subprocess.run(shlex.split(cc) + ["-print-file-name=" + name],
                                  capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError) as e:
            return None, "%s -print-file-name=%s failed: %s" % (cc, name, e)
        if not os.path.isabs(path) or not os.path.exists(path):
            return None, ("the extension is built with -fsanitize=%s and %s "
                          "finds no %s to preload into python"
                          % (sanitize, cc, name))
        libs.append(os.path.realpath(path))
    return libs, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sanitize", default="none")
    ap.add_argument("--cc", default="cc")
    ap.add_argument("--needs", action="append", default=[])
    ap.add_argument("--tap", action="store_true")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    for m in a.needs:
        r = subprocess.run([cmd[0], "-c", "import " + m],
                           capture_output=True)
        if r.returncode != 0:
            return skip("%s has no module %s (Debian: python3-%s)"
                        % (cmd[0], m, m), a.tap)
    env = dict(os.environ)
    if a.sanitize not in ("", "none"):
        libs, why = runtimes(a.sanitize, a.cc)
        if why:
            return skip(why, a.tap)
        env["LD_PRELOAD"] = ":".join(
            libs + ([env["LD_PRELOAD"]] if env.get("LD_PRELOAD") else []))
        env["ASAN_OPTIONS"] = ":".join(
            o for o in (env.get("ASAN_OPTIONS"), "detect_leaks=0") if o)
        print("# -fsanitize=%s: LD_PRELOAD=%s ASAN_OPTIONS=%s"
              % (a.sanitize, env["LD_PRELOAD"], env["ASAN_OPTIONS"]),
              file=sys.stderr)
    sys.stdout.flush()
    os.execve(cmd[0], cmd, env)


if __name__ == "__main__":
    sys.exit(main())
