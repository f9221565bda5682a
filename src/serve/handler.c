/*
 * handler.c - serve_handle: one HTTP request, already read, to its
 * response. The routing table, the ways a predict or read request carries
 * its image (a raw image body, a multipart upload, JSON with base64 or
 * pixels) and its options (query or JSON), and the JSON answers. serve.h
 * lists the routes and statuses; docs/api.md shows them to clients.
 */
#include "serve/serve.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define DEFAULT_K 5
#define DEFAULT_MIN_CONFIDENCE 0.5

/* ---------------------------------------------------------------- responses */

static const char json_type[] = "application/json";
static const char oom_body[] = "{\"error\":\"out of memory\"}";

void serve_response_free(serve_response *res)
{
    if (!res) return;
    cJSON_free(res->owned);
    res->owned = NULL;
    res->body = NULL;
    res->body_len = 0;
}

static void set_static(serve_response *res, int status, const char *type, const void *body, size_t len)
{
    res->status = status;
    res->content_type = type;
    res->body = body;
    res->body_len = len;
    res->owned = NULL;
}

static void oom(serve_response *res)
{
    serve_response_free(res);
    set_static(res, 500, json_type, oom_body, sizeof oom_body - 1);
}

/* s with every byte that is not printable ASCII or part of valid UTF-8
 * (and not a C1 control) replaced by '?', into out (size n, cut at n - 1):
 * what a client sent, or a model's class names, made safe for JSON. The
 * sequence length is measured as cli/utf8.c does: the program's layer sits
 * above this one and the library has no public UTF-8 helper, so the six
 * lines are repeated rather than exported from libhcr. */
static const char *clean(const char *s, char *out, size_t n)
{
    size_t k = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p && k + 1 < n) {
        size_t seq = *p < 0x80 ? 1
                     : (*p & 0xe0) == 0xc0 && *p >= 0xc2 ? 2
                     : (*p & 0xf0) == 0xe0 ? 3
                     : (*p & 0xf8) == 0xf0 && *p <= 0xf4 ? 4
                                                         : 0;
        for (size_t i = 1; i < seq; i++)
            if ((p[i] & 0xc0) != 0x80) seq = 0;
        if (seq == 2 && p[0] == 0xc2 && p[1] < 0xa0) seq = 0;
        if (seq == 0 || (seq == 1 && (*p < 0x20 || *p == 0x7f)) || k + seq >= n) {
            out[k++] = '?';
            p++;
            continue;
        }
        memcpy(out + k, p, seq);
        k += seq;
        p += seq;
    }
    out[k] = '\0';
    return out;
}

/* Answer with a JSON object (consumed); 500 when it cannot be printed. */
static void send_json(serve_response *res, int status, cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!text) {
        oom(res);
        return;
    }
    res->status = status;
    res->content_type = json_type;
    res->owned = text;
    res->body = (const uint8_t *)text;
    res->body_len = strlen(text);
}

void serve_error(serve_response *res, int status, const char *msg)
{
    char buf[1024];
    memset(res, 0, sizeof *res);
    cJSON *o = cJSON_CreateObject();
    if (o && !cJSON_AddStringToObject(o, "error", clean(msg, buf, sizeof buf))) {
        cJSON_Delete(o);
        o = NULL;
    }
    send_json(res, status, o);
}

__attribute__((format(printf, 3, 4))) static int fail(serve_response *res, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    serve_error(res, status, msg);
    return -1;
}

/* A probability rounded to 6 decimals, so the JSON stays short. */
static double prob(float p)
{
    return round((double)p * 1e6) / 1e6;
}

/* ------------------------------------------------------------------ options */

/* What a predict or read request asks. */
typedef struct request_input {
    const uint8_t *image;     /* image file bytes (into the body or decoded) */
    size_t image_len;
    int has_image;
    uint8_t *decoded;         /* base64's output, freed at the end          */
    int has_pixels;
    uint8_t pixels[28 * 28];
    const serve_model *model;
    long k;
    double min_confidence;
    int seen;                 /* add what the network saw                   */
} request_input;

static int set_model(const serve_ctx *ctx, request_input *in, const char *name, serve_response *res)
{
    for (int i = 0; i < ctx->nmodels; i++)
        if (!strcmp(ctx->models[i].name, name)) {
            in->model = &ctx->models[i];
            return 0;
        }
    char known[512] = "", shown[128];
    size_t k = 0;
    for (int i = 0; i < ctx->nmodels && k < sizeof known; i++)
        k += (size_t)snprintf(known + k, sizeof known - k, "%s%s", i ? ", " : "", ctx->models[i].name);
    return fail(res, 400, "unknown model '%s' (loaded: %s)", clean(name, shown, sizeof shown), known);
}

