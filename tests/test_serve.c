/* test_serve.c - hcr serve's request handler (src/serve/) without sockets:
 * base64, Content-Type, query and multipart parsing with their edge cases
 * and bounds; every route, every error with its status and message; the
 * same image sent every way gives the same answer; the metrics text; and
 * many threads handling requests with one shared model. */
#include "glyphs.h"
#include "harness.h"
#include "hcr.h"
#include "serve/serve.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- fixtures */

static hcr_model *model_a, *model_b;
static serve_model models[2];
static serve_metrics metrics;
static serve_ctx ctx;

static void setup(void)
{
    if (model_a) return;
    hcr_set_threads(1);
    CHECK(hcr_model_create("conv8-pool-dense32", 28, 28, 10, 7, &model_a) == HCR_OK);
    CHECK(hcr_model_create("dense16", 28, 28, 3, 9, &model_b) == HCR_OK);
    CHECK(hcr_model_set_meta(model_b, "class_names", "[\"x\", \"y\", \"\\u00e9t\\u00e9\"]") == HCR_OK);
    CHECK(hcr_model_set_meta(model_b, "test_accuracy", "0.875") == HCR_OK);
    CHECK(hcr_model_set_meta(model_b, "dataset", "idx:/some/where") == HCR_OK);
    models[0] = (serve_model){"digits", model_a};
    models[1] = (serve_model){"three", model_b};
    serve_metrics_init(&metrics);
    ctx = (serve_ctx){.models = models,
                      .nmodels = 2,
                      .max_body = 1 << 20,
                      .max_pixels = HCR_IMAGE_MAX_PIXELS,
                      .page = serve_page_html,
                      .page_len = serve_page_html_len,
                      .metrics = &metrics,
                      .started = serve_now()};
}

/* The bytes of a file (freed by the caller). */
static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(len > 0 ? (size_t)len : 1);
    *n = b ? fread(b, 1, (size_t)len, f) : 0;
    fclose(f);
    return b;
}

/* `text` drawn dark on white, w x h, as a PNG file's bytes. */
static uint8_t *png_of(const char *text, int w, int h, size_t *n)
{
    uint8_t *px = malloc((size_t)w * h);
    glyphs_draw(px, w, h, text, h * 0.7, 0, 0, 0, 1, 0, 0);
    const char *path = harness_tmp_path("drawn.png");
    CHECK(hcr_image_write(path, w, h, px) == HCR_OK);
    free(px);
    return slurp(path, n);
}

/* A blank white PNG. */
static uint8_t *blank_png(size_t *n)
{
    uint8_t px[40 * 30];
    memset(px, 255, sizeof px);
    const char *path = harness_tmp_path("blank.png");
    CHECK(hcr_image_write(path, 40, 30, px) == HCR_OK);
    return slurp(path, n);
}

static char *base64(const uint8_t *d, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc(n / 3 * 4 + 5), *p = o;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        *p++ = a[v >> 18];
        *p++ = a[v >> 12 & 63];
        *p++ = a[v >> 6 & 63];
        *p++ = a[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0);
        *p++ = a[v >> 18];
        *p++ = a[v >> 12 & 63];
        *p++ = i + 1 < n ? a[v >> 6 & 63] : '=';
        *p++ = '=';
    }
    *p = '\0';
    return o;
}

typedef struct answer {
    int status;
    char allow[32];
    char type[64];
    char *body;      /* NUL-terminated copy */
    size_t len;
    cJSON *json;     /* parsed when the type is JSON */
} answer;

static answer call(const char *method, const char *path, const char *query, const char *type, const void *body,
                   size_t len)
{
    setup();
    serve_request req = {method, path, query, type, body, len};
    serve_response res;
    serve_handle(&ctx, &req, &res);
    answer a = {.status = res.status};
    snprintf(a.allow, sizeof a.allow, "%s", res.allow);
    snprintf(a.type, sizeof a.type, "%s", res.content_type ? res.content_type : "");
    a.body = malloc(res.body_len + 1);
    memcpy(a.body, res.body, res.body_len);
    a.body[res.body_len] = '\0';
    a.len = res.body_len;
    serve_response_free(&res);
    if (!strcmp(a.type, "application/json")) a.json = cJSON_Parse(a.body);
    return a;
}

static void done(answer *a)
{
    free(a->body);
    cJSON_Delete(a->json);
}

