/*
 * parser.y - the matdiff language (SPEC section 2), text -> DAG.
 *
 * A pure parser over a reentrant scanner; all state is in struct
 * md_pstate, so tests can parse in-process as often as they like.
 * Sums and products are collected as lists and interned once complete,
 * so a long sum costs linear time.  Locations are byte offsets (md_loc).
 */
%define api.pure full
%define api.location.type {md_loc}
%define parse.error detailed
%param {struct md_pstate *st}
%locations
%expect 0

%code requires {
#include "diag.h"
#include "expr.h"
#include "parse.h"

struct exlist;

/* The parser's and the scanner's shared state. */
struct md_pstate {
  md_ctx *ctx;
  const md_source *src;
  md_errors *err;
  md_parsed *out;
  void *scanner;
  size_t offset;   /* scanner position, in bytes */
  int start;       /* first token: selects the start symbol */
  int last_tok;    /* previous token, for "||" */
  int nesting;     /* brackets open */
  /* the kind of each open bracket: '(' '<' '{' or 'n' for a norm, grown
   * as brackets open (up to MD_MAX_NESTING: a fixed array of that size
   * cost every parse 100 KB of zeroing) */
  char *open;
  size_t capopen;
  uint32_t last_end; /* where the previous token ended */
  /* declarations and bindings collected for the current statement */
  md_decl *decls;
  size_t ndecls, capdecls;
  /* where-bindings of the current statement: one substitution for all of
   * them, and a mark (by node id) on each bound name */
  expr_subst bind;
  uint8_t *bound;
  size_t nbound;
  arena tmp; /* lists being collected; dropped whole after the parse */
  const char *last_ident; /* name of the last IDENT token */
  md_loc last_ident_loc;
  int before_ident; /* the token before the last IDENT (':' in a let) */
  /* '(' right after an identifier, for "unknown function 'f'" */
  struct call_paren { uint32_t offset; const char *name; md_loc at; } *cp;
  size_t ncp, capcp;
  struct call_paren *sus; /* name( with name not a function */
  size_t nsus, capsus;
  md_loc *deflhs; /* left sides of := definitions */
  size_t ndeflhs, capdeflhs;
};

#define YYLLOC_DEFAULT(Cur, Rhs, N)                                         \
  do {                                                                      \
    if (N) {                                                                \
      (Cur).begin = YYRHSLOC(Rhs, 1).begin;                                 \
      (Cur).end = YYRHSLOC(Rhs, N).end;                                     \
    } else {                                                                \
      (Cur).begin = (Cur).end = YYRHSLOC(Rhs, 0).end;                       \
    }                                                                       \
  } while (0)
}

%union {
  expr *e;
  const char *str;
  uint32_t fn;
  struct exlist *list;
  md_dimspec dim;
}

%code {
#include "lexer.h"

/* The parser's stack, in symbols: see yyerror. */
#define YYMAXDEPTH MD_MAX_PARSE_STACK

#include <stdlib.h>
#include <string.h>

/* A sum, product or Kronecker chain being collected, left to right. */
struct exlist {
  expr **v;
  size_t n, cap;
  expr_op op;
  md_loc loc;
};

static int yylex(YYSTYPE *lval, YYLTYPE *lloc, struct md_pstate *st);
static void yyerror(const YYLTYPE *loc, struct md_pstate *st,
                    const char *msg);

static struct exlist *list_new_(struct md_pstate *st, expr_op op, expr *e,
                                md_loc loc);
static struct exlist *list_push_(struct md_pstate *st, struct exlist *l,
                                 expr *e, md_loc loc);
static expr *list_close(struct md_pstate *st, struct exlist *l);
#define list_new(op, e, loc) list_new_(st, op, e, loc)
#define list_push(l, e, loc) list_push_(st, l, e, loc)

static expr *note(struct md_pstate *st, expr *e, md_loc loc);
static bool too_big(struct md_pstate *st, md_loc loc);
static void add_stmt(struct md_pstate *st, md_stmt_kind kind, expr *lhs,
                     expr *rhs, md_loc loc);
static bool add_decls(struct md_pstate *st, const struct exlist *names,
                      const char *kind, md_loc kloc, md_dimspec *dims,
                      size_t ndims, md_loc loc);
static bool add_binding(struct md_pstate *st, const char *name, expr *value,
                        md_loc loc);
static bool apply_bindings(struct md_pstate *st, md_loc loc);
static expr *make_call(struct md_pstate *st, uint32_t fn, expr *args,
                       md_loc loc, md_loc fnloc);
static expr *make_exponent(struct md_pstate *st, expr *k, md_loc loc);
static expr *make_wrt(struct md_pstate *st, expr *x, md_loc loc);
static expr *make_var(struct md_pstate *st, const char *name, md_loc loc);
static void unknown_function(struct md_pstate *st, const md_source *src,
                             md_loc at, const char *name, bool call);

#define ERROR_AT(loc, ...)                                                  \
  do {                                                                      \
    md_error_at(st->err, st->src, (loc), __VA_ARGS__);                      \
    YYABORT;                                                                \
  } while (0)

/* Every node built by an action is checked (NULL: too deep) and its
 * first location recorded. */
#define NODE(dst, expr_, loc)                                               \
  do {                                                                      \
    if (!((dst) = note(st, (expr_), (loc))))                                \
      YYABORT;                                                              \
  } while (0)
}

