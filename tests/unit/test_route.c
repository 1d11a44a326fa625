/* Route normalisation (spec §3.1-§3.3) against NestJS's own transformPatternToRoute and V8's
 * localeCompare. Reference data come from Node 20 with @nestjs/microservices 12.1.1:
 * data/routes.tsv (regenerate with data/gen-routes.mjs) and the collation tables below. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "tcp_fixture.h"

#include "codec/json_write.h"
#include "core/route.h"
#include "nestc/error.h"

/* The 95 printable ASCII characters as V8 sorts them with (a, b) => a.localeCompare(b). */
static const char ascii_sorted[] =
    " _-,;:!\?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789aAbBcCdDeEfFgGhHiIjJkKlLmMnNoOpPqQrRsStTuUvVwWxXyYzZ";

/* Printable-ASCII strings in V8's localeCompare order (727 strings; no two compare equal): all
 * two-character strings over aAbB0_- .', all three-character ones over aAb_-, every case variant of a few
 * words, every punctuation character between and before letters, prefixes, and random strings. */
static const char *const node_sorted[] = {
    " ",       "  ",     " _",     " -",      " ;",     " .",      " '",     " 0",       " a",      " A",
    " b",      " B",     "_",      "_ ",      "__",     "___",     "__-",    "__a",      "__A",     "__b",
    "_-",      "_-_",    "_--",    "_-a",     "_-A",    "_-b",     "_.",     "_.@]\?",   "_'",      "_0",
    "_a",      "_A",     "_a_",    "_A_",     "_a-",    "_A-",     "_aa",    "_aA",      "_Aa",     "_AA",
    "_ab",     "_Ab",    "_b",     "_B",      "_b_",    "_b-",     "_ba",    "_bA",      "_bb",     "_k^4I|",
    "-",       "- ",     "-_",     "-__",     "-_-",    "-_a",     "-_A",    "-_b",      "--",      "--_",
    "---",     "--a",    "--A",    "--b",     "-.",     "-'",      "-0",     "-a",       "-A",      "-a_",
    "-A_",     "-a-",    "-A-",    "-aa",     "-aA",    "-Aa",     "-AA",    "-ab",      "-Ab",     "-b",
    "-B",      "-b_",    "-b-",    "-ba",     "-bA",    "-bb",     "-gB.oH", ",a",       ",oCWO+",  ",ZEAf6",
    ";",       ";@TQ",   ";a",     ";Aqo",    ";Fi,",   ";NEO!\?", ";pV9",   ":a",       "!3j!A",   "!a",
    "\?[V7",   "\?~(4z", "\?a",    "\?u6P$2", ". ",     "._",      ".-",     "..",       ".'",      ".0",
    ".a",      ".A",     ".b",     ".B",      ".O)",    "'",       "' ",     "'_",       "'-",      "'.",
    "''",      "'(",     "'0",     "'a",      "'A",     "'b",      "'B",     "\"a",      "\"kd",    "(a",
    "(zB",     ")-6X6",  ")a",     ")n_wo=",  "[a",     "]a",      "]A}",    "{",        "{a",      "{ct\\",
    "{H",      "{q",     "}0n;@",  "}a",      "}Kx#p",  "@->r",    "@a",     "*/n,",     "*%}!",    "*a",
    "/4Zb&",   "/a",     "\\",     "\\;",     "\\@O+J", "\\a",     "&}^9",   "&a",       "&z{C$",   "#a",
    "#F5`j",   "#m",     "#Mv8p",  "%))y4",   "%1=0U",  "%a",      "%u",     "`a",       "`uZ",     "^",
    "^a",      "+",      "+1F<sy", "+a",      "+D",     "+S",      "<",      "<a",       "<K38",    "<WR",
    "=",       "=<z",    "=a",     "=G",      "=J",     "=WKt",    "> %}s",  ">!)L",     ">a",      "|[4K",
    "|a",      "|loV",   "~a",     "~G;",     "~Xe",    "$",       "$a",     "$wd",      "0",       "0 ",
    "0_",      "0-",     "0.",     "0'",      "0|\"",   "00",      "001",    "01",       "0a",      "0A",
    "0b",      "0B",     "0DrG>",  "0I!\\Z",  "1",      "1%M0a",   "10",     "100",      "1a",      "1e\\>",
    "1g;\"GO", "2",      "2|%*bO", "20",      "27",     "2a",      "2e",     "3\?#c",    "36",      "3a",
    "4~]",     "4a",     "4Yy%C",  "5a",      "5g~K",   "5N",      "6a",     "6o\?9,0",  "7a",      "8",
    "8}",      "8a",     "8I&/ '", "8NDA",    "8Vg",    "9&h9R",   "9a",     "a",        "a ",      "A ",
    "a b",     "a_",     "A_",     "a__",     "A__",    "a_-",     "A_-",    "a_a",      "a_A",     "A_a",
    "A_A",     "a_b",    "a_B",    "A_b",     "a-",     "A-",      "a-_",    "A-_",      "a--",     "A--",
    "a-a",     "a-A",    "A-a",    "A-A",     "a-b",    "A-b",     "A,",     "a,b",      "A;",      "a;b",
    "A:",      "a:b",    "A!",     "a!b",     "A\?",    "a\?b",    "a.",     "A.",       "a.b",     "a'",
    "A'",      "a'b",    "A\"",    "a\"b",    "A(",     "a(b",     "A)",     "a)b",      "A[",      "a[b",
    "A]",      "a]b",    "A{",     "a{b",     "A}",     "a}b",     "A@",     "a@b",      "A*",      "a*b",
    "A/",      "a/b",    "A\\",    "a\\b",    "A&",     "a&b",     "A#",     "a#b",      "A%",      "a%b",
    "A`",      "a`b",    "A^",     "a^b",     "A+",     "a+b",     "A<",     "a<b",      "A=",      "a=b",
    "A>",      "a>b",    "A|",     "a|b",     "A~",     "a~b",     "A$",     "a$b",      "a0",      "A0",
    "a0b",     "a1",     "A1",     "a10",     "a1b",    "a2",      "A2",     "a2b",      "A3",      "a3b",
    "A4",      "a4b",    "A5",     "a5b",     "A6",     "a6b",     "A7",     "a7b",      "A8",      "a8b",
    "A9",      "a9b",    "aa",     "aA",      "Aa",     "AA",      "aa_",    "aA_",      "Aa_",     "AA_",
    "aa-",     "aA-",    "Aa-",    "AA-",     "aaa",    "aaA",     "aAa",    "aAA",      "Aaa",     "AaA",
    "AAa",     "AAA",    "aab",    "aAb",     "Aab",    "AAb",     "ab",     "aB",       "Ab",      "AB",
    "ab_",     "Ab_",    "ab-",    "aB-",     "Ab-",    "aba",     "abA",    "Aba",      "AbA",     "abb",
    "aBb",     "Abb",    "abc",    "abC",     "aBc",    "aBC",     "Abc",    "AbC",      "ABc",     "ABC",
    "abcd",    "abcde",  "Ac",     "AC",      "acb",    "aCb",     "Ad",     "AD",       "adb",     "aDb",
    "Ae",      "AE",     "aeb",    "aEb",     "Af",     "AF",      "afb",    "aFb",      "Ag",      "AG",
    "agb",     "aGb",    "Ah",     "AH",      "ahb",    "aHb",     "Ai",     "AI",       "aib",     "aIb",
    "Aj",      "AJ",     "ajb",    "aJb",     "Ak",     "AK",      "akb",    "aKb",      "Al",      "AL",
    "alb",     "aLb",    "Am",     "AM",      "amb",    "aMb",     "An",     "AN",       "anb",     "aNb",
    "Ao",      "AO",     "aob",    "aOb",     "Ap",     "AP",      "apb",    "aPb",      "Aq",      "AQ",
    "aqb",     "aQb",    "Ar",     "AR",      "arb",    "aRb",     "As",     "AS",       "asb",     "aSb",
    "At",      "AT",     "atb",    "aTb",     "Au",     "AU",      "aub",    "aUb",      "Av",      "AV",
    "avb",     "aVb",    "Aw",     "AW",      "awb",    "aWb",     "Ax",     "AX",       "axb",     "aXb",
    "Ay",      "AY",     "ayb",    "aYb",     "Az",     "AZ",      "azb",    "aZb",      "b",       "B",
    "b ",      "B ",     "b_",     "B_",      "b__",    "b_-",     "b_a",    "b_A",      "b_b",     "b-",
    "B-",      "b-_",    "b--",    "b-a",     "b-A",    "b-b",     "B;p*",   "b.",       "B.",      "b'",
    "B'",      "b%",     "b0",     "B0",      "b3uR~",  "ba",      "bA",     "Ba",       "BA",      "ba_",
    "bA_",     "ba-",    "bA-",    "baa",     "baA",    "bAa",     "bAA",    "bab",      "bAb",     "bb",
    "bB",      "Bb",     "BB",     "bb_",     "bb-",    "bba",     "bbA",    "bbb",      "C",       "C*-4 &",
    "ca",      "Ca",     "cmd",    "cmD",     "cMd",    "cMD",     "Cmd",    "CmD",      "CMd",     "CMD",
    "D#",      "d6",     "da",     "Da",      "e^$",    "ea",      "Ea",     "EU9Z\\\\", "f",       "fa",
    "Fa",      "FC t",   "FFFs}b", "fQ]u7",   "FXrG",   "G",       "G\"",    "g`V,6",    "g8a",     "ga",
    "Ga",      "gH",     "GPS_",   "ha",      "Ha",     "hho",     "i",      "ia",       "Ia",      "id",
    "iD",      "Id",     "ID",     "IPKHz",   "j",      "ja",      "Ja",     "k,",       "k$[",     "k5a",
    "ka",      "Ka",     "ki",     "l_#S",    "L/*~",   "L5dF",    "la",     "La",       "Ln",      "LT^#",
    "m*",      "M=Hc",   "m5+",    "ma",      "Ma",     "mDm",     "mhp%",   "MMP`^X",   "MRFP",    "MS.",
    "n,fM[7",  "N^UHw",  "na",     "Na",      "o>g<e>", "oa",      "Oa",     "OcEk$",    "Ok}",     "Oq",
    "p:J~",    "p+otog", "p|.",    "p16",     "pa",     "Pa",      "pxvAv",  "qa",       "Qa",      "QOL",
    "qS\?T3C", "r",      "R",      "R'|]~7",  "ra",     "Ra",      "RM\?V",  "RqLN#3",   "s^=sO",   "sa",
    "Sa",      "sb",     "sx",     "Syl!",    "T",      "T\?1r",   "t%",     "t|",       "ta",      "Ta",
    "THA=",    "tqtS5A", "tTWsS",  "U\"+a4",  "ua",     "Ua",      "us\"",   "user id",  "user_id", "user-id",
    "user.id", "userid", "userId", "USERID",  "v-_4@B", "V-)",     "v:",     "V*K",      "va",      "Va",
    "VB",      "vx",     "W",      "w2(naP",  "wa",     "Wa",      "wX!l",   "X",        "X]v",     "xa",
    "Xa",      "xUR ",   "xyz",    "xyZ",     "xYz",    "xYZ",     "Xyz",    "XyZ",      "XYz",     "XYZ",
    "y",       "Y",      "Y4#S1",  "Y8O+o",   "ya",     "Ya",      "yjPV",   "yObt{",    "z",       "z*wJ",
    "Z~\"El2", "za",     "Za",     "ZI4p!",   "ZoU",    "zSOF7Y",  "ZY7",
};

