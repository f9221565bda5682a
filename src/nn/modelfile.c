/*
 * modelfile.c - hcr_model_save / hcr_model_load: the model as a safetensors
 * file (docs/model-format.md).
 *
 *   8 bytes   N, the header length, unsigned little-endian
 *   N bytes   UTF-8 JSON, padded with spaces so the data starts at a
 *             multiple of 8:
 *               {"__metadata__": {"format": "hcr", "spec": ..., ...},
 *                "conv2d.kernel": {"dtype": "F32", "shape": [3,3,1,32],
 *                                  "data_offsets": [0, 1152]}, ...}
 *   the data  every tensor's float32 values, little-endian, packed in the
 *             model's tensor order; offsets count from the data's start.
 *
 * Saving writes a temporary file next to the target and renames it over the
 * target, so a crash never leaves a half-written model under the real name.
 * Loading trusts nothing in the file: every length is checked against the
 * file's real size before anything is allocated or read, and every failure
 * names the file and the problem.
 */
#include "core/atomic.h"
#include "nn/model.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define HEADER_MAX ((uint64_t)100 * 1000 * 1000) /* 100 MB, as safetensors */
#define META_MAX 4096                             /* metadata entries */
#define FORMAT_NAME "hcr"
#define FORMAT_VERSION "1"
#define INPUT_NORMALIZATION "x / 255, light ink on dark background (MNIST polarity), NHWC"

/* ------------------------------------------------------------ byte order */

static int host_is_little_endian(void)
{
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static uint32_t bswap32(uint32_t x)
{
    return (x >> 24) | ((x >> 8) & 0xff00u) | ((x << 8) & 0xff0000u) | (x << 24);
}

/* Reverse the bytes of n floats in place (only called on big-endian hosts). */
static void swap_floats(float *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &f[i], 4);
        u = bswap32(u);
        memcpy(&f[i], &u, 4);
    }
}

/* -------------------------------------------------------------- helpers */

/* Is s[0..n) well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF)? */
static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        } else {
            return 0;
        }
        if (n - i < len) return 0;
        if (s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf) return 0;
        i += len;
    }
    return 1;
}

/* The first non-finite value of a tensor, or -1. */
static long long first_nonfinite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return (long long)i;
    return -1;
}