%token END 0 "end of input"
%token <str> IDENT "identifier"
%token <e> NUMBER "number"
%token <fn> FUNC "function name"
%token INV_FN "inv" KRON_FN "kron"
%token DIFF_FN "diff" GRAD_FN "grad" HESS_FN "hess"
%token <str> DDX "d/dX"
%token DDVEC "d/dvec("
%token LET "let" WHERE "where" IDENTITY "I" ONES "ones"
%token TRANSPOSE "^T" INVERSE "^-1" INVT "^-T"
%token <e> NEGPOW "negative power"
%token HAD ".*" HDIV "./" EPOW ".^" OTIMES "⊗"
%token NORM_OPEN "||" NORM_CLOSE "closing ||"
%token <fn> NORM_SUB "norm subscript"
%token NE "!=" DEFINE ":="
%token START_PROGRAM START_DECL

%type <e> expr term kron postfix primary exponent args wrt
%type <list> sum product kronlist arglist names
%type <dim> dim

/* d/dX takes the whole sum to its right (SPEC 2, fine point 1). */
%precedence DIFF
%precedence '+' '-'

%%

start
  : START_PROGRAM program
  | START_DECL decls_only
  ;

program
  : stmt
  | program ';' stmt
  ;

stmt
  : %empty              { add_stmt(st, ST_EMPTY, NULL, NULL, @$); }
  | LET decls           { add_stmt(st, ST_LET, NULL, NULL, @$); }
  | body
  | body WHERE bindings {
      if (!apply_bindings(st, @$))
        YYABORT;
    }
  ;

body
  : expr                { add_stmt(st, ST_EXPR, $1, NULL, @$); }
  | expr '=' expr       { add_stmt(st, ST_EQ, $1, $3, @$); }
  | expr NE expr        { add_stmt(st, ST_NE, $1, $3, @$); }
  | expr DEFINE expr    {
      add_stmt(st, ST_DEF, $1, $3, @$);
      if (st->ndeflhs == st->capdeflhs) {
        st->capdeflhs = st->capdeflhs ? 2 * st->capdeflhs : 4;
        st->deflhs =
            xreallocarray(st->deflhs, st->capdeflhs, sizeof *st->deflhs);
      }
      st->deflhs[st->ndeflhs++] = @1;
    }
  ;

bindings
  : binding
  | bindings ',' binding
  ;

binding
  : IDENT '=' expr      {
      if (!add_binding(st, $1, $3, @1))
        YYABORT;
    }
  ;

decls_only
  : decls               { add_stmt(st, ST_LET, NULL, NULL, @$); }
  | LET decls           { add_stmt(st, ST_LET, NULL, NULL, @$); }
  ;

decls
  : decl
  | decls ',' decl
  ;

/* decl -> names ':' kind [ '(' dim [',' dim] ')' ] */
decl
  : names ':' IDENT     {
      if (!add_decls(st, $1, $3, @3, NULL, 0, @$))
        YYABORT;
    }
  | names ':' IDENT '(' dim ')' {
      md_dimspec d[1] = {$5};
      if (!add_decls(st, $1, $3, @3, d, 1, @$))
        YYABORT;
    }
  | names ':' IDENT '(' dim ',' dim ')' {
      md_dimspec d[2] = {$5, $7};
      if (!add_decls(st, $1, $3, @3, d, 2, @$))
        YYABORT;
    }
  ;

/* The names being declared, a list of symbols (a tuple grown by one
 * name at a time was copied once per name: quadratic). */
names
  : IDENT               { $$ = list_new(E_TUPLE, expr_sym(st->ctx, $1), @1); }
  | names ',' IDENT     { $$ = list_push($1, expr_sym(st->ctx, $3), @3); }
  ;

dim
  : IDENT               { $$ = (md_dimspec){$1, 0}; }
  | NUMBER              {
      long v;
      if (!expr_is_int($1, &v) || v < 1 || v > 1000000)
        ERROR_AT(@1, "a size must be a name or an integer from 1 to "
                     "1000000");
      $$ = (md_dimspec){NULL, v};
    }
  ;

/* expr -> sum */
expr
  : sum                 { NODE($$, list_close(st, $1), @1); }
  ;

sum
  : term                { $$ = list_new(E_ADD, $1, @1); }
  | sum '+' term        { $$ = list_push($1, $3, @3); }
  | sum '-' term        {
      expr *t;
      NODE(t, expr_neg(st->ctx, $3), md_loc_span(@2, @3));
      $$ = list_push($1, t, @3);
    }
  ;