static int sign(int x) {
    return (x > 0) - (x < 0);
}

static int collate(const char *a, const char *b) {
    return nc_route_collate(a, strlen(a), b, strlen(b));
}
static int collate_icu(const char *a, const char *b) {
    return nc_route_collate_icu(a, strlen(a), b, strlen(b));
}

/* Route of the pattern written as JSON text (or, when it is no JSON, the raw text), via nc_route_from_user.
 */
static void assert_user_route(const char *pattern, const char *want) {
    char *r = NULL;
    int rc = nc_route_from_user(pattern, &r);
    if (rc != 0 || strcmp(r, want) != 0)
        print_error("pattern %s: got rc %d route %s, want %s\n", pattern, rc, r ? r : "(null)", want);
    assert_int_equal(rc, 0);
    assert_string_equal(r, want);
    free(r);
}

static void assert_user_einval(const char *pattern) {
    char *r = (char *)1;
    assert_int_equal(nc_route_from_user(pattern, &r), NC_EINVAL);
    assert_null(r);
}

/* ---- routes.tsv: NestJS's own output ------------------------------------------------------------- */

static void test_routes_tsv(void **state) {
    (void)state;
    const char *path = NESTC_SOURCE_DIR "/tests/unit/data/routes.tsv";
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rows = 0, bad = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        rows++;
        if (line[n - 1] == '\n') line[--n] = '\0';
        char *tab = strchr(line, '\t');
        if (!tab) fail_msg("routes.tsv line %d has no tab", rows);
        *tab = '\0';
        const char *pattern = line, *want = tab + 1;

        json_t *v = NULL;
        char err[160];
        if (nc_json_parse(pattern, strlen(pattern), &v, err, sizeof err) != 0)
            fail_msg("routes.tsv line %d: %s", rows, err);
        char *r1 = NULL, *r2 = NULL;
        int rc1 = nc_route_from_value(v, &r1);
        int rc2 = nc_route_from_text(pattern, strlen(pattern), &r2);
        json_decref(v);
        if (rc1 || rc2 || strcmp(r1, want) || strcmp(r2, want)) {
            print_error("routes.tsv line %d: pattern %s\n  want %s\n  got  %s (rc %d) / %s (rc %d)\n", rows,
                        pattern, want, r1 ? r1 : "(null)", rc1, r2 ? r2 : "(null)", rc2);
            bad++;
        }
        free(r1);
        free(r2);
    }
    free(line);
    fclose(f);
    print_message("routes.tsv: %d rows, %d mismatches\n", rows, bad);
    assert_true(rows >= 250);
    assert_int_equal(bad, 0);
}