/* "[3,3,1,32]" into buf. */
static void format_shape(char *buf, size_t n, const int64_t *shape, int ndim)
{
    size_t used = 0;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%" PRId64, i ? "," : "", shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

/* ================================================================= save */

static int is_reserved_key(const char *k)
{
    static const char *const reserved[] = {"format", "format_version", "spec", "input_rows",
                                           "input_cols", "num_classes", "input_normalization"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcmp(k, reserved[i]) == 0) return 1;
    return 0;
}

/* A raw JSON number (an exact unsigned integer, never "1e+15"). */
static cJSON *raw_uint(uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return cJSON_CreateRaw(buf);
}

static int add_string(cJSON *obj, const char *key, const char *val)
{
    return cJSON_AddStringToObject(obj, key, val) != NULL;
}

/* The header entry of one tensor of `count` 4-byte values stored at
 * *offset; advances *offset. 0 when out of memory. */
static int add_entry(cJSON *root, const char *name, const char *dtype, const int64_t *shape,
                     int ndim, uint64_t *offset, size_t count)
{
    cJSON *e = cJSON_CreateObject();
    if (!e) return 0;
    if (!cJSON_AddItemToObject(root, name, e)) {
        cJSON_Delete(e);
        return 0;
    }
    cJSON *sh = cJSON_AddArrayToObject(e, "shape");
    if (!cJSON_AddStringToObject(e, "dtype", dtype) || !sh) return 0;
    for (int d = 0; d < ndim; d++) {
        cJSON *n = raw_uint((uint64_t)shape[d]);
        if (!n || !cJSON_AddItemToArray(sh, n)) {
            cJSON_Delete(n);
            return 0;
        }
    }
    cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
    if (!offs) return 0;
    for (int k = 0; k < 2; k++) {
        cJSON *v = raw_uint(*offset);
        if (!v || !cJSON_AddItemToArray(offs, v)) {
            cJSON_Delete(v);
            return 0;
        }
        if (k == 0) *offset += (uint64_t)count * 4;
    }
    return 1;
}

/* Build the header JSON text (unpadded). On failure returns NULL with the
 * error set. */
static char *build_header(const hcr_model *m, const char *path, const model_extra *x, int nx,
                          hcr_status *st)
{
    *st = HCR_ENOMEM;
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    if (!root || !meta) goto nomem;

    int nmeta = hcr_model_meta_count(m);
    for (int i = 0; i < nmeta; i++) {
        const char *k = hcr_model_meta_key(m, i);
        const char *v = k ? hcr_model_get_meta(m, k) : NULL;
        if (!k || !v || is_reserved_key(k)) continue;
        if (!valid_utf8((const unsigned char *)k, strlen(k)) ||
            !valid_utf8((const unsigned char *)v, strlen(v))) {
            cJSON_Delete(root);
            *st = HCR_EINVAL;
            hcr__fail(HCR_EINVAL, "%s: metadata '%s' is not valid UTF-8", path, k);
            return NULL;
        }
        if (!add_string(meta, k, v)) goto nomem;
    }
    char num[3][16];
    snprintf(num[0], sizeof num[0], "%d", m->rows);
    snprintf(num[1], sizeof num[1], "%d", m->cols);
    snprintf(num[2], sizeof num[2], "%d", m->num_classes);
    if (!add_string(meta, "format", FORMAT_NAME) ||
        !add_string(meta, "format_version", FORMAT_VERSION) ||
        !add_string(meta, "spec", m->spec ? m->spec : "") ||
        !add_string(meta, "input_rows", num[0]) || !add_string(meta, "input_cols", num[1]) ||
        !add_string(meta, "num_classes", num[2]) ||
        !add_string(meta, "input_normalization", INPUT_NORMALIZATION))
        goto nomem;

    uint64_t offset = 0;
    for (int t = 0; t < m->ntensors; t++) {
        const tensor_ref *tr = &m->tensors[t];
        if (!add_entry(root, tr->name, "F32", tr->shape, tr->ndim, &offset, tr->count)) goto nomem;
    }
    for (int i = 0; i < nx; i++) {
        const int64_t n = (int64_t)x[i].count;
        if (!add_entry(root, x[i].name, x[i].dtype, &n, 1, &offset, x[i].count)) goto nomem;
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) {
        hcr__fail(HCR_ENOMEM, "%s: out of memory building the header", path);
        return NULL;
    }
    *st = HCR_OK;
    return text;

nomem:
    cJSON_Delete(root);
    hcr__fail(HCR_ENOMEM, "%s: out of memory building the header", path);
    return NULL;
}

/* n 4-byte values, little-endian in the file whatever the host. */
static int write_values(FILE *f, const void *data, size_t n)
{
    if (host_is_little_endian())
        return n && fwrite(data, 4, n, f) != n ? (errno ? errno : EIO) : 0;
    float chunk[1024];
    for (size_t i = 0; i < n;) {
        size_t k = n - i < 1024 ? n - i : 1024;
        memcpy(chunk, (const char *)data + i * 4, k * 4);
        swap_floats(chunk, k);
        if (fwrite(chunk, 4, k, f) != k) return errno ? errno : EIO;
        i += k;
    }
    return 0;
}

/* Write everything into f; returns 0 or an errno value. */
static int write_body(FILE *f, const hcr_model *m, const model_extra *x, int nx, const char *hdr,
                      size_t hlen, size_t padded)
{
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    errno = 0;
    if (fwrite(len8, 1, 8, f) != 8) return errno ? errno : EIO;
    if (fwrite(hdr, 1, hlen, f) != hlen) return errno ? errno : EIO;
    for (size_t i = hlen; i < padded; i++)
        if (fputc(' ', f) == EOF) return errno ? errno : EIO;
    int e = 0;
    for (int t = 0; !e && t < m->ntensors; t++) e = write_values(f, m->tensors[t].data, m->tensors[t].count);
    for (int i = 0; !e && i < nx; i++) e = write_values(f, x[i].data, x[i].count);
    return e;
}

hcr_status modelfile_save(const hcr_model *m, const char *path, const model_extra *x, int nx)
{
    if (!m || !path || !*path) return hcr__fail(HCR_EINVAL, "hcr_model_save: no model or no path");

    /* A file the loader would refuse is not worth writing. */
    for (int t = 0; t < m->ntensors; t++) {
        long long bad = first_nonfinite(m->tensors[t].data, m->tensors[t].count);
        if (bad >= 0)
            return hcr__fail(HCR_EINVAL, "%s: not saved: tensor '%s' element %lld is %s (training diverged?)",
                            path, m->tensors[t].name, bad,
                            isnan(m->tensors[t].data[bad]) ? "NaN" : "infinite");
    }

    hcr_status st;
    char *hdr = build_header(m, path, x, nx, &st);
    if (!hdr) return st;
    size_t hlen = strlen(hdr);
    size_t padded = (hlen + 7) & ~(size_t)7; /* 8 + padded is a multiple of 8 */
    hcr_atomic a;
    st = hcr_atomic_open(&a, path);
    if (st == HCR_OK) {
        a.err = write_body(a.f, m, x, nx, hdr, hlen, padded);
        st = hcr_atomic_commit(&a);
    }
    free(hdr);
    return st;
}

hcr_status hcr_model_save(const hcr_model *m, const char *path) { return modelfile_save(m, path, NULL, 0); }

/* ================================================================= load */

/* Read exactly n bytes at off; 0, or an errno value (EIO for a short read,
 * which means the file shrank under us). */
static int read_at(int fd, void *buf, size_t n, uint64_t off)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (r == 0) return EIO;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* A JSON number that is a non-negative integer no larger than max. */
static int json_uint(const cJSON *j, double max, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!isfinite(v) || v < 0 || v > max || v != floor(v)) return 0;
    *out = (uint64_t)v;
    return 1;
}