/* Unary minus binds looser than products: -x^T A x is -(x^T A x). */
term
  : product             { NODE($$, list_close(st, $1), @1); }
  | '-' term            { NODE($$, expr_neg(st->ctx, $2), @$); }
  | DDX sum %prec DIFF  {
      expr *x, *f;
      /* the variable's place is its name, after "d/d" */
      if (!(x = make_var(st, $1, (md_loc){@1.begin + 3, @1.end})))
        YYABORT;
      NODE(f, list_close(st, $2), @2);
      NODE($$, expr_diff(st->ctx, f, x), @$);
    }
  | DDVEC IDENT ')' sum %prec DIFF {
      expr *x, *f;
      if (!(x = make_var(st, $2, @2)))
        YYABORT;
      NODE(x, expr_call1(st->ctx, FN_VEC, x), md_loc_span(@1, @3));
      NODE(f, list_close(st, $4), @4);
      NODE($$, expr_diff(st->ctx, f, x), @$);
    }
  ;

/* product -> kron { ('*' | '/' | '.*' | './' | juxtaposition) kron },
 * one level, left associative (as in MATLAB). */
product
  : kron                { $$ = list_new(E_MUL, $1, @1); }
  | product kron        {
      if ($1->op != E_MUL) {
        expr *c;
        NODE(c, list_close(st, $1), @1);
        $1 = list_new(E_MUL, c, @1);
      }
      $$ = list_push($1, $2, @2);
    }
  | product '*' kron    {
      if ($1->op != E_MUL) {
        expr *c;
        NODE(c, list_close(st, $1), @1);
        $1 = list_new(E_MUL, c, @1);
      }
      $$ = list_push($1, $3, @3);
    }
  | product HAD kron    {
      if ($1->op != E_HAD) {
        expr *c;
        NODE(c, list_close(st, $1), @1);
        $1 = list_new(E_HAD, c, @1);
      }
      $$ = list_push($1, $3, @3);
    }
  | product '/' kron    {
      expr *c, *d;
      NODE(c, list_close(st, $1), @1);
      NODE(d, expr_div(st->ctx, c, $3), @$);
      $$ = list_new(E_MUL, d, @$);
    }
  | product HDIV kron   {
      expr *c, *d;
      NODE(c, list_close(st, $1), @1);
      NODE(d, expr_hdiv(st->ctx, c, $3), @$);
      $$ = list_new(E_MUL, d, @$);
    }
  ;

/* A ⊗ B binds tighter than products, looser than postfix operators. */
kron
  : kronlist            { NODE($$, list_close(st, $1), @1); }
  ;

kronlist
  : postfix             { $$ = list_new(E_KRON, $1, @1); }
  | kronlist OTIMES postfix { $$ = list_push($1, $3, @3); }
  ;

postfix
  : primary
  | postfix TRANSPOSE   { NODE($$, expr_trans(st->ctx, $1), @$); }
  | postfix INVERSE     { NODE($$, expr_inv(st->ctx, $1), @$); }
  | postfix INVT        {
      expr *t;
      NODE(t, expr_trans(st->ctx, $1), @$);
      NODE($$, expr_inv(st->ctx, t), @$);
    }
  | postfix NEGPOW      {
      expr *k;
      NODE(k, expr_neg(st->ctx, $2), @2);
      NODE($$, expr_pow(st->ctx, $1, k), @$);
    }
  | postfix '^' exponent  { NODE($$, expr_pow(st->ctx, $1, $3), @$); }
  | postfix EPOW exponent { NODE($$, expr_epow(st->ctx, $1, $3), @$); }
  ;

/* Exponents are one number or symbol, or any scalar in brackets: ^2,
 * ^(1/2), ^{-1}, .^ -1, s^p (SPEC 2, fine point 7).  A matrix power needs
 * an integer; shape inference says so. */
exponent
  : NUMBER              { $$ = $1; }
  | IDENT               { NODE($$, expr_sym(st->ctx, $1), @1); }
  | '-' NUMBER          { NODE($$, expr_neg(st->ctx, $2), @$); }
  | '(' expr ')'        { if (!($$ = make_exponent(st, $2, @2))) YYABORT; }
  | '{' expr '}'        { if (!($$ = make_exponent(st, $2, @2))) YYABORT; }
  ;

