/* Everything generated from the option table (table.c): each command's --help, the overview, the man
 * page nestc(1) and the bash and zsh completion scripts. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "gen.h"
#include "nestc/nestc.h"
#include "table.h"

/* "--timeout MS", "-v, --verbose" */
static const char *opt_label(const cli_opt *o, char *buf, size_t len) {
    int n = o->short_name ? snprintf(buf, len, "-%c, %s", o->short_name, o->name)
                          : snprintf(buf, len, "%s", o->name);
    if (o->val != V_NONE && n >= 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " %s", o->val == V_CHOICE ? o->choices : o->val_name);
    return buf;
}

static const char *const url_forms[] = {
    "tcp",
    "tcp://host:port",
    "tls",
    "tls://host:port",
    "redis",
    "redis://[user[:password]@]host[:port][/db]",
    "rediss",
    "rediss://[user[:password]@]host[:port][/db]",
    "nats",
    "nats://[user:password@|token@]host[:port]",
    "mqtt",
    "mqtt://[user[:password]@]host[:port][?protocolVersion=5]  (port 1883)",
    "mqtts",
    "mqtts://[user[:password]@]host[:port][?protocolVersion=5]  (port 8883; --ca FILE)",
    "amqp",
    "amqp://[user[:password]@]host[:port][,...][/vhost]?queue=Q  (port 5672, guest:guest, vhost /)",
    "amqps",
    "amqps://[user[:password]@]host[:port][,...][/vhost]?queue=Q  (port 5671; --ca FILE)",
    "kafka",
    "kafka://host[:port][,host:port...]  (port 9092; topics are routes, replies on <route>.reply)",
    "grpc",
    "grpc://host[:port], grpcs://  (port 5000; --proto FILE; send, bench and conformance; TLS: "
    "--ca/--cert/--key)",
};

static void print_urls(FILE *f) {
    char buf[200];
    fprintf(f, "URL schemes of this build: %s\n", cli_schemes_text(buf, sizeof buf));
    const char *s;
    for (size_t i = 0; (s = cli_scheme(i)); i++) {
        const char *form = NULL;
        for (size_t k = 0; k < sizeof url_forms / sizeof url_forms[0]; k += 2)
            if (!strcmp(url_forms[k], s)) form = url_forms[k + 1];
        if (form)
            fprintf(f, "  %s\n", form);
        else
            fprintf(f, "  %s://...\n", s);
    }
    fputs("  transport options: ?name=value on the URL or --opt name=value (nestc options <scheme>)\n", f);
}

void cli_usage(FILE *f, const char *name) {
    const cli_cmd *c = cli_cmd_find(name);
    if (!c) return;
    fprintf(f, "usage: nestc %s %s\n", c->name, c->synopsis);
    for (const char *p = c->details; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        fprintf(f, "  %.*s\n", (int)n, p);
        p += n + (nl != NULL);
    }
    if (c->url_first && c->npos == 3)
        fputs("  <pattern>  a JSON object or number if it parses as one ('{\"cmd\":\"sum\"}', 42), else a "
              "string\n"
              "  [data]     JSON text (default null), @FILE (read from FILE) or @- (standard input); JSON\n"
              "             never starts with @, so nothing needs escaping (a string \"@x\" is '\"@x\"')\n",
              f);
    if (c->bit) {
        fputs("options (before or after the arguments; --name=value works too):\n", f);
        for (size_t i = 0; i < cli_nopts; i++) {
            const cli_opt *o = &cli_opts[i];
            if (!(o->cmds & c->bit)) continue;
            char label[64];
            opt_label(o, label, sizeof label);
            if (strlen(label) <= 22)
                fprintf(f, "  %-22s %s\n", label, o->help);
            else
                fprintf(f, "  %s\n  %-22s %s\n", label, "", o->help);
        }
    }
    print_urls(f); /* every command: the schemes of this build */
}

