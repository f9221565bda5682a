/*
 * fuzz_serve.c - libFuzzer harness for hcr serve's request handler
 * (serve_handle, src/serve/): routing, query strings, Content-Type values,
 * multipart bodies, JSON with base64 and pixels, then the image paths of
 * /api/predict and /api/read.
 *
 * Input: a request as text, so the mutator can change every part:
 *     METHOD SP PATH[?QUERY] LF CONTENT-TYPE LF BODY
 * (a missing line is an empty one; an empty Content-Type is none). The
 * models are two small 28x28 CNNs with random weights built at start-up;
 * the body limit is 64 KiB and decoded images are kept to FUZZ_MAX_PIXELS
 * (the server's max_pixels), so each run stays fast.
 *
 * Checked: every response has a known status and a Content-Type; a JSON
 * response parses, an error one has a non-empty "error" string, a 405 has
 * Allow; a 200 from /api/predict names a loaded model's class and its top
 * list is sorted; a 200 from /api/read has one box per character inside
 * the image.
 */
#include "fuzz_common.h"
#include "serve/serve.h"

#include <cjson/cJSON.h>

#define FUZZ_MAX_PIXELS 32768L

static hcr_model *model_a, *model_b;
static serve_model models[2];
static serve_metrics metrics;
static serve_ctx ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    hcr_set_threads(1);
    if (hcr_model_create("conv8-pool-dense32", 28, 28, 10, 7, &model_a) != HCR_OK ||
        hcr_model_create("dense8", 28, 28, 3, 9, &model_b) != HCR_OK ||
        hcr_model_set_meta(model_b, "class_names", "[\"a\", \"bb\", \"\\u00e9\"]") != HCR_OK) {
        fprintf(stderr, "fuzz_serve: %s\n", hcr_last_error());
        abort();
    }
    models[0] = (serve_model){"digits", model_a};
    models[1] = (serve_model){"abc", model_b};
    serve_metrics_init(&metrics);
    ctx = (serve_ctx){.models = models,
                      .nmodels = 2,
                      .max_body = 65536,
                      .max_pixels = FUZZ_MAX_PIXELS,
                      .page = serve_page_html,
                      .page_len = serve_page_html_len,
                      .metrics = &metrics,
                      .started = serve_now()};
    return 0;
}

/* The next line of [*p, end) as a new string (without its LF). */
static char *take_line(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    const uint8_t *e = nl ? nl : end;
    char *s = malloc((size_t)(e - *p) + 1);
    if (!s) abort();
    memcpy(s, *p, (size_t)(e - *p));
    s[e - *p] = '\0';
    *p = nl ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char *first = take_line(&p, end), *type = take_line(&p, end);
    char *sp = strchr(first, ' ');
    const char *method = first, *path = "";
    char *query = NULL;
    if (sp) {
        *sp = '\0';
        path = sp + 1;
        query = strchr(path, '?');
        if (query) *query++ = '\0';
    }
    /* the body in a buffer of its own, so ASan sees a read past it */
    size_t blen = (size_t)(end - p);
    uint8_t *body = blen ? malloc(blen) : NULL;
    if (blen) memcpy(body, p, blen);
    serve_request req = {method, path, query, type[0] ? type : NULL, body, blen};
    serve_response res;
    serve_handle(&ctx, &req, &res);

    static const int known[] = {200, 400, 404, 405, 413, 415, 500, 503};
    int is_known = 0;
    for (size_t i = 0; i < sizeof known / sizeof *known; i++) is_known |= res.status == known[i];
    FUZZ_CHECK(is_known, "status %d", res.status);
    FUZZ_CHECK(res.content_type && (res.body || !res.body_len), "no type or body");
    FUZZ_CHECK((res.status == 405) == (res.allow[0] != '\0'), "status %d with Allow '%s'", res.status, res.allow);
    FUZZ_CHECK(res.status != 500, "500: %.*s", (int)res.body_len, (const char *)res.body);
    if (!strcmp(res.content_type, "application/json")) {
        cJSON *j = cJSON_ParseWithLength((const char *)res.body, res.body_len);
        FUZZ_CHECK(j, "invalid JSON: %.*s", (int)res.body_len, (const char *)res.body);
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
        if (res.status != 200) {
            FUZZ_CHECK(cJSON_IsString(err) && err->valuestring[0], "status %d without an error", res.status);
        } else if (!strcmp(path, "/api/predict")) {
            const cJSON *top = cJSON_GetObjectItemCaseSensitive(j, "top"), *it;
            const cJSON *pred = cJSON_GetObjectItemCaseSensitive(j, "prediction");
            FUZZ_CHECK(cJSON_IsString(pred) && cJSON_GetArraySize(top) >= 1, "a prediction without top");
            double prev = 2;
            cJSON_ArrayForEach(it, top)
            {
                double v = cJSON_GetObjectItemCaseSensitive(it, "p")->valuedouble;
                FUZZ_CHECK(v >= 0 && v <= prev, "top not sorted");
                prev = v;
            }
        } else if (!strcmp(path, "/api/read")) {
            const cJSON *chars = cJSON_GetObjectItemCaseSensitive(j, "characters"), *c;
            const int w = cJSON_GetObjectItemCaseSensitive(j, "width")->valueint;
            const int h = cJSON_GetObjectItemCaseSensitive(j, "height")->valueint;
            FUZZ_CHECK((long)w * h <= FUZZ_MAX_PIXELS, "a %dx%d image read", w, h);
            cJSON_ArrayForEach(c, chars)
            {
                const cJSON *box = cJSON_GetObjectItemCaseSensitive(c, "box");
                int x = cJSON_GetArrayItem(box, 0)->valueint, y = cJSON_GetArrayItem(box, 1)->valueint;
                int bw = cJSON_GetArrayItem(box, 2)->valueint, bh = cJSON_GetArrayItem(box, 3)->valueint;
                FUZZ_CHECK(x >= 0 && y >= 0 && bw >= 1 && bh >= 1 && x + bw <= w && y + bh <= h,
                           "box %d,%d %dx%d in %dx%d", x, y, bw, bh, w, h);
            }
        }
        cJSON_Delete(j);
    }
    serve_response_free(&res);
    free(body);
    free(first);
    free(type);
    return 0;
}