/* Strict whole numbers and reals from text (query strings, form fields). */
static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int set_k(request_input *in, double v, serve_response *res)
{
    if (!(v >= 1 && v <= 1000) || v != floor(v)) return fail(res, 400, "k must be a whole number from 1 to 1000");
    in->k = (long)v;
    return 0;
}

static int set_min_confidence(request_input *in, double v, serve_response *res)
{
    if (!(v >= 0 && v <= 1)) return fail(res, 400, "min_confidence must be a number from 0 to 1");
    in->min_confidence = v;
    return 0;
}

/* One option given as text (a query parameter or a form field). */
static int text_option(const serve_ctx *ctx, request_input *in, const char *name, const char *value,
                       serve_response *res)
{
    if (!strcmp(name, "model")) return set_model(ctx, in, value, res);
    if (!strcmp(name, "k")) {
        long k;
        if (parse_long(value, 1, 1000, &k)) return fail(res, 400, "k must be a whole number from 1 to 1000");
        in->k = k;
        return 0;
    }
    if (!strcmp(name, "min_confidence")) {
        double v;
        if (parse_double(value, 0, 1, &v)) return fail(res, 400, "min_confidence must be a number from 0 to 1");
        in->min_confidence = v;
        return 0;
    }
    if (!strcmp(name, "seen")) {
        if (!strcmp(value, "1") || !strcmp(value, "true") || !*value) in->seen = 1;
        else if (!strcmp(value, "0") || !strcmp(value, "false")) in->seen = 0;
        else return fail(res, 400, "seen must be true or false");
        return 0;
    }
    return 0;
}

static const char *const option_names[] = {"model", "k", "min_confidence", "seen"};

static int query_options(const serve_ctx *ctx, request_input *in, const char *query, serve_response *res)
{
    for (size_t i = 0; i < sizeof option_names / sizeof *option_names; i++) {
        char v[256];
        int r = query_param(query, option_names[i], v, sizeof v);
        if (r < 0) return fail(res, 400, "the query parameter '%s' is malformed or too long", option_names[i]);
        if (r > 0 && text_option(ctx, in, option_names[i], v, res)) return -1;
    }
    return 0;
}

/* -------------------------------------------------------------- the bodies */

/* base64 text (or a data: URL of it) to in->decoded. */
static int set_base64(request_input *in, const char *s, size_t len, serve_response *res)
{
    if (len >= 5 && !strncmp(s, "data:", 5)) {
        const char *comma = memchr(s, ',', len);
        if (!comma) return fail(res, 400, "image: a data: URL without ','");
        size_t hl = (size_t)(comma - s);
        if (hl < 7 || strncmp(comma - 7, ";base64", 7))
            return fail(res, 400, "image: a data: URL must be base64 (data:image/png;base64,...)");
        len -= hl + 1;
        s = comma + 1;
    }
    free(in->decoded);
    in->decoded = malloc(base64_decoded_max(len));
    if (!in->decoded) return fail(res, 500, "out of memory");
    size_t bad = 0;
    long long n = base64_decode(s, len, in->decoded, &bad);
    if (n < 0) {
        if (bad >= len) return fail(res, 400, "image: the base64 text ends in an incomplete group");
        return fail(res, 400, "image: not base64: character %zu is '%s%c'", bad + 1,
                    (unsigned char)s[bad] < 0x20 || (unsigned char)s[bad] >= 0x7f ? "\\x" : "",
                    (unsigned char)s[bad] < 0x20 || (unsigned char)s[bad] >= 0x7f ? '?' : s[bad]);
    }
    if (n == 0) return fail(res, 400, "image: empty");
    in->image = in->decoded;
    in->image_len = (size_t)n;
    in->has_image = 1;
    return 0;
}

