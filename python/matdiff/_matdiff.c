/*
 * _matdiff.c - the C extension under the Python module matdiff: one call
 * over the public C API (matdiff.h), answering with plain Python values.
 * matdiff/__init__.py builds the module's interface on it.
 *
 *   call(kind, text, wrt, format, flags, layout, decls, rules, name)
 *     kind: "diff", "hessian", "simplify", "check" (TEXT is an identity
 *     file, NAME names it) or "check_file" (TEXT is a path)
 *   -> {"status": 0|1|2, "output": str, "warnings": str,
 *       "errors": [(message, source, line, column, text), ...],
 *       "verdicts": [(file, line, identity, holds, status, detail,
 *                     error or None), ...]}
 *
 * The GIL is released while the engine works: each call has a context of
 * its own (matdiff.h: one context per thread).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <matdiff/matdiff.h>

#include <stdbool.h>
#include <string.h>

/* SEQ (a sequence of str) added to CTX with ADD; false after an error. */
static int add_all(matdiff_ctx *ctx, PyObject *seq,
                   void (*add)(matdiff_ctx *, const char *), const char *what) {
  PyObject *fast = PySequence_Fast(seq, what);
  if (!fast)
    return 0;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
    Py_ssize_t len = 0;
    const char *s =
        PyUnicode_Check(item) ? PyUnicode_AsUTF8AndSize(item, &len) : NULL;
    if (!s) {
      if (!PyErr_Occurred())
        PyErr_Format(PyExc_TypeError, "%s: expected str, not %.80s", what,
                     Py_TYPE(item)->tp_name);
      Py_DECREF(fast);
      return 0;
    }
    if (strlen(s) != (size_t)len) {
      PyErr_Format(PyExc_ValueError, "%s: embedded null character", what);
      Py_DECREF(fast);
      return 0;
    }
    add(ctx, s);
  }
  Py_DECREF(fast);
  return 1;
}

static PyObject *error_tuple(const matdiff_error *e) {
  if (!e)
    Py_RETURN_NONE;
  return Py_BuildValue("(ssIIs)", matdiff_error_message(e),
                       matdiff_error_source(e), matdiff_error_line(e),
                       matdiff_error_column(e), matdiff_error_text(e));
}

static PyObject *result_dict(const matdiff_result *r) {
  PyObject *errors = PyList_New(0), *verdicts = PyList_New(0);
  PyObject *d = NULL;
  if (!errors || !verdicts)
    goto done;
  for (size_t i = 0; i < matdiff_result_nerrors(r); i++) {
    PyObject *t = error_tuple(matdiff_result_error(r, i));
    if (!t || PyList_Append(errors, t) < 0) {
      Py_XDECREF(t);
      goto done;
    }
    Py_DECREF(t);
  }
  for (size_t i = 0; i < matdiff_result_nverdicts(r); i++) {
    const matdiff_verdict *v = matdiff_result_verdict(r, i);
    PyObject *e = error_tuple(matdiff_verdict_error(v));
    PyObject *t =
        e ? Py_BuildValue("(sIsOssN)", matdiff_verdict_file(v),
                          matdiff_verdict_line(v), matdiff_verdict_identity(v),
                          matdiff_verdict_holds(v) ? Py_True : Py_False,
                          matdiff_verdict_status(v), matdiff_verdict_detail(v),
                          e)
          : NULL;
    if (!t || PyList_Append(verdicts, t) < 0) {
      Py_XDECREF(t);
      goto done;
    }
    Py_DECREF(t);
  }
  d = Py_BuildValue(
      "{s:i,s:s,s:s,s:O,s:O}", "status", (int)matdiff_result_status(r),
      "output", matdiff_result_output(r), "warnings",
      matdiff_result_warnings(r), "errors", errors, "verdicts", verdicts);
done:
  Py_XDECREF(errors);
  Py_XDECREF(verdicts);
  return d;
}

typedef enum { DIFF, HESSIAN, SIMPLIFY, CHECK, CHECK_FILE } call_kind;

/* The C API's call for K; run without the GIL. */
/* WRT: NWRT variables (several for a joint derivative), or one or none. */
static matdiff_result *run(call_kind k, matdiff_ctx *ctx, const char *text,
                           const char *const *wrt, size_t nwrt, bool joint,
                           matdiff_format f, const char *name) {
  const char *one = nwrt ? wrt[0] : NULL;
  switch (k) {
  case DIFF:
    return joint ? matdiff_diff_n(ctx, text, wrt, nwrt, f)
                 : matdiff_diff(ctx, text, one, f);
  case HESSIAN:
    return matdiff_hessian(ctx, text, one, f);
  case SIMPLIFY:
    return matdiff_simplify(ctx, text, f);
  case CHECK:
    return matdiff_check(ctx, text, name);
  case CHECK_FILE:
    break;
  }
  return matdiff_check_file(ctx, text);
}