/* ---- spec §3.1 table ------------------------------------------------------------------------------ */

static void test_spec_table(void **state) {
    (void)state;
    assert_user_route("sum", "sum");
    assert_user_route("42", "42");
    assert_user_route("{\"cmd\":\"sum\"}", "{\"cmd\":\"sum\"}");
    assert_user_route("{\"role\":\"math\",\"cmd\":\"sum\"}", "{\"cmd\":\"sum\",\"role\":\"math\"}");
    assert_user_route("{\"b\":1,\"a\":\"x\",\"c\":{\"z\":1,\"y\":[2,1]}}",
                      "{\"a\":\"x\",\"b\":1,\"c\":{\"y\":{\"0\":2,\"1\":1},\"z\":1}}");
    assert_user_route("{\"s\":\"x\",\"n\":1,\"t\":true,\"nul\":null,\"arr\":[1,\"a\"],\"o\":{}}",
                      "{\"arr\":{\"0\":1,\"1\":\"a\"},\"n\":1,\"nul\":null,\"o\":{},\"s\":\"x\",\"t\":true}");
    assert_user_route("{\"k\\\"ey\":\"va\\\"l\\\\ue\"}", "{\"k\\\"ey\":\"va\\\"l\\\\ue\"}");
    assert_user_route("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":1}}}}}}}",
                      "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":[MAX_DEPTH_REACHED]}}}}}}");
    assert_user_route(
        "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,\"k\":11,"
        "\"l\":12,\"m\":13,\"n\":14,\"o\":15,\"p\":16,\"q\":17,\"r\":18,\"s\":19,\"t\":20,\"u\":21}",
        "[TOO_MANY_KEYS]");
    /* number texts (§3.1.2) */
    assert_user_route("1.5", "1.5");
    assert_user_route("1e21", "1e+21");
    assert_user_route("{\"n\":1e21,\"m\":-0.0,\"s\":1.5e-7,\"i\":5.0}",
                      "{\"i\":5,\"m\":0,\"n\":1e+21,\"s\":1.5e-7}");
    /* control characters are not escaped in routes (§3.1.6) */
    assert_user_route("{\"a\\tb\":\"x\\ny\"}", "{\"a\tb\":\"x\ny\"}");
}

