/* JavaScript-compatible JSON writing and number text. Every expected string below was produced by Node 20:
 * JSON.stringify(JSON.parse(input)) for the writer table, String(x) for the number table (inputs given as
 * IEEE-754 bit patterns). Non-ASCII bytes are written as octal escapes to keep this file ASCII. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "codec/json_build.h"
#include "codec/json_write.h"
#include "nestc/error.h"
#include "util/buf.h"

typedef struct {
    const char *input; /* JSON text read with nc_json_parse */
    const char *node;  /* JSON.stringify(JSON.parse(input)) */
} write_case;

static const write_case write_cases[] = {
    {"null", "null"},
    {"true", "true"},
    {"false", "false"},
    {"0", "0"},
    {"-0", "0"},
    {"1", "1"},
    {"-1", "-1"},
    {"42", "42"},
    {"-0.0", "0"},
    {"5.0", "5"},
    {"0.1", "0.1"},
    {"-0.1", "-0.1"},
    {"1.5", "1.5"},
    {"3.14159", "3.14159"},
    {"1e21", "1e+21"},
    {"1e20", "100000000000000000000"},
    {"-1e21", "-1e+21"},
    {"1.5e-7", "1.5e-7"},
    {"1e-7", "1e-7"},
    {"1e-6", "0.000001"},
    {"0.000001234", "0.000001234"},
    {"123456789012345678901", "123456789012345680000"},
    {"123456789012345680000", "123456789012345680000"},
    {"-123456789012345678901", "-123456789012345680000"},
    {"9007199254740992", "9007199254740992"},
    {"9007199254740993", "9007199254740992"},
    {"-9007199254740992", "-9007199254740992"},
    {"9007199254740994", "9007199254740994"},
    {"9223372036854775807", "9223372036854776000"},
    {"-9223372036854775808", "-9223372036854776000"},
    {"18446744073709551615", "18446744073709552000"},
    {"1e308", "1e+308"},
    {"1.7976931348623157e308", "1.7976931348623157e+308"},
    {"5e-324", "5e-324"},
    {"2.2250738585072014e-308", "2.2250738585072014e-308"},
    {"1e-400", "0"},
    {"0.30000000000000004", "0.30000000000000004"},
    {"100.25", "100.25"},
    {"1E3", "1000"},
    {"12.5e-1", "1.25"},
    {"6.02214076e23", "6.02214076e+23"},
    {"-4.35", "-4.35"},
    {"\"\"", "\"\""},
    {"\"abc\"", "\"abc\""},
    {"\"a\\\"b\"", "\"a\\\"b\""},
    {"\"a\\\\b\"", "\"a\\\\b\""},
    {"\"\\/\"", "\"/\""},
    {"\"\\b\\f\\n\\r\\t\"", "\"\\b\\f\\n\\r\\t\""},
    {"\"\\u0000\"", "\"\\u0000\""},
    {"\"\\u0001\\u0002\\u001f\"", "\"\\u0001\\u0002\\u001f\""},
    {"\"\\u000b\\u000e\\u001b\"", "\"\\u000b\\u000e\\u001b\""},
    {"\"\\u007f\"", "\"\177\""},
    {"\"\\u0080\"", "\"\302\200\""},
    {"\"\303\251\"", "\"\303\251\""},
    {"\"\346\227\245\346\234\254\350\252\236\"", "\"\346\227\245\346\234\254\350\252\236\""},
    {"\"\\u2028\\u2029\"", "\"\342\200\250\342\200\251\""},
    {"\"\360\237\230\200\"", "\"\360\237\230\200\""},
    {"\"\\ud83d\\ude00\"", "\"\360\237\230\200\""},
    {"\"\\u00e9\\u00df\"", "\"\303\251\303\237\""},
    {"\"tab\\there\"", "\"tab\\there\""},
    {"\"line\\nbreak\"", "\"line\\nbreak\""},
    {"\"<script>&</script>\"", "\"<script>&</script>\""},
    {"\"'\"", "\"'\""},
    {"[]", "[]"},
    {"{}", "{}"},
    {"[1,\"a\",null,true,false,1.5]", "[1,\"a\",null,true,false,1.5]"},
    {"{\"a\":1,\"b\":[1,2,{\"c\":\"d\"}],\"e\":{}}", "{\"a\":1,\"b\":[1,2,{\"c\":\"d\"}],\"e\":{}}"},
    {"{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2,3],\"id\":\"0c6e43dc55e823da85283\"}",
     "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2,3],\"id\":\"0c6e43dc55e823da85283\"}"},
    {"{\"z\":1,\"a\":2,\"m\":3}", "{\"z\":1,\"a\":2,\"m\":3}"},
    {"{\"k\\\"ey\":\"v\\\\al\",\"\\n\":\"\\u0007\"}", "{\"k\\\"ey\":\"v\\\\al\",\"\\n\":\"\\u0007\"}"},
    {"[[[[[]]]]]", "[[[[[]]]]]"},
    {"{\"a\":{\"b\":{\"c\":{\"d\":{}}}}}", "{\"a\":{\"b\":{\"c\":{\"d\":{}}}}}"},
    {"{\"response\":{\"nested\":[1e21,-0.0,0.5,9007199254740993]},\"isDisposed\":true,\"id\":\"x\"}",
     "{\"response\":{\"nested\":[1e+21,0,0.5,9007199254740992]},\"isDisposed\":true,\"id\":\"x\"}"},
    {"[-1.5e-300,1.5e300,-123456.789]", "[-1.5e-300,1.5e+300,-123456.789]"},
    {"{\"\303\251\":\"\303\237\",\"\346\227\245\346\234\254\":\"\360\237\230\200\",\"\\u2028\":\"\\u0019\"}",
     "{\"\303\251\":\"\303\237\",\"\346\227\245\346\234\254\":\"\360\237\230\200\",\"\342\200\250\":"
     "\"\\u0019\"}"},
    {"  [ 1 , 2 ]  ", "[1,2]"},
};