primary
  : NUMBER              { NODE($$, $1, @1); }
  | IDENT               { NODE($$, expr_sym(st->ctx, $1), @1); }
  | IDENTITY            { NODE($$, expr_ident(st->ctx), @1); }
  | ONES                { NODE($$, expr_ones(st->ctx), @1); }
  | '(' expr ')'        { $$ = $2; }
  | '(' expr ',' args ')' {
      /* f(a, b) with f not a function: name it rather than complain
       * about the comma. */
      for (size_t i = 0; i < st->ncp; i++)
        if (st->cp[i].offset == @1.begin) {
          unknown_function(st, st->src, st->cp[i].at, st->cp[i].name, false);
          YYABORT;
        }
      ERROR_AT(@$, "a list in parentheses is only allowed as the arguments "
                   "of a function");
    }
  | FUNC '(' args ')'   {
      if (!($$ = make_call(st, $1, $3, @$, @1)))
        YYABORT;
    }
  | INV_FN '(' args ')' {
      if ($3->op == E_TUPLE)
        ERROR_AT(@1, "inv takes 1 argument, not %u", (unsigned)$3->nkids);
      NODE($$, expr_inv(st->ctx, $3), @$);
    }
  | KRON_FN '(' args ')' {
      /* kron(A, B, C) is A ⊗ B ⊗ C, one node made at once as a chain of
       * ⊗ is: the printer writes a Kronecker product that holds another
       * (kept whole, MD_MAX_FLAT) so, and nested binary calls would
       * splice that operand into its neighbours */
      if ($3->op != E_TUPLE)
        ERROR_AT(@1, "kron takes at least 2 arguments, not 1");
      NODE($$, expr_make(st->ctx, E_KRON, $3->kid, $3->nkids), @$);
    }
  | DIFF_FN '(' expr ',' wrt ')' { NODE($$, expr_diff(st->ctx, $3, $5), @$); }
  | GRAD_FN '(' expr ',' wrt ')' { NODE($$, expr_diff(st->ctx, $3, $5), @$); }
  | HESS_FN '(' expr ',' wrt ')' { NODE($$, expr_hess(st->ctx, $3, $5), @$); }
  | NORM_OPEN expr NORM_CLOSE {
      NODE($$, expr_call1(st->ctx, FN_NORM2, $2), @$);
    }
  | NORM_OPEN expr NORM_CLOSE NORM_SUB {
      NODE($$, expr_call1(st->ctx, $4, $2), @$);
    }
  | '<' expr ',' expr '>' { NODE($$, expr_inner(st->ctx, $2, $4), @$); }
  ;

/* Function arguments: one expression, or a tuple of several.  They are
 * collected left to right: a right-recursive list held every argument on
 * the parser's stack, and copied the tuple once per argument. */
args
  : arglist             {
      if ($1->n == 1)
        $$ = $1->v[0];
      else
        NODE($$, expr_tuple(st->ctx, $1->v, $1->n), @$);
    }
  ;

arglist
  : expr                { $$ = list_new(E_TUPLE, $1, @1); }
  | arglist ',' expr    { $$ = list_push($1, $3, @3); }
  ;

wrt
  : expr                { if (!($$ = make_wrt(st, $1, @1))) YYABORT; }
  ;

%%

/* ---- lists ---- */

/* Lists live in the parse's scratch arena: an aborted parse leaks
 * nothing, whatever the state of the stack. */
static struct exlist *list_new_(struct md_pstate *st, expr_op op, expr *e,
                                md_loc loc) {
  struct exlist *l = arena_alloc(&st->tmp, sizeof *l);
  l->cap = 4;
  l->v = arena_alloc(&st->tmp, l->cap * sizeof *l->v);
  l->v[0] = e;
  l->n = 1;
  l->op = op;
  l->loc = loc;
  return l;
}

static struct exlist *list_push_(struct md_pstate *st, struct exlist *l,
                                 expr *e, md_loc loc) {
  if (l->n == l->cap) {
    expr **v = arena_alloc(&st->tmp, 2 * l->cap * sizeof *v);
    memcpy(v, l->v, l->n * sizeof *v);
    l->v = v;
    l->cap *= 2;
  }
  l->v[l->n++] = e;
  l->loc.end = loc.end;
  return l;
}

/* Interns the collected chain. */
static expr *list_close(struct md_pstate *st, struct exlist *l) {
  if (l->n == 1)
    return l->v[0];
  if (l->op == E_MUL)
    return expr_mul_n(st->ctx, l->v, l->n);
  return expr_make(st->ctx, l->op, l->v, l->n);
}

/* ---- locations ---- */

static expr *note(struct md_pstate *st, expr *e, md_loc loc) {
  if (!e) {
    too_big(st, loc);
    return NULL;
  }
  md_parsed *p = st->out;
  if (md_idmap_get(&p->at, e))
    return e; /* the first occurrence stays */
  if (p->nlocs == 0 || (p->nlocs >= 8 && (p->nlocs & (p->nlocs - 1)) == 0))
    p->locs =
        xreallocarray(p->locs, p->nlocs ? 2 * p->nlocs : 8, sizeof *p->locs);
  p->locs[p->nlocs++] = loc;
  md_idmap_put(&p->at, e, p->nlocs);
  return e;
}

/* ---- statements ---- */

static void add_stmt(struct md_pstate *st, md_stmt_kind kind, expr *lhs,
                     expr *rhs, md_loc loc) {
  md_parsed *p = st->out;
  if ((p->n & (p->n - 1)) == 0)
    p->stmts = xreallocarray(p->stmts, p->n ? 2 * p->n : 1, sizeof *p->stmts);
  md_stmt *s = &p->stmts[p->n++];
  *s = (md_stmt){.kind = kind, .lhs = lhs, .rhs = rhs, .loc = loc};
  if (kind == ST_LET) {
    s->decls = st->decls;
    s->ndecls = st->ndecls;
    st->decls = NULL;
    st->ndecls = st->capdecls = 0;
  }
}

