/* main.c - the matdiff command line: options only (SPEC 4). */
#include "checker.h"
#include "driver.h"
#include "gmp_pool.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef MATDIFF_VERSION
#define MATDIFF_VERSION "0.1.0"
#endif

/* Which commands take an option. */
enum {
  FOR_DIFF = 1,     /* matdiff EXPR: derivatives */
  FOR_SIMPLIFY = 2, /* matdiff simplify */
  FOR_CHECK = 4,    /* matdiff check */
  FOR_ALL = 7,
};

/* What follows an option: nothing, free text (VAR, DECL, N), one of a
 * list of words, or a file name.  The completions offer the words and
 * the files. */
typedef enum { VAL_NONE, VAL_TEXT, VAL_WORD, VAL_FILE } val_kind;

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
  OPT_SEED,
  OPT_COMPLETIONS,
  OPT_VALUE,
};

typedef struct opt_doc {
  const char *name; /* --NAME */
  int key;          /* getopt's value: the short option's letter, or OPT_* */
  val_kind val;
  const char *metavar; /* the value in --help */
  const char *words;   /* VAL_WORD: the values, separated by spaces */
  unsigned takers;     /* FOR_*: the commands that take it */
  bool repeatable;
  bool hidden; /* in matdiff(1) only, neither in --help nor completed */
  const char *help;
} opt_doc;

/* Every option, in the order of --help; getopt's table, --help and the
 * shell completions (--completions) are made from this one. */
static const opt_doc opts[] = {
    {"wrt", 'x', VAL_TEXT, "VAR", NULL, FOR_DIFF, true, false,
     "differentiate with respect to VAR (repeatable)"},
    {"hessian", OPT_HESSIAN, VAL_NONE, NULL, NULL, FOR_DIFF, false, false,
     "the Hessian instead of the gradient"},
    {"layout", OPT_LAYOUT, VAL_WORD, "L", "denominator numerator mixed",
     FOR_DIFF, false, false, "denominator (default), numerator or mixed"},
    {"format", 'f', VAL_WORD, "F", "text latex numpy torch octave",
     FOR_DIFF | FOR_SIMPLIFY, false, false,
     "text (default), latex, numpy, torch or octave"},
    {"steps", OPT_STEPS, VAL_NONE, NULL, NULL, FOR_DIFF | FOR_SIMPLIFY, false,
     false, "show the derivation step by step"},
    {"equation", OPT_EQUATION, VAL_NONE, NULL, NULL, FOR_DIFF | FOR_SIMPLIFY,
     false, false, "print d/dX f = result"},
    {"unicode", OPT_UNICODE, VAL_NONE, NULL, NULL, FOR_DIFF | FOR_SIMPLIFY,
     false, false, "print with Unicode symbols"},
    {"verify", OPT_VERIFY, VAL_NONE, NULL, NULL, FOR_DIFF | FOR_SIMPLIFY, false,
     false, "check the result numerically first"},
    {"value", OPT_VALUE, VAL_NONE, NULL, NULL, FOR_DIFF, false, false,
     "the value of EXPR too (code: f and gradients)"},
    {"symmetric", OPT_SYMMETRIC, VAL_WORD, "cookbook", "cookbook",
     FOR_DIFF | FOR_SIMPLIFY, false, false,
     "symmetric gradients as in The Matrix Cookbook"},
    {"tap", OPT_TAP, VAL_NONE, NULL, NULL, FOR_CHECK, false, false,
     "report in TAP"},
    {"seed", OPT_SEED, VAL_TEXT, "N", NULL, FOR_CHECK, false, false,
     "draw the random points from seed N (default 0)"},
    {"let", 'D', VAL_TEXT, "DECL", NULL, FOR_ALL, true, false,
     "declare a symbol, e.g. -D 'A : symmetric(n)'"},
    {"rules", OPT_RULES, VAL_FILE, "FILE", NULL, FOR_ALL, true, false,
     "add rules and functions from FILE (repeatable)"},
    {"help", 'h', VAL_NONE, NULL, NULL, FOR_ALL, false, false, "this help"},
    {"version", 'V', VAL_NONE, NULL, NULL, FOR_ALL, false, false,
     "the version"},
    {"completions", OPT_COMPLETIONS, VAL_WORD, "SHELL", "bash zsh fish",
     FOR_ALL, false, true, "print the completion script for SHELL"},
};
enum { NOPTS = sizeof opts / sizeof opts[0] };