static int json_body(const serve_ctx *ctx, request_input *in, const serve_request *req, serve_response *res)
{
    cJSON *root = cJSON_ParseWithLength((const char *)req->body, req->body_len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= (const char *)req->body && at <= (const char *)req->body + req->body_len
                         ? (size_t)(at - (const char *)req->body)
                         : 0;
        return fail(res, 400, "the body is not valid JSON (near byte %zu)", off);
    }
    int rc = -1;
    const cJSON *image = cJSON_GetObjectItemCaseSensitive(root, "image");
    const cJSON *pixels = cJSON_GetObjectItemCaseSensitive(root, "pixels");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(root, "k");
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(root, "min_confidence");
    const cJSON *seen = cJSON_GetObjectItemCaseSensitive(root, "seen");
    if (!cJSON_IsObject(root)) {
        fail(res, 400, "the JSON body must be an object: {\"image\": \"<base64>\"} or {\"pixels\": [784 numbers]}");
    } else if (model && !cJSON_IsString(model)) {
        fail(res, 400, "model must be a string");
    } else if (model && set_model(ctx, in, model->valuestring, res)) {
    } else if (k && !cJSON_IsNumber(k)) {
        fail(res, 400, "k must be a whole number from 1 to 1000");
    } else if (k && set_k(in, k->valuedouble, res)) {
    } else if (mc && !cJSON_IsNumber(mc)) {
        fail(res, 400, "min_confidence must be a number from 0 to 1");
    } else if (mc && set_min_confidence(in, mc->valuedouble, res)) {
    } else if (seen && !cJSON_IsBool(seen)) {
        fail(res, 400, "seen must be true or false");
    } else if (image && pixels) {
        fail(res, 400, "give image or pixels, not both");
    } else if (image) {
        if (!cJSON_IsString(image)) fail(res, 400, "image must be a string: the file's bytes in base64");
        else rc = set_base64(in, image->valuestring, strlen(image->valuestring), res);
    } else if (pixels) {
        const int n = cJSON_IsArray(pixels) ? cJSON_GetArraySize(pixels) : -1;
        if (n != 28 * 28) {
            fail(res, 400, "pixels must be an array of 784 numbers (28x28, row by row, 0 = background, "
                           "255 = ink), not %d", n);
        } else {
            int i = 0;
            const cJSON *v;
            rc = 0;
            cJSON_ArrayForEach(v, pixels)
            {
                if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 255)) {
                    rc = fail(res, 400, "pixels[%d] must be a number from 0 to 255", i);
                    break;
                }
                in->pixels[i++] = (uint8_t)lround(v->valuedouble);
            }
            in->has_pixels = rc == 0;
        }
    } else {
        fail(res, 400, "the JSON body has no image: {\"image\": \"<base64>\"} or {\"pixels\": [784 numbers]}");
    }
    if (rc == 0 && seen) in->seen = cJSON_IsTrue(seen);
    cJSON_Delete(root);
    return rc;
}

static int multipart_body(const serve_ctx *ctx, request_input *in, const serve_request *req, serve_response *res)
{
    char boundary[128], why[256];
    if (ct_param(req->content_type, "boundary", boundary, sizeof boundary))
        return fail(res, 400, "multipart/form-data without a boundary parameter");
    multipart_part parts[SERVE_MAX_PARTS];
    int n = multipart_parse(req->body, req->body_len, boundary, parts, SERVE_MAX_PARTS, why, sizeof why);
    if (n < 0) return fail(res, 400, "%s", why);
    for (int i = 0; i < n; i++) {
        const multipart_part *p = &parts[i];
        if (p->has_filename || !strcmp(p->name, "image") || !strcmp(p->name, "file")) {
            if (in->has_image) return fail(res, 400, "more than one file in the form: send one image");
            in->image = p->data;
            in->image_len = p->len;
            in->has_image = 1;
            continue;
        }
        for (size_t j = 0; j < sizeof option_names / sizeof *option_names; j++) {
            if (strcmp(p->name, option_names[j])) continue;
            char v[256];
            if (p->len >= sizeof v || memchr(p->data, 0, p->len))
                return fail(res, 400, "the form field '%s' is too long or holds a NUL", p->name);
            memcpy(v, p->data, p->len);
            v[p->len] = '\0';
            if (text_option(ctx, in, p->name, v, res)) return -1;
        }
    }
    if (!in->has_image) return fail(res, 400, "the form has no file: send the image as a file field (-F image=@digit.png)");
    return 0;
}