static bool kind_from_name(const char *name, md_kind *k) {
  static const char *const kinds[] = {
      [K_SCALAR] = "scalar",       [K_VECTOR] = "vector",
      [K_MATRIX] = "matrix",       [K_SYMMETRIC] = "symmetric",
      [K_SPD] = "spd",             [K_DIAGONAL] = "diagonal",
  };
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (strcmp(kinds[i], name) == 0) {
      *k = (md_kind)i;
      return true;
    }
  return false;
}

static bool add_decls(struct md_pstate *st, const struct exlist *names,
                      const char *kind, md_loc kloc, md_dimspec *dims,
                      size_t ndims, md_loc loc) {
  md_kind k;
  if (!kind_from_name(kind, &k)) {
    md_error_at(st->err, st->src, kloc,
                "unknown kind '%s'; expected scalar, vector, matrix, "
                "symmetric, spd or diagonal",
                kind);
    return false;
  }
  size_t want = k == K_SCALAR ? 0 : k == K_MATRIX ? 2 : 1;
  if (ndims != 0 && want == 0) {
    md_error_at(st->err, st->src, kloc, "scalar takes no size");
    return false;
  }
  if (ndims != 0 && ndims != want) {
    static const char *const forms[] = {
        [K_SCALAR] = "scalar",          [K_VECTOR] = "vector(n)",
        [K_MATRIX] = "matrix(m, n)",    [K_SYMMETRIC] = "symmetric(n)",
        [K_SPD] = "spd(n)",             [K_DIAGONAL] = "diagonal(n)",
    };
    md_error_at(st->err, st->src, kloc,
                "%s takes %zu size%s, as in %s", kind, want,
                want == 1 ? "" : "s", forms[k]);
    return false;
  }
  for (size_t i = 0; i < names->n; i++) {
    expr *s = names->v[i];
    if (st->ndecls == st->capdecls) {
      st->capdecls = st->capdecls ? 2 * st->capdecls : 4;
      st->decls = xreallocarray(st->decls, st->capdecls, sizeof *st->decls);
    }
    md_decl *d = &st->decls[st->ndecls++];
    *d = (md_decl){.name = s->u.name, .kind = k, .loc = loc};
    for (size_t j = 0; j < ndims; j++)
      d->dim[j] = dims[j];
    if (k != K_MATRIX && k != K_SCALAR && ndims == 1 && k != K_VECTOR)
      d->dim[1] = dims[0]; /* square kinds */
  }
  return true;
}

static bool is_bound(const struct md_pstate *st, const expr *sym) {
  return sym->id < st->nbound && st->bound[sym->id];
}

/* A constructor returned NULL: the limit it ran into. */
static bool too_big(struct md_pstate *st, md_loc loc) {
  char why[96];
  md_ctx_limit_text(st->ctx, why, sizeof why);
  md_error_at(st->err, st->src, loc, "expression %s", why);
  return false;
}

static bool add_binding(struct md_pstate *st, const char *name, expr *value,
                        md_loc loc) {
  expr *sym = expr_sym(st->ctx, name);
  if (is_bound(st, sym)) {
    md_error_at(st->err, st->src, loc, "'%s' is bound twice in 'where'",
                name);
    return false;
  }
  /* A binding may use the bindings before it. */
  expr *v = expr_subst_apply(&st->bind, value);
  if (!v)
    return too_big(st, loc);
  expr_subst_bind(&st->bind, sym, v);
  if (sym->id >= st->nbound) {
    size_t n = md_ctx_nnodes(st->ctx);
    st->bound = xrealloc(st->bound, n);
    memset(st->bound + st->nbound, 0, n - st->nbound);
    st->nbound = n;
  }
  st->bound[sym->id] = 1;
  return true;
}

/* A bound name still present after substitution: a binding used one
 * bound after it (or itself).  And in *BAD, whether a derivative's
 * variable a binding made an expression (d/dt f where t = x + y): it must
 * be a symbol or vec(symbol).  One walk of the DAG for both. */
static const char *bound_left_rec(struct md_pstate *st, const expr *e,
                                  uint8_t *seen, bool *bad) {
  if (seen[e->id])
    return NULL;
  seen[e->id] = 1;
  if (e->op == E_SYM && is_bound(st, e))
    return e->u.name;
  if (e->op == E_DIFF || e->op == E_HESS) {
    const expr *x = e->kid[1];
    *bad |= !(x->op == E_SYM || (x->op == E_CALL && x->u.fn == FN_VEC &&
                                 x->kid[0]->op == E_SYM));
  }
  for (size_t i = 0; i < e->nkids; i++) {
    const char *n = bound_left_rec(st, e->kid[i], seen, bad);
    if (n)
      return n;
  }
  return NULL;
}

