# Doxygen INPUT_FILTER for include/nestc/*.h: turns the headers' plain C comments into Doxygen comments
# on the fly, so the headers keep their ordinary style and the API reference is built from them as they
# are (docs/Doxyfile.in: INPUT_FILTER = "awk -f doxygen-filter.awk").
#
#   - the file's first comment becomes the file's documentation (@file);
#   - a comment on its own lines directly above a declaration (no blank line between) documents it: /* → /**;
#     when that comment stands above several declarations in a row (nc_client_send, nc_client_send_json),
#     they form a member group, and DISTRIBUTE_GROUP_DOC gives each of them the comment;
#   - a comment after code on the same line documents that member or enum value: /* → /**<;
#   - every other comment (section banners followed by a blank line) stays a plain comment.
# Inside doc comments, text that Doxygen would read as commands or HTML (`@MessagePattern`, `\xNN`,
# `<scheme>`) is escaped, and lines indented like code (" *   nc_server_new(...)") are indented to a
# Markdown code block. Line numbers are kept: nothing is inserted on lines of its own.

function is_blank(s) { return s ~ /^[ \t]*$/ }
function starts_comment(s) { return s ~ /^[ \t]*\/\*/ }
function is_pp(s) { return s ~ /^[ \t]*#/ }
# Code that a comment directly above documents.
function is_code(s) {
    return !is_blank(s) && !starts_comment(s) && s !~ /^[ \t]*}/ && (s !~ /^[ \t]*#/ || s ~ /^[ \t]*#[ \t]*define/)
}
# The code part of a line, without a trailing comment (the headers put no "/*" inside string literals).
function code_part(s, p) {
    p = index(s, "/*")
    return p ? substr(s, 1, p - 1) : s
}
function brace_delta(s, t, opens, closes) {
    t = code_part(s)
    opens = gsub(/{/, "{", t)
    closes = gsub(/}/, "}", t)
    return opens - closes
}
# One line of a doc comment, escaped for Doxygen.
function doc_line(s, code) {
    code = s ~ /^[ \t]*\*   / && s !~ /^[ \t]*\*[ \t]*- / # (a "- " item is a list, not code)
    if (code) {
        sub(/\*   /, "*       ", s) # deeper than the text: a Markdown code block
        return s
    }
    return escape(s)
}
# Backslash-escapes what Doxygen would read as a command or an HTML tag: \, @, and < before a letter.
# (Character by character: awk's gsub treats backslashes in replacements differently per implementation.)
function escape(s, out, c, q) {
    out = ""
    for (q = 1; q <= length(s); q++) {
        c = substr(s, q, 1)
        if (c == "\\" || c == "@" || (c == "<" && substr(s, q + 1, 1) ~ /[A-Za-z]/)) out = out "\\"
        out = out c
    }
    return out
}

{ L[++n] = $0 }

END {
    depth = 0
    seen_code = 0
    group_end = 0 # line that closes the open member group, 0 = none
    i = 1
    while (i <= n) {
        s = L[i]
        if (starts_comment(s)) {
            j = i
            while (j < n && index(L[j], "*/") == 0) j++
            k = j + 1
            doc = 0
            file_comment = 0
            prefix = ""
            if (!seen_code && !file_done) {
                file_done = 1
                doc = 1
                file_comment = 1
            } else if (k <= n && is_code(L[k])) {
                doc = 1
                if (depth == 0 && L[k] !~ /^[ \t]*#/) {
                    # how many declarations follow without a break: 2 or more make a member group
                    d = 0
                    decls = 0
                    last = 0
                    for (m = k; m <= n; m++) {
                        if (is_blank(L[m]) || is_pp(L[m]) || (d == 0 && starts_comment(L[m]))) break
                        d += brace_delta(L[m])
                        if (d == 0 && code_part(L[m]) ~ /;[ \t]*$/) {
                            decls++
                            last = m
                        }
                    }
                    if (decls >= 2) {
                        prefix = "/**@{*/ "
                        group_end = last
                    }
                }
            }
            for (m = i; m <= j; m++) {
                t = L[m]
                if (doc) {
                    t = doc_line(t)
                    if (m == i) gsub(/ ?----*/, "", t) # a section banner's dashes: "/* ---- calls ----"
                    if (m == i && t !~ /\/\*\*/) sub(/\/\*/, "/**", t)
                    if (m == i) t = prefix t
                    if (m == j && file_comment) sub(/\*\/[ \t]*$/, " @file */", t)
                }
                print t
            }
            i = j + 1
            continue
        }
        t = s
        if (!is_pp(s) && s !~ /^[ \t]*#/) {
            seen_code = seen_code || !is_blank(s)
            if (index(s, "/*") > 0 && index(s, "/**") == 0) {
                p = index(s, "/*")
                t = substr(s, 1, p - 1) "/**<" doc_line(substr(s, p + 2))
            }
        }
        # `extern "C" {` and its `}` are not scopes of declarations
        if (s !~ /^extern "C"/ && !(s ~ /^}/ && L[i - 1] ~ /^#ifdef __cplusplus/)) depth += brace_delta(s)
        if (i == group_end) {
            t = t " /**@}*/"
            group_end = 0
        }
        print t
        # a trailing comment that goes on over the next lines
        if (index(t, "/**<") > 0 && index(substr(t, index(t, "/**<")), "*/") == 0) {
            while (i < n && index(L[i + 1], "*/") == 0) print doc_line(L[++i])
            if (i < n) print doc_line(L[++i])
        }
        i++
    }
}
