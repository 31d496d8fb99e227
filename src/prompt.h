/*
 * prompt.h - lines typed at a terminal: matdiff's interactive prompt.
 *
 * With libedit (HAVE_LIBEDIT at build time) a line is read with line
 * editing and the history of the session (the arrow keys, ^R; ~/.editrc
 * configures it); without it, a plain line of the stream.  The prompt is
 * written to the error stream, as Python's is, so that the answers on
 * standard output can be redirected without it.
 *
 * The lines come as md_lines_next gives them (input.h): a source named
 * "<stdin>", numbered from 1, alive until the next call; NULL at the end
 * of the input or after a read error added to ERR.
 *
 * Ownership: an md_prompt owns its line; the streams stay the caller's.
 */
#pragma once

#include "diag.h"

#include <stdbool.h>
#include <stdio.h>

typedef struct md_prompt md_prompt;

/* A prompt showing TEXT (kept, not copied) on PS, reading IN (a
 * terminal, for line editing). */
md_prompt *md_prompt_new(const char *text, FILE *in, FILE *ps);
void md_prompt_free(md_prompt *p);

const md_source *md_prompt_next(md_prompt *p, md_errors *err);

/* Whether lines are edited (matdiff was built with libedit). */
bool md_prompt_editing(void);