/* The request's options and image or pixels into `in`; 0, or -1 with res set. */
static int read_input(const serve_ctx *ctx, const serve_request *req, request_input *in, serve_response *res)
{
    memset(in, 0, sizeof *in);
    in->model = &ctx->models[0];
    in->k = DEFAULT_K;
    in->min_confidence = DEFAULT_MIN_CONFIDENCE;
    if (query_options(ctx, in, req->query, res)) return -1;
    const char *ct = req->content_type;
    if (req->body_len == 0)
        return fail(res, 400, "the body is empty: send an image (Content-Type image/png...), a form with a file, "
                              "or JSON");
    if (ct_is(ct, "application/json")) return json_body(ctx, in, req, res);
    if (ct_is(ct, "multipart/form-data")) return multipart_body(ctx, in, req, res);
    if (!ct || !*ct || ct_is(ct, "image/") || ct_is(ct, "application/octet-stream")) {
        in->image = req->body;
        in->image_len = req->body_len;
        in->has_image = 1;
        return 0;
    }
    char shown[128];
    return fail(res, 415, "Content-Type '%s' is not taken here: send image/* (the file's bytes), "
                          "multipart/form-data or application/json",
                clean(ct, shown, sizeof shown));
}

/* The uploaded image, decoded and within the pixel limit. */
static int decode_image(const serve_ctx *ctx, const request_input *in, hcr_image **img, serve_response *res)
{
    *img = NULL;
    if (hcr_image_load_memory(in->image, in->image_len, "upload", img) != HCR_OK)
        return fail(res, 400, "%s", hcr_last_error());
    long limit = ctx->max_pixels > 0 ? ctx->max_pixels : HCR_IMAGE_MAX_PIXELS;
    if ((long long)(*img)->width * (*img)->height > limit) {
        int w = (*img)->width, h = (*img)->height;
        hcr_image_free(*img);
        *img = NULL;
        return fail(res, 400, "the image is %dx%d, over this server's limit of %ld pixels", w, h, limit);
    }
    return 0;
}

/* Add item (which may be NULL: it failed) to obj under key; on failure
 * it is freed. Returns nonzero on success. */
static int add_item(cJSON *obj, const char *key, cJSON *item)
{
    if (item && cJSON_AddItemToObject(obj, key, item)) return 1;
    cJSON_Delete(item);
    return 0;
}

/* A new object at the end of array arr, or NULL. */
static cJSON *add_object(cJSON *arr)
{
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddItemToArray(arr, o)) return o;
    cJSON_Delete(o);
    return NULL;
}

/* The 28x28 bytes as a JSON array (what the network saw). */
static cJSON *seen_array(const uint8_t *px)
{
    int v[28 * 28];
    for (int i = 0; i < 28 * 28; i++) v[i] = px[i];
    return cJSON_CreateIntArray(v, 28 * 28);
}

/* ----------------------------------------------------------------- routes */

static void predict(const serve_ctx *ctx, const serve_request *req, serve_response *res, double t0)
{
    request_input in;
    if (read_input(ctx, req, &in, res)) {
        free(in.decoded);
        return;
    }
    hcr_model *m = in.model->model;
    const int nc = hcr_model_num_classes(m);
    if (!in.has_pixels) {
        hcr_image *img = NULL;
        int rc = decode_image(ctx, &in, &img, res);
        if (!rc && hcr_image_to_mnist(img, in.pixels, NULL) != HCR_OK) rc = fail(res, 400, "%s", hcr_last_error());
        hcr_image_free(img);
        free(in.decoded);
        in.decoded = NULL;
        if (rc) return;
    }
    float stack_probs[64], *probs = nc <= 64 ? stack_probs : malloc(sizeof *probs * (size_t)nc);
    int order_stack[64], *order = nc <= 64 ? order_stack : malloc(sizeof *order * (size_t)nc);
    if (!probs || !order) {
        oom(res);
    } else if (hcr_model_predict(m, in.pixels, 1, probs) != HCR_OK) {
        fail(res, 500, "model %s: %s", in.model->name, hcr_last_error());
    } else {
        const int k = (int)(in.k < nc ? in.k : nc);
        for (int i = 0; i < nc; i++) order[i] = i;
        for (int i = 0; i < k; i++) /* the k best by selection; ties keep class order */
            for (int j = i + 1; j < nc; j++)
                if (probs[order[j]] > probs[order[i]]) {
                    int t = order[i];
                    order[i] = order[j];
                    order[j] = t;
                }
        char name[256];
        cJSON *o = cJSON_CreateObject(), *top = NULL;
        int ok = o && cJSON_AddStringToObject(o, "prediction", clean(hcr_model_class_name(m, order[0]), name, sizeof name)) &&
                 cJSON_AddNumberToObject(o, "confidence", prob(probs[order[0]])) &&
                 cJSON_AddBoolToObject(o, "uncertain", probs[order[0]] < in.min_confidence) &&
                 (top = cJSON_AddArrayToObject(o, "top"));
        for (int i = 0; ok && i < k; i++) {
            cJSON *c = add_object(top);
            ok = c && cJSON_AddStringToObject(c, "class", clean(hcr_model_class_name(m, order[i]), name, sizeof name)) &&
                 cJSON_AddNumberToObject(c, "p", prob(probs[order[i]]));
        }
        ok = ok && cJSON_AddStringToObject(o, "model", in.model->name);
        ok = ok && (!in.seen || add_item(o, "seen", seen_array(in.pixels)));
        ok = ok && cJSON_AddNumberToObject(o, "ms", round((serve_now() - t0) * 1e6) / 1e3);
        if (!ok) {
            cJSON_Delete(o);
            o = NULL;
        }
        send_json(res, 200, o);
    }
    if (probs != stack_probs) free(probs);
    if (order != order_stack) free(order);
}