void cli_overview(FILE *f) {
    fprintf(f, "nestc %s — NestJS microservices from the command line\n\nusage:\n", nc_version());
    for (size_t i = 0; i < cli_ncmds; i++) {
        char line[128];
        snprintf(line, sizeof line, "nestc %s %s", cli_cmds[i].name, cli_cmds[i].synopsis);
        fprintf(f, "  %-46s %s\n", line, cli_cmds[i].summary);
    }
    fputs("  nestc <command> --help                         details of a command\n\n", f);
    print_urls(f);
}

/* ---- man page ---------------------------------------------------------------------------------------- */

/* Text escaped for roff: backslashes, hyphens as \-, and a line starting with . or ' guarded. */
static void roff(FILE *f, const char *s) {
    int bol = 1;
    for (; *s; s++) {
        if (bol && (*s == '.' || *s == '\'')) fputs("\\&", f);
        bol = *s == '\n';
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-')
            fputs("\\-", f);
        else
            fputc(*s, f);
    }
}

void cli_man(FILE *f) {
    fputs(".TH NESTC 1 \"\" \"nestc ", f);
    roff(f, nc_version());
    fputs("\" \"User Commands\"\n.SH NAME\nnestc \\- NestJS microservices from the command line\n.SH "
          "SYNOPSIS\n",
          f);
    for (size_t i = 0; i < cli_ncmds; i++) {
        fprintf(f, ".B nestc %s\n", cli_cmds[i].name);
        roff(f, cli_cmds[i].synopsis);
        fputs("\n.br\n", f);
    }
    fputs(
        ".SH DESCRIPTION\nnestc speaks the NestJS microservices wire protocol: it sends requests and events "
        "to NestJS services, serves the conformance service and measures servers.\n"
        "Options may come before or after the arguments; \\-\\-name=value works too.\n"
        "An option a command does not have is refused.\n",
        f);
    fputs(".PP\n[data] is JSON text (default null), @FILE (read from FILE) or @\\- (standard input). "
          "JSON text never starts with @, so nothing needs escaping.\n",
          f);
    fputs(".SH COMMANDS\n", f);
    for (size_t i = 0; i < cli_ncmds; i++) {
        const cli_cmd *c = &cli_cmds[i];
        fprintf(f, ".SS \"nestc %s ", c->name);
        roff(f, c->synopsis);
        fputs("\"\n", f);
        roff(f, c->details);
        fputs("\n", f);
        if (!c->bit) continue;
        for (size_t k = 0; k < cli_nopts; k++) {
            const cli_opt *o = &cli_opts[k];
            if (!(o->cmds & c->bit)) continue;
            char label[64];
            fputs(".TP\n.B ", f);
            roff(f, opt_label(o, label, sizeof label));
            fputs("\n", f);
            roff(f, o->help);
            fputs("\n", f);
        }
    }
    fputs(".SH URLS\n", f);
    char buf[200];
    fputs("Schemes of this build: ", f);
    roff(f, cli_schemes_text(buf, sizeof buf));
    fputs(".\n", f);
    const char *s;
    for (size_t i = 0; (s = cli_scheme(i)); i++)
        for (size_t k = 0; k < sizeof url_forms / sizeof url_forms[0]; k += 2)
            if (!strcmp(url_forms[k], s)) {
                fputs(".br\n", f);
                roff(f, url_forms[k + 1]);
                fputs("\n", f);
            }
    fputs(".PP\nTransport options: ?name=value on the URL or \\-\\-opt name=value; "
          "\\fBnestc options\\fR \\fIscheme\\fR lists them.\n",
          f);
    fputs(
        ".SH \"EXIT STATUS\"\n.TP\n0\nsuccess (send: the reply stream ended; emit: the event was accepted)\n"
        ".TP\n1\nsend: an error reply, \\(lqno handler\\(rq included; its error value as JSON on stderr. "
        "bench: every reply was an error reply\n"
        ".TP\n2\ntimeout, refused connection, TLS failure, a transport without client streams "
        "(\\-\\-stream), "
        "bad arguments\n",
        f);
    fputs(".SH FILES\nshare/bash\\-completion/completions/nestc, share/zsh/site\\-functions/_nestc: "
          "completion scripts (\\fBnestc completion bash|zsh\\fR)\n"
          ".SH \"SEE ALSO\"\nThe README of nestc, docs/bench\\-cli.md\n",
          f);
}

