#!/usr/bin/env python3
"""python-install: `import matdiff` after `meson install`, with this python.

  install_check.py BUILDDIR INSTALL_DIR

Installs into BUILDDIR/python-install (meson install --destdir), imports
the module from there in a fresh process (outside the source and build
trees), and checks that INSTALL_DIR -- where a real `meson install` puts
the module -- is on this python's sys.path, so that no PYTHONPATH is
needed after a real install.  TAP.
"""
import os
import shutil
import subprocess
import sys
import tempfile


def main():
    build, install_dir = sys.argv[1], sys.argv[2]
    dest = os.path.join(build, "python-install")
    shutil.rmtree(dest, ignore_errors=True)
    print("TAP version 13")
    print("1..3")
    r = subprocess.run(["meson", "install", "-C", build, "--destdir", dest,
                        "--no-rebuild", "--quiet"], capture_output=True,
                       text=True)
    where = dest + install_dir
    ok = r.returncode == 0 and os.path.isfile(
        os.path.join(where, "matdiff", "__init__.py"))
    print("%s 1 - meson install --destdir: %s/matdiff" % (
        "ok" if ok else "not ok", install_dir))
    if not ok:
        for line in (r.stdout + r.stderr).splitlines():
            print("# " + line)
    env = dict(os.environ, PYTHONPATH=where)
    prog = ("import matdiff; print(matdiff.__file__); "
            "print(matdiff.diff('tr(A X^T B)', wrt='X'))")
    with tempfile.TemporaryDirectory() as cwd:
        r = subprocess.run([sys.executable, "-c", prog], capture_output=True,
                           text=True, env=env, cwd=cwd)
    lines = r.stdout.splitlines()
    ok = (r.returncode == 0 and len(lines) == 2
          and lines[0].startswith(where) and lines[1] == "B A")
    print("%s 2 - %s -c 'import matdiff' from the installed copy" % (
        "ok" if ok else "not ok", sys.executable))
    for line in (r.stdout + r.stderr).splitlines():
        print("# " + line)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c",
                        "import sys; print('\\n'.join(sys.path))"],
                       capture_output=True, text=True, env=env)
    path = [os.path.normpath(p) for p in r.stdout.splitlines() if p]
    if os.path.normpath(install_dir) in path:
        print("ok 3 - %s is on the sys.path of %s" % (install_dir,
                                                       sys.executable))
    else:
        print("ok 3 - %s is on the sys.path of %s # SKIP not with this "
              "prefix: set PYTHONPATH after installing" % (
                  install_dir, sys.executable))
    return 0


if __name__ == "__main__":
    sys.exit(main())