static const char *jstr(const answer *a, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(a->json, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* An error answer: the status, JSON {"error"} containing msg. */
#define CHECK_ERROR(a, code, msg)                                                          \
    do {                                                                                   \
        CHECK_MSG((a).status == (code), "status %d, expected %d: %s", (a).status, code, (a).body); \
        CHECK(!strcmp((a).type, "application/json"));                                      \
        CHECK_CONTAINS(jstr(&(a), "error"), msg);                                          \
    } while (0)

/* ------------------------------------------------------------------ base64 */

static void test_base64(void)
{
    static const struct {
        const char *in, *out;
    } good[] = {
        {"", ""},         {"Zg==", "f"},         {"Zm8=", "fo"},       {"Zm9v", "foo"},
        {"Zm9vYg==", "foob"}, {"Zm9vYmE=", "fooba"}, {"Zm9vYmFy", "foobar"},
        {"Zg", "f"},      {"Zm8", "fo"},         {" Zm9v\r\nYmFy\n", "foobar"}, {"Zm 9v Yg = =", "foob"},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        uint8_t out[32];
        size_t bad = 99;
        long long n = base64_decode(good[i].in, strlen(good[i].in), out, &bad);
        CHECK_MSG(n == (long long)strlen(good[i].out) && !memcmp(out, good[i].out, (size_t)n), "'%s' -> %lld",
                  good[i].in, n);
        CHECK(base64_decoded_max(strlen(good[i].in)) >= strlen(good[i].out));
    }
    /* both alphabets: 0xfb 0xff 0xbf is "+/+/" or "-_-_" */
    uint8_t out[8];
    CHECK(base64_decode("+/+/", 4, out, NULL) == 3 && out[0] == 0xfb && out[1] == 0xff && out[2] == 0xbf);
    CHECK(base64_decode("-_-_", 4, out, NULL) == 3 && out[0] == 0xfb && out[1] == 0xff && out[2] == 0xbf);
    static const struct {
        const char *in;
        size_t at;
    } badcases[] = {
        {"Zm9v!", 4},   /* not in the alphabet */
        {"Z", 1},       /* one sextet is no byte */
        {"Zg=", 3},     /* padding that does not complete the group */
        {"Zh==", 4},    /* unused bits set */
        {"Zm9=", 4},    /* the same with 3 sextets */
        {"=Zg=", 0},    /* padding first */
        {"Z===", 1},    /* padding after 1 sextet */
        {"Zg===", 4},   /* too much padding */
        {"Zg==Zg==", 4}, /* data after padding */
        {"Zm9v\x80", 4}, /* a byte over 127 */
    };
    for (size_t i = 0; i < sizeof badcases / sizeof *badcases; i++) {
        size_t at = 99;
        long long n = base64_decode(badcases[i].in, strlen(badcases[i].in), out, &at);
        CHECK_MSG(n == -1 && at == badcases[i].at, "'%s' -> %lld at %zu, expected -1 at %zu", badcases[i].in, n, at,
                  badcases[i].at);
    }
    /* a NUL inside is a bad character, not an end */
    CHECK(base64_decode("Zm\0v", 4, out, NULL) == -1);
    /* every length up to 64 round-trips, within the bound */
    uint8_t data[64], back[72];
    for (int i = 0; i < 64; i++) data[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= 64; n++) {
        char *t = base64(data, n);
        CHECK(base64_decoded_max(strlen(t)) <= sizeof back);
        long long m = base64_decode(t, strlen(t), back, NULL);
        CHECK_MSG(m == (long long)n && !memcmp(back, data, n), "length %zu", n);
        free(t);
    }
}

/* ---------------------------------------------------- Content-Type, query */

static void test_content_type(void)
{
    CHECK(ct_is("image/png", "image/"));
    CHECK(ct_is("  IMAGE/JPEG; q=1", "image/"));
    CHECK(!ct_is("image/", "image/"));
    CHECK(!ct_is("imagex/png", "image/"));
    CHECK(!ct_is(NULL, "image/"));
    CHECK(ct_is("application/json", "application/json"));
    CHECK(ct_is("Application/JSON ; charset=utf-8", "application/json"));
    CHECK(!ct_is("application/jsonp", "application/json"));
    CHECK(ct_is("multipart/form-data; boundary=x", "multipart/form-data"));

    char b[16];
    CHECK(ct_param("multipart/form-data; boundary=abc", "boundary", b, sizeof b) == 0 && !strcmp(b, "abc"));
    CHECK(ct_param("multipart/form-data;charset=x;BOUNDARY=\"a b;c\"", "boundary", b, sizeof b) == 0 &&
          !strcmp(b, "a b;c"));
    CHECK(ct_param("multipart/form-data; boundary=\"a\\\"b\"", "boundary", b, sizeof b) == 0 && !strcmp(b, "a\"b"));
    CHECK(ct_param("multipart/form-data", "boundary", b, sizeof b) == -1);
    CHECK(ct_param("multipart/form-data; boundary=", "boundary", b, sizeof b) == -1);
    CHECK(ct_param("multipart/form-data; boundary=\"abc", "boundary", b, sizeof b) == -1);
    CHECK(ct_param("multipart/form-data; junk; boundary=abc", "boundary", b, sizeof b) == -1);
    CHECK(ct_param("multipart/form-data; boundary=0123456789abcdef", "boundary", b, sizeof b) == -1); /* too long */
    CHECK(ct_param("multipart/form-data; boundary=0123456789abcde", "boundary", b, sizeof b) == 0);
    CHECK(ct_param(NULL, "boundary", b, sizeof b) == -1);
}

static void test_query(void)
{
    char v[8];
    CHECK(query_param("k=3&model=a%20b", "k", v, sizeof v) == 1 && !strcmp(v, "3"));
    CHECK(query_param("k=3&model=a%20b", "model", v, sizeof v) == 1 && !strcmp(v, "a b"));
    CHECK(query_param("model=a+b", "model", v, sizeof v) == 1 && !strcmp(v, "a b"));
    CHECK(query_param("kk=1&k", "k", v, sizeof v) == 1 && !strcmp(v, ""));
    CHECK(query_param("kk=1", "k", v, sizeof v) == 0);
    CHECK(query_param("", "k", v, sizeof v) == 0);
    CHECK(query_param(NULL, "k", v, sizeof v) == 0);
    CHECK(query_param("&&k=%4a&", "k", v, sizeof v) == 1 && !strcmp(v, "J"));
    CHECK(query_param("k=%zz", "k", v, sizeof v) == -1);
    CHECK(query_param("k=%4", "k", v, sizeof v) == -1);
    CHECK(query_param("k=%", "k", v, sizeof v) == -1);
    CHECK(query_param("k=%00", "k", v, sizeof v) == -1);
    CHECK(query_param("k=1234567", "k", v, sizeof v) == 1);
    CHECK(query_param("k=12345678", "k", v, sizeof v) == -1); /* too long */
}

/* ---------------------------------------------------------------- multipart */

static int parse(const char *body, const char *boundary, multipart_part *parts, int max, char *why)
{
    return multipart_parse((const uint8_t *)body, strlen(body), boundary, parts, max, why, 256);
}

static void test_multipart(void)
{
    multipart_part p[SERVE_MAX_PARTS];
    char why[256];
    const char *body = "preamble\r\n--XyZ\r\n"
                       "Content-Disposition: form-data; name=\"k\"\r\n\r\n"
                       "3\r\n--XyZ\r\n"
                       "content-disposition: form-data; name=\"image\"; filename=\"a;b.png\"\r\n"
                       "Content-Type: image/png\r\n\r\n"
                       "\r\n--XyZZ not the end\r\n--XyZ  \r\n"
                       "\r\nno headers\r\n--XyZ--\r\nepilogue";
    int n = parse(body, "XyZ", p, SERVE_MAX_PARTS, why);
    CHECK_MSG(n == 3, "%d parts: %s", n, n < 0 ? why : "");
    if (n == 3) {
        CHECK(!strcmp(p[0].name, "k") && !p[0].has_filename && p[0].len == 1 && p[0].data[0] == '3');
        CHECK(!strcmp(p[1].name, "image") && p[1].has_filename && !strcmp(p[1].filename, "a;b.png"));
        CHECK(!strcmp(p[1].content_type, "image/png"));
        CHECK(p[1].len == 20 && !memcmp(p[1].data, "\r\n--XyZZ not the end", 20));
        CHECK(p[2].name[0] == '\0' && p[2].len == 10 && !memcmp(p[2].data, "no headers", 10));
    }
    /* the first delimiter at the very start; an empty part */
    CHECK(parse("--b\r\n\r\n\r\n--b--", "b", p, 4, why) == 1 && p[0].len == 0);
    CHECK(parse("--b--", "b", p, 4, why) == 0);
    /* a line that starts with the delimiter but goes on is data */
    CHECK(parse("--bx\r\n\r\nx\r\n--b--", "b", p, 4, why) == 0);
    CHECK(parse("--b\r\n\r\nx\r\n--bx\r\n--b--", "b", p, 4, why) == 1 && p[0].len == 7);
    /* errors, each with its reason */
    static const struct {
        const char *body, *boundary, *why;
    } bad[] = {
        {"", "b", "no multipart boundary"},
        {"--a\r\n\r\nx\r\n--a--", "b", "no multipart boundary"},
        {"--b\r\n\r\nx", "b", "no closing boundary"},
        {"--b\r\n\r\nx\r\n--", "b", "no closing boundary"},
        {"--b\r\nContent-Type: x\r\nx\r\n--b--", "b", "do not end in a blank line"},
        {"--b\r\nno colon\r\n\r\nx\r\n--b--", "b", "has no ':'"},
        {"--b\r\nContent-Disposition: form-data; name=\"unterminated\r\n\r\nx\r\n--b--", "b", "name is malformed"},
        {"--b\r\n\r\nx\r\n--b--", "", "1 to 70"},
        {"--b\r\n\r\nx\r\n--b--", "b\r", "1 to 70"},
        {"--b \r\n\r\nx\r\n--b --", "b ", "1 to 70"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = '\0';
        CHECK_MSG(parse(bad[i].body, bad[i].boundary, p, 4, why) == -1 && strstr(why, bad[i].why),
                  "case %zu: '%s'", i, why);
    }
    /* at most `max` parts */
    CHECK(parse("--b\r\n\r\n1\r\n--b\r\n\r\n2\r\n--b\r\n\r\n3\r\n--b--", "b", p, 2, why) == -1);
    CHECK_CONTAINS(why, "more than 2 parts");
    /* a boundary of 70 characters works, 71 does not */
    char b70[72], big[400];
    memset(b70, 'q', 70);
    b70[70] = '\0';
    snprintf(big, sizeof big, "--%s\r\n\r\ndata\r\n--%s--", b70, b70);
    CHECK(parse(big, b70, p, 4, why) == 1 && p[0].len == 4);
    strcat(b70, "q");
    CHECK(parse(big, b70, p, 4, why) == -1);
    /* a filename longer than its field; headers over 8 KiB */
    char *longhdr = malloc(20000);
    snprintf(longhdr, 20000, "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"%0300d\"\r\n\r\nx\r\n--b--", 0);
    CHECK(parse(longhdr, "b", p, 4, why) == -1);
    CHECK_CONTAINS(why, "filename");
    int k = snprintf(longhdr, 20000, "--b\r\n");
    for (int i = 0; i < 400; i++) k += snprintf(longhdr + k, 20000 - (size_t)k, "X-Pad: 0123456789abcdef\r\n");
    snprintf(longhdr + k, 20000 - (size_t)k, "\r\nx\r\n--b--");
    CHECK(parse(longhdr, "b", p, 4, why) == -1);
    CHECK_CONTAINS(why, "over 8 KiB");
    free(longhdr);
    /* the parts point into the body: never past its end (not NUL-ended) */
    const char *exact = "--b\r\n\r\nabc\r\n--b--";
    size_t len = strlen(exact);
    uint8_t *copy = malloc(len);
    memcpy(copy, exact, len);
    CHECK(multipart_parse(copy, len, "b", p, 4, why, sizeof why) == 1 && p[0].data == copy + 7 && p[0].len == 3);
    for (size_t cut = 0; cut < len - 2; cut++) /* every truncation fails cleanly */
        CHECK_MSG(multipart_parse(copy, cut, "b", p, 4, why, sizeof why) == -1, "cut at %zu", cut);
    free(copy);
}

/* ------------------------------------------------------------------ routes */

static void test_routes(void)
{
    answer a = call("GET", "/", NULL, NULL, NULL, 0);
    CHECK(a.status == 200 && !strcmp(a.type, "text/html; charset=utf-8") && a.len == serve_page_html_len);
    CHECK_CONTAINS(a.body, "<canvas");
    done(&a);
    a = call("HEAD", "/", NULL, NULL, NULL, 0);
    CHECK(a.status == 200);
    done(&a);
    a = call("GET", "/healthz", NULL, NULL, NULL, 0);
    CHECK(a.status == 200 && !strcmp(jstr(&a, "status"), "ok"));
    done(&a);
    a = call("GET", "/api/models", NULL, NULL, NULL, 0);
    CHECK(a.status == 200 && !strcmp(jstr(&a, "default"), "digits"));
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(a.json, "models");
    CHECK(cJSON_GetArraySize(list) == 2);
    const cJSON *three = cJSON_GetArrayItem(list, 1);
    CHECK(!strcmp(cJSON_GetObjectItem(three, "name")->valuestring, "three"));
    CHECK(cJSON_GetObjectItem(three, "num_classes")->valueint == 3);
    CHECK(!strcmp(cJSON_GetArrayItem(cJSON_GetObjectItem(three, "classes"), 2)->valuestring, "\xc3\xa9t\xc3\xa9"));
    CHECK(!strcmp(cJSON_GetObjectItem(three, "architecture")->valuestring, "dense16"));
    CHECK(cJSON_GetObjectItem(three, "test_accuracy")->valuedouble == 0.875);
    CHECK(!strcmp(cJSON_GetObjectItem(three, "dataset")->valuestring, "idx:/some/where"));
    CHECK(cJSON_GetArrayItem(cJSON_GetObjectItem(three, "input"), 0)->valueint == 28);
    CHECK(!cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "test_accuracy"));
    done(&a);
    a = call("GET", "/metrics", NULL, NULL, NULL, 0);
    CHECK(a.status == 200 && !strncmp(a.type, "text/plain; version=0.0.4", 25));
    CHECK_CONTAINS(a.body, "hcr_http_requests_in_flight ");
    done(&a);

    /* 404, 405 with Allow */
    static const char *const missing[] = {"/nope", "/api", "/api/predict/", "/API/PREDICT", "", "/healthz?x"};
    for (size_t i = 0; i < sizeof missing / sizeof *missing; i++) {
        a = call("GET", missing[i], NULL, NULL, NULL, 0);
        CHECK_ERROR(a, 404, "no such path");
        CHECK(a.allow[0] == '\0');
        done(&a);
    }
    a = call("POST", "/", NULL, "image/png", "x", 1);
    CHECK_ERROR(a, 405, "/ takes GET, not POST");
    CHECK(!strcmp(a.allow, "GET, HEAD"));
    done(&a);
    a = call("GET", "/api/predict", NULL, NULL, NULL, 0);
    CHECK_ERROR(a, 405, "/api/predict takes POST, not GET");
    CHECK(!strcmp(a.allow, "POST"));
    done(&a);
    static const char *const methods[] = {"PUT", "DELETE", "OPTIONS", "PATCH", "get", "", "\x01\xff"};
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
        a = call(methods[i], "/api/read", NULL, NULL, NULL, 0);
        CHECK(a.status == 405 && !strcmp(a.allow, "POST") && a.json); /* valid JSON whatever the method */
        done(&a);
        a = call(methods[i], "/metrics", NULL, NULL, NULL, 0);
        CHECK(a.status == 405 && !strcmp(a.allow, "GET, HEAD"));
        done(&a);
    }
    a = call(NULL, NULL, NULL, NULL, NULL, 0);
    CHECK(a.status == 404);
    done(&a);

    /* 413 over max_body (the server refuses first; the handler again) */
    size_t big = ctx.max_body + 1;
    uint8_t *body = calloc(big, 1);
    a = call("POST", "/api/predict", NULL, "image/png", body, big);
    CHECK_ERROR(a, 413, "larger than 1048576 bytes");
    done(&a);
    free(body);

    /* no page */
    const uint8_t *page = ctx.page;
    ctx.page = NULL;
    a = call("GET", "/", NULL, NULL, NULL, 0);
    CHECK_ERROR(a, 404, "no page");
    done(&a);
    ctx.page = page;
}

/* ------------------------------------------------------------------ predict */

/* The prediction and confidence of a 200 answer. */
static void check_prediction(const answer *a, const char *model, int k, char *pred, double *conf)
{
    CHECK_MSG(a->status == 200, "status %d: %s", a->status, a->body);
    if (a->status != 200) return;
    const cJSON *top = cJSON_GetObjectItem(a->json, "top");
    CHECK_MSG(cJSON_GetArraySize(top) == k, "%d in top, expected %d", cJSON_GetArraySize(top), k);
    CHECK(!strcmp(jstr(a, "model"), model));
    CHECK(cJSON_IsBool(cJSON_GetObjectItem(a->json, "uncertain")));
    CHECK(cJSON_GetObjectItem(a->json, "ms")->valuedouble >= 0);
    double c = cJSON_GetObjectItem(a->json, "confidence")->valuedouble, prev = 2;
    const cJSON *it;
    cJSON_ArrayForEach(it, top)
    {
        double p = cJSON_GetObjectItem(it, "p")->valuedouble;
        CHECK(p >= 0 && p <= prev);
        prev = p;
    }
    CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(top, 0), "class")->valuestring, jstr(a, "prediction")));
    CHECK(c == cJSON_GetObjectItem(cJSON_GetArrayItem(top, 0), "p")->valuedouble);
    if (pred) snprintf(pred, 64, "%s", jstr(a, "prediction"));
    if (conf) *conf = c;
}