static void test_values(void **state) {
    (void)state;
    char *r = NULL;
    json_t *v = json_integer(INT64_MAX); /* JavaScript holds the nearest double */
    assert_int_equal(nc_route_from_value(v, &r), 0);
    assert_string_equal(r, "9223372036854776000");
    free(r);
    json_decref(v);
    v = json_real(-0.0);
    assert_int_equal(nc_route_from_value(v, &r), 0);
    assert_string_equal(r, "0");
    free(r);
    json_decref(v);
    v = json_pack("{s:s, s:[i,b,n]}", "Cmd", "x", "cmd", 1, 1);
    assert_int_equal(nc_route_from_value(v, &r), 0);
    assert_string_equal(r, "{\"cmd\":{\"0\":1,\"1\":true,\"2\":null},\"Cmd\":\"x\"}");
    free(r);
    json_decref(v);
    v = json_string("{\"cmd\":\"sum\"}"); /* a string pattern is its own route, JSON or not */
    assert_int_equal(nc_route_from_value(v, &r), 0);
    assert_string_equal(r, "{\"cmd\":\"sum\"}");
    free(r);
    json_decref(v);

    /* top-level true/false/null are returned unconverted by NestJS and never match */
    json_t *bad[] = {json_true(), json_false(), json_null(), json_stringn("a\0b", 3),
                     json_pack("{s:s%}", "k", "a\0b", (size_t)3)};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = (char *)1;
        assert_int_equal(nc_route_from_value(bad[i], &r), NC_EINVAL);
        assert_null(r);
        json_decref(bad[i]);
    }
    assert_int_equal(nc_route_from_value(NULL, &r), NC_EINVAL);
    assert_int_equal(nc_route_from_value(json_true(), NULL), NC_EINVAL);
    assert_int_equal(nc_route_from_text(NULL, 1, &r), NC_EINVAL);
    assert_int_equal(nc_route_from_user(NULL, &r), NC_EINVAL);
}