static void read_line(const serve_ctx *ctx, const serve_request *req, serve_response *res, double t0)
{
    request_input in;
    if (read_input(ctx, req, &in, res)) {
        free(in.decoded);
        return;
    }
    if (in.has_pixels) {
        free(in.decoded);
        fail(res, 400, "pixels are for /api/predict (one character); send /api/read an image of the line");
        return;
    }
    hcr_model *m = in.model->model;
    hcr_image *img = NULL;
    int rc = decode_image(ctx, &in, &img, res);
    free(in.decoded);
    if (rc) return;
    hcr_line line;
    if (hcr_read_line(m, img, &line) != HCR_OK) {
        fail(res, 400, "%s", hcr_last_error());
        hcr_image_free(img);
        return;
    }
    char name[256];
    int uncertain = 0;
    for (int i = 0; i < line.count; i++) uncertain |= line.chars[i].confidence < in.min_confidence;
    cJSON *o = cJSON_CreateObject(), *arr = NULL;
    int ok = o && cJSON_AddStringToObject(o, "text", clean(line.text, name, sizeof name)) &&
             cJSON_AddBoolToObject(o, "uncertain", uncertain) &&
             cJSON_AddNumberToObject(o, "width", img->width) && cJSON_AddNumberToObject(o, "height", img->height) &&
             (arr = cJSON_AddArrayToObject(o, "characters"));
    for (int i = 0; ok && i < line.count; i++) {
        const hcr_char *ch = &line.chars[i];
        cJSON *c = add_object(arr);
        int b[4] = {ch->x, ch->y, ch->w, ch->h};
        ok = c && cJSON_AddStringToObject(c, "char", clean(hcr_model_class_name(m, ch->cls), name, sizeof name)) &&
             cJSON_AddNumberToObject(c, "confidence", prob(ch->confidence)) &&
             cJSON_AddBoolToObject(c, "uncertain", ch->confidence < in.min_confidence) &&
             add_item(c, "box", cJSON_CreateIntArray(b, 4)) && (!in.seen || add_item(c, "seen", seen_array(ch->pixels)));
    }
    ok = ok && cJSON_AddStringToObject(o, "model", in.model->name) &&
         cJSON_AddNumberToObject(o, "ms", round((serve_now() - t0) * 1e6) / 1e3);
    if (!ok) {
        cJSON_Delete(o);
        o = NULL;
    }
    send_json(res, 200, o);
    hcr_line_free(&line);
    hcr_image_free(img);
}