static void test_predict_every_way(void)
{
    size_t n;
    uint8_t *png = png_of("7", 60, 80, &n);
    char want[64], got[64];
    double wc, gc;
    answer a = call("POST", "/api/predict", NULL, "image/png", png, n);
    check_prediction(&a, "digits", 5, want, &wc);
    done(&a);
    /* the same from octet-stream, no type, multipart, JSON base64, a data: URL */
    static const char *const raw_types[] = {"application/octet-stream", NULL, "", "IMAGE/JPEG"};
    for (size_t i = 0; i < sizeof raw_types / sizeof *raw_types; i++) {
        a = call("POST", "/api/predict", NULL, raw_types[i], png, n);
        check_prediction(&a, "digits", 5, got, &gc);
        CHECK(!strcmp(got, want) && gc == wc);
        done(&a);
    }
    char *form = malloc(n + 512);
    int h = sprintf(form, "--B0undary\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n2\r\n"
                          "--B0undary\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"seven.png\"\r\n"
                          "Content-Type: image/png\r\n\r\n");
    memcpy(form + h, png, n);
    int flen = h + (int)n + sprintf(form + h + n, "\r\n--B0undary--\r\n");
    a = call("POST", "/api/predict", NULL, "multipart/form-data; boundary=B0undary", form, (size_t)flen);
    check_prediction(&a, "digits", 2, got, &gc);
    CHECK(!strcmp(got, want) && gc == wc);
    done(&a);
    char *b64 = base64(png, n);
    char *json = malloc(strlen(b64) + 100);
    sprintf(json, "{\"image\": \"%s\", \"k\": 3, \"model\": \"digits\"}", b64);
    a = call("POST", "/api/predict", NULL, "application/json", json, strlen(json));
    check_prediction(&a, "digits", 3, got, &gc);
    CHECK(!strcmp(got, want) && gc == wc);
    done(&a);
    sprintf(json, "{\"image\": \"data:image/png;base64,%s\"}", b64);
    a = call("POST", "/api/predict", "k=1", "application/json; charset=utf-8", json, strlen(json));
    check_prediction(&a, "digits", 1, got, &gc);
    CHECK(!strcmp(got, want) && gc == wc);
    done(&a);

    /* seen: what the network saw, then sent back as pixels: the same answer */
    a = call("POST", "/api/predict", "seen=1", "image/png", png, n);
    const cJSON *seen = cJSON_GetObjectItem(a.json, "seen");
    CHECK(cJSON_GetArraySize(seen) == 784);
    char *px = cJSON_PrintUnformatted(seen);
    done(&a);
    char *pj = malloc(strlen(px) + 64);
    sprintf(pj, "{\"pixels\": %s}", px);
    a = call("POST", "/api/predict", NULL, "application/json", pj, strlen(pj));
    check_prediction(&a, "digits", 5, got, &gc);
    CHECK(!strcmp(got, want) && gc == wc);
    CHECK(!cJSON_GetObjectItem(a.json, "seen"));
    done(&a);
    free(pj);
    free(px);

    /* options: k is capped by the classes; another model; min_confidence */
    a = call("POST", "/api/predict", "k=1000&model=three", "image/png", png, n);
    check_prediction(&a, "three", 3, got, NULL);
    CHECK(!strcmp(got, "x") || !strcmp(got, "y") || !strcmp(got, "\xc3\xa9t\xc3\xa9"));
    done(&a);
    a = call("POST", "/api/predict", "min_confidence=1", "image/png", png, n);
    CHECK(a.status == 200 && cJSON_IsTrue(cJSON_GetObjectItem(a.json, "uncertain")));
    done(&a);
    a = call("POST", "/api/predict", "min_confidence=0", "image/png", png, n);
    CHECK(a.status == 200 && cJSON_IsFalse(cJSON_GetObjectItem(a.json, "uncertain")));
    done(&a);
    free(json);
    free(b64);
    free(form);
    free(png);
}

