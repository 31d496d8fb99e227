#!/usr/bin/env python3
"""notebook: tests/python/matdiff.ipynb executed headless (nbconvert's
ExecutePreprocessor, an ipykernel of this python), and its outputs
checked: every displayed Result carries text/latex.

  run_notebook.py NOTEBOOK OUTPUT.ipynb

The kernel is this python (a kernelspec made in a temporary
JUPYTER_PATH), with this environment: PYTHONPATH reaches the module.
TAP on stdout; the executed notebook is written to OUTPUT.
"""
import json
import os
import sys
import tempfile

import nbformat
from nbconvert.preprocessors import ExecutePreprocessor


def main():
    src, dst = sys.argv[1], sys.argv[2]
    nb = nbformat.read(src, as_version=4)
    with tempfile.TemporaryDirectory() as jp:
        spec = os.path.join(jp, "kernels", "matdiff-test")
        os.makedirs(spec)
        with open(os.path.join(spec, "kernel.json"), "w") as f:
            json.dump({"argv": [sys.executable, "-m", "ipykernel_launcher",
                                "-f", "{connection_file}"],
                       "display_name": "matdiff test", "language": "python"},
                      f)
        os.environ["JUPYTER_PATH"] = jp
        ep = ExecutePreprocessor(timeout=120, kernel_name="matdiff-test")
        ep.preprocess(nb, {"metadata": {"path": os.path.dirname(dst) or "."}})
    nbformat.write(nb, dst)

    print("TAP version 13")
    code = [c for c in nb.cells if c.cell_type == "code"]
    print("1..%d" % (len(code) + 1))
    n = 0
    latex = 0
    for c in code:
        n += 1
        errors = [o for o in c.outputs if o.output_type == "error"]
        results = [o for o in c.outputs if o.output_type == "execute_result"]
        shown = [o.data for o in results if "text/latex" in o.data]
        latex += len(shown)
        first = c.source.splitlines()[-1]
        if errors:
            print("not ok %d - %s" % (n, first))
            for e in errors:
                print("# %s: %s" % (e.ename, e.evalue))
        elif "matdiff.diff(" in first and not first.startswith("print"):
            ok = bool(shown) and all(d["text/latex"].startswith("$$")
                                     and "\\mathbf" in d["text/latex"]
                                     for d in shown)
            print("%s %d - %s: text/latex %s" % (
                "ok" if ok else "not ok", n, first,
                shown[0]["text/latex"] if shown else "missing"))
        else:
            print("ok %d - %s" % (n, first))
    n += 1
    print("%s %d - %d outputs hold text/latex" % (
        "ok" if latex >= 3 else "not ok", n, latex))
    return 0


if __name__ == "__main__":
    sys.exit(main())