/* A metadata value that is a plain decimal integer in [lo, hi]. */
static int parse_decimal(const char *s, long lo, long hi, int *out)
{
    if (!s || !*s || strlen(s) > 9) return 0;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        v = v * 10 + (*p - '0');
    }
    if (v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

typedef struct range {
    uint64_t begin, end;
    int tensor;
} range;

static int cmp_range(const void *a, const void *b)
{
    const range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Shape text of a JSON array for messages ("[1600,64]"), or NULL if it is
 * not an array of non-negative integers. */
static int json_shape_text(const cJSON *shape, char *buf, size_t n, int64_t *dims, int *ndim)
{
    if (!cJSON_IsArray(shape)) return 0;
    int k = 0;
    size_t used = (size_t)snprintf(buf, n, "[");
    for (const cJSON *d = shape->child; d; d = d->next, k++) {
        uint64_t v;
        if (!json_uint(d, 9007199254740992.0, &v)) return 0;
        if (k < 8) dims[k] = (int64_t)v;
        if (used < n) used += (size_t)snprintf(buf + used, n - used, "%s%" PRIu64, k ? "," : "", v);
    }
    if (used < n) snprintf(buf + used, n - used, "]");
    *ndim = k;
    return 1;
}

static hcr_status fmt_fail(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static hcr_status fmt_fail(const char *path, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return hcr__fail(HCR_EFORMAT, "%s: %s", path, msg);
}

/* Check the metadata and build the model it describes. */
static hcr_status model_from_metadata(const char *path, const cJSON *meta, uint64_t data_len,
                                      hcr_model **out)
{
    if (!meta) return fmt_fail(path, "missing __metadata__ (not a model saved by hcr)");
    if (!cJSON_IsObject(meta)) return fmt_fail(path, "__metadata__ is not a JSON object");
    if (cJSON_GetArraySize(meta) > META_MAX)
        return fmt_fail(path, "__metadata__ has %d entries, more than the %d allowed", cJSON_GetArraySize(meta),
                        META_MAX);
    for (const cJSON *e = meta->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !e->valuestring)
            return fmt_fail(path, "__metadata__.%s is not a string", e->string ? e->string : "?");
        for (const cJSON *p = meta->child; p != e; p = p->next)
            if (strcmp(p->string, e->string) == 0)
                return fmt_fail(path, "__metadata__.%s appears twice", e->string);
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(meta, "format");
    if (fmt && strcmp(fmt->valuestring, FORMAT_NAME) != 0)
        return fmt_fail(path, "__metadata__.format is '%s', expected '" FORMAT_NAME "'", fmt->valuestring);
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(meta, "format_version");
    if (ver && strcmp(ver->valuestring, FORMAT_VERSION) != 0)
        return fmt_fail(path, "__metadata__.format_version is '%s'; this build reads version " FORMAT_VERSION,
                        ver->valuestring);

    static const struct {
        const char *key;
        long lo, hi;
    } ints[3] = {{"input_rows", 1, 4096}, {"input_cols", 1, 4096}, {"num_classes", 2, 1000}};
    int val[3];
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(meta, "spec");
    if (!spec) return fmt_fail(path, "missing __metadata__.spec");
    if (!spec->valuestring[0]) return fmt_fail(path, "__metadata__.spec is empty");
    for (int i = 0; i < 3; i++) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(meta, ints[i].key);
        if (!j) return fmt_fail(path, "missing __metadata__.%s", ints[i].key);
        if (!parse_decimal(j->valuestring, ints[i].lo, ints[i].hi, &val[i]))
            return fmt_fail(path, "__metadata__.%s is '%.40s', expected an integer %ld..%ld", ints[i].key,
                            j->valuestring, ints[i].lo, ints[i].hi);
    }
    /* The data section must hold every parameter: check before allocating. */
    size_t nparams = 0;
    hcr_status st = model_spec_params(spec->valuestring, val[0], val[1], val[2], &nparams);
    if (st == HCR_OK && (uint64_t)nparams * 4 > data_len)
        return fmt_fail(path,
                        "truncated: the architecture '%s' has %zu parameters (%zu bytes) but the "
                        "data section holds %llu bytes",
                        spec->valuestring, nparams, nparams * 4, (unsigned long long)data_len);
    if (st == HCR_OK) st = model_build(spec->valuestring, val[0], val[1], val[2], out);
    if (st != HCR_OK) {
        /* A spec the builder rejects is a bad file, not a bad argument. */
        *out = NULL;
        return hcr__fail_prefix(st == HCR_EINVAL ? HCR_EFORMAT : st, "%s", path);
    }
    return HCR_OK;
}

/* The header entry `name` of one tensor: its dtype, its shape (want, or
 * with want NULL any one-dimensional shape, whose length is stored in
 * *count) and its byte range, checked against the data section. */
static hcr_status check_entry(const char *path, const cJSON *root, const char *name, const char *dtype,
                              const int64_t *want, int want_ndim, size_t *count, uint64_t data_len,
                              range *r)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!e) return fmt_fail(path, "missing tensor '%s'", name);
    if (!cJSON_IsObject(e)) return fmt_fail(path, "tensor '%s' is not a JSON object", name);

    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!dt) return fmt_fail(path, "tensor '%s' has no dtype", name);
    if (!cJSON_IsString(dt) || !dt->valuestring)
        return fmt_fail(path, "tensor '%s' has a dtype that is not a string", name);
    if (strcmp(dt->valuestring, dtype) != 0)
        return fmt_fail(path, "tensor '%s' has dtype %.20s, expected %s", name, dt->valuestring, dtype);

    char wtext[96] = "a one-dimensional shape", got[96];
    int64_t dims[8];
    int ndim = 0;
    if (want) format_shape(wtext, sizeof wtext, want, want_ndim);
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!sh) return fmt_fail(path, "tensor '%s' has no shape", name);
    if (!json_shape_text(sh, got, sizeof got, dims, &ndim))
        return fmt_fail(path, "tensor '%s' has an invalid shape (expected an array of non-negative integers)",
                        name);
    int same = want ? ndim == want_ndim : ndim == 1;
    for (int d = 0; want && same && d < ndim; d++) same = dims[d] == want[d];
    if (!same) return fmt_fail(path, "tensor '%s' has shape %s, the architecture needs %s", name, got, wtext);
    if (!want) {
        if ((uint64_t)dims[0] > data_len / 4)
            return fmt_fail(path, "tensor '%s' has shape %s, larger than the data section", name, got);
        *count = (size_t)dims[0];
    }

    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!offs) return fmt_fail(path, "tensor '%s' has no data_offsets", name);
    uint64_t b, en;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_uint(offs->child, 9007199254740992.0, &b) ||
        !json_uint(offs->child->next, 9007199254740992.0, &en))
        return fmt_fail(path, "tensor '%s' has invalid data_offsets (expected [begin, end], two non-negative integers)",
                        name);
    if (en < b)
        return fmt_fail(path, "tensor '%s' has data_offsets [%" PRIu64 ",%" PRIu64 "] with end before begin",
                        name, b, en);
    if (en - b != (uint64_t)*count * 4)
        return fmt_fail(path, "tensor '%s' has data_offsets [%" PRIu64 ",%" PRIu64 "] spanning %" PRIu64
                        " bytes; shape %s as %s needs %" PRIu64,
                        name, b, en, en - b, got, dtype, (uint64_t)*count * 4);
    if (en > data_len)
        return fmt_fail(path, "tensor '%s' has data_offsets [%" PRIu64 ",%" PRIu64 "] past the end of the "
                        "data (%" PRIu64 " bytes; file truncated?)",
                        name, b, en, data_len);
    r->begin = b;
    r->end = en;
    return HCR_OK;
}

