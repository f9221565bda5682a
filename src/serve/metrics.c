/*
 * metrics.c - the counters behind GET /metrics: requests by route and
 * status, a latency histogram, requests in flight; and their Prometheus
 * text (the exposition format, version 0.0.4).
 */
#include "serve/serve.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

static const int codes[SERVE_NCODES - 1] = {SERVE_CODES};
static const double bounds[SERVE_NBUCKETS] = {SERVE_BUCKETS};
static const char *const route_names[SERVE_NROUTES] = {
    "/", "/api/predict", "/api/read", "/api/models", "/healthz", "/metrics", "other",
};

void serve_metrics_init(serve_metrics *m)
{
    for (int r = 0; r < SERVE_NROUTES; r++)
        for (int c = 0; c < SERVE_NCODES; c++) atomic_init(&m->requests[r][c], 0);
    for (int b = 0; b < SERVE_NBUCKETS; b++) atomic_init(&m->buckets[b], 0);
    atomic_init(&m->count, 0);
    atomic_init(&m->sum_us, 0);
    atomic_init(&m->in_flight, 0);
    atomic_init(&m->body_bytes, 0);
}

int serve_route_of(const char *path)
{
    for (int r = 0; r < SERVE_ROUTE_OTHER; r++)
        if (path && !strcmp(path, route_names[r])) return r;
    return SERVE_ROUTE_OTHER;
}

void serve_metrics_observe(serve_metrics *m, int route, int status, double seconds)
{
    if (!m) return;
    if (route < 0 || route >= SERVE_NROUTES) route = SERVE_ROUTE_OTHER;
    int c = SERVE_NCODES - 1;
    for (int i = 0; i < SERVE_NCODES - 1; i++)
        if (codes[i] == status) c = i;
    atomic_fetch_add_explicit(&m->requests[route][c], 1, memory_order_relaxed);
    if (!(seconds >= 0)) seconds = 0;
    int b = 0;
    while (b < SERVE_NBUCKETS && seconds > bounds[b]) b++;
    if (b < SERVE_NBUCKETS) atomic_fetch_add_explicit(&m->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum_us, (unsigned long long)(seconds * 1e6 + 0.5), memory_order_relaxed);
}

double serve_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A growing text buffer (cJSON_malloc'd, as every response body). */
typedef struct text {
    char *s;
    size_t len, cap;
    int failed;
} text;

__attribute__((format(printf, 2, 3))) static void put(text *t, const char *fmt, ...)
{
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->s && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
        char *s = cJSON_malloc(cap);
        if (!s) {
            t->failed = 1;
            return;
        }
        if (t->s) memcpy(s, t->s, t->len + 1);
        cJSON_free(t->s);
        t->s = s;
        t->cap = cap;
    }
}

char *serve_metrics_text(const serve_ctx *ctx, size_t *len)
{
    static serve_metrics zero; /* when the context has none */
    serve_metrics *m = ctx->metrics ? ctx->metrics : &zero;
    text t = {0};
    put(&t, "# HELP hcr_http_requests_total Requests answered, by route and status code.\n"
            "# TYPE hcr_http_requests_total counter\n");
    for (int r = 0; r < SERVE_NROUTES; r++)
        for (int c = 0; c < SERVE_NCODES; c++) {
            unsigned long long v = atomic_load_explicit(&m->requests[r][c], memory_order_relaxed);
            if (!v) continue;
            if (c < SERVE_NCODES - 1)
                put(&t, "hcr_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n", route_names[r], codes[c], v);
            else
                put(&t, "hcr_http_requests_total{route=\"%s\",code=\"other\"} %llu\n", route_names[r], v);
        }
    put(&t, "# HELP hcr_http_request_duration_seconds Time from a request's first byte to its response sent.\n"
            "# TYPE hcr_http_request_duration_seconds histogram\n");
    unsigned long long cum = 0;
    for (int b = 0; b < SERVE_NBUCKETS; b++) {
        cum += atomic_load_explicit(&m->buckets[b], memory_order_relaxed);
        put(&t, "hcr_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n", bounds[b], cum);
    }
    unsigned long long count = atomic_load_explicit(&m->count, memory_order_relaxed);
    if (count < cum) count = cum; /* a scrape between two counters' updates */
    put(&t, "hcr_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", count);
    put(&t, "hcr_http_request_duration_seconds_sum %.6f\n",
        (double)atomic_load_explicit(&m->sum_us, memory_order_relaxed) * 1e-6);
    put(&t, "hcr_http_request_duration_seconds_count %llu\n", count);
    put(&t, "# HELP hcr_http_requests_in_flight Requests being received, handled or answered now.\n"
            "# TYPE hcr_http_requests_in_flight gauge\n"
            "hcr_http_requests_in_flight %lld\n",
        (long long)atomic_load_explicit(&m->in_flight, memory_order_relaxed));
    put(&t, "# HELP hcr_http_request_body_bytes_total Bytes of request bodies received.\n"
            "# TYPE hcr_http_request_body_bytes_total counter\n"
            "hcr_http_request_body_bytes_total %llu\n",
        atomic_load_explicit(&m->body_bytes, memory_order_relaxed));
    put(&t, "# HELP hcr_models_loaded Models being served.\n"
            "# TYPE hcr_models_loaded gauge\n"
            "hcr_models_loaded %d\n",
        ctx->nmodels);
    if (t.failed) {
        cJSON_free(t.s);
        return NULL;
    }
    *len = t.len;
    return t.s;
}
