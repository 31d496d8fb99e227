/* main.c - the matdiff command line: options only (SPEC 4). */
#include "checker.h"
#include "driver.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef MATDIFF_VERSION
#define MATDIFF_VERSION "0.1.0"
#endif

static const char usage[] =
    "usage: matdiff [OPTIONS] EXPR            derivative of EXPR\n"
    "       matdiff simplify [OPTIONS] [EXPR] simplified EXPR (stdin: one "
    "per line)\n"
    "       matdiff check [OPTIONS] FILE...   check identity files\n"
    "       matdiff --help | --version\n"
    "\n"
    "options:\n"
    "  -x, --wrt VAR        differentiate with respect to VAR (repeatable)\n"
    "  -D, --let DECL       declare a symbol, e.g. -D 'A : symmetric(n)'\n"
    "      --hessian        the Hessian instead of the gradient\n"
    "      --layout L       denominator (default), numerator or mixed\n"
    "  -f, --format F       text (default), latex, numpy, torch or octave\n"
    "      --steps          show the derivation step by step\n"
    "      --equation       print d/dX f = result\n"
    "      --unicode        print with Unicode symbols\n"
    "      --verify         check the result numerically first\n"
    "      --value          the value of EXPR too (code: f and gradients)\n"
    "      --rules FILE     add rules and functions from FILE\n"
    "  -h, --help           this help\n"
    "  -V, --version        the version\n"
    "\n"
    "An EXPR may start with '-' ('-y^T log(p)'); an argument that reads as\n"
    "options is options: write '-x' as matdiff simplify -- '-x'.\n"
    "See matdiff(1) for the language.\n";

enum {
  OPT_HESSIAN = 256,
  OPT_LAYOUT,
  OPT_STEPS,
  OPT_EQUATION,
  OPT_UNICODE,
  OPT_VERIFY,
  OPT_RULES,
  OPT_SYMMETRIC,
  OPT_TAP,
  OPT_VALUE, /* issue 19 */
};