/* Name of entry t: a model tensor, then the extras. */
static const char *entry_name(const hcr_model *m, const model_extra *x, int t)
{
    return t < m->ntensors ? m->tensors[t].name : x[t - m->ntensors].name;
}

/* No two non-empty byte ranges overlap. */
static hcr_status check_overlaps(const char *path, const hcr_model *m, const model_extra *x,
                                 const range *ranges, int n)
{
    range *sorted = malloc(sizeof(range) * (size_t)n);
    if (!sorted) return hcr__fail(HCR_ENOMEM, "%s: out of memory", path);
    memcpy(sorted, ranges, sizeof(range) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof(range), cmp_range);
    /* Empty ranges overlap nothing; `last` is the non-empty range reaching
     * furthest so far. */
    hcr_status st = HCR_OK;
    int last = -1;
    for (int i = 0; i < n && !st; i++) {
        if (sorted[i].begin == sorted[i].end) continue;
        if (last >= 0 && sorted[i].begin < sorted[last].end) {
            int a = sorted[last].tensor, b = sorted[i].tensor; /* named in file order */
            st = fmt_fail(path, "tensors '%s' and '%s' overlap", entry_name(m, x, a < b ? a : b),
                          entry_name(m, x, a < b ? b : a));
        }
        if (last < 0 || sorted[i].end > sorted[last].end) last = i;
    }
    free(sorted);
    return st;
}

