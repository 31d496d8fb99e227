/* prompt.c - the interactive prompt; see prompt.h. */
#include "prompt.h"

#include "arena.h"
#include "input.h"
#include "parse.h"

#include <stdlib.h>
#include <string.h>

#ifdef HAVE_LIBEDIT
#include <editline/readline.h>
#endif

struct md_prompt {
  const char *text;
  FILE *in, *ps;
  md_source src;
  char *line;     /* libedit's line */
  md_lines lines; /* without libedit */
};

bool md_prompt_editing(void) {
#ifdef HAVE_LIBEDIT
  return true;
#else
  return false;
#endif
}

md_prompt *md_prompt_new(const char *text, FILE *in, FILE *ps) {
  md_prompt *p = xcalloc(1, sizeof *p);
  p->text = text;
  p->in = in;
  p->ps = ps;
  p->src = (md_source){"<stdin>", "", 0, 0};
#ifdef HAVE_LIBEDIT
  rl_readline_name = "matdiff"; /* for the "matdiff:" lines of ~/.editrc */
  rl_instream = in;
  rl_outstream = ps;
  using_history();
#else
  md_lines_init(&p->lines, in, "<stdin>", "standard input");
#endif
  return p;
}

void md_prompt_free(md_prompt *p) {
  if (!p)
    return;
#ifdef HAVE_LIBEDIT
  free(p->line);
  clear_history();
#else
  md_lines_clear(&p->lines);
#endif
  free(p);
}

const md_source *md_prompt_next(md_prompt *p, md_errors *err) {
#ifdef HAVE_LIBEDIT
  free(p->line);
  p->line = readline(p->text);
  if (!p->line) {
    fputc('\n', p->ps); /* ^D leaves the cursor after the prompt */
    return NULL;
  }
  size_t len = strlen(p->line);
  if (len > 0)
    add_history(p->line);
  p->src.line0++;
  p->src.text = p->line;
  p->src.len = len;
  if (len > MD_MAX_INPUT) {
    md_error_at(err, &p->src, (md_loc){0, 0},
                "line too long (more than %u bytes)", MD_MAX_INPUT);
    p->src.len = 0; /* answered as an empty line, after the error */
  }
  return &p->src;
#else
  fputs(p->text, p->ps);
  fflush(p->ps);
  const md_source *src = md_lines_next(&p->lines, err);
  if (!src)
    fputc('\n', p->ps);
  return src;
#endif
}