/* ---- spec §3.2 orders ----------------------------------------------------------------------------- */

static void test_spec_orders(void **state) {
    (void)state;
    const char *o1[] = {"_x", "1", "10", "2", "a", "A", "b", "B", "e", "\303\251" /* é */, "f"};
    const char *o2[] = {"a_b", "a-b", "ab", "aB", "Ab"};
    for (size_t i = 0; i + 1 < sizeof o1 / sizeof *o1; i++) {
        assert_int_equal(collate(o1[i], o1[i + 1]), -1);
        assert_int_equal(collate(o1[i + 1], o1[i]), 1);
    }
    for (size_t i = 0; i + 1 < sizeof o2 / sizeof *o2; i++) {
        assert_int_equal(collate(o2[i], o2[i + 1]), -1);
        assert_int_equal(collate(o2[i + 1], o2[i]), 1);
    }
    assert_user_route(
        "{\"f\":0,\"\303\251\":0,\"e\":0,\"B\":0,\"b\":0,\"A\":0,\"a\":0,\"2\":0,\"10\":0,\"1\":0,\"_x\":0}",
        "{\"_x\":0,\"1\":0,\"10\":0,\"2\":0,\"a\":0,\"A\":0,\"b\":0,\"B\":0,\"e\":0,\"\303\251\":0,\"f\":0}");
    assert_user_route("{\"Ab\":1,\"aB\":2,\"ab\":3,\"a-b\":4,\"a_b\":5}",
                      "{\"a_b\":5,\"a-b\":4,\"ab\":3,\"aB\":2,\"Ab\":1}");
    /* lowercase letters and digits alone: byte order */
    assert_user_route("{\"b2\":0,\"a10\":0,\"a2\":0,\"0\":0}", "{\"0\":0,\"a10\":0,\"a2\":0,\"b2\":0}");
}

/* Keys that collate equal keep JavaScript's Object.keys order: integer-index keys first, numerically,
 * then insertion order (Array.prototype.sort is stable). */
static void test_collation_ties(void **state) {
    (void)state;
    assert_int_equal(collate("e\314\201", "\303\251"), 0); /* e + U+0301 vs precomposed é */
    assert_int_equal(collate("1\302\255", "1"), 0);        /* U+00AD soft hyphen is ignorable */
    assert_int_equal(collate("a\001", "a"), 0);            /* so are control characters */
    assert_user_route("{\"e\314\201\":1,\"\303\251\":2}", "{\"e\314\201\":1,\"\303\251\":2}");
    assert_user_route("{\"\303\251\":1,\"e\314\201\":2}", "{\"\303\251\":1,\"e\314\201\":2}");
    assert_user_route("{\"1\302\255\":\"soft\",\"1\":\"plain\"}", "{\"1\":\"plain\",\"1\302\255\":\"soft\"}");
    /* checked with Node: "5" is an index key, so it precedes "5\u0001" whatever the insertion order */
    assert_user_route("{\"b\\u0001\":1,\"5\\u0001\":2,\"b\":3,\"5\":4}",
                      "{\"5\":4,\"5\001\":2,\"b\001\":1,\"b\":3}");
}

/* ---- spec §3.3 lookup ----------------------------------------------------------------------------- */

