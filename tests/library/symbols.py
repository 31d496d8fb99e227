#!/usr/bin/env python3
"""capi-symbols: libmatdiff.so exports the public API and nothing else.

  symbols.py --lib build/libmatdiff.so.0.1.0 --header include/matdiff/matdiff.h

TAP: every defined dynamic symbol (nm -D --defined-only) starts with
matdiff_; they are exactly the functions the header declares MATDIFF_API;
the soname is libmatdiff.so.0.
"""
import argparse
import re
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--header", required=True)
    ap.add_argument("--soname", default="libmatdiff.so.0")
    a = ap.parse_args()
    nm = subprocess.run(["nm", "-D", "--defined-only", a.lib],
                        capture_output=True, text=True, check=True).stdout
    exported = sorted(line.split()[-1] for line in nm.splitlines()
                      if line.strip())
    header = open(a.header, encoding="utf-8").read()
    # "MATDIFF_API type *\nname(" : the name before the first '('
    declared = sorted(re.findall(r"MATDIFF_API[^;(]*?\b(matdiff_\w+)\s*\(",
                                 header))
    dyn = subprocess.run(["readelf", "-d", a.lib], capture_output=True,
                         text=True, check=True).stdout
    soname = re.search(r"\(SONAME\).*\[(.*)\]", dyn)

    print("TAP version 13")
    print("1..4")
    stray = [s for s in exported if not s.startswith("matdiff_")]
    print("%s 1 - %d symbols exported, all with the prefix matdiff_"
          % ("not ok" if stray or not exported else "ok", len(exported)))
    for s in stray:
        print("# without the prefix: %s" % s)
    missing = sorted(set(declared) - set(exported))
    print("%s 2 - every function of matdiff.h is exported (%d declared)"
          % ("not ok" if missing or not declared else "ok", len(declared)))
    for s in missing:
        print("# declared, not exported: %s" % s)
    extra = sorted(set(exported) - set(declared))
    print("%s 3 - nothing exported that matdiff.h does not declare"
          % ("not ok" if extra else "ok"))
    for s in extra:
        print("# exported, not declared: %s" % s)
    got = soname.group(1) if soname else None
    print("%s 4 - soname %s" % ("ok" if got == a.soname else "not ok", got))
    return 0


if __name__ == "__main__":
    sys.exit(main())