static const char *bound_left(struct md_pstate *st, const expr *e,
                              bool *bad) {
  uint8_t *seen = xcalloc(md_ctx_nnodes(st->ctx), 1);
  const char *n = bound_left_rec(st, e, seen, bad);
  free(seen);
  return n;
}

/* Replaces the where-bound names in the statement just added. */
static bool apply_bindings(struct md_pstate *st, md_loc loc) {
  md_stmt *s = &st->out->stmts[st->out->n - 1];
  s->loc = loc;
  expr **sides[2] = {&s->lhs, &s->rhs};
  bool ok = true;
  for (int i = 0; ok && i < 2; i++) {
    if (!*sides[i])
      continue;
    *sides[i] = expr_subst_apply(&st->bind, *sides[i]);
    bool bad = false;
    const char *late = *sides[i] ? bound_left(st, *sides[i], &bad) : NULL;
    if (!*sides[i]) {
      ok = too_big(st, loc);
    } else if (late) {
      md_error_at(st->err, st->src, loc,
                  "'%s' is used before its binding in 'where'; bind it "
                  "first",
                  late);
      ok = false;
    } else if (bad) {
      /* (printed, diff(f, x + y) would not parse back) */
      md_error_at(st->err, st->src, loc,
                  "a 'where' name differentiated with respect to stands for "
                  "an expression; can only differentiate with respect to a "
                  "symbol or vec(X)");
      ok = false;
    }
  }
  expr_subst_clear(&st->bind);
  free(st->bound);
  st->bound = NULL;
  st->nbound = 0;
  return ok;
}

static expr *make_call(struct md_pstate *st, uint32_t fn, expr *args,
                       md_loc loc, md_loc fnloc) {
  const fn_info *f = md_fn_get(st->ctx, fn);
  size_t n = args->op == E_TUPLE ? args->nkids : 1;
  if (n != f->arity) {
    md_error_at(st->err, st->src, fnloc, "%s takes %u argument%s, not %zu",
                f->name, f->arity, f->arity == 1 ? "" : "s", n);
    return NULL;
  }
  expr *e = args->op == E_TUPLE ? expr_call(st->ctx, fn, args->kid, n)
                                : expr_call1(st->ctx, fn, args);
  return note(st, e, loc);
}

static expr *make_exponent(struct md_pstate *st, expr *k, md_loc loc) {
  (void)st;
  (void)loc;
  return k;
}

static expr *make_wrt(struct md_pstate *st, expr *x, md_loc loc) {
  if (x->op == E_SYM ||
      (x->op == E_CALL && x->u.fn == FN_VEC && x->kid[0]->op == E_SYM))
    return x;
  md_error_at(st->err, st->src, loc,
              "can only differentiate with respect to a symbol or vec(X)");
  return NULL;
}

static expr *make_var(struct md_pstate *st, const char *name, md_loc loc) {
  if (strcmp(name, "I") == 0 || strcmp(name, "ones") == 0 ||
      md_fn_lookup(st->ctx, name, strlen(name)) >= 0) {
    md_error_at(st->err, st->src, loc,
                "cannot differentiate with respect to '%s'", name);
    return NULL;
  }
  return note(st, expr_sym(st->ctx, name), loc);
}

/* ---- driver ---- */

static void yyerror(const YYLTYPE *loc, struct md_pstate *st,
                    const char *msg) {
  /* Bison's stack is full: brackets are limited before it fills (each
   * holds fewer than MD_MAX_PARSE_STACK / MD_MAX_NESTING entries), so
   * what fills it is a chain of prefix operators (- - - x, d/dx d/dx f,
   * d/dx a + d/dx b + ...), each waiting for the whole rest. */
  if (strcmp(msg, "memory exhausted") == 0)
    md_error_at(st->err, st->src, *loc,
                "expression nested too deeply (more than %d operators "
                "waiting for their operands)",
                MD_MAX_PARSE_STACK);
  else
    md_error_at(st->err, st->src, *loc, "%s", msg);
}

/* The functions the lexer reads as keywords, not in the function table. */
static const char *const keyword_fns[] = {"inv", "kron", "diff", "grad",
                                          "hess"};

/* NAME lower-cased is a function (Tr, Sigmoid). */
static bool lower_is_function(const struct md_pstate *st, const char *name) {
  char low[MD_MAX_IDENT + 1];
  size_t n = strlen(name);
  if (n > MD_MAX_IDENT)
    return false;
  for (size_t i = 0; i <= n; i++)
    low[i] = name[i] >= 'A' && name[i] <= 'Z' ? (char)(name[i] - 'A' + 'a')
                                               : name[i];
  for (size_t i = 0; i < sizeof keyword_fns / sizeof keyword_fns[0]; i++)
    if (strcmp(low, keyword_fns[i]) == 0)
      return true;
  return md_fn_lookup(st->ctx, low, n) >= 0;
}