static void test_lookup(void **state) {
    (void)state;
    char *a = NULL, *b = NULL;
    const char *p1 = "{\"role\":\"math\",\"cmd\":\"sum\"}", *p2 = "{\"cmd\":\"sum\",\"role\":\"math\"}";
    assert_int_equal(nc_route_from_text(p1, strlen(p1), &a), 0);
    assert_int_equal(nc_route_from_text(p2, strlen(p2), &b), 0);
    assert_string_equal(a, b);
    assert_string_equal(a, "{\"cmd\":\"sum\",\"role\":\"math\"}");
    free(a);
    free(b);
    assert_user_route("42", "42");
    assert_user_route("\"42\"", "42");
    assert_user_route("\"\\\"quoted\\\"\"",
                      "\"quoted\""); /* "\"quoted\"" is the string "quoted" with quotes */
    assert_user_route("\"quoted\"", "quoted");
    assert_user_route("user_created", "user_created");
    assert_user_route(" 42 ", "42");
    assert_user_route(" sum", " sum");
    assert_user_route("", "");
    assert_user_route("42abc", "42abc");
    assert_user_route("-", "-");
    assert_user_route("{cmd:'sum'}", "{cmd:'sum'}");
    assert_user_route("{\"cmd\":\"sum\"", "{\"cmd\":\"sum\"");
    assert_user_route("tru", "tru");
    assert_user_route("nullable", "nullable");
    assert_user_route("false!", "false!");
    assert_user_route("notification", "notification");
    assert_user_route("123456789012345678901", "123456789012345680000");
    assert_user_route("[1,\"a\"]", "{\"0\":1,\"1\":\"a\"}");
    assert_user_einval("true");
    assert_user_einval("false");
    assert_user_einval(" null\n");
    assert_user_einval("\"a\\u0000b\"");
    /* JSON that JSON.parse takes and that is no route: no raw-text fallback */
    assert_user_einval("{\"a\\u0000\":1}");
    /* 1e400 is JSON.parse's Infinity, a number: String(Infinity) */
    assert_user_route("1e400", "Infinity");
    assert_user_route("{\"n\":-1e400}", "{\"n\":-Infinity}");
    /* a lone surrogate is a string like any other (held as WTF-8), and deep nesting is JSON too: the
     * route stops at NestJS's depth */
    assert_user_route("\"\\ud800\"", "\xed\xa0\x80");
    char deep[6001];
    memset(deep, '[', 3000);
    memset(deep + 3000, ']', 3000);
    deep[6000] = '\0';
    assert_user_route(deep, "{\"0\":{\"0\":{\"0\":{\"0\":{\"0\":{\"0\":[MAX_DEPTH_REACHED]}}}}}}");

    /* not NUL-terminated input */
    char *r = NULL;
    assert_int_equal(nc_route_from_text("{\"cmd\":\"sum\"}garbage", 13, &r), 0);
    assert_string_equal(r, "{\"cmd\":\"sum\"}");
    free(r);
    assert_int_equal(nc_route_from_text("a\0b", 3, &r), NC_EINVAL);
}

/* ---- collation: ASCII table against V8 and ICU ---------------------------------------------------- */

static void test_collation_single_chars(void **state) {
    (void)state;
    assert_int_equal(strlen(ascii_sorted), 95);
    int checked = 0;
    for (int i = 0; i < 95; i++) {
        for (int j = 0; j < 95; j++) {
            int want = sign(i - j);
            assert_int_equal(nc_route_collate(&ascii_sorted[i], 1, &ascii_sorted[j], 1), want);
            assert_int_equal(nc_route_collate_icu(&ascii_sorted[i], 1, &ascii_sorted[j], 1), want);
            checked++;
        }
    }
    print_message("single characters: %d pairs\n", checked);
}

static void test_collation_strings(void **state) {
    (void)state;
    size_t n = sizeof node_sorted / sizeof *node_sorted;
    long checked = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            int want = sign((int)i - (int)j);
            int got = collate(node_sorted[i], node_sorted[j]);
            if (got != want)
                fail_msg("collate(\"%s\", \"%s\") = %d, V8 says %d", node_sorted[i], node_sorted[j], got,
                         want);
            got = collate_icu(node_sorted[i], node_sorted[j]);
            if (got != want)
                fail_msg("ICU(\"%s\", \"%s\") = %d, V8 says %d", node_sorted[i], node_sorted[j], got, want);
            checked++;
        }
    }
    print_message("V8-sorted strings: %zu strings, %ld pairs\n", n, checked);
}