static void test_predict_errors(void)
{
    size_t n, bn;
    uint8_t *png = png_of("1", 40, 40, &n), *blank = blank_png(&bn);
    static const struct {
        const char *query, *type, *body, *msg;
        int status;
    } bad[] = {
        {NULL, "image/png", "", "the body is empty", 400},
        {NULL, "image/png", "not an image at all", "image", 400},
        {NULL, "text/plain", "hello", "Content-Type 'text/plain' is not taken here", 415},
        {NULL, "application/x-www-form-urlencoded", "a=b", "is not taken here", 415},
        {NULL, "application/json", "{\"image\": ", "not valid JSON", 400},
        {NULL, "application/json", "[1, 2]", "must be an object", 400},
        {NULL, "application/json", "{}", "has no image", 400},
        {NULL, "application/json", "{\"image\": 5}", "image must be a string", 400},
        {NULL, "application/json", "{\"image\": \"\"}", "image: empty", 400},
        {NULL, "application/json", "{\"image\": \"Zm9v!\"}", "not base64: character 5 is '!'", 400},
        {NULL, "application/json", "{\"image\": \"Zm9vY\"}", "incomplete group", 400},
        {NULL, "application/json", "{\"image\": \"data:image/png,abc\"}", "must be base64", 400},
        {NULL, "application/json", "{\"image\": \"data:abc\"}", "without ','", 400},
        {NULL, "application/json", "{\"image\": \"Zm9vYmFy\"}", "image", 400},
        {NULL, "application/json", "{\"pixels\": [1, 2, 3]}", "784 numbers", 400},
        {NULL, "application/json", "{\"pixels\": {}}", "784 numbers", 400},
        {NULL, "application/json", "{\"pixels\": [], \"image\": \"Zm9v\"}", "not both", 400},
        {NULL, "application/json", "{\"model\": \"nope\", \"pixels\": []}", "unknown model 'nope' (loaded: digits, three)", 400},
        {NULL, "application/json", "{\"model\": 3}", "model must be a string", 400},
        {NULL, "application/json", "{\"k\": 0}", "k must be a whole number", 400},
        {NULL, "application/json", "{\"k\": 2.5}", "k must be a whole number", 400},
        {NULL, "application/json", "{\"k\": \"3\"}", "k must be a whole number", 400},
        {NULL, "application/json", "{\"min_confidence\": 2}", "min_confidence must be", 400},
        {NULL, "application/json", "{\"seen\": 1}", "seen must be true or false", 400},
        {"k=0", "image/png", "x", "k must be a whole number from 1 to 1000", 400},
        {"k=1001", "image/png", "x", "k must be", 400},
        {"k=3x", "image/png", "x", "k must be", 400},
        {"k=", "image/png", "x", "k must be", 400},
        {"k=%zz", "image/png", "x", "'k' is malformed", 400},
        {"min_confidence=-0.1", "image/png", "x", "min_confidence must be", 400},
        {"min_confidence=nan", "image/png", "x", "min_confidence must be", 400},
        {"seen=maybe", "image/png", "x", "seen must be", 400},
        {"model=%ff%fe", "image/png", "x", "unknown model '?\?'", 400},
        {"model=", "image/png", "x", "unknown model ''", 400},
        {NULL, "multipart/form-data", "--b\r\n\r\nx\r\n--b--", "without a boundary", 400},
        {NULL, "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n2\r\n--b--",
         "the form has no file", 400},
        {NULL, "multipart/form-data; boundary=b", "--b\r\n\r\nx", "no closing boundary", 400},
        {NULL, "multipart/form-data; boundary=b",
         "--b\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nx\r\n--b\r\n"
         "Content-Disposition: form-data; name=\"file\"\r\n\r\ny\r\n--b--",
         "more than one file", 400},
        {NULL, "multipart/form-data; boundary=b",
         "--b\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n0\r\n--b--", "k must be", 400},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        answer a = call("POST", "/api/predict", bad[i].query, bad[i].type, bad[i].body, strlen(bad[i].body));
        CHECK_MSG(a.status == bad[i].status, "case %zu: %d %s", i, a.status, a.body);
        CHECK_MSG(jstr(&a, "error") && strstr(jstr(&a, "error"), bad[i].msg), "case %zu: %s lacks '%s'", i, a.body,
                  bad[i].msg);
        done(&a);
    }
    /* pixels out of range, not numbers */
    char pj[8000];
    int k = sprintf(pj, "{\"pixels\": [");
    for (int i = 0; i < 784; i++) k += sprintf(pj + k, "%s%s", i ? "," : "", i == 100 ? "256" : "0");
    strcpy(pj + k, "]}");
    answer a = call("POST", "/api/predict", NULL, "application/json", pj, strlen(pj));
    CHECK_ERROR(a, 400, "pixels[100] must be a number from 0 to 255");
    done(&a);
    k = sprintf(pj, "{\"pixels\": [");
    for (int i = 0; i < 784; i++) k += sprintf(pj + k, "%s%s", i ? "," : "", i == 783 ? "\"0\"" : "0");
    strcpy(pj + k, "]}");
    a = call("POST", "/api/predict", NULL, "application/json", pj, strlen(pj));
    CHECK_ERROR(a, 400, "pixels[783] must be a number");
    done(&a);
    /* a blank image: no ink */
    a = call("POST", "/api/predict", NULL, "image/png", blank, bn);
    CHECK_ERROR(a, 400, "no ink");
    done(&a);
    /* a truncated PNG */
    a = call("POST", "/api/predict", NULL, "image/png", png, n / 2);
    CHECK(a.status == 400 && jstr(&a, "error"));
    done(&a);
    /* the pixel limit */
    ctx.max_pixels = 1599;
    a = call("POST", "/api/predict", NULL, "image/png", png, n);
    CHECK_ERROR(a, 400, "the image is 40x40, over this server's limit of 1599 pixels");
    done(&a);
    ctx.max_pixels = 1600;
    a = call("POST", "/api/predict", NULL, "image/png", png, n);
    CHECK(a.status == 200);
    done(&a);
    ctx.max_pixels = HCR_IMAGE_MAX_PIXELS;
    /* no model at all: 503 */
    ctx.nmodels = 0;
    a = call("POST", "/api/predict", NULL, "image/png", png, n);
    CHECK_ERROR(a, 503, "no model");
    done(&a);
    a = call("GET", "/healthz", NULL, NULL, NULL, 0);
    CHECK(a.status == 200);
    done(&a);
    ctx.nmodels = 2;
    free(png);
    free(blank);
}

