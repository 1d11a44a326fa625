/* Texts generated from the option table: help, man page, completion scripts (gen.c). */
#ifndef NESTC_CLI_GEN_H
#define NESTC_CLI_GEN_H

#include <stdio.h>

/* The overview of `nestc --help`. */
void cli_overview(FILE *f);
/* nestc(1) in roff. */
void cli_man(FILE *f);
/* The completion script for "bash" or "zsh"; 2 after a usage message for anything else. */
int cli_completion(FILE *f, const char *shell);

#endif