/* Random printable-ASCII strings: the table must agree with ICU (which agrees with V8 above). */
static void test_collation_random_vs_icu(void **state) {
    (void)state;
    static const char *const alphabets[] = {"aAbB_-. ", "aAzZ09", "abAB", NULL};
    uint32_t seed = 12345;
    char a[9], b[9];
    long checked = 0;
    for (int k = 0; k < 300000; k++) {
        char *s[2] = {a, b};
        for (int t = 0; t < 2; t++) {
            seed = seed * 1103515245u + 12345u;
            const char *alpha = alphabets[(seed >> 16) % 4];
            seed = seed * 1103515245u + 12345u;
            size_t len = 1 + (seed >> 16) % 8;
            for (size_t i = 0; i < len; i++) {
                seed = seed * 1103515245u + 12345u;
                unsigned r = seed >> 16;
                s[t][i] = alpha ? alpha[r % strlen(alpha)] : (char)(0x20 + r % 95);
            }
            s[t][len] = '\0';
        }
        if (k % 3 == 0) memcpy(b, a, strlen(a) / 2); /* shared prefixes */
        int want = collate_icu(a, b), got = collate(a, b);
        if (got != want) fail_msg("collate(\"%s\", \"%s\") = %d, ICU says %d", a, b, got, want);
        checked++;
    }
    print_message("random ASCII pairs against ICU: %ld\n", checked);
}

/* Non-ASCII keys go through ICU; its collator is opened lazily, once, from whichever thread is first. */
static void *route_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < 200; i++) {
        char *r = NULL;
        if (nc_route_from_user("{\"\303\251\":1,\"f\":2,\"e\":3,\"\303\237\":4,\"ss\":5}", &r))
            return (void *)1;
        int ok = strcmp(r, "{\"e\":3,\"\303\251\":1,\"f\":2,\"ss\":5,\"\303\237\":4}") == 0;
        free(r);
        if (!ok) return (void *)1;
    }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&t[i], NULL, route_thread, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *res = (void *)1;
        assert_int_equal(pthread_join(t[i], &res), 0);
        assert_null(res);
    }
}

/* ---- without ICU ----------------------------------------------------------------------------------
 * Run in a child process whose NESTC_ICU_LIBRARY names a library that does not exist: what a machine without
 * libicu sees. Every pattern must still have a route, the same whatever the key order, and be answered. */

#define NO_ICU_LIB "libnestc-test-no-such-icu.so"

static int route_warnings;
static char route_warning[1024];

static void record_log(void *user, nc_log_level level, const char *component, const char *message) {
    (void)user;
    if (level == NC_LOG_WARN && strcmp(component, "Route") == 0) {
        route_warnings++;
        snprintf(route_warning, sizeof route_warning, "%s", message);
    }
}

/* Sorted by the fallback order: printable ASCII by the table, then other code points by value, case last. */
static const char *const fallback_sorted[] = {
    "_",
    "a",
    "A",
    "ab",
    "aB",
    "Ab",
    "b",
    "e",
    "f",
    "ss",
    "z",
    "Z",
    "z\001",
    "z\303\251",
    "\001",
    "\177",
    "\303\237",
    "\303\251",
    "\303\251a",
    "\303\251\303\251",
    "\344\270\255",
    "\360\237\230\200",
};

static void test_no_icu_collation(void **state) {
    (void)state;
    assert_int_equal(nc_route_icu_available(), 0);
    assert_int_equal(route_warnings, 1); /* one warning, naming the library */
    assert_non_null(strstr(route_warning, NO_ICU_LIB));
    size_t n = sizeof fallback_sorted / sizeof *fallback_sorted;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            int want = i < j ? -1 : i > j, got = collate(fallback_sorted[i], fallback_sorted[j]);
            if (got != want)
                fail_msg("collate(\"%s\", \"%s\") = %d, want %d", fallback_sorted[i], fallback_sorted[j], got,
                         want);
        }
    assert_int_equal(route_warnings, 1);
}

/* All 720 insertion orders of six keys give one route; the ASCII keys keep NestJS's order. */
static void test_no_icu_routes(void **state) {
    (void)state;
    static const char *const keys[6] = {"\303\251", "f", "e", "\303\237", "ss", "B"};
    const char *want = "{\"B\":5,\"e\":2,\"f\":1,\"ss\":4,\"\303\237\":3,\"\303\251\":0}";
    int perm[6] = {0, 1, 2, 3, 4, 5}, c[6] = {0}, checked = 0;
    for (int i = 0;;) { /* Heap's algorithm */
        json_t *o = json_object();
        for (int k = 0; k < 6; k++) json_object_set_new(o, keys[perm[k]], json_integer(perm[k]));
        char *r = NULL;
        assert_int_equal(nc_route_from_value(o, &r), 0);
        assert_string_equal(r, want);
        free(r);
        json_decref(o);
        checked++;
        while (i < 6 && c[i] >= i) c[i++] = 0;
        if (i == 6) break;
        int j = i % 2 ? c[i] : 0, t = perm[j];
        perm[j] = perm[i];
        perm[i] = t;
        c[i]++;
        i = 1;
    }
    assert_int_equal(checked, 720);
    char *r = NULL;
    assert_int_equal(nc_route_from_user("{\"\303\251\":{\"\344\270\255\":1,\"a\":2},\"cmd\":\"x\"}", &r), 0);
    assert_string_equal(r, "{\"cmd\":\"x\",\"\303\251\":{\"a\":2,\"\344\270\255\":1}}");
    free(r);
    assert_int_equal(route_warnings, 1);
}