/* --------------------------------------------------------------------- read */

static void test_read(void)
{
    size_t n, bn;
    uint8_t *png = png_of("4 2 0", 300, 80, &n), *blank = blank_png(&bn);
    answer a = call("POST", "/api/read", "seen=true", "image/png", png, n);
    CHECK_MSG(a.status == 200, "%s", a.body);
    const cJSON *chars = cJSON_GetObjectItem(a.json, "characters");
    CHECK_MSG(cJSON_GetArraySize(chars) == 3, "%d characters", cJSON_GetArraySize(chars));
    CHECK(strlen(jstr(&a, "text")) == 3);
    CHECK(cJSON_GetObjectItem(a.json, "width")->valueint == 300 && cJSON_GetObjectItem(a.json, "height")->valueint == 80);
    CHECK(!strcmp(jstr(&a, "model"), "digits"));
    int last_x = -1;
    const cJSON *c;
    cJSON_ArrayForEach(c, chars)
    {
        const cJSON *box = cJSON_GetObjectItem(c, "box");
        int x = cJSON_GetArrayItem(box, 0)->valueint, y = cJSON_GetArrayItem(box, 1)->valueint;
        int w = cJSON_GetArrayItem(box, 2)->valueint, h = cJSON_GetArrayItem(box, 3)->valueint;
        CHECK(x > last_x && x >= 0 && y >= 0 && w >= 1 && h >= 1 && x + w <= 300 && y + h <= 80);
        last_x = x;
        double conf = cJSON_GetObjectItem(c, "confidence")->valuedouble;
        CHECK(conf > 0 && conf <= 1);
        CHECK(strlen(cJSON_GetObjectItem(c, "char")->valuestring) == 1);
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(c, "seen")) == 784);
    }
    done(&a);
    a = call("POST", "/api/read", "model=three", "image/png", png, n);
    CHECK(a.status == 200 && !strcmp(jstr(&a, "model"), "three"));
    done(&a);
    a = call("POST", "/api/read", NULL, "image/png", blank, bn);
    CHECK_ERROR(a, 400, "no ink");
    done(&a);
    const char *pj = "{\"pixels\": []}";
    a = call("POST", "/api/read", NULL, "application/json", pj, strlen(pj));
    CHECK_ERROR(a, 400, "784 numbers");
    done(&a);
    char p784[4000];
    int k = sprintf(p784, "{\"pixels\": [");
    for (int i = 0; i < 784; i++) k += sprintf(p784 + k, "%s0", i ? "," : "");
    strcpy(p784 + k, "]}");
    a = call("POST", "/api/read", NULL, "application/json", p784, strlen(p784));
    CHECK_ERROR(a, 400, "pixels are for /api/predict");
    done(&a);
    a = call("GET", "/api/read", NULL, NULL, NULL, 0);
    CHECK_ERROR(a, 405, "takes POST");
    done(&a);
    free(png);
    free(blank);
}