static void models(const serve_ctx *ctx, serve_response *res)
{
    cJSON *o = cJSON_CreateObject(), *arr = NULL;
    char name[256];
    int ok = o && cJSON_AddStringToObject(o, "default", ctx->models[0].name) &&
             (arr = cJSON_AddArrayToObject(o, "models"));
    for (int i = 0; ok && i < ctx->nmodels; i++) {
        hcr_model *m = ctx->models[i].model;
        cJSON *it = add_object(arr), *cls = NULL;
        int input[2] = {hcr_model_input_rows(m), hcr_model_input_cols(m)};
        ok = it && cJSON_AddStringToObject(it, "name", ctx->models[i].name) &&
             add_item(it, "input", cJSON_CreateIntArray(input, 2)) &&
             cJSON_AddNumberToObject(it, "num_classes", hcr_model_num_classes(m)) &&
             (cls = cJSON_AddArrayToObject(it, "classes")) &&
             cJSON_AddStringToObject(it, "architecture", hcr_model_spec(m)) &&
             cJSON_AddNumberToObject(it, "parameters", (double)hcr_model_param_count(m));
        for (int c = 0; ok && c < hcr_model_num_classes(m); c++) {
            cJSON *s = cJSON_CreateString(clean(hcr_model_class_name(m, c), name, sizeof name));
            ok = s && cJSON_AddItemToArray(cls, s);
            if (!ok) cJSON_Delete(s);
        }
        const char *ds = hcr_model_get_meta(m, "dataset");
        if (ok && ds) ok = cJSON_AddStringToObject(it, "dataset", clean(ds, name, sizeof name)) != NULL;
        const char *acc = hcr_model_get_meta(m, "test_accuracy");
        double a;
        if (ok && acc && !parse_double(acc, 0, 1, &a)) ok = cJSON_AddNumberToObject(it, "test_accuracy", a) != NULL;
    }
    if (!ok) {
        cJSON_Delete(o);
        o = NULL;
    }
    send_json(res, 200, o);
}

static void healthz(const serve_ctx *ctx, serve_response *res)
{
    cJSON *o = cJSON_CreateObject();
    if (o && (!cJSON_AddStringToObject(o, "status", "ok") || !cJSON_AddNumberToObject(o, "models", ctx->nmodels) ||
              !cJSON_AddNumberToObject(o, "uptime_s", round(serve_now() - ctx->started)))) {
        cJSON_Delete(o);
        o = NULL;
    }
    send_json(res, 200, o);
}

static void metrics(const serve_ctx *ctx, serve_response *res)
{
    size_t len = 0;
    char *text = serve_metrics_text(ctx, &len);
    if (!text) {
        oom(res);
        return;
    }
    res->status = 200;
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    res->owned = text;
    res->body = (const uint8_t *)text;
    res->body_len = len;
}

/* --------------------------------------------------------------- dispatch */

static const struct route {
    const char *path;
    int post;          /* 1: POST only; 0: GET and HEAD */
} routes[] = {
    [SERVE_ROUTE_PAGE] = {"/", 0},         [SERVE_ROUTE_PREDICT] = {"/api/predict", 1},
    [SERVE_ROUTE_READ] = {"/api/read", 1}, [SERVE_ROUTE_MODELS] = {"/api/models", 0},
    [SERVE_ROUTE_HEALTHZ] = {"/healthz", 0}, [SERVE_ROUTE_METRICS] = {"/metrics", 0},
};

void serve_handle(const serve_ctx *ctx, const serve_request *req, serve_response *res)
{
    const double t0 = serve_now();
    memset(res, 0, sizeof *res);
    const char *method = req->method ? req->method : "";
    const int route = serve_route_of(req->path);
    if (route == SERVE_ROUTE_OTHER) {
        fail(res, 404, "no such path: the API is /api/predict, /api/read, /api/models, /healthz, /metrics "
                       "(docs/api.md)");
        return;
    }
    const int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (routes[route].post ? strcmp(method, "POST") != 0 : !get) {
        char shown[32];
        fail(res, 405, "%s takes %s, not %s", routes[route].path, routes[route].post ? "POST" : "GET",
             clean(method, shown, sizeof shown));
        snprintf(res->allow, sizeof res->allow, "%s", routes[route].post ? "POST" : "GET, HEAD");
        return;
    }
    if (req->body_len > ctx->max_body) {
        fail(res, 413, "the body is larger than %zu bytes, this server's limit (--max-body)", ctx->max_body);
        return;
    }
    if (ctx->nmodels < 1 && (route == SERVE_ROUTE_PREDICT || route == SERVE_ROUTE_READ || route == SERVE_ROUTE_MODELS)) {
        fail(res, 503, "no model is loaded");
        return;
    }
    switch (route) {
    case SERVE_ROUTE_PAGE:
        if (!ctx->page) fail(res, 404, "this server has no page");
        else set_static(res, 200, "text/html; charset=utf-8", ctx->page, ctx->page_len);
        break;
    case SERVE_ROUTE_PREDICT: predict(ctx, req, res, t0); break;
    case SERVE_ROUTE_READ: read_line(ctx, req, res, t0); break;
    case SERVE_ROUTE_MODELS: models(ctx, res); break;
    case SERVE_ROUTE_HEALTHZ: healthz(ctx, res); break;
    case SERVE_ROUTE_METRICS: metrics(ctx, res); break;
    }
}