static void h_accented(nc_request *req, const nc_msg *m, void *u) {
    (void)m;
    (void)u;
    nc_reply(req, json_string("answered"));
}

/* A request whose pattern has non-ASCII keys reaches its handler, its keys in another order than the
 * handler's; the client routes it too (nc_client_send used to fail with NC_ENOMEM). */
static void test_no_icu_request(void **state) {
    (void)state;
    tcp_server_new(NULL);
    assert_int_equal(
        nc_server_message(srv, "{\"\303\251t\303\251\":1,\"cmd\":\"sum\",\"\303\237\":2}", h_accented, NULL),
        0);
    tcp_listen_connect();
    call c = call_new();
    assert_int_equal(nc_client_send(cli, "{\"\303\237\":2,\"cmd\":\"sum\",\"\303\251t\303\251\":1}", NULL,
                                    NULL, on_value, on_done, &c),
                     0);
    assert_true(run_until_ms(&c.done, 1, 5000));
    assert_int_equal(c.err, 0);
    assert_string_equal(json_string_value(json_array_get(c.values, 0)), "answered");
    call_free(&c);
    tcp_free();
    assert_int_equal(route_warnings, 1);
}

/* A pattern text that is no UTF-8 is refused as invalid, not reported as out of memory (the CLI printed
 * "out of memory" for `nestc send URL $'a\xff'`). */
static void test_client_pattern_not_utf8(void **state) {
    (void)state;
    tcp_server_new(NULL);
    tcp_listen_connect();
    call c = call_new();
    /* results first, asserts after the cleanup: a failed assert must not leave the loop busy */
    int r1 = nc_client_send(cli, "a\377b", NULL, NULL, on_value, on_done, &c);
    int r2 = nc_client_send(cli, "{\"a\377\":1}", NULL, NULL, on_value, on_done, &c);
    int r3 = nc_client_emit(cli, "a\377b", NULL, NULL, NULL, NULL);
    tcp_free();
    run_until_ms(&c.done, 2, 100); /* let calls that were (wrongly) accepted end */
    call_free(&c);
    assert_int_equal(r1, NC_EINVAL);
    assert_int_equal(r2, NC_EINVAL);
    assert_int_equal(r3, NC_EINVAL);
}

static int no_icu_setup(void **state) {
    int r = loop_setup(state);
    nc_log_set_default(record_log, NULL, NC_LOG_WARN);
    return r;
}

/* The group without ICU, in a child process (the library is chosen once per process). Returns whether it
 * failed. */
static int run_without_icu(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_icu_collation),
        cmocka_unit_test(test_no_icu_routes),
        cmocka_unit_test(test_no_icu_request),
    };
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        setenv("NESTC_ICU_LIBRARY", NO_ICU_LIB, 1);
        int r = cmocka_run_group_tests_name("route without ICU", tests, no_icu_setup, loop_teardown);
        fflush(stdout);
        fflush(stderr);
        _exit(r ? 1 : 0);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return 1;
    return !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}

int main(void) {
    int no_icu_failed = run_without_icu(); /* first: nothing has loaded ICU in this process yet */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads), /* first, so the collator is opened concurrently */
        cmocka_unit_test(test_routes_tsv),
        cmocka_unit_test(test_spec_table),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_spec_orders),
        cmocka_unit_test(test_collation_ties),
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_collation_single_chars),
        cmocka_unit_test(test_collation_strings),
        cmocka_unit_test(test_collation_random_vs_icu),
    };
    const struct CMUnitTest client_tests[] = {
        cmocka_unit_test(test_client_pattern_not_utf8),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    failed |= cmocka_run_group_tests_name("client patterns", client_tests, loop_setup, loop_teardown);
    return failed || no_icu_failed;
}