/* ------------------------------------------------------------------ metrics */

static void test_metrics(void)
{
    serve_metrics m;
    serve_metrics_init(&m);
    CHECK(serve_route_of("/api/predict") == SERVE_ROUTE_PREDICT);
    CHECK(serve_route_of("/") == SERVE_ROUTE_PAGE);
    CHECK(serve_route_of("/x") == SERVE_ROUTE_OTHER);
    CHECK(serve_route_of("other") == SERVE_ROUTE_OTHER);
    CHECK(serve_route_of(NULL) == SERVE_ROUTE_OTHER);
    serve_metrics_observe(&m, SERVE_ROUTE_PREDICT, 200, 0.0004);
    serve_metrics_observe(&m, SERVE_ROUTE_PREDICT, 200, 0.003);
    serve_metrics_observe(&m, SERVE_ROUTE_PREDICT, 400, 0.3);
    serve_metrics_observe(&m, SERVE_ROUTE_OTHER, 404, 20);
    serve_metrics_observe(&m, SERVE_ROUTE_READ, 418, -1);
    serve_metrics_observe(&m, 99, 200, 0);
    atomic_store(&m.in_flight, 3);
    serve_ctx c = ctx;
    c.metrics = &m;
    size_t len = 0;
    char *t = serve_metrics_text(&c, &len);
    CHECK(t && len == strlen(t));
    CHECK_CONTAINS(t, "# TYPE hcr_http_requests_total counter\n");
    CHECK_CONTAINS(t, "\nhcr_http_requests_total{route=\"/api/predict\",code=\"200\"} 2\n");
    CHECK_CONTAINS(t, "\nhcr_http_requests_total{route=\"/api/predict\",code=\"400\"} 1\n");
    CHECK_CONTAINS(t, "\nhcr_http_requests_total{route=\"other\",code=\"404\"} 1\n");
    CHECK_CONTAINS(t, "\nhcr_http_requests_total{route=\"other\",code=\"200\"} 1\n");
    CHECK_CONTAINS(t, "\nhcr_http_requests_total{route=\"/api/read\",code=\"other\"} 1\n");
    CHECK_CONTAINS(t, "\nhcr_http_request_duration_seconds_bucket{le=\"0.0005\"} 3\n");
    CHECK_CONTAINS(t, "\nhcr_http_request_duration_seconds_bucket{le=\"0.005\"} 4\n");
    CHECK_CONTAINS(t, "\nhcr_http_request_duration_seconds_bucket{le=\"0.5\"} 5\n");
    CHECK_CONTAINS(t, "\nhcr_http_request_duration_seconds_bucket{le=\"10\"} 5\n");
    CHECK_CONTAINS(t, "\nhcr_http_request_duration_seconds_bucket{le=\"+Inf\"} 6\n");
    CHECK_CONTAINS(t, "\nhcr_http_request_duration_seconds_count 6\n");
    CHECK_CONTAINS(t, "\nhcr_http_request_duration_seconds_sum 20.303400\n");
    CHECK_CONTAINS(t, "\nhcr_http_requests_in_flight 3\n");
    CHECK_CONTAINS(t, "\nhcr_models_loaded 2\n");
    CHECK(!strstr(t, "code=\"500\"")); /* counters at zero are left out */
    cJSON_free(t);
    /* no metrics in the context: zeros */
    c.metrics = NULL;
    t = serve_metrics_text(&c, &len);
    CHECK_CONTAINS(t, "hcr_http_request_duration_seconds_count 0\n");
    cJSON_free(t);
}