/* ---- completion ------------------------------------------------------------------------------------ */

/* The option names of command bit `bit` (long and short), separated by spaces; `kind` 0: all, 1: those
 * taking a file, 2: those taking another value. */
static void names(FILE *f, unsigned bit, int kind) {
    const char *sep = "";
    for (size_t i = 0; i < cli_nopts; i++) {
        const cli_opt *o = &cli_opts[i];
        if (!(o->cmds & bit)) continue;
        if (kind == 1 && o->val != V_FILE) continue;
        if (kind == 2 && (o->val == V_NONE || o->val == V_FILE)) continue;
        fprintf(f, "%s%s", sep, o->name);
        sep = " ";
        if (o->short_name) fprintf(f, " -%c", o->short_name);
    }
}

static void schemes_words(FILE *f, const char *suffix) {
    const char *s;
    for (size_t i = 0; (s = cli_scheme(i)); i++) fprintf(f, "%s%s%s", i ? " " : "", s, suffix);
}

static void bash(FILE *f) {
    fputs("# bash completion for nestc (generated by `nestc completion bash`)\n"
          "_nestc() {\n"
          "  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
          "  local cmd=${COMP_WORDS[1]} opts= fileopts= valopts=\n"
          "  COMPREPLY=()\n"
          "  if ((COMP_CWORD == 1)); then\n"
          "    COMPREPLY=($(compgen -W \"",
          f);
    for (size_t i = 0; i < cli_ncmds; i++) fprintf(f, "%s%s", i ? " " : "", cli_cmds[i].name);
    fputs(" --help --version\" -- \"$cur\"))\n    return\n  fi\n  case $cmd in\n", f);
    for (size_t i = 0; i < cli_ncmds; i++) {
        const cli_cmd *c = &cli_cmds[i];
        if (!c->bit) continue;
        fprintf(f, "  %s)\n    opts=\"", c->name);
        names(f, c->bit, 0);
        fputs("\"\n    fileopts=\"", f);
        names(f, c->bit, 1);
        fputs("\"\n    valopts=\"", f);
        names(f, c->bit, 2);
        fputs("\" ;;\n", f);
    }
    fputs("  options) COMPREPLY=($(compgen -W \"", f);
    schemes_words(f, "");
    fputs("\" -- \"$cur\")); return ;;\n  help) COMPREPLY=($(compgen -W \"", f);
    for (size_t i = 0; i < cli_ncmds; i++) fprintf(f, "%s ", cli_cmds[i].name);
    schemes_words(f, "");
    fputs(" --man\" -- \"$cur\")); return ;;\n"
          "  completion) COMPREPLY=($(compgen -W \"bash zsh\" -- \"$cur\")); return ;;\n"
          "  *) return ;;\n  esac\n",
          f);
    /* the value of the option before the cursor */
    fputs("  case \" $fileopts \" in *\" $prev \"*) COMPREPLY=($(compgen -f -- \"$cur\")); return ;; esac\n",
          f);
    for (size_t i = 0; i < cli_nopts; i++)
        if (cli_opts[i].val == V_CHOICE) {
            char words[64];
            snprintf(words, sizeof words, "%s", cli_opts[i].choices);
            for (char *p = words; *p; p++)
                if (*p == '|') *p = ' ';
            fprintf(f,
                    "  if [[ $prev == %s ]]; then COMPREPLY=($(compgen -W \"%s\" -- \"$cur\")); return; fi\n",
                    cli_opts[i].name, words);
        }
    fputs("  case \" $valopts \" in *\" $prev \"*) return ;; esac\n"
          "  case $cur in\n"
          "  -*) COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\")); return ;;\n"
          "  @*) COMPREPLY=($(compgen -P @ -f -- \"${cur#@}\")); return ;;\n"
          "  esac\n"
          "  # the first argument after the command is the URL: offer the schemes\n"
          "  local i n=0 skip=0\n"
          "  for ((i = 2; i < COMP_CWORD; i++)); do\n"
          "    local w=${COMP_WORDS[i]}\n"
          "    if ((skip)); then skip=0; continue; fi\n"
          "    case \" $fileopts $valopts \" in *\" $w \"*) skip=1; continue ;; esac\n"
          "    [[ $w == -* && $w != -[0-9]* ]] && continue\n"
          "    n=$((n + 1))\n"
          "  done\n"
          "  if ((n == 0)); then\n"
          "    compopt -o nospace 2>/dev/null\n"
          "    COMPREPLY=($(compgen -W \"",
          f);
    schemes_words(f, "://");
    fputs("\" -- \"$cur\"))\n  fi\n}\ncomplete -F _nestc nestc\n", f);
}