/* name( is meant as a call: a lower-case name of two or more letters
 * (trace(A)), or a capitalised function name (Tr(A)). */
static bool looks_like_call(const struct md_pstate *st, const char *name) {
  return (name[0] >= 'a' && name[0] <= 'z' && name[1] != '\0') ||
         (name[0] >= 'A' && name[0] <= 'Z' && lower_is_function(st, name));
}

/* The edit distance of A and B, letters compared without case, with a
 * swap of neighbours as one edit (optimal string alignment); names
 * longer than 32 bytes are never close. */
static size_t edit_distance(const char *a, const char *b) {
  enum { MAXN = 32 };
  size_t na = strlen(a), nb = strlen(b);
  if (na > MAXN || nb > MAXN)
    return SIZE_MAX;
  size_t d[MAXN + 1][MAXN + 1];
  for (size_t i = 0; i <= na; i++)
    d[i][0] = i;
  for (size_t j = 0; j <= nb; j++)
    d[0][j] = j;
  for (size_t i = 1; i <= na; i++)
    for (size_t j = 1; j <= nb; j++) {
      int ca = a[i - 1] | 0x20, cb = b[j - 1] | 0x20; /* ASCII letters */
      size_t best = d[i - 1][j - 1] + (ca != cb);
      if (d[i - 1][j] + 1 < best)
        best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best)
        best = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && ca == (b[j - 2] | 0x20) &&
          (a[i - 2] | 0x20) == cb && d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  return d[na][nb];
}

/* A's letters appear in B in order (sgn in sign). */
static bool subsequence(const char *a, const char *b) {
  for (; *a && *b; b++)
    if ((*a | 0x20) == (*b | 0x20))
      a++;
  return *a == '\0';
}

/* The known function closest to NAME, built-in or defined in rules, if
 * it is close enough: one edit for names of up to four letters, two for
 * longer ones (sigmod, softmx, Tr). */
static const char *closest_function(const struct md_pstate *st,
                                    const char *name) {
  size_t n = strlen(name), limit = n <= 4 ? 1 : 2, best = SIZE_MAX;
  const char *pick = NULL;
  size_t nfn = md_fn_count(st->ctx), nkw = sizeof keyword_fns /
                                            sizeof keyword_fns[0];
  for (size_t i = 0; i < nkw + nfn; i++) {
    const char *f = i < nkw ? keyword_fns[i]
                            : md_fn_get(st->ctx, (uint32_t)(i - nkw))->name;
    size_t d = edit_distance(name, f);
    /* a distance of the length itself is no likeness (ln and tr); of two
     * as close, one that only adds letters wins (sgn: sign, not sin) */
    if (d <= limit && d < strlen(f) &&
        2 * d + !subsequence(name, f) < best) {
      best = 2 * d + !subsequence(name, f);
      pick = f;
    }
  }
  return pick;
}

/* The message for an unknown function NAME, with a hint: first for the
 * names people reach for first, then the closest known name; else, when
 * CALL (name( read as a call), that there is none. */
static void unknown_function(struct md_pstate *st, const md_source *src,
                             md_loc at, const char *name, bool call) {
  static const struct {
    const char *name, *hint;
  } hints[] = {
      {"trace", "; did you mean tr?"},
      {"norm", "; did you mean norm2 (or ||x||)?"},
      {"transpose", "; write A^T"},
      {"inverse", "; did you mean inv?"},
      {"ln", "; did you mean log?"},
      {"logistic", "; did you mean sigmoid?"},
      {"heaviside", "; did you mean step?"},
      {"sigma", "; did you mean sigmoid? (sigma (x), with a space, is a "
                "product)"},
  };
  for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++)
    if (strcmp(hints[i].name, name) == 0) {
      md_error_at(st->err, src, at, "unknown function '%s'%s", name,
                  hints[i].hint);
      return;
    }
  const char *f = closest_function(st, name);
  if (f)
    md_error_at(st->err, src, at, "unknown function '%s'; did you mean %s?",
                name, f);
  else if (!call)
    md_error_at(st->err, src, at, "unknown function '%s'", name);
  else
    md_error_at(st->err, src, at,
                "unknown function '%s'; there is no such function "
                "(matdiff(1) lists them, --rules FILE adds one)",
                name);
}