typedef struct {
    uint64_t bits;    /* the double */
    const char *node; /* String(x) */
} number_case;

static const number_case number_cases[] = {
    {0x0000000000000001ULL, "5e-324"},
    {0x0010000000000000ULL, "2.2250738585072014e-308"},
    {0x13e0000000000000ULL, "5.940911144672375e-213"},
    {0x1480000000000000ULL, "6.083493012144512e-210"},
    {0x4340000000000000ULL, "9007199254740992"},
    {0xc3e0000000000000ULL, "-9223372036854776000"},
    {0x43f0000000000000ULL, "18446744073709552000"},
    {0x0000000000000000ULL, "0"},
    {0x3fb999999999999aULL, "0.1"},
    {0x444b1ae4d6e2ef50ULL, "1e+21"},
    {0x3e7ad7f29abcaf48ULL, "1e-7"},
    {0x3e8421f5f40d8376ULL, "1.5e-7"},
    {0x441ac53a7e04bcdaULL, "123456789012345680000"},
    {0x4415af1d78b58c40ULL, "100000000000000000000"},
    {0x3eb0c6f7a0b5ed8dULL, "0.000001"},
    {0x7ff8000000000000ULL, "NaN"},
    {0x7ff0000000000000ULL, "Infinity"},
    {0xfff0000000000000ULL, "-Infinity"},
    {0x7fefffffffffffffULL, "1.7976931348623157e+308"},
    {0x4340000000000001ULL, "9007199254740994"},
    {0x4596d6ace7c6739bULL, "1.767049216e+27"},
    {0xbc79030077d60b80ULL, "-2.1694214040458974e-17"},
    {0x4125ce52f0a3d70aULL, "714537.47"},
    {0x4139015f00000000ULL, "1638751"},
    {0x4128ecfc00000000ULL, "816766"},
    {0x4ba4c8000d67be40ULL, "2.5477739346484905e+56"},
    {0xe49786005f723680ULL, "-3.7235600947029924e+176"},
    {0xc4a78c80c71b5900ULL, "-5.560312634597373e+22"},
    {0x41ac19e400000000ULL, "235729408"},
    {0x413edafd00000000ULL, "2022141"},
    {0xef6c4f008ab46700ULL, "-5.364943457009574e+228"},
    {0x43dab537a5904000ULL, "7698022400000000000"},
    {0x4137aa8d916872b0ULL, "1550989.568"},
    {0x3f5d4a586591f2ebULL, "0.001787744832"},
    {0xd423d40016d85400ULL, "-2.1176310427564383e+97"},
    {0x40f3c290ff972474ULL, "80937.0624"},
    {0xdf5e4fb072423700ULL, "-2.4805169814157793e+151"},
    {0x00239c00c47adc80ULL, "5.454041719032911e-308"},
    {0x413ddda2d1eb851fULL, "1957282.82"},
    {0xd333bf4094e33600ULL, "-6.436081716995046e+92"},
    {0x6c1af10007c31980ULL, "5.6686184274986805e+212"},
    {0x43774e29badcc000ULL, "104957849600000000"},
    {0xc3a94580e74f8200ULL, "-910501677650477000"},
    {0x46d218d17b23c976ULL, "1.46819872e+33"},
    {0x43ee3f032dd1dde0ULL, "17435713920000000000"},
    {0x973d097846357880ULL, "-9.711234956921509e-197"},
    {0x43d988cd5b590400ULL, "7359784960000000000"},
    {0x47a3ab498e2377f6ULL, "1.307235328e+37"},
    {0x9510b00012aa9000ULL, "-3.2485854850761665e-207"},
    {0xa5fc3180fcf27e70ULL, "-1.0412352939079103e-125"},
    {0x7b42ab00dc72d300ULL, "5.551920943444975e+285"},
    {0x413b5f2872b020c5ULL, "1793832.448"},
    {0x40e86ae000000000ULL, "50007"},
    {0x9fd88880edf8dd00ULL, "-2.85901709257686e-155"},
    {0xc4a74a8066255880ULL, "-5.499437014550143e+22"},
    {0x9a17d90017b82100ULL, "-5.612396869151452e-183"},
    {0x42b356e0c6300000ULL, "21263859200000"},
    {0x401ca60cc4898753ULL, "7.16215808"},
    {0x0c3e2e40d8303180ULL, "1.0538349175037597e-249"},
    {0x40680170bb53fe85ULL, "192.0450112"},
    {0x40ff6b4fd70a3d71ULL, "128692.99"},
    {0xd6ba98008492f880ULL, "-6.2456572868901195e+109"},
    {0x12c547723e5c1880ULL, "3.014020083472597e-218"},
    {0x99eff800ebda5800ULL, "-9.40456049389518e-184"},
    {0x7d0bd600f8039940ULL, "2.2222446248110735e+294"},
    {0x3b07c17065d66170ULL, "2.456273672764627e-24"},
    {0x452b6d9625a38836ULL, "1.65792524e+25"},
    {0x97bec700319ad400ULL, "-2.6350811034908654e-194"},
    {0x8ab46700866bdf80ULL, "-4.246234188384365e-257"},
    {0x3fd690ebfe9edf87ULL, "0.352595328"},
    {0x12927000f01fd080ULL, "3.2644162851369115e-219"},
    {0x5209568068f73f00ULL, "1.5751406101124897e+87"},
    {0xcee94a00a3f85a00ULL, "-1.3963100974122362e+72"},
    {0xf4f52740f733de00ULL, "-2.4813909195331667e+255"},
    {0x47af202d71203f3bULL, "2.0686571519999998e+37"},
    {0x412d290200000000ULL, "955521"},
    {0x3e1a7d7a89803e09ULL, "1.541929728e-9"},
    {0x411f5c3c00000000ULL, "513807"},
    {0xc01b640013116400ULL, "-6.84765653413433"},
    {0xed6ed2009f2b8200ULL, "-1.3599534297488743e+219"},
    {0x3d9b3a932faa5f35ULL, "6.19111424e-12"},
    {0xfc6cb600a694e600ULL, "-2.2383775860862722e+291"},
    {0x7e736e80563b1770ULL, "1.3013234805457834e+301"},
    {0xa92498805ed74d80ULL, "-1.7128066572867427e-110"},
    {0x40d44b67ae147ae1ULL, "20781.62"},
    {0x41084f5e353f7ceeULL, "199147.776"},
    {0x4155dc2d70a3d70aULL, "5730485.76"},
    {0x4e7b2d0096f09000ULL, "1.1722525691022308e+70"},
    {0xe95098808d11be00ULL, "-1.9848743715670766e+199"},
    {0x412abc9ba3d70a3dULL, "876109.82"},
    {0xe48fb81ad28eb700ULL, "-2.510435967614407e+176"},
    {0xf702520007b50200ULL, "-1.846031407381545e+265"},
    {0xbe8bd500b7ba2d00ULL, "-2.0736487359551654e-7"},
    {0xa262f04067d17300ULL, "-4.853301268900111e-143"},
    {0x8eec930053c87b00ULL, "-8.776227288722022e-237"},
    {0x4061ffe959cb4d71ULL, "143.9972352"},
    {0x895dde00cbd5ee00ULL, "-1.4820344946788075e-263"},
    {0x279e86003b153600ULL, "7.565109178475326e-118"},
    {0x1f55d0006cf28640ULL, "9.92951084179959e-158"},
    {0x41352030e5604189ULL, "1384496.896"},
    {0xdd38c280fa401380ULL, "-1.1794099275247022e+141"},
    {0x49dfdf4004bb9600ULL, "7.278294274863397e+47"},
    {0x43861cd0d8943000ULL, "199172249600000000"},
    {0x472982eec7a3bf7fULL, "6.623152639999999e+34"},
    {0x22e6790066f70100ULL, "1.4743023605887103e-140"},
    {0x41d2e186c0000000ULL, "1267079936"},
    {0x41265cc4bd70a3d7ULL, "732770.37"},
    {0x43dc28d3565c5300ULL, "8116416000000000000"},
    {0x419d786466666666ULL, "123607321.6"},
    {0x9540000000000000ULL, "-2.491798737774392e-206"},
    {0x030c17404e128e80ULL, "5.49792408236064e-294"},
    {0x1d58000000000000ULL, "2.543745517141431e-167"},
    {0x43875bc21517a800ULL, "210394035200000000"},
    {0x23536200ac3ddc40ULL, "1.6276425244952332e-138"},
    {0x67a5db403229d739ULL, "1.9476317869563913e+191"},
    {0x46b4703f6d540884ULL, "4.14541376e+32"},
    {0x4342871314918000ULL, "10430131200000000"},
    {0x40ecfc3126e978d5ULL, "59361.536"},
    {0x413d519f00000000ULL, "1921439"},
    {0x43833419573dd800ULL, "172969856000000000"},
    {0x3f2b348af9c28c63ULL, "0.000207559552"},
    {0x453003d20e05e1b2ULL, "1.936085504e+25"},
    {0x232e1180963bacc0ULL, "3.1561808311700818e-139"},
    {0x832a0d4020ab6400ULL, "-2.0395356497286394e-293"},
    {0x41cc2799c0000000ULL, "944714624"},
    {0x1e5aa100270a0c80ULL, "1.8496762352684056e-162"},
    {0x81e5da00bd062a00ULL, "-1.6314623042810103e-299"},
    {0x412ac35c00000000ULL, "876974"},
    {0x3cf8999a731e8bc2ULL, "5.4623001600000004e-15"},
    {0x3f563b5e6a1b1be0ULL, "0.001356928064"},
    {0x44b8fbea13157656ULL, "1.179837952e+23"},
    {0x4126bda147ae147bULL, "745168.64"},
    {0x2488370036fe4f00ULL, "1.066089462476726e-132"},
    {0x4e128e803ecbf700ULL, "1.2507153562048693e+68"},
    {0x413673e600000000ULL, "1471462"},
    {0x41392576c8b43958ULL, "1647990.784"},
    {0x7eaacb005f327940ULL, "1.4354451353822195e+302"},
    {0xd333bf4094e33600ULL, "-6.436081716995046e+92"},
    {0x423ec08730000000ULL, "132079104000"},
    {0x9da35600aa5cc670ULL, "-6.558097355404963e-166"},
    {0xf7952e4099eff800ULL, "-1.0927376794282216e+268"},
    {0x45947d952cdc1501ULL, "1.585380096e+27"},
    {0x441a796d36f689c0ULL, "122091264000000000000"},
    {0x41341f6600000000ULL, "1318758"},
    {0x411ffd3228f5c28fULL, "524108.54"},
    {0x6a428f80fa860000ULL, "7.274082117960195e+203"},
    {0x0d096200d7389200ULL, "7.260616735901979e-246"},
    {0x45c8c140763cab80ULL, "1.5322534662880676e+28"},
    {0x4b74dc007ba46a40ULL, "3.1966910466708484e+55"},
    {0x3d40e746a5826969ULL, "1.201060352e-13"},
    {0x68ccb900b86a1b40ULL, "6.709527739963513e+196"},
    {0xc3a94580e74f8200ULL, "-910501677650477000"},
    {0x42436f8278000000ULL, "166950400000"},
    {0xe0ce0b80206b5c80ULL, "-2.062523226514688e+158"},
    {0x45d28c5b03f6bdb6ULL, "2.29616384e+28"},
    {0x41db518140000000ULL, "1833305344"},
    {0x414008820c49ba5eULL, "2101508.096"},
    {0xe7d500008ec1a000ULL, "-1.4970514342438425e+192"},
    {0x3d1cf53715d6ea6dULL, "2.57197568e-14"},
    {0x58715740ebee3140ULL, "1.0932218615941933e+118"},
    {0x3f907e3a9512a66aULL, "0.0161065248"},
    {0x7bf54600a2602840ULL, "1.29572764286164e+289"},
    {0xaea0bdb0f8c72980ULL, "-4.308758350996625e-84"},
    {0x80575200893c0200ULL, "-5.188943591664565e-307"},
    {0x4738aef578473ad5ULL, "1.2816371199999999e+35"},
    {0x4130ac1fced91687ULL, "1092639.808"},
    {0x67101240f8296f40ULL, "2.7971027176700613e+188"},
    {0x4787f6187ad584f7ULL, "3.98125568e+36"},
    {0x465c4eb108404489ULL, "8.9709696e+30"},
    {0x412c7351eb851eb8ULL, "932264.96"},
    {0x9dd80e00f1a1de00ULL, "-6.526830947244943e-165"},
    {0x412ffea1cccccccdULL, "1048400.9"},
    {0x3d6e9465089796c9ULL, "8.691264e-13"},
    {0x1e3f4040dad1e940ULL, "5.4268289511714896e-163"},
    {0x467d726838af0a84ULL, "3.7328384e+31"},
    {0x4119cb1400000000ULL, "422597"},
    {0x3d78ce1dcc9b679dULL, "1.410009088e-12"},
    {0x413c5328f5c28f5cULL, "1856296.96"},
    {0x82dcb80056549880ULL, "-7.02602788108504e-295"},
    {0x71e2c940e1c02400ULL, "3.914571701721616e+240"},
    {0x8000000000000000ULL, "0"},
    {0x3fe0000000000000ULL, "0.5"},
    {0x3ff8000000000000ULL, "1.5"},
    {0x4011666666666666ULL, "4.35"},
    {0x3fd3333333333333ULL, "0.3"},
    {0x3fe5555555555555ULL, "0.6666666666666666"},
    {0x3fd5555555555555ULL, "0.3333333333333333"},
    {0x3eb0c6f7a0b5ed8dULL, "0.000001"},
    {0x3eb0c6f7a0b5ed8dULL, "0.000001"},
    {0x4415af1d78b58c40ULL, "100000000000000000000"},
    {0x444b1ae4d6e2ef4fULL, "999999999999999900000"},
    {0x444b1ae4d6e2ef50ULL, "1e+21"},
    {0x0000000000000003ULL, "1.5e-323"},
    {0x3c36b082c2148b8eULL, "1.23e-18"},
    {0xbe8421f5f40d8376ULL, "-1.5e-7"},
    {0x4450000000000000ULL, "1.1805916207174113e+21"},
    {0x3eb0000000000000ULL, "9.5367431640625e-7"},
    {0x3fd3333333333334ULL, "0.30000000000000004"},
    {0x0060000000000000ULL,
     "7.120236347223045e-307"}, /* power of two: the next-larger decimal is the shortest */
    {0x0100000000000000ULL,
     "7.291122019556398e-304"}, /* power of two: the next-larger decimal is the shortest */
    {0x0420000000000000ULL,
     "8.209073602596753e-289"}, /* power of two: the next-larger decimal is the shortest */
    {0x0660000000000000ULL,
     "5.641232424577593e-278"}, /* power of two: the next-larger decimal is the shortest */
    {0x0d70000000000000ULL,
     "5.858190679279809e-244"}, /* power of two: the next-larger decimal is the shortest */
    {0x0e80000000000000ULL,
     "7.678447687145631e-239"}, /* power of two: the next-larger decimal is the shortest */
    {0x0eb0000000000000ULL,
     "6.142758149716505e-238"}, /* power of two: the next-larger decimal is the shortest */
    {0x0f50000000000000ULL,
     "6.290184345309701e-235"}, /* power of two: the next-larger decimal is the shortest */
};