/* zsh _arguments specs: [ ] : and ' are special in the help text */
static void zsh_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '\'')
            fputs("'\\''", f);
        else if (*s == '[' || *s == ']' || *s == ':')
            fprintf(f, "\\%c", *s);
        else
            fputc(*s, f);
    }
}

static void zsh(FILE *f) {
    fputs("#compdef nestc\n# zsh completion for nestc (generated by `nestc completion zsh`)\n"
          "_nestc_data() {\n  if compset -P '@'; then _files; else _message 'JSON, @FILE or @-'; fi\n}\n"
          "_nestc() {\n  local -a cmds\n  cmds=(\n",
          f);
    for (size_t i = 0; i < cli_ncmds; i++) {
        fprintf(f, "    '%s:", cli_cmds[i].name);
        zsh_text(f, cli_cmds[i].summary);
        fputs("'\n", f);
    }
    fputs("  )\n  if ((CURRENT == 2)); then\n    _describe command cmds\n    return\n  fi\n"
          "  local cmd=$words[2]\n  shift words\n  ((CURRENT--))\n  case $cmd in\n",
          f);
    for (size_t i = 0; i < cli_ncmds; i++) {
        const cli_cmd *c = &cli_cmds[i];
        if (!c->bit) continue;
        fprintf(f, "  %s)\n    _arguments -s \\\n", c->name);
        for (size_t k = 0; k < cli_nopts; k++) {
            const cli_opt *o = &cli_opts[k];
            if (!(o->cmds & c->bit)) continue;
            fputs("      ", f);
            if (o->short_name)
                fprintf(f, "'(-%c %s)'{-%c,%s}'[", o->short_name, o->name, o->short_name, o->name);
            else
                fprintf(f, "'%s%s[", o->repeat ? "*" : "", o->name);
            zsh_text(f, o->help);
            fputs("]", f);
            if (o->val == V_FILE)
                fprintf(f, ":%s:_files", o->val_name);
            else if (o->val == V_CHOICE) {
                fprintf(f, ":%s:(", o->val_name);
                for (const char *p = o->choices; *p; p++) fputc(*p == '|' ? ' ' : *p, f);
                fputs(")", f);
            } else if (o->val != V_NONE)
                fprintf(f, ":%s: ", o->val_name);
            fputs("' \\\n", f);
        }
        fputs("      '1:url:(", f);
        schemes_words(f, "\\://");
        fputs(")'", f);
        if (c->npos == 3) fputs(" \\\n      '2:pattern: ' \\\n      '3:data:_nestc_data'", f);
        fputs(" ;;\n", f);
    }
    fputs("  options) _arguments '1:scheme:(", f);
    schemes_words(f, "");
    fputs(")' ;;\n  help) _arguments '1:topic:(", f);
    for (size_t i = 0; i < cli_ncmds; i++) fprintf(f, "%s ", cli_cmds[i].name);
    schemes_words(f, "");
    fputs(" --man)' ;;\n  completion) _arguments '1:shell:(bash zsh)' ;;\n  esac\n}\n_nestc \"$@\"\n", f);
}

int cli_completion(FILE *f, const char *shell) {
    if (shell && !strcmp(shell, "bash")) {
        bash(f);
        return 0;
    }
    if (shell && !strcmp(shell, "zsh")) {
        zsh(f);
        return 0;
    }
    fprintf(stderr, "usage: nestc completion bash|zsh\n");
    return 2;
}