/* Check every tensor entry against the model and the extras; fills
 * ranges[] (model tensors, then extras) and the extras' counts. */
static hcr_status check_tensors(const char *path, const cJSON *root, const hcr_model *m,
                                model_extra *x, int nx, uint64_t data_len, range *ranges)
{
    /* Everything in the header is either __metadata__ or an expected
     * tensor, once. */
    const int n = m->ntensors + nx;
    int nmeta_items = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (++nmeta_items > 1) return fmt_fail(path, "__metadata__ appears twice");
            continue;
        }
        int t = 0;
        while (t < n && strcmp(entry_name(m, x, t), e->string) != 0) t++;
        if (t == n)
            return fmt_fail(path, "unexpected tensor '%.200s' (not part of the architecture '%s')",
                            e->string, m->spec);
        for (const cJSON *p = root->child; p != e; p = p->next)
            if (strcmp(p->string, e->string) == 0)
                return fmt_fail(path, "tensor '%s' appears twice", e->string);
    }
    for (int t = 0; t < n; t++) {
        const tensor_ref *tr = t < m->ntensors ? &m->tensors[t] : NULL;
        size_t count = tr ? tr->count : 0;
        hcr_status st = tr ? check_entry(path, root, tr->name, "F32", tr->shape, tr->ndim, &count, data_len,
                                         &ranges[t])
                           : check_entry(path, root, x[t - m->ntensors].name, x[t - m->ntensors].dtype, NULL, 1,
                                         &count, data_len, &ranges[t]);
        if (st) return st;
        if (!tr) x[t - m->ntensors].count = count;
        ranges[t].tensor = t;
    }
    return check_overlaps(path, m, x, ranges, n);
}