static void test_write_table(void **state) {
    (void)state;
    size_t n = sizeof write_cases / sizeof *write_cases;
    nc_buf b = NC_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        const write_case *c = &write_cases[i];
        json_t *v = NULL;
        char err[160];
        if (nc_json_parse(c->input, strlen(c->input), &v, err, sizeof err)) fail_msg("%s: %s", c->input, err);
        nc_buf_reset(&b);
        assert_int_equal(nc_json_write(&b, v), 0);
        const char *got = nc_buf_cstr(&b);
        if (strcmp(got, c->node)) fail_msg("input %s: got %s, Node wrote %s", c->input, got, c->node);
        /* appends: what was in the buffer stays */
        nc_buf_reset(&b);
        assert_int_equal(nc_buf_append_str(&b, "prefix:"), 0);
        assert_int_equal(nc_json_write(&b, v), 0);
        assert_int_equal(b.len, 7 + strlen(c->node));
        assert_memory_equal(b.data, "prefix:", 7);
        assert_memory_equal(b.data + 7, c->node, strlen(c->node));
        json_decref(v);
    }
    nc_buf_free(&b);
    print_message("writer: %zu cases\n", n);
}

static void test_js_number_table(void **state) {
    (void)state;
    size_t n = sizeof number_cases / sizeof *number_cases;
    for (size_t i = 0; i < n; i++) {
        double d;
        memcpy(&d, &number_cases[i].bits, sizeof d);
        char buf[32];
        memset(buf, 'x', sizeof buf);
        size_t len = nc_js_number(d, buf);
        if (strcmp(buf, number_cases[i].node) || len != strlen(buf))
            fail_msg("bits %016llx: got %s, Node wrote %s", (unsigned long long)number_cases[i].bits, buf,
                     number_cases[i].node);
    }
    print_message("numbers: %zu cases\n", n);
}

