/*
 * serve.h - the request handler of `hcr serve`: HTTP requests already read
 * (method, path, query, Content-Type, body) to responses (status,
 * Content-Type, Allow, body), with no sockets. cli/cmd_serve.c puts it on
 * libmicrohttpd; tests/test_serve.c and tests/fuzz/fuzz_serve.c call it
 * directly. docs/api.md is the API as a client sees it.
 *
 * Routes
 *   POST /api/predict   one character: the body is an image (Content-Type
 *                       image/... or application/octet-stream), a
 *                       multipart/form-data upload with a file part, or JSON
 *                       {"image": "<base64 or data: URL>"} or
 *                       {"pixels": [784 numbers]}; `model`, `k`,
 *                       `min_confidence` and `seen` from the query or JSON
 *   POST /api/read      a line of characters, the same bodies but pixels
 *   GET  /api/models    the loaded models
 *   GET  /healthz       {"status": "ok"}
 *   GET  /metrics       Prometheus text (serve_metrics below)
 *   GET  /              the page (ctx->page)
 * HEAD is answered as GET. Errors are JSON {"error": "..."}: 400 a bad
 * request or image, 404 an unknown path, 405 a method the path does not
 * take (with Allow), 413 a body over ctx->max_body, 415 a body of a type
 * the route does not take, 500 a model that failed.
 *
 * Threads: serve_handle reads the context only (the models through
 * hcr_model_predict and hcr_read_line, thread-safe on a shared model; the
 * metrics are atomic), so any number of threads may call it at once.
 *
 * Bounds: the body is at most ctx->max_body bytes (the server refuses a
 * longer one before reading it; serve_handle checks again); a decoded image
 * is at most ctx->max_pixels pixels; a multipart body has at most
 * SERVE_MAX_PARTS parts; JSON is parsed by cJSON from the body's bytes.
 */
#ifndef HCR_SERVE_H
#define HCR_SERVE_H

#include "hcr.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ----------------------------------------------------------------- metrics */

/* The routes counted apart in the metrics (the path label); anything else
 * is "other". */
enum {
    SERVE_ROUTE_PAGE,
    SERVE_ROUTE_PREDICT,
    SERVE_ROUTE_READ,
    SERVE_ROUTE_MODELS,
    SERVE_ROUTE_HEALTHZ,
    SERVE_ROUTE_METRICS,
    SERVE_ROUTE_OTHER,
    SERVE_NROUTES
};
/* The status codes counted apart; any other is counted under "other". */
#define SERVE_CODES 200, 400, 404, 405, 408, 413, 415, 500, 503
enum { SERVE_NCODES = 10 };
/* The latency histogram's upper bounds in seconds (Prometheus buckets;
 * +Inf is the count). */
#define SERVE_BUCKETS 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
enum { SERVE_NBUCKETS = 14 };

/* Counters for /metrics, updated by any thread (relaxed atomics: each
 * number is exact, a scrape is not a snapshot across them). Zero it to
 * start (serve_metrics_init). */
typedef struct serve_metrics {
    atomic_ullong requests[SERVE_NROUTES][SERVE_NCODES];
    atomic_ullong buckets[SERVE_NBUCKETS]; /* not cumulative; summed when printed */
    atomic_ullong count, sum_us;
    atomic_llong in_flight;
    atomic_ullong body_bytes;              /* request bodies received */
} serve_metrics;

void serve_metrics_init(serve_metrics *m);
/* The route of a path, for serve_metrics_observe. */
int serve_route_of(const char *path);
/* One finished request: its route, status and time from its first byte
 * to the response sent. */
void serve_metrics_observe(serve_metrics *m, int route, int status, double seconds);

/* ----------------------------------------------------------------- context */

typedef struct serve_model {
    const char *name;   /* as clients name it ("mnist_cnn"); the first model is the default */
    hcr_model *model;   /* 28x28 input; shared by every thread */
} serve_model;