static int usage_error(const char *fmt, const char *arg) {
  fputs("matdiff: error: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs("\nTry 'matdiff --help'.\n", stderr);
  return 2;
}

/* Why getopt_long refused ARG, "--NAME" or "--NAME=VALUE": NAME is no
 * option's name or the start of one, starts the names of several, or
 * names an option that takes no value. */
static int long_option_error(const struct option *opts, const char *arg) {
  const char *name = arg + 2;
  size_t len = strcspn(name, "=");
  const struct option *exact = NULL, *match[8];
  size_t n = 0;
  for (const struct option *o = opts; o->name; o++) {
    if (strncmp(o->name, name, len) != 0)
      continue;
    if (strlen(o->name) == len)
      exact = o;
    if (n < sizeof match / sizeof match[0])
      match[n++] = o;
  }
  if (exact || n == 1) {
    const struct option *o = exact ? exact : match[0];
    if (name[len] == '=' && o->has_arg == no_argument)
      return usage_error("option '--%s' takes no value", o->name);
  }
  if (exact || n < 2)
    return usage_error("unknown option '%s'", arg);
  fprintf(stderr,
          "matdiff: error: option '--%.*s' is ambiguous; did you "
          "mean ",
          (int)len, name);
  for (size_t i = 0; i < n; i++)
    fprintf(stderr, "%s--%s",
            i == 0      ? ""
            : i + 1 < n ? ", "
                        : " or ",
            match[i]->name);
  fputs("?\nTry 'matdiff --help'.\n", stderr);
  return 2;
}

static bool all_letters(const char *s) {
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
      return false;
  return true;
}

/* SPEC 4: an argument that begins with '-' is an option only when it
 * reads as options; otherwise it is the expression ('-y^T log(p)').
 * ARG reads as options when it is
 *  - "--NAME" or "--NAME=VALUE", NAME made of letters and '-';
 *  - a cluster of flags (-h, -V) ending with at most one option that
 *    takes a value (-x, -D, -f), whose value is the next argument or is
 *    attached and reads as one: a variable for -x (-xw, -xvec(X)),
 *    letters for -f (-flatex), a declaration, with its ':', for -D;
 *  - only letters (-q, -yz): an unknown option, an error, since a
 *    mistyped option is likelier than the negation of a lone symbol.
 * Anything else (a space, a digit, ^ ( * ' ...) makes it an expression.
 * *TAKES_NEXT: the next argument is the option's value. */
static bool reads_as_options(const char *arg, const struct option *longopts,
                             bool *takes_next) {
  *takes_next = false;
  if (arg[0] != '-' || arg[1] == '\0')
    return false;
  if (arg[1] == '-') {
    const char *name = arg + 2;
    size_t len = strcspn(name, "=");
    if (len == 0 && name[0] != '\0')
      return false; /* "--=..." */
    for (size_t i = 0; i < len; i++)
      if (!((name[i] >= 'a' && name[i] <= 'z') || name[i] == '-'))
        return false;
    const struct option *match = NULL;
    size_t n = 0;
    for (const struct option *o = longopts; o->name; o++) {
      if (strncmp(o->name, name, len) != 0)
        continue;
      if (strlen(o->name) == len) {
        match = o;
        n = 1;
        break;
      }
      match = o;
      n++;
    }
    *takes_next =
        n == 1 && name[len] != '=' && match->has_arg == required_argument;
    return true;
  }
  for (const char *p = arg + 1; *p; p++) {
    if (*p == 'h' || *p == 'V')
      continue;
    if (*p == 'x' || *p == 'D' || *p == 'f') {
      const char *v = p + 1;
      if (*v == '\0') {
        *takes_next = true;
        return true;
      }
      return *p == 'x'   ? md_valid_var(v)
             : *p == 'f' ? all_letters(v)
                         : strchr(v, ':') != NULL;
    }
    return all_letters(p);
  }
  return true;
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"wrt", required_argument, NULL, 'x'},
      {"let", required_argument, NULL, 'D'},
      {"format", required_argument, NULL, 'f'},
      {"hessian", no_argument, NULL, OPT_HESSIAN},
      {"layout", required_argument, NULL, OPT_LAYOUT},
      {"steps", no_argument, NULL, OPT_STEPS},
      {"equation", no_argument, NULL, OPT_EQUATION},
      {"unicode", no_argument, NULL, OPT_UNICODE},
      {"verify", no_argument, NULL, OPT_VERIFY},
      {"rules", required_argument, NULL, OPT_RULES},
      {"symmetric", required_argument, NULL, OPT_SYMMETRIC},
      {"tap", no_argument, NULL, OPT_TAP},
      {"value", no_argument, NULL, OPT_VALUE},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0},
  };
  /* getopt sees the arguments that read as options, then "--", then the
   * rest: the command word, the expression or check's files.  'check'
   * takes files, not an expression: its arguments go as they came. */
  static char dashdash[] = "--";
  char **args = calloc((size_t)argc + 2, sizeof *args);
  char **rest = calloc((size_t)argc + 1, sizeof *rest);
  int nargs = 0, nrest = 0;
  bool dangling = false; /* the last option lacks its value */
  args[nargs++] = argv[0];
  for (int i = 1; i < argc; i++) {
    bool takes_next;
    if (strcmp(argv[i], "--") == 0) {
      while (++i < argc)
        rest[nrest++] = argv[i];
    } else if (reads_as_options(argv[i], longopts, &takes_next)) {
      args[nargs++] = argv[i];
      if (takes_next && i + 1 < argc)
        args[nargs++] = argv[++i];
      else if (takes_next)
        dangling = true;
    } else {
      rest[nrest++] = argv[i];
    }
  }
  bool is_check = nrest > 0 && strcmp(rest[0], "check") == 0;
  bool has_cmd = is_check || (nrest > 0 && strcmp(rest[0], "simplify") == 0);
  /* no EXPR: a '-x' that is taken as an option may have been meant as one */
  bool no_expr = !is_check && nrest == has_cmd;
  if (!is_check) {
    /* getopt would take "--" for the missing value */
    if (!dangling) {
      args[nargs++] = dashdash;
      memcpy(args + nargs, rest, (size_t)nrest * sizeof *rest);
      nargs += nrest;
    }
    argv = args;
    argc = nargs;
  }
  free(rest);
  md_options o = {0};
  o.decls = calloc((size_t)argc + 1, sizeof *o.decls);
  o.wrt = calloc((size_t)argc + 1, sizeof *o.wrt);
  o.rules = calloc((size_t)argc + 1, sizeof *o.rules);
  bool tap = false;
  int c, rc;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":x:D:f:hV", longopts, NULL)) != -1) {
    switch (c) {
    case 'x':
      /* "-x^T A x" is an expression, not -x with the value "^T A x" */
      if (!md_valid_var(optarg)) {
        rc = usage_error("'%s' is not a variable to differentiate by", optarg);
        goto done;
      }
      o.wrt[o.nwrt++] = optarg;
      break;
    case 'D':
      o.decls[o.ndecls++] = optarg;
      break;
    case 'f':
      if (strcmp(optarg, "text") == 0) {
        o.format = MD_FORMAT_TEXT;
      } else if (strcmp(optarg, "latex") == 0) {
        o.format = MD_FORMAT_LATEX;
      } else if (strcmp(optarg, "numpy") == 0) {
        o.format = MD_FORMAT_NUMPY;
      } else if (strcmp(optarg, "torch") == 0) {
        o.format = MD_FORMAT_TORCH;
      } else if (strcmp(optarg, "octave") == 0) {
        o.format = MD_FORMAT_OCTAVE;
      } else {
        rc = usage_error("unknown format '%s'; use text, latex, numpy, "
                         "torch or octave",
                         optarg);
        goto done;
      }
      break;
    case OPT_LAYOUT:
      if (strcmp(optarg, "denominator") == 0)
        break;
      if (strcmp(optarg, "numerator") != 0 && strcmp(optarg, "mixed") != 0) {
        rc = usage_error("unknown layout '%s'; use denominator, numerator "
                         "or mixed",
                         optarg);
        goto done;
      }
      o.layout = strcmp(optarg, "numerator") == 0 ? MD_LAYOUT_NUMERATOR
                                                  : MD_LAYOUT_MIXED;
      break;
    case OPT_SYMMETRIC:
      if (strcmp(optarg, "cookbook") != 0) {
        rc = usage_error("unknown value '%s' for --symmetric; use cookbook",
                         optarg);
        goto done;
      }
      o.cookbook = true;
      break;
    case OPT_HESSIAN:
      o.hessian = true;
      break;
    case OPT_STEPS:
      o.steps = true;
      break;
    case OPT_EQUATION:
      o.equation = true;
      break;
    case OPT_UNICODE:
      o.unicode = true;
      break;
    case OPT_VERIFY:
      o.verify = true;
      break;
    case OPT_RULES:
      o.rules[o.nrules++] = optarg;
      break;
    case OPT_VALUE:
      o.value = true;
      break;
    case OPT_TAP:
      tap = true;
      break;
    case 'h':
      fputs(usage, stdout);
      rc = 0;
      goto done;
    case 'V':
      printf("matdiff %s\n", MATDIFF_VERSION);
      rc = 0;
      goto done;
    case ':':
      if (no_expr && argv[optind - 1][1] != '-')
        rc = usage_error("option '%s' needs a value; an expression that "
                         "reads as options goes after '--'",
                         argv[optind - 1]);
      else
        rc = usage_error("option '%s' needs a value", argv[optind - 1]);
      goto done;
    default: {
      const char *arg = argv[optind - 1];
      if (strncmp(arg, "--", 2) == 0 && arg[2]) {
        rc = long_option_error(longopts, arg);
        goto done;
      }
      /* "-y" alone reads as options (reads_as_options) */
      char opt[3] = {'-', (char)optopt, '\0'};
      if (no_expr)
        rc = usage_error("unknown option '%s'; an expression that reads as "
                         "options goes after '--'",
                         optopt ? opt : argv[optind - 1]);
      else
        rc =
            usage_error("unknown option '%s'", optopt ? opt : argv[optind - 1]);
      goto done;
    }
    }
  }
  const char *cmd = NULL;
  if (optind < argc && (strcmp(argv[optind], "simplify") == 0 ||
                        strcmp(argv[optind], "check") == 0))
    cmd = argv[optind++];
  if (cmd && strcmp(cmd, "check") == 0) {
    if (o.format != MD_FORMAT_TEXT || o.equation || o.unicode || o.steps) {
      rc = usage_error("%s--format, --equation, --unicode and --steps are "
                       "for derivatives and simplify, not 'matdiff check'",
                       "");
      goto done;
    }
    rc = md_cmd_check(&o, (const char *const *)argv + optind,
                      (size_t)(argc - optind), tap, stdout, stderr);
    goto done;
  }
  if (tap) {
    rc = usage_error("%s--tap applies to 'matdiff check' only", "");
    goto done;
  }
  if (o.unicode && o.format != MD_FORMAT_TEXT) {
    rc = usage_error("%s--unicode is for text output; leave out --format "
                     "or use --format text",
                     "");
    goto done;
  }
  if (o.format == MD_FORMAT_NUMPY && (o.equation || o.steps)) {
    rc = usage_error("%s--format numpy writes a Python function: "
                     "--equation and --steps are for text and latex",
                     "");
    goto done;
  }
  /* issue 19: --format torch|octave, --value */
  if ((o.format == MD_FORMAT_TORCH || o.format == MD_FORMAT_OCTAVE) &&
      (o.equation || o.steps)) {
    rc = usage_error("--format %s writes a function: --equation and --steps "
                     "are for text and latex",
                     o.format == MD_FORMAT_TORCH ? "torch" : "octave");
    goto done;
  }
  if (o.value && (cmd || o.steps)) {
    rc = usage_error("--value is for derivatives with their value: leave "
                     "out %s",
                     cmd ? "'simplify'" : "--steps");
    goto done;
  }
  if (optind + 1 < argc) {
    rc = usage_error("one expression at a time: '%s' is one too many "
                     "(quote the expression)",
                     argv[optind + 1]);
    goto done;
  }
  if (o.verify && o.cookbook) {
    rc = usage_error("%s--verify checks gradients in the Frobenius "
                     "convention; leave out --symmetric cookbook",
                     "");
    goto done;
  }
  if (cmd && (o.nwrt || o.hessian)) {
    rc = usage_error("%s--wrt and --hessian are for derivatives: leave out "
                     "'simplify'",
                     "");
    goto done;
  }
  if (optind < argc) {
    rc = cmd ? md_cmd_simplify(&o, argv[optind], stdout, stderr)
             : md_cmd_diff(&o, argv[optind], stdout, stderr);
  } else if (!isatty(STDIN_FILENO)) {
    rc = cmd ? md_cmd_simplify_stream(&o, stdin, stdout, stderr)
             : md_cmd_diff_stream(&o, stdin, stdout, stderr);
  } else {
    rc = usage_error("%sno expression given", "");
  }
done:
  free(args);
  free(o.decls);
  free(o.wrt);
  free(o.rules);
  if (fflush(stdout) != 0 && rc == 0)
    rc = 2;
  return rc;
}