/* Read n 4-byte values at off into data; 0 or an errno value. */
static int read_values(int fd, void *data, size_t n, uint64_t off)
{
    if (n == 0) return 0;
    int e = read_at(fd, data, n * 4, off);
    if (!e && !host_is_little_endian()) swap_floats(data, n);
    return e;
}

/* The extras' values, each in a new allocation. */
static hcr_status read_extras(const char *path, int fd, model_extra *x, int nx, const range *ranges,
                              uint64_t data_start)
{
    for (int i = 0; i < nx; i++) {
        x[i].data = malloc(x[i].count ? x[i].count * 4 : 1);
        if (!x[i].data) return hcr__fail(HCR_ENOMEM, "%s: out of memory for tensor '%s'", path, x[i].name);
        int e = read_values(fd, x[i].data, x[i].count, data_start + ranges[i].begin);
        if (e) return hcr__fail(HCR_EIO, "%s: reading tensor '%s': %s", path, x[i].name, strerror(e));
    }
    return HCR_OK;
}

/* The header's n bytes (hdr[n] is writable) as one JSON object. */
static hcr_status parse_header(const char *path, char *hdr, size_t n, cJSON **root)
{
    hdr[n] = '\0';
    if (memchr(hdr, '\0', n)) return fmt_fail(path, "header contains a NUL byte (not valid JSON)");
    if (!valid_utf8((const unsigned char *)hdr, n)) return fmt_fail(path, "header is not valid UTF-8");
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(hdr, n, &end, 0);
    if (!j) {
        size_t at = end && end >= hdr && end <= hdr + n ? (size_t)(end - hdr) : 0;
        return fmt_fail(path, "header is not valid JSON (error near byte %zu of the header)", at);
    }
    /* cJSON stops after the first value; only padding may follow it. */
    for (const char *p = end; p && p < hdr + n; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(j);
            return fmt_fail(path, "header is not valid JSON (unexpected text at byte %zu of the header)",
                            (size_t)(p - hdr));
        }
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return fmt_fail(path, "header is not a JSON object");
    }
    *root = j;
    return HCR_OK;
}

/* The JSON header: its length (the first 8 bytes, little-endian) checked
 * against the file, then the text read and parsed into *root, a JSON object
 * with nothing but white space after it. *data_start: where the tensors'
 * bytes begin. */
static hcr_status read_header(const char *path, int fd, uint64_t fsize, cJSON **root, uint64_t *data_start)
{
    *root = NULL;
    if (fsize < 8)
        return fmt_fail(path, "file is %" PRIu64 " bytes, too short for a safetensors header (truncated?)", fsize);
    unsigned char len8[8];
    int e = read_at(fd, len8, 8, 0);
    if (e) return hcr__fail(HCR_EIO, "%s: %s", path, strerror(e));
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)len8[i] << (8 * i);
    if (n < 2) return fmt_fail(path, "header length %" PRIu64 " is too small for a JSON object", n);
    if (n > HEADER_MAX) return fmt_fail(path, "header length %" PRIu64 " exceeds the 100 MB limit", n);
    if (n > fsize - 8)
        return fmt_fail(path, "header length %" PRIu64 " exceeds the file size (%" PRIu64 " bytes)", n, fsize);
    *data_start = 8 + n;

    char *hdr = malloc((size_t)n + 1);
    if (!hdr) return hcr__fail(HCR_ENOMEM, "%s: out of memory for a %" PRIu64 "-byte header", path, n);
    hcr_status st = HCR_OK;
    if ((e = read_at(fd, hdr, (size_t)n, 8)))
        st = hcr__fail(HCR_EIO, "%s: %s", path, strerror(e));
    else
        st = parse_header(path, hdr, (size_t)n, root);
    free(hdr);
    return st;
}