/* The groups of --help, by the commands that take an option. */
static const struct {
  unsigned takers;
  const char *title;
} groups[] = {
    {FOR_DIFF, "options for derivatives (matdiff EXPR)"},
    {FOR_DIFF | FOR_SIMPLIFY, "options for derivatives and simplify"},
    {FOR_CHECK, "options for check"},
    {FOR_ALL, "options for every command"},
};

static const opt_doc *opt_by_key(int key) {
  for (size_t i = 0; i < NOPTS; i++)
    if (opts[i].key == key)
      return &opts[i];
  return NULL;
}

/* The index of S among the space-separated WORDS, or -1. */
static int word_index(const char *words, const char *s) {
  size_t n = strlen(s);
  int i = 0;
  for (const char *w = words; *w; i++) {
    size_t len = strcspn(w, " ");
    if (len == n && strncmp(w, s, n) == 0)
      return i;
    w += len;
    w += *w == ' ';
  }
  return -1;
}

/* "a, b or c" from "a b c". */
static void words_list(FILE *out, const char *words) {
  for (const char *w = words; *w;) {
    size_t len = strcspn(w, " ");
    fwrite(w, 1, len, out);
    w += len;
    w += *w == ' ';
    if (*w)
      fputs(strchr(w, ' ') ? ", " : " or ", out);
  }
}

static void print_usage(FILE *out) {
  fputs("usage: matdiff [OPTIONS] EXPR            derivative of EXPR\n"
        "       matdiff simplify [OPTIONS] [EXPR] simplified EXPR\n"
        "       matdiff check [OPTIONS] FILE...   check identity files\n"
        "       matdiff --help | --version\n",
        out);
  for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
    fprintf(out, "\n%s:\n", groups[g].title);
    for (size_t i = 0; i < NOPTS; i++) {
      const opt_doc *d = &opts[i];
      if (d->hidden || d->takers != groups[g].takers)
        continue;
      char head[64];
      bool letter = d->key < 128;
      int n =
          snprintf(head, sizeof head, "  %c%c%s--%s%s%s", letter ? '-' : ' ',
                   letter ? (char)d->key : ' ', letter ? ", " : "  ", d->name,
                   d->metavar ? " " : "", d->metavar ? d->metavar : "");
      if (n < 24)
        fprintf(out, "%-24s%s\n", head, d->help);
      else
        fprintf(out, "%s\n%24s%s\n", head, "", d->help);
    }
  }
  fputs("\n"
        "With no EXPR, matdiff and matdiff simplify read one expression a "
        "line:\n"
        "at a prompt on a terminal, else from stdin as a filter.\n"
        "An EXPR may start with '-' ('-y^T log(p)'); an argument that reads "
        "as\n"
        "options is options: write '-x' as matdiff simplify -- '-x'.\n"
        "See matdiff(1) for the language.\n",
        out);
}