/* ------------------------------------------------------------------ threads */

typedef struct job {
    const uint8_t *png;
    size_t n;
    char want[64];
    double conf;
    int bad;
} job;

static void *worker(void *arg)
{
    job *j = arg;
    for (int i = 0; i < 20; i++) {
        serve_request req = {"POST", "/api/predict", i % 2 ? "k=3" : NULL, "image/png", j->png, j->n};
        serve_response res;
        serve_handle(&ctx, &req, &res);
        cJSON *o = res.status == 200 ? cJSON_ParseWithLength((const char *)res.body, res.body_len) : NULL;
        const cJSON *p = cJSON_GetObjectItem(o, "prediction"), *c = cJSON_GetObjectItem(o, "confidence");
        if (!cJSON_IsString(p) || strcmp(p->valuestring, j->want) || c->valuedouble != j->conf) j->bad++;
        cJSON_Delete(o);
        serve_response_free(&res);
        serve_metrics_observe(&metrics, SERVE_ROUTE_PREDICT, 200, 0.001);
    }
    return NULL;
}

/* Eight threads with one context and its shared models get the answer
 * one thread gets (tests/test_threads.c does the same for the library;
 * make tsan runs that one under ThreadSanitizer). */
static void test_threads(void)
{
    size_t n;
    uint8_t *png = png_of("3", 50, 50, &n);
    answer a = call("POST", "/api/predict", NULL, "image/png", png, n);
    job jobs[8];
    for (int i = 0; i < 8; i++) {
        jobs[i] = (job){png, n, "", 0, 0};
        check_prediction(&a, "digits", 5, jobs[i].want, &jobs[i].conf);
    }
    done(&a);
    unsigned long long before = atomic_load(&metrics.count);
    pthread_t t[8];
    for (int i = 0; i < 8; i++) CHECK(pthread_create(&t[i], NULL, worker, &jobs[i]) == 0);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 8; i++) CHECK_MSG(jobs[i].bad == 0, "thread %d: %d answers differ", i, jobs[i].bad);
    CHECK(atomic_load(&metrics.count) == before + 160);
    free(png);
}

static void test_cleanup(void)
{
    hcr_model_free(model_a);
    hcr_model_free(model_b);
    model_a = model_b = NULL;
}

TEST_MAIN(TEST(test_base64), TEST(test_content_type), TEST(test_query), TEST(test_multipart), TEST(test_routes),
          TEST(test_predict_every_way), TEST(test_predict_errors), TEST(test_read), TEST(test_metrics),
          TEST(test_threads), TEST(test_cleanup))