/* Read the model's tensors (their byte ranges checked already) and refuse
 * non-finite weights and negative variances. */
static hcr_status read_tensors(const char *path, int fd, hcr_model *m, const range *ranges, uint64_t data_start)
{
    for (int t = 0; t < m->ntensors; t++) {
        tensor_ref *tr = &m->tensors[t];
        int e = read_values(fd, tr->data, tr->count, data_start + ranges[t].begin);
        if (e) return hcr__fail(HCR_EIO, "%s: reading tensor '%s': %s", path, tr->name, strerror(e));
        long long bad = first_nonfinite(tr->data, tr->count);
        if (bad >= 0)
            return fmt_fail(path, "tensor '%s' element %lld is %s; refusing a model with non-finite weights",
                            tr->name, bad, isnan(tr->data[bad]) ? "NaN" : "infinite");
        /* Batch normalization divides by sqrt(variance + epsilon): a
         * negative variance would make every prediction NaN. */
        if (strstr(tr->name, ".moving_variance"))
            for (size_t i = 0; i < tr->count; i++)
                if (tr->data[i] < 0)
                    return fmt_fail(path, "tensor '%s' element %zu is %g; a variance cannot be negative",
                                    tr->name, i, (double)tr->data[i]);
    }
    return HCR_OK;
}

/* Parse and check the header, build the model and read the tensors. */
static hcr_status load_fd(const char *path, int fd, uint64_t fsize, model_extra *x, int nx,
                          hcr_model **out)
{
    cJSON *root = NULL;
    uint64_t data_start = 0;
    hcr_status st = read_header(path, fd, fsize, &root, &data_start);
    if (st) return st;
    const uint64_t data_len = fsize - data_start;
    hcr_model *m = NULL;
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    st = model_from_metadata(path, meta, data_len, &m);
    range *ranges = st == HCR_OK ? malloc(sizeof(range) * (size_t)(m->ntensors + nx + 1)) : NULL;
    if (st == HCR_OK && !ranges) st = hcr__fail(HCR_ENOMEM, "%s: out of memory", path);
    if (st == HCR_OK) st = check_tensors(path, root, m, x, nx, data_len, ranges);
    /* The metadata, then the weights. */
    for (const cJSON *j = meta ? meta->child : NULL; st == HCR_OK && j; j = j->next) {
        st = hcr_model_set_meta(m, j->string, j->valuestring);
        if (st == HCR_EINVAL) st = HCR_EFORMAT; /* a bad file, not a bad argument */
        if (st != HCR_OK) hcr__fail_prefix(st, "%s: __metadata__.%s", path, j->string);
    }
    cJSON_Delete(root);
    if (st == HCR_OK) st = read_tensors(path, fd, m, ranges, data_start);
    if (st == HCR_OK) st = read_extras(path, fd, x, nx, ranges + m->ntensors, data_start);
    free(ranges);
    if (st != HCR_OK) {
        hcr_model_free(m);
        return st;
    }
    model_weights_changed(m); /* new weights */
    *out = m;
    return HCR_OK;
}

hcr_status modelfile_load(const char *path, hcr_model **out, model_extra *x, int nx)
{
    if (out) *out = NULL;
    for (int i = 0; i < nx; i++) {
        x[i].data = NULL;
        x[i].count = 0;
    }
    if (!path || !out) return hcr__fail(HCR_EINVAL, "hcr_model_load: no path or no output");
    int fd;
    struct stat sb;
    hcr_status st0 = hcr__open_regular(path, &fd, &sb); /* FIFOs, devices, folders refused at once */
    if (st0 != HCR_OK) return st0;
    hcr_status st = load_fd(path, fd, (uint64_t)sb.st_size, x, nx, out);
    close(fd);
    if (st) {
        for (int i = 0; i < nx; i++) {
            free(x[i].data);
            x[i].data = NULL;
        }
    }
    return st;
}

hcr_status hcr_model_load(const char *path, hcr_model **out) { return modelfile_load(path, out, NULL, 0); }