static int usage_error(const char *fmt, const char *arg) {
  fputs("matdiff: error: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs("\nTry 'matdiff --help'.\n", stderr);
  return 2;
}

/* Why getopt_long refused ARG, "--NAME" or "--NAME=VALUE": NAME is no
 * option's name or the start of one, starts the names of several, or
 * names an option that takes no value. */
static int long_option_error(const struct option *longopts, const char *arg) {
  const char *name = arg + 2;
  size_t len = strcspn(name, "=");
  const struct option *exact = NULL, *match[8];
  size_t n = 0;
  for (const struct option *o = longopts; o->name; o++) {
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
    const opt_doc *d = opt_by_key((unsigned char)*p);
    if (!d)
      return all_letters(p);
    if (d->val == VAL_NONE)
      continue;
    const char *v = p + 1;
    if (*v == '\0') {
      *takes_next = true;
      return true;
    }
    return *p == 'x'   ? md_valid_var(v)
           : *p == 'D' ? strchr(v, ':') != NULL
                       : all_letters(v);
  }
  return true;
}

/* ---- shell completions, from opts ---- */

/* The options COMMAND (FOR_*) takes, as "-x --wrt -D --let ...". */
static void option_words(FILE *out, unsigned command) {
  const char *sep = "";
  for (size_t i = 0; i < NOPTS; i++) {
    const opt_doc *d = &opts[i];
    if (d->hidden || !(d->takers & command))
      continue;
    if (d->key < 128)
      fprintf(out, "%s-%c", sep, d->key), sep = " ";
    fprintf(out, "%s--%s", sep, d->name), sep = " ";
  }
}

/* The options that take a value, as a shell case pattern. */
static void valued_pattern(FILE *out, const char *sep) {
  const char *s = "";
  for (size_t i = 0; i < NOPTS; i++) {
    const opt_doc *d = &opts[i];
    if (d->val == VAL_NONE)
      continue;
    if (d->key < 128)
      fprintf(out, "%s-%c", s, d->key), s = sep;
    fprintf(out, "%s--%s", s, d->name), s = sep;
  }
}

static const struct {
  unsigned command;
  const char *word; /* the command word; "" for derivatives */
} commands[] = {
    {FOR_CHECK, "check"},
    {FOR_SIMPLIFY, "simplify"},
    {FOR_DIFF, ""},
};
enum { NCOMMANDS = sizeof commands / sizeof commands[0] };

static void print_bash(FILE *out) {
  fputs("# bash completion for matdiff(1); generated by "
        "'matdiff --completions bash'.\n"
        "\n"
        "_matdiff() {\n"
        "  local cur=${COMP_WORDS[COMP_CWORD]} prev= opt= cmd= i words\n"
        "  ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}\n"
        "  # bash splits --format=latex at '='\n"
        "  if [[ $cur == = ]]; then\n"
        "    opt=$prev cur=\n"
        "  elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then\n"
        "    opt=${COMP_WORDS[COMP_CWORD - 2]}\n"
        "  else\n"
        "    opt=$prev\n"
        "  fi\n"
        "  # the command word before the cursor, past the options' values\n"
        "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
        "    case ${COMP_WORDS[i]} in\n"
        "    simplify | check)\n"
        "      cmd=${COMP_WORDS[i]}\n"
        "      break\n"
        "      ;;\n"
        "    --) break ;;\n"
        "    ",
        out);
  valued_pattern(out, " | ");
  fputs(") ((i++)) ;;\n"
        "    esac\n"
        "  done\n"
        "  case $opt in\n",
        out);
  for (size_t i = 0; i < NOPTS; i++) {
    const opt_doc *d = &opts[i];
    if (d->val == VAL_NONE || d->hidden)
      continue;
    fputs("  ", out);
    if (d->key < 128)
      fprintf(out, "-%c | ", d->key);
    fprintf(out, "--%s)\n", d->name);
    if (d->val == VAL_WORD)
      fprintf(out,
              "    mapfile -t COMPREPLY < <(compgen -W '%s' -- \"$cur\")\n",
              d->words);
    else if (d->val == VAL_FILE)
      fputs("    compopt -o filenames 2>/dev/null\n"
            "    mapfile -t COMPREPLY < <(compgen -f -- \"$cur\")\n",
            out);
    else
      fputs("    COMPREPLY=()\n", out);
    fputs("    return\n"
          "    ;;\n",
          out);
  }
  fputs("  esac\n"
        "  if [[ $cur == -* ]]; then\n"
        "    case $cmd in\n",
        out);
  for (size_t c = 0; c < NCOMMANDS; c++) {
    fprintf(out, "    %s) words='", *commands[c].word ? commands[c].word : "*");
    option_words(out, commands[c].command);
    fputs("' ;;\n", out);
  }
  fputs("    esac\n"
        "    mapfile -t COMPREPLY < <(compgen -W \"$words\" -- \"$cur\")\n"
        "    return\n"
        "  fi\n"
        "  case $cmd in\n"
        "  check)\n"
        "    compopt -o filenames 2>/dev/null\n"
        "    mapfile -t COMPREPLY < <(compgen -f -- \"$cur\")\n"
        "    ;;\n"
        "  simplify) COMPREPLY=() ;;\n"
        "  *) mapfile -t COMPREPLY < <(compgen -W 'simplify check' -- "
        "\"$cur\") ;;\n"
        "  esac\n"
        "}\n"
        "complete -F _matdiff matdiff\n",
        out);
}

/* S for a zsh _arguments explanation, inside single quotes. */
static void zsh_text(FILE *out, const char *s) {
  for (; *s; s++)
    if (*s == '\'')
      fputs("'\\''", out);
    else if (*s == '[' || *s == ']' || *s == ':' || *s == '\\')
      fprintf(out, "\\%c", *s);
    else
      fputc(*s, out);
}

static void zsh_spec(FILE *out, const opt_doc *d, bool letter) {
  fprintf(out, "    '%s", d->repeatable ? "*" : "");
  if (letter)
    fprintf(out, "-%c%s[", d->key, d->val != VAL_NONE ? "+" : "");
  else
    fprintf(out, "--%s%s[", d->name, d->val != VAL_NONE ? "=" : "");
  zsh_text(out, d->help);
  fputc(']', out);
  if (d->val == VAL_WORD)
    fprintf(out, ":%s:(%s)", d->metavar, d->words);
  else if (d->val == VAL_FILE)
    fprintf(out, ":%s:_files", d->metavar);
  else if (d->val == VAL_TEXT)
    fprintf(out, ":%s: ", d->metavar);
  fputs("'\n", out);
}

static void print_zsh(FILE *out) {
  fputs("#compdef matdiff\n"
        "# zsh completion for matdiff(1); generated by "
        "'matdiff --completions zsh'.\n"
        "\n"
        "local cmd= i\n"
        "local -a args\n"
        "# the command word before the cursor, past the options' values\n"
        "for ((i = 2; i < CURRENT; i++)); do\n"
        "  case ${words[i]} in\n"
        "  (simplify|check)\n"
        "    cmd=${words[i]}\n"
        "    break\n"
        "    ;;\n"
        "  (--) break ;;\n"
        "  (",
        out);
  valued_pattern(out, "|");
  fputs(") ((i++)) ;;\n"
        "  esac\n"
        "done\n"
        "case $cmd in\n",
        out);
  for (size_t c = 0; c < NCOMMANDS; c++) {
    fprintf(out, "(%s)\n  args=(\n",
            *commands[c].word ? commands[c].word : "*");
    for (size_t i = 0; i < NOPTS; i++) {
      const opt_doc *d = &opts[i];
      if (d->hidden || !(d->takers & commands[c].command))
        continue;
      if (d->key < 128)
        zsh_spec(out, d, true);
      zsh_spec(out, d, false);
    }
    if (commands[c].command == FOR_CHECK)
      fputs("    '*:identity file:_files'\n", out);
    else if (commands[c].command == FOR_SIMPLIFY)
      fputs("    '*:expression: '\n", out);
    else
      fputs("    '1:command or expression:(simplify check)'\n"
            "    '*:expression: '\n",
            out);
    fputs("  )\n  ;;\n", out);
  }
  fputs("esac\n"
        "_arguments -s -S : $args\n",
        out);
}

/* S in fish single quotes. */
static void fish_text(FILE *out, const char *s) {
  fputc('\'', out);
  for (; *s; s++) {
    if (*s == '\'' || *s == '\\')
      fputc('\\', out);
    fputc(*s, out);
  }
  fputc('\'', out);
}

static void print_fish(FILE *out) {
  fputs("# fish completion for matdiff(1); generated by "
        "'matdiff --completions fish'.\n"
        "\n"
        "# The command word before the cursor (diff when there is none).\n"
        "function __matdiff_command\n"
        "    set -l words (commandline -opc)\n"
        "    set -l i 2\n"
        "    while test $i -le (count $words)\n"
        "        switch $words[$i]\n"
        "            case simplify check\n"
        "                echo $words[$i]\n"
        "                return\n"
        "            case --\n"
        "                break\n"
        "            case ",
        out);
  valued_pattern(out, " ");
  fputs("\n"
        "                set i (math $i + 1)\n"
        "        end\n"
        "        set i (math $i + 1)\n"
        "    end\n"
        "    echo diff\n"
        "end\n"
        "\n"
        "function __matdiff_for\n"
        "    contains -- (__matdiff_command) $argv\n"
        "end\n"
        "\n"
        "complete -c matdiff -f\n"
        "complete -c matdiff -n '__matdiff_for diff' -a simplify "
        "-d 'simplified EXPR'\n"
        "complete -c matdiff -n '__matdiff_for diff' -a check "
        "-d 'check identity files'\n"
        "complete -c matdiff -n '__matdiff_for check' -F\n",
        out);
  for (size_t i = 0; i < NOPTS; i++) {
    const opt_doc *d = &opts[i];
    if (d->hidden)
      continue;
    fputs("complete -c matdiff -n '__matdiff_for", out);
    for (size_t c = 0; c < NCOMMANDS; c++)
      if (d->takers & commands[c].command)
        fprintf(out, " %s", *commands[c].word ? commands[c].word : "diff");
    fputc('\'', out);
    if (d->key < 128)
      fprintf(out, " -s %c", d->key);
    fprintf(out, " -l %s", d->name);
    if (d->val == VAL_WORD)
      fprintf(out, " -x -a '%s'", d->words);
    else if (d->val == VAL_FILE)
      fputs(" -r -F", out);
    else if (d->val == VAL_TEXT)
      fputs(" -x", out);
    fputs(" -d ", out);
    fish_text(out, d->help);
    fputc('\n', out);
  }
}

/* ---- the command line ---- */

int main(int argc, char **argv) {
  md_gmp_pool_install(); /* before GMP allocates anything */
  struct option longopts[NOPTS + 1];
  char shortopts[2 + 2 * NOPTS] = ":";
  size_t ns = 1;
  for (size_t i = 0; i < NOPTS; i++) {
    longopts[i] = (struct option){
        opts[i].name, opts[i].val == VAL_NONE ? no_argument : required_argument,
        NULL, opts[i].key};
    if (opts[i].key < 128) {
      shortopts[ns++] = (char)opts[i].key;
      if (opts[i].val != VAL_NONE)
        shortopts[ns++] = ':';
    }
  }
  longopts[NOPTS] = (struct option){NULL, 0, NULL, 0};
  shortopts[ns] = '\0';
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
  bool given[NOPTS] = {0}; /* by index in opts */
  int c, rc;
  opterr = 0;
  while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
    const opt_doc *d = opt_by_key(c);
    int word = -1; /* the value's index in d->words */
    if (d) {
      given[d - opts] = true;
      if (d->val == VAL_WORD && (word = word_index(d->words, optarg)) < 0) {
        fputs("matdiff: error: unknown ", stderr);
        if (c == 'f' || c == OPT_LAYOUT)
          fprintf(stderr, "%s '%s'", d->name, optarg);
        else
          fprintf(stderr, "value '%s' for --%s", optarg, d->name);
        fputs("; use ", stderr);
        words_list(stderr, d->words);
        fputs("\nTry 'matdiff --help'.\n", stderr);
        rc = 2;
        goto done;
      }
    }
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
      o.format = (md_format[]){MD_FORMAT_TEXT, MD_FORMAT_LATEX, MD_FORMAT_NUMPY,
                               MD_FORMAT_TORCH, MD_FORMAT_OCTAVE}[word];
      break;
    case OPT_LAYOUT:
      o.layout = (md_layout[]){MD_LAYOUT_DENOMINATOR, MD_LAYOUT_NUMERATOR,
                               MD_LAYOUT_MIXED}[word];
      break;
    case OPT_SYMMETRIC:
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
    case OPT_SEED: {
      /* a whole number, in decimal: strtoull would take "-1" and " 1" */
      char *end;
      errno = 0;
      unsigned long long n = strtoull(optarg, &end, 10);
      if (!(*optarg >= '0' && *optarg <= '9') || *end || errno) {
        rc = usage_error("--seed takes a whole number from 0 to "
                         "18446744073709551615, not '%s'",
                         optarg);
        goto done;
      }
      o.seed = n;
      break;
    }
    case OPT_COMPLETIONS:
      (word == 0 ? print_bash : word == 1 ? print_zsh : print_fish)(stdout);
      rc = 0;
      goto done;
    case 'h':
      print_usage(stdout);
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
  unsigned command = !cmd                        ? FOR_DIFF
                     : strcmp(cmd, "check") == 0 ? FOR_CHECK
                                                 : FOR_SIMPLIFY;
  /* the first option given that COMMAND does not take (the messages of
   * particular mistakes come first, below) */
  const opt_doc *stray = NULL;
  for (size_t i = 0; i < NOPTS && !stray; i++)
    if (given[i] && !(opts[i].takers & command))
      stray = &opts[i];
  if (command == FOR_CHECK) {
    if (o.format != MD_FORMAT_TEXT || o.equation || o.unicode || o.steps) {
      rc = usage_error("%s--format, --equation, --unicode and --steps are "
                       "for derivatives and simplify, not 'matdiff check'",
                       "");
      goto done;
    }
    if (stray) {
      rc = usage_error("--%s does not apply to 'matdiff check'", stray->name);
      goto done;
    }
    rc = md_cmd_check(&o, (const char *const *)argv + optind,
                      (size_t)(argc - optind), tap, stdout, stderr);
    goto done;
  }
  if (stray && stray->takers == FOR_CHECK) {
    rc = usage_error("--%s applies to 'matdiff check' only", stray->name);
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
  if (stray) {
    /* --layout: d/dX inside an expression is in denominator layout */
    rc = usage_error("--%s is for derivatives of EXPR: leave out 'simplify'",
                     stray->name);
    goto done;
  }
  if (optind < argc)
    rc = cmd ? md_cmd_simplify(&o, argv[optind], stdout, stderr)
             : md_cmd_diff(&o, argv[optind], stdout, stderr);
  else if (isatty(STDIN_FILENO))
    rc = cmd ? md_cmd_simplify_prompt(&o, stdout, stderr)
             : md_cmd_diff_prompt(&o, stdout, stderr);
  else
    rc = cmd ? md_cmd_simplify_stream(&o, stdin, stdout, stderr)
             : md_cmd_diff_stream(&o, stdin, stdout, stderr);
done:
  free(args);
  free(o.decls);
  free(o.wrt);
  free(o.rules);
  if (fflush(stdout) != 0 && rc == 0)
    rc = 2;
  return rc;
}