/* The scanner, plus the start token, bracket depth and the norm state. */
static int yylex(YYSTYPE *lval, YYLTYPE *lloc, struct md_pstate *st) {
  int tok;
  if (st->start) {
    tok = st->start;
    st->start = 0;
    *lloc = (md_loc){0, 0};
    return tok;
  }
  tok = md_yylex(lval, lloc, st->scanner);
  /* The scanner leaves the end of input unplaced: put it right after the
   * last token, where the caret of "unexpected end of input" belongs. */
  if (tok == END)
    *lloc = (md_loc){st->last_end, st->last_end};
  st->last_end = lloc->end;
  switch (tok) {
  case '(': case '<': case '{': case DDVEC: case NORM_OPEN:
    if (st->nesting >= MD_MAX_NESTING) {
      md_error_at(st->err, st->src, *lloc,
                  "expression nested too deeply (more than %d levels)",
                  MD_MAX_NESTING);
      tok = YYerror;
      break;
    }
    if ((size_t)st->nesting + 2 > st->capopen) {
      st->capopen = st->capopen ? 2 * st->capopen : 64;
      st->open = xrealloc(st->open, st->capopen);
    }
    st->open[++st->nesting] = tok == NORM_OPEN ? 'n' : '(';
    break;
  case ')': case '>': case '}': case NORM_CLOSE:
    if (st->nesting > 0)
      st->nesting--;
    break;
  default:
    break;
  }
  /* trace(A), norm(x), Tr(A): a lower-case name of two or more letters,
   * or a capitalised function name, right before '(' is meant as a
   * function, not a product (README, Functions).
   * Checked after the parse: the left side of f(x) := ... may do it. */
  if (tok == '(' && st->last_tok == IDENT &&
      st->last_ident_loc.end == lloc->begin && st->before_ident != ':' &&
      looks_like_call(st, st->last_ident)) {
    if (st->nsus == st->capsus) {
      st->capsus = st->capsus ? 2 * st->capsus : 4;
      st->sus = xreallocarray(st->sus, st->capsus, sizeof *st->sus);
    }
    st->sus[st->nsus++] =
        (struct call_paren){lloc->begin, st->last_ident, st->last_ident_loc};
  }
  if (tok == '(' && st->last_tok == IDENT) {
    if (st->ncp == st->capcp) {
      st->capcp = st->capcp ? 2 * st->capcp : 8;
      st->cp = xreallocarray(st->cp, st->capcp, sizeof *st->cp);
    }
    st->cp[st->ncp++] =
        (struct call_paren){lloc->begin, st->last_ident, st->last_ident_loc};
  }
  if (tok == IDENT) {
    st->before_ident = st->last_tok;
    st->last_ident = lval->str;
    st->last_ident_loc = *lloc;
  }
  st->last_tok = tok;
  return tok;
}

bool md_parse(md_ctx *ctx, const md_source *src, md_parse_mode mode,
              md_parsed *out, md_errors *err) {
  *out = (md_parsed){0};
  md_ctx_mark(ctx); /* the budget of the work on SRC */
  if (src->len > MD_MAX_INPUT) {
    md_error_at(err, src, MD_NOLOC, "input too long (more than %u bytes)",
                MD_MAX_INPUT);
    return false;
  }
  struct md_pstate st = {
      .ctx = ctx,
      .src = src,
      .err = err,
      .out = out,
      .start = mode == MD_PARSE_DECL ? START_DECL : START_PROGRAM,
  };
  size_t nerr = err->n;
  arena_init(&st.tmp);
  expr_subst_init(&st.bind, ctx);
  yyscan_t scanner;
  md_yylex_init_extra(&st, &scanner);
  st.scanner = scanner;
  YY_BUFFER_STATE buf = md_yy_scan_bytes(src->text, (int)src->len, scanner);
  int rc = yyparse(&st);
  for (size_t i = 0; rc == 0 && i < st.nsus; i++) {
    bool in_def = false;
    for (size_t j = 0; j < st.ndeflhs; j++)
      in_def |= st.sus[i].offset >= st.deflhs[j].begin &&
                st.sus[i].offset < st.deflhs[j].end;
    if (!in_def) {
      unknown_function(&st, src, st.sus[i].at, st.sus[i].name, true);
      rc = 1;
    }
  }
  md_yy_delete_buffer(buf, scanner);
  md_yylex_destroy(scanner);
  free(st.decls);
  expr_subst_clear(&st.bind);
  free(st.bound);
  free(st.cp);
  free(st.sus);
  free(st.deflhs);
  arena_clear(&st.tmp);
  free(st.open);
  if (rc != 0 || err->n > nerr) {
    if (err->n == nerr)
      md_error_at(err, src, MD_NOLOC, "cannot parse the input");
    md_parsed_clear(out);
    return false;
  }
  return true;
}

void md_parsed_clear(md_parsed *p) {
  for (size_t i = 0; i < p->n; i++)
    free(p->stmts[i].decls);
  free(p->stmts);
  free(p->locs);
  md_idmap_clear(&p->at);
  *p = (md_parsed){0};
}

md_loc md_parsed_loc(const md_parsed *p, const expr *e) {
  uintptr_t i = e ? md_idmap_get(&p->at, e) : 0;
  return i ? p->locs[i - 1] : MD_NOLOC;
}

const char *md_kind_name(md_kind k) {
  static const char *const names[] = {
      [K_SCALAR] = "scalar",       [K_VECTOR] = "vector",
      [K_MATRIX] = "matrix",       [K_SYMMETRIC] = "symmetric",
      [K_SPD] = "spd",             [K_DIAGONAL] = "diagonal",
  };
  return names[k];
}