typedef struct serve_ctx {
    const serve_model *models;
    int nmodels;
    size_t max_body;          /* bytes; a larger body is 413 */
    long max_pixels;          /* a decoded image over this is 400 (<= HCR_IMAGE_MAX_PIXELS) */
    const uint8_t *page;      /* GET /: the page's bytes (NULL: 404) */
    size_t page_len;
    serve_metrics *metrics;   /* may be NULL: /metrics then shows zeros */
    double started;           /* a monotonic clock's seconds at start, for uptime */
} serve_ctx;

/* The metrics (ctx->metrics, or zeros) as Prometheus text: cJSON_malloc'd,
 * its length in *len; NULL when out of memory. */
char *serve_metrics_text(const serve_ctx *ctx, size_t *len);

/* ---------------------------------------------------------------- requests */

typedef struct serve_request {
    const char *method;       /* "GET", "POST"...                          */
    const char *path;         /* without the query: "/api/predict"         */
    const char *query;        /* what follows '?', or NULL                 */
    const char *content_type; /* the Content-Type header, or NULL          */
    const uint8_t *body;      /* body_len bytes (NULL when 0)              */
    size_t body_len;
} serve_request;

typedef struct serve_response {
    int status;
    const char *content_type; /* a static string                            */
    char allow[32];           /* the Allow header of a 405 ("" if none)     */
    const uint8_t *body;      /* body_len bytes: owned (free) or static     */
    size_t body_len;
    void *owned;              /* what serve_response_free frees             */
} serve_response;

/* Answer one request. Never fails: every outcome is a response (a
 * 500 when memory ran out). res is overwritten; free it with
 * serve_response_free. */
void serve_handle(const serve_ctx *ctx, const serve_request *req, serve_response *res);
void serve_response_free(serve_response *res);

/* A JSON error response {"error": msg} with the status (for the server's
 * own 413 and 503, sent before a request reaches serve_handle). */
void serve_error(serve_response *res, int status, const char *msg);

/* Seconds of a monotonic clock. */
double serve_now(void);

/* The page (src/serve/page.html, built in by the Makefile). */
extern const unsigned char serve_page_html[];
extern const size_t serve_page_html_len;

/* ------------------------------------------------- parsers (serve/codec.c) */

/* Decode base64 (the standard alphabet, or the URL-safe one: '-' and '_'),
 * ignoring ASCII whitespace; '=' padding is optional but, when present,
 * must be right and last. out needs base64_decoded_max(len) bytes. Returns
 * the decoded length, or -1 with *bad_at the offset of the first bad
 * character (len for a bad length or a bad final group). */
size_t base64_decoded_max(size_t len);
long long base64_decode(const char *in, size_t len, uint8_t *out, size_t *bad_at);

/* The media type of a Content-Type value is `type` (case-insensitive;
 * "image/" matches any image/...: a prefix ending in '/'). */
int ct_is(const char *content_type, const char *type);
/* Parameter `name` of a Content-Type value (boundary, charset), unquoted,
 * into out (size n). Returns 0, or -1 if absent, malformed or too long. */
int ct_param(const char *content_type, const char *name, char *out, size_t n);

/* Query parameter `name` of a query string ("a=1&b=x%20y"), percent- and
 * '+'-decoded into out (size n). Returns 1 found, 0 absent, -1 malformed
 * (bad %XX, a NUL, or longer than n - 1). */
int query_param(const char *query, const char *name, char *out, size_t n);

#define SERVE_MAX_PARTS 16

typedef struct multipart_part {
    char name[64];            /* the form field's name ("" if none)        */
    char filename[256];       /* "" if none                                */
    char content_type[128];   /* "" if none                                */
    int has_filename;
    const uint8_t *data;      /* into the body                             */
    size_t len;
} multipart_part;

/* Split a multipart/form-data body (RFC 7578) at `boundary` (1 to 70
 * of RFC 2046's characters: letters, digits, '()+_,-./:=? and space but
 * last): parts[] gets up to max parts pointing into body. Returns
 * the number of parts, or -1 with why (size wn) set. Names longer than
 * their field are refused, as are more than max parts, a part without its
 * blank line after the headers, headers over 8 KiB, and a body without its
 * closing delimiter. */
int multipart_parse(const uint8_t *body, size_t len, const char *boundary, multipart_part *parts, int max,
                    char *why, size_t wn);

#endif