static PyObject *call(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"kind",   "text",  "wrt",   "format", "flags",
                           "layout", "decls", "rules", "name",   NULL};
  const char *kind, *text, *name = NULL;
  int format = 0, layout = 0;
  unsigned flags = 0;
  PyObject *wrto = Py_None, *decls = NULL, *rules = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "ss|OiIiOOz", kwlist, &kind,
                                   &text, &wrto, &format, &flags, &layout,
                                   &decls, &rules, &name))
    return NULL;
  /* wrt: None, a str, or a list or tuple of str (a joint derivative) */
  const char *wrt[64];
  size_t nwrt = 0;
  bool joint = false;
  if (PyUnicode_Check(wrto)) {
    if (!(wrt[nwrt++] = PyUnicode_AsUTF8(wrto)))
      return NULL;
  } else if (PyList_Check(wrto) || PyTuple_Check(wrto)) {
    joint = true;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(wrto);
    if (n > 64)
      return PyErr_Format(PyExc_ValueError, "at most 64 variables at once");
    for (Py_ssize_t i = 0; i < n; i++) {
      PyObject *v = PySequence_Fast_GET_ITEM(wrto, i);
      if (!PyUnicode_Check(v))
        return PyErr_Format(PyExc_TypeError, "expected wrt as str");
      if (!(wrt[nwrt++] = PyUnicode_AsUTF8(v)))
        return NULL;
    }
  } else if (wrto != Py_None) {
    return PyErr_Format(PyExc_TypeError,
                        "expected wrt as str or a list of str");
  }
  call_kind k;
  if (strcmp(kind, "diff") == 0)
    k = DIFF;
  else if (strcmp(kind, "hessian") == 0)
    k = HESSIAN;
  else if (strcmp(kind, "simplify") == 0)
    k = SIMPLIFY;
  else if (strcmp(kind, "check") == 0)
    k = CHECK;
  else if (strcmp(kind, "check_file") == 0)
    k = CHECK_FILE;
  else
    return PyErr_Format(PyExc_ValueError, "unknown kind '%s'", kind);
  matdiff_ctx *ctx = matdiff_ctx_new();
  if ((decls && !add_all(ctx, decls, matdiff_ctx_let, "let")) ||
      (rules && !add_all(ctx, rules, matdiff_ctx_add_rules, "rules"))) {
    matdiff_ctx_free(ctx);
    return NULL;
  }
  matdiff_ctx_set_flags(ctx, flags);
  matdiff_ctx_set_layout(ctx, (matdiff_layout)layout);
  matdiff_result *r;
  PyThreadState *save = PyEval_SaveThread(); /* Py_BEGIN_ALLOW_THREADS */
  r = run(k, ctx, text, wrt, nwrt, joint, (matdiff_format)format, name);
  PyEval_RestoreThread(save);
  PyObject *d = result_dict(r);
  matdiff_result_free(r);
  matdiff_ctx_free(ctx);
  return d;
}

static PyObject *version(PyObject *self, PyObject *unused) {
  return PyUnicode_FromString(matdiff_version());
}

static PyMethodDef methods[] = {
    {"call", (PyCFunction)(void (*)(void))call, METH_VARARGS | METH_KEYWORDS,
     "call(kind, text, wrt=None, format=0, flags=0, layout=0, decls=(), "
     "rules=(), name=None) -> dict: one call of the C API"},
    {"version", version, METH_NOARGS, "the library's version"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_matdiff",
    "The C API of matdiff, for the matdiff package.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__matdiff(void); /* the only export */

PyMODINIT_FUNC PyInit__matdiff(void) {
  PyObject *m = PyModule_Create(&module);
  if (!m)
    return NULL;
  struct {
    const char *name;
    long value;
  } consts[] = {
      {"FORMAT_TEXT", MATDIFF_FORMAT_TEXT},
      {"FORMAT_LATEX", MATDIFF_FORMAT_LATEX},
      {"FORMAT_NUMPY", MATDIFF_FORMAT_NUMPY},
      {"FORMAT_TORCH", MATDIFF_FORMAT_TORCH},
      {"FORMAT_OCTAVE", MATDIFF_FORMAT_OCTAVE},
      {"LAYOUT_DENOMINATOR", MATDIFF_LAYOUT_DENOMINATOR},
      {"LAYOUT_NUMERATOR", MATDIFF_LAYOUT_NUMERATOR},
      {"LAYOUT_MIXED", MATDIFF_LAYOUT_MIXED},
      {"STEPS", MATDIFF_STEPS},
      {"EQUATION", MATDIFF_EQUATION},
      {"UNICODE", MATDIFF_UNICODE},
      {"VERIFY", MATDIFF_VERIFY},
      {"COOKBOOK", MATDIFF_COOKBOOK},
      {"VALUE", MATDIFF_VALUE},
  };
  for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++)
    if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0) {
      Py_DECREF(m);
      return NULL;
    }
  return m;
}