static void test_js_number_values(void **state) {
    (void)state;
    static const struct {
        double v;
        const char *node;
    } cases[] = {
        {0.1, "0.1"},
        {1e21, "1e+21"},
        {1.5e-7, "1.5e-7"},
        {123456789012345680000.0, "123456789012345680000"},
        {-0.0, "0"},
        {5.0, "5"},
        {1e-6, "0.000001"},
        {1e-7, "1e-7"},
        {-1.5e300, "-1.5e+300"},
        {0.5, "0.5"},
        {1e20, "100000000000000000000"},
        {-123.456, "-123.456"},
        {9007199254740992.0, "9007199254740992"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char buf[32];
        nc_js_number(cases[i].v, buf);
        assert_string_equal(buf, cases[i].node);
    }
}

/* Values built through jansson's API rather than parsed. */
static void test_write_api_values(void **state) {
    (void)state;
    nc_buf b = NC_BUF_INIT;
    char all[131];
    for (int i = 0; i < 128; i++) all[i] = (char)i;
    memcpy(all + 128, "\342\200\250", 3); /* U+2028 */
    json_t *s = json_stringn(all, 128 + 3);
    json_t *tail = json_string("\342\200\251\303\251"); /* U+2029 é */
    assert_non_null(s);
    assert_non_null(tail);
    /* Node: JSON.stringify(String.fromCharCode(0, ..., 127) + "\u2028\u2029\u00e9") */
    static const char node_all[] =
        "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\\u001"
        "0"
        "\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\"
        "u001f "
        "!\\\"#$%&'()*+,-./"
        "0123456789:;<=>\?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"
        "\177\342\200\250\342\200\251\303\251\"";
    nc_buf_reset(&b);
    assert_int_equal(nc_json_write(&b, s), 0);
    b.len--; /* drop the closing quote to append the rest of the same JS string */
    nc_buf tb = NC_BUF_INIT;
    assert_int_equal(nc_json_write(&tb, tail), 0);
    assert_int_equal(nc_buf_append(&b, tb.data + 1, tb.len - 1), 0);
    assert_string_equal(nc_buf_cstr(&b), node_all);
    nc_buf_free(&tb);
    json_decref(s);
    json_decref(tail);

    /* -0 and int64 extremes: Node's JSON.stringify(-0), (2**63), -(2**63) */
    json_t *v = json_pack("[f,I,I,I,I]", -0.0, (json_int_t)INT64_MAX, (json_int_t)INT64_MIN,
                          (json_int_t)9007199254740993LL, (json_int_t)-9007199254740992LL);
    nc_buf_reset(&b);
    assert_int_equal(nc_json_write(&b, v), 0);
    assert_string_equal(nc_buf_cstr(&b),
                        "[0,9223372036854776000,-9223372036854776000,9007199254740992,-9007199254740992]");
    json_decref(v);

    /* keys in insertion order (JavaScript would list the integer-like key "1" first) */
    v = json_pack("{s:i,s:i,s:{}}", "b", 1, "1", 2, "a\"\\", 3);
    nc_buf_reset(&b);
    assert_int_equal(nc_json_write(&b, v), 0);
    assert_string_equal(nc_buf_cstr(&b), "{\"b\":1,\"1\":2,\"a\\\"\\\\\":{}}");
    json_decref(v);
    nc_buf_free(&b);
}

static void test_write_errors(void **state) {
    (void)state;
    nc_buf b = NC_BUF_INIT;
    json_t *v = json_true();
    assert_int_equal(nc_json_write(NULL, v), NC_EINVAL);
    assert_int_equal(nc_json_write(&b, NULL), NC_EINVAL);

    /* 3000 levels (NestJS answers those): written, without recursion; deeper than NC_JSON_MAX_DEPTH
     * (also what a reference cycle would become): refused, buffer untouched */
    json_t *root = json_array(), *cur = root;
    nc_buf want = NC_BUF_INIT;
    assert_int_equal(nc_buf_append_str(&want, "["), 0);
    for (int i = 1; i < 3000; i++) { /* even levels arrays, odd levels objects */
        json_t *next = i % 2 ? json_object() : json_array();
        if (json_is_array(cur))
            json_array_append_new(cur, next);
        else
            json_object_set_new(cur, "k", next);
        if (json_is_object(cur)) assert_int_equal(nc_buf_append_str(&want, "\"k\":"), 0);
        assert_int_equal(nc_buf_append_str(&want, i % 2 ? "{" : "["), 0);
        cur = next;
    }
    json_object_set_new(cur, "n", json_integer(1)); /* level 2999: an object */
    assert_int_equal(nc_buf_append_str(&want, "\"n\":1"), 0);
    for (int i = 2999; i >= 0; i--) assert_int_equal(nc_buf_append_str(&want, i % 2 ? "}" : "]"), 0);
    assert_int_equal(nc_json_write(&b, root), 0);
    assert_int_equal(b.len, want.len);
    assert_memory_equal(b.data, want.data, want.len);
    nc_buf_free(&want);
    json_t *back = NULL;
    assert_int_equal(nc_json_parse(b.data, b.len, &back, NULL, 0), 0);
    assert_true(json_equal(back, root));
    nc_json_free(back);
    for (int i = 3000; i <= NC_JSON_MAX_DEPTH; i++) {
        json_t *next = json_array();
        if (json_is_array(cur))
            json_array_append_new(cur, next);
        else
            json_object_set_new(cur, "k", next);
        cur = next;
    }
    nc_buf_reset(&b);
    assert_int_equal(nc_buf_append_str(&b, "keep"), 0);
    assert_int_equal(nc_json_write(&b, root), NC_EINVAL);
    assert_int_equal(b.len, 4);
    nc_json_free(root);
    nc_buf_free(&b);
}

static void test_parse(void **state) {
    (void)state;
    json_t *v = NULL;
    char err[200];

    /* integers beyond int64 are read as doubles, like JavaScript; the whole document then holds reals */
    const char *big = "{\"a\":123456789012345678901,\"b\":7}";
    assert_int_equal(nc_json_parse(big, strlen(big), &v, err, sizeof err), 0);
    assert_true(json_is_real(json_object_get(v, "a")));
    assert_true(json_real_value(json_object_get(v, "a")) == 123456789012345678901.0);
    json_decref(v);
    assert_int_equal(nc_json_parse("-123456789012345678901", 22, &v, err, sizeof err), 0);
    assert_true(json_real_value(v) == -123456789012345678901.0);
    json_decref(v);
    /* within int64: exact integers */
    assert_int_equal(nc_json_parse("9223372036854775807", 19, &v, NULL, 0), 0);
    assert_true(json_is_integer(v) && json_integer_value(v) == INT64_MAX);
    json_decref(v);
    /* NUL inside strings, any top-level value, not NUL-terminated input */
    assert_int_equal(nc_json_parse("\"a\\u0000b\"xyz", 10, &v, NULL, 0), 0);
    assert_int_equal(json_string_length(v), 3);
    assert_memory_equal(json_string_value(v), "a\0b", 3);
    json_decref(v);

    /* errors: message with position, *out NULL */
    v = (json_t *)1;
    int js = -1;
    assert_int_equal(nc_json_parse_js("{\"a\":}", 6, &v, err, sizeof err, &js), NC_EPROTO);
    assert_null(v);
    assert_int_equal(js, 0);
    assert_true(strncmp(err, "Unexpected token at line 1 column 6: ", 37) == 0);
    /* a too-big integer followed by a syntax error reports the syntax error */
    assert_int_equal(nc_json_parse("[123456789012345678901,]", 24, &v, err, sizeof err), NC_EPROTO);
    assert_non_null(strstr(err, "column 24"));
    /* truncation and no buffer */
    char small[8];
    assert_int_equal(nc_json_parse("nope", 4, &v, small, sizeof small), NC_EPROTO);
    assert_string_equal(small, "Unexpec");
    assert_int_equal(nc_json_parse("nope", 4, &v, NULL, 0), NC_EPROTO);
    assert_int_equal(nc_json_parse("", 0, &v, NULL, 0), NC_EPROTO);
    assert_int_equal(nc_json_parse(NULL, 0, &v, NULL, 0), NC_EPROTO);
    assert_int_equal(nc_json_parse(NULL, 1, &v, NULL, 0), NC_EINVAL);
    assert_int_equal(nc_json_parse("1", 1, NULL, NULL, 0), NC_EINVAL);

    /* texts JSON.parse accepts and jansson refuses: read as JavaScript reads them */
    assert_int_equal(nc_json_parse_js("{\"a\\u0000\":1}", 13, &v, NULL, 0, &js), 0);
    assert_int_equal(js, 0);
    assert_int_equal(json_integer_value(json_object_getn(v, "a\0", 2)), 1);
    json_decref(v);
    /* lone surrogates as WTF-8 (3 bytes); a pair is one UTF-8 character; case does not matter */
    static const struct {
        const char *text, *want;
    } wtf8[] = {
        {"\"\\ud800\"", "\xed\xa0\x80"},
        {"\"\\udc00x\"", "\xed\xb0\x80x"},
        {"\"ab\\uD83D\"", "ab\xed\xa0\xbd"},
        {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80"},
        {"\"\\ude00\\ud83d\"", "\xed\xb8\x80\xed\xa0\xbd"},
        {"\"\\ud83d\\ud83d\\ude00\"", "\xed\xa0\xbd\xf0\x9f\x98\x80"},
        {"\"\\ud83d\\u0041\"", "\xed\xa0\xbd"
                               "A"},
    };
    for (size_t i = 0; i < sizeof wtf8 / sizeof *wtf8; i++) {
        assert_int_equal(nc_json_parse(wtf8[i].text, strlen(wtf8[i].text), &v, NULL, 0), 0);
        assert_true(json_is_string(v));
        assert_int_equal(json_string_length(v), strlen(wtf8[i].want));
        assert_memory_equal(json_string_value(v), wtf8[i].want, strlen(wtf8[i].want));
        json_decref(v);
    }
    /* beyond the double range: Infinity to JavaScript (a real holding it), written back as null; below
     * it: 0; integers beyond int64: doubles */
    assert_int_equal(nc_json_parse("[1e400,-1e400,1e-400,123456789012345678901234567890]", 52, &v, NULL, 0),
                     0);
    assert_true(json_is_real(json_array_get(v, 0)) && json_real_value(json_array_get(v, 0)) == HUGE_VAL);
    assert_true(json_is_real(json_array_get(v, 1)) && json_real_value(json_array_get(v, 1)) == -HUGE_VAL);
    assert_true(json_is_real(json_array_get(v, 2)) && json_real_value(json_array_get(v, 2)) == 0);
    assert_true(json_is_real(json_array_get(v, 3)) &&
                json_real_value(json_array_get(v, 3)) == 1.2345678901234568e29);
    assert_true(json_number_value(json_array_get(v, 0)) + 1 == HUGE_VAL); /* adds as in JavaScript */
    nc_buf ib = NC_BUF_INIT;
    assert_int_equal(nc_json_write(&ib, v), 0);
    assert_int_equal(ib.len, strlen("[null,null,0,1.2345678901234568e+29]"));
    assert_memory_equal(ib.data, "[null,null,0,1.2345678901234568e+29]", ib.len);
    nc_buf_free(&ib);
    json_decref(v);
    /* raw surrogate bytes, or other ill-formed UTF-8, are not text */
    assert_int_equal(nc_json_parse("\"\xed\xa0\x80\"", 5, &v, NULL, 0), NC_EPROTO);
    assert_int_equal(nc_json_parse("\"\xc0\xaf\"", 4, &v, NULL, 0), NC_EPROTO);
    assert_int_equal(nc_json_parse("\"\xf0\x9f\x98\"", 5, &v, NULL, 0), NC_EPROTO);
    /* nesting: NestJS answers at 2100 levels and beyond; the bound is NC_JSON_MAX_DEPTH */
    size_t dn = 2 * (NC_JSON_MAX_DEPTH + 1);
    char *deep = malloc(dn);
    assert_non_null(deep);
    memset(deep, '[', dn / 2);
    memset(deep + dn / 2, ']', dn / 2);
    assert_int_equal(nc_json_parse(deep + 1, dn - 2, &v, NULL, 0), 0); /* exactly the bound */
    nc_json_free(v);
    js = 0;
    assert_int_equal(nc_json_parse_js(deep, dn, &v, err, sizeof err, &js), NC_EPROTO);
    assert_int_equal(js, 1);
    assert_non_null(strstr(err, "maximum nesting depth"));
    free(deep);
    static const char *const js_bad[] = {"{a:1}", "'x'",      "[1,]", "01", "\"\\x\"",
                                         "tru",   "\"a\tb\"", "1 2",  "NaN"};
    for (size_t i = 0; i < sizeof js_bad / sizeof *js_bad; i++) {
        js = 1;
        assert_int_equal(nc_json_parse_js(js_bad[i], strlen(js_bad[i]), &v, NULL, 0, &js), NC_EPROTO);
        assert_int_equal(js, 0);
    }
}

/* A handler may build a string of any bytes with json_stringn_nocheck(). Written raw, ill-formed UTF-8
 * would reach the peer as is: Node decodes it to U+FFFD and the frame's length no longer matches. So the
 * writer writes U+FFFD for each ill-formed sequence, as Node's decoder counts them (WHATWG maximal
 * subparts; expected values from Node: JSON.stringify(Buffer.from(bytes).toString())), and still writes a
 * WTF-8 lone surrogate as \udxxx. */
static void test_write_ill_formed(void **state) {
    (void)state;
    static const struct {
        const char *in;
        size_t n;
        const char *want;
    } cases[] = {
        {"a\377 b", 4, "\"a\357\277\275 b\""},
        {"\303", 1, "\"\357\277\275\""},                                                 /* cut 2-byte */
        {"\342\202", 2, "\"\357\277\275\""},                                             /* cut 3-byte: one */
        {"\340\200\200", 3, "\"\357\277\275\357\277\275\357\277\275\""},                 /* overlong */
        {"\360\237\230x", 4, "\"\357\277\275x\""},                                       /* cut 4-byte */
        {"\300\257", 2, "\"\357\277\275\357\277\275\""},                                 /* C0 lead */
        {"\355\240x", 3, "\"\357\277\275\357\277\275x\""},                               /* cut surrogate */
        {"\364\220\200\200", 4, "\"\357\277\275\357\277\275\357\277\275\357\277\275\""}, /* > U+10FFFF */
        {"\355\237\277", 3, "\"\355\237\277\""},
        {"\355\200", 2, "\"\357\277\275\""}, /* cut U+D000.., at the end: no read past it */
        {"\355", 1, "\"\357\277\275\""},     /* U+D7FF */
        {"\303\251\360\237\230\200", 6, "\"\303\251\360\237\230\200\""}, /* é 😀 */
        {"\355\240\275x\377", 5, "\"\\ud83dx\357\277\275\""},            /* WTF-8 kept */
    };
    nc_buf b = NC_BUF_INIT;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = json_stringn_nocheck(cases[i].in, cases[i].n);
        nc_buf_reset(&b);
        assert_int_equal(nc_json_write(&b, v), 0);
        assert_string_equal(nc_buf_cstr(&b), cases[i].want);
        json_decref(v);
    }
    json_t *o = json_object(); /* keys too */
    json_object_set_new_nocheck(o, "k\377", json_true());
    nc_buf_reset(&b);
    assert_int_equal(nc_json_write(&b, o), 0);
    assert_string_equal(nc_buf_cstr(&b), "{\"k\357\277\275\":true}");
    json_decref(o);
    nc_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_table),      cmocka_unit_test(test_js_number_table),
        cmocka_unit_test(test_js_number_values), cmocka_unit_test(test_write_api_values),
        cmocka_unit_test(test_write_errors),     cmocka_unit_test(test_parse),
        cmocka_unit_test(test_write_ill_formed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
