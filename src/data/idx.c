/*
 * data.c - MNIST-style datasets: reading IDX image and label files (raw or
 * gzip-compressed) into an hcr_dataset, slicing one, the SHA-256 of a file's
 * uncompressed content, and where the data cache lives.
 *
 * The IDX format (LeCun's MNIST distribution) is a 4-byte magic
 * 0x00 0x00 <type> <ndims>, then ndims big-endian uint32 dimensions, then
 * the data in row-major order. We read only type 0x08 (unsigned byte):
 * images are 3-dimensional (count, rows, cols), labels 1-dimensional.
 *
 * Every file is read through zlib's gzdopen/gzread, which reads gzip and
 * plain files alike. Nothing from the header is trusted: each dimension is
 * checked against a limit, the data size is computed with overflow checks,
 * and it must equal the real (decompressed) length of the data: a short
 * file is "truncated", a long one has "trailing data". A hostile header
 * cannot make us allocate what the file does not hold: a plain file's
 * claimed size is checked against its size on disk before allocating, and
 * a gzip file is read in chunks into a buffer that grows only as data
 * actually arrives (never past the claimed size, never more than twice
 * what has been read plus one chunk).
 *
 * The SHA-256 of each file's uncompressed content is computed while
 * reading, so the CLI can record exactly which data a model was trained on.
 */
#include "data/data.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zlib.h>

/* Limits on header fields: an image side of at most 4096 pixels, and a
 * count that fits hcr_dataset.count (an int). Anything larger must still
 * match the file's real length, so these only bound the arithmetic. */
#define IDX_MAX_SIDE 4096u
#define IDX_MAX_COUNT ((uint32_t)INT_MAX)
#define IDX_TYPE_UBYTE 0x08
#define IDX_CHUNK ((size_t)1 << 20) /* growth step for reading compressed data */
#define GZ_READ_MAX ((size_t)1 << 30) /* gzread takes an unsigned, returns an int */

/* ------------------------------------------------------------- sha-256 */

static void hex_encode(const unsigned char *bytes, size_t n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[bytes[i] >> 4];
        hex[2 * i + 1] = digits[bytes[i] & 15];
    }
    hex[2 * n] = '\0';
}

static hcr_status sha256_finish(EVP_MD_CTX *ctx, const char *path, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx, md, &len) != 1 || len != 32)
        return hcr__fail(HCR_ENOMEM, "%s: SHA-256 computation failed", path);
    hex_encode(md, len, hex);
    return HCR_OK;
}

/* ------------------------------------------------------- reading a file */

/* An open file being read through zlib, hashing everything read. */
typedef struct idx_reader {
    const char *path;
    int fd;               /* owned by gz once gzdopen succeeded */
    gzFile gz;
    EVP_MD_CTX *sha;
    struct stat st;
    uint64_t consumed;    /* uncompressed bytes read so far */
} idx_reader;

static void reader_close(idx_reader *r)
{
    if (r->gz) gzclose(r->gz);
    else if (r->fd >= 0) close(r->fd);
    r->gz = NULL;
    r->fd = -1;
    EVP_MD_CTX_free(r->sha);
    r->sha = NULL;
}

static hcr_status reader_open(idx_reader *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    /* A regular file only: a FIFO or a device is refused, not waited on. */
    hcr_status s = hcr__open_regular(path, &r->fd, &r->st);
    if (s != HCR_OK) return s;
    r->gz = gzdopen(r->fd, "rb");
    r->sha = EVP_MD_CTX_new();
    if (!r->gz || !r->sha || EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL) != 1) {
        reader_close(r);
        return hcr__fail(HCR_ENOMEM, "%s: out of memory opening the file", path);
    }
    gzbuffer(r->gz, 128 * 1024);
    return HCR_OK;
}

/* zlib's message for the last error, without the "<fd:3>: " that gzerror
 * puts before it for a gzdopen'ed file (the callers name the path). */
static const char *gz_message(gzFile gz, int *zerr)
{
    const char *m = gzerror(gz, zerr);
    if (m && strncmp(m, "<fd:", 4) == 0) {
        const char *end = strstr(m, ">: ");
        if (end) m = end + 3;
    }
    return m;
}

/* Read up to n bytes (fewer only at the end of the data), hashing them.
 * *got receives the count. Fails on a read error or corrupt gzip data,
 * including a gzip stream that ends early or has a bad CRC. */
static hcr_status reader_read(idx_reader *r, void *buf, size_t n, size_t *got)
{
    unsigned char *p = buf;
    *got = 0;
    while (*got < n) {
        size_t want = n - *got;
        if (want > GZ_READ_MAX) want = GZ_READ_MAX;
        errno = 0;
        int k = gzread(r->gz, p + *got, (unsigned)want);
        int saved_errno = errno;
        int zerr = Z_OK;
        const char *zmsg = gz_message(r->gz, &zerr);
        if (k > 0) {
            if (EVP_DigestUpdate(r->sha, p + *got, (size_t)k) != 1)
                return hcr__fail(HCR_ENOMEM, "%s: SHA-256 computation failed", r->path);
            *got += (size_t)k;
            r->consumed += (uint64_t)k;
        }
        if (zerr == Z_ERRNO)
            return hcr__fail(HCR_EIO, "%s: read error: %s", r->path, strerror(saved_errno));
        if (zerr == Z_BUF_ERROR)
            return hcr__fail(HCR_EFORMAT,
                            "%s: corrupt gzip data: unexpected end of file (the compressed "
                            "stream is truncated)",
                            r->path);
        if (zerr != Z_OK)
            return hcr__fail(HCR_EFORMAT, "%s: corrupt gzip data after %llu bytes: %s", r->path,
                            (unsigned long long)r->consumed, zmsg ? zmsg : "unknown error");
        if (k < 0) return hcr__fail(HCR_EIO, "%s: read error", r->path);
        if (k == 0) break; /* end of data */
    }
    return HCR_OK;
}

/* Count the bytes left (at most `limit`, to stay fast on a gzip bomb). */
static hcr_status reader_count_rest(idx_reader *r, uint64_t limit, uint64_t *rest)
{
    unsigned char scratch[64 * 1024];
    *rest = 0;
    while (*rest < limit) {
        size_t got;
        hcr_status s = reader_read(r, scratch, sizeof scratch, &got);
        if (s != HCR_OK) return s;
        if (got == 0) break;
        *rest += got;
    }
    return HCR_OK;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* What an IDX file of `ndims` dimensions is, for messages. */
static const char *idx_kind(int ndims) { return ndims == 3 ? "an IDX image file" : "an IDX label file"; }

/* Describe the header's claim: "60000 images of 28x28" or "60000 labels". */
static void describe(char *buf, size_t n, int ndims, const uint32_t *dims)
{
    if (ndims == 3)
        snprintf(buf, n, "%u images of %ux%u", dims[0], dims[1], dims[2]);
    else
        snprintf(buf, n, "%u labels", dims[0]);
}

/* The magic: 0x00 0x00, the data type (unsigned byte), the number of
 * dimensions. The messages say which of these is wrong, and spot a file
 * that is still gzip-compressed after zlib took its first layer off. */
static hcr_status idx_read_magic(idx_reader *r, int ndims)
{
    const uint32_t want_magic = 0x800u | (uint32_t)ndims;
    const size_t header_len = 4 + 4 * (size_t)ndims;
    unsigned char header[4];
    size_t got = 0;
    hcr_status s = reader_read(r, header, 4, &got);
    if (s != HCR_OK) return s;
    if (got == 0)
        return hcr__fail(HCR_EFORMAT, "%s: empty file, expected %s", r->path, idx_kind(ndims));
    if (got < 4)
        return hcr__fail(HCR_EFORMAT, "%s: truncated header: the file has %zu bytes, expected %zu",
                        r->path, got, header_len);
    uint32_t magic = be32(header);
    if (magic == want_magic) return HCR_OK;
    const char *why = "";
    char detail[96] = "";
    if (header[0] == 0 && header[1] == 0) {
        if (header[2] != IDX_TYPE_UBYTE) {
            snprintf(detail, sizeof detail,
                     ": data type 0x%02x is not unsigned byte (0x08)", header[2]);
        } else {
            snprintf(detail, sizeof detail, ": %u dimension%s, expected %d", header[3],
                     header[3] == 1 ? "" : "s", ndims);
        }
    } else if (header[0] == 0x1f && header[1] == 0x8b) {
        why = " (gzip data inside gzip? decompress it once)";
    } else {
        why = " (not an IDX file)";
    }
    return hcr__fail(HCR_EFORMAT, "%s: bad magic 0x%08x, expected 0x%08x (%s)%s%s", r->path, magic,
                    want_magic, idx_kind(ndims), detail, why);
}

/* The dimensions after the magic, each checked against its limit; *need
 * receives the payload's size in bytes and `what` the header's claim. */
static hcr_status idx_read_dims(idx_reader *r, int ndims, uint32_t dims[3], size_t *need,
                                char *what, size_t what_size)
{
    const char *path = r->path;
    const size_t header_len = 4 + 4 * (size_t)ndims;
    unsigned char header[12];
    size_t got = 0;
    hcr_status s = reader_read(r, header, header_len - 4, &got);
    if (s != HCR_OK) return s;
    if (got < header_len - 4)
        return hcr__fail(HCR_EFORMAT,
                        "%s: truncated header: the file ends after %zu bytes, inside the %zu-byte header",
                        path, 4 + got, header_len);
    for (int i = 0; i < ndims; i++) {
        dims[i] = be32(header + 4 * i);
        if (dims[i] == 0)
            return hcr__fail(HCR_EFORMAT, "%s: dimension %d of %d is zero", path, i + 1, ndims);
    }
    if (dims[0] > IDX_MAX_COUNT)
        return hcr__fail(HCR_EFORMAT, "%s: header claims %u %s, more than the limit of %u", path,
                        dims[0], ndims == 3 ? "images" : "labels", IDX_MAX_COUNT);
    if (ndims == 3 && (dims[1] > IDX_MAX_SIDE || dims[2] > IDX_MAX_SIDE))
        return hcr__fail(HCR_EFORMAT, "%s: image size %ux%u exceeds the limit of %ux%u", path,
                        dims[1], dims[2], IDX_MAX_SIDE, IDX_MAX_SIDE);
    describe(what, what_size, ndims, dims);
    *need = dims[0];
    for (int i = 1; i < ndims; i++)
        if (!hcr_mul_size(*need, dims[i], need))
            return hcr__fail(HCR_EFORMAT, "%s: header says %s, too large for this machine", path,
                            what);
    return HCR_OK;
}

/* A plain (uncompressed) regular file, whose size on disk is known. */
static bool reader_size_known(const idx_reader *r)
{
    return gzdirect(r->gz) && S_ISREG(r->st.st_mode);
}

/* A plain file: its size on disk must match the header before we allocate. */
static hcr_status idx_check_disk_size(const idx_reader *r, size_t header_len, size_t need,
                                      const char *what)
{
    if (!reader_size_known(r)) return HCR_OK;
    uint64_t have = (uint64_t)r->st.st_size > header_len ? (uint64_t)r->st.st_size - header_len : 0;
    if (have < need)
        return hcr__fail(HCR_EFORMAT,
                        "%s: truncated: header says %s (%zu bytes) but the file has %llu bytes of data",
                        r->path, what, need, (unsigned long long)have);
    if (have > need)
        return hcr__fail(HCR_EFORMAT,
                        "%s: trailing garbage: header says %s (%zu bytes) but the file has %llu "
                        "bytes of data (%llu too many)",
                        r->path, what, need, (unsigned long long)have,
                        (unsigned long long)(have - need));
    return HCR_OK;
}

/* The `need` bytes of data, in a buffer that grows only as data arrives
 * (a plain file's size was checked, so it gets all of it at once). */
static hcr_status idx_read_payload(idx_reader *r, size_t need, const char *what, uint8_t **data)
{
    const char *path = r->path;
    size_t cap = need < IDX_CHUNK ? need : IDX_CHUNK;
    if (reader_size_known(r)) cap = need; /* checked by idx_check_disk_size */
    size_t have = 0, got = 0;
    hcr_status s;
    uint8_t *buf = malloc(cap);
    if (!buf) return hcr__fail(HCR_ENOMEM, "%s: out of memory for %zu bytes", path, cap);
    for (;;) {
        if (have == cap) {
            if (cap == need) break;
            size_t grown = cap > need / 2 ? need : cap * 2;
            uint8_t *nb = realloc(buf, grown);
            if (!nb) {
                s = hcr__fail(HCR_ENOMEM, "%s: out of memory for %zu bytes", path, grown);
                goto fail;
            }
            buf = nb;
            cap = grown;
        }
        if ((s = reader_read(r, buf + have, cap - have, &got)) != HCR_OK) goto fail;
        have += got;
        if (have < cap) break; /* end of data */
    }
    if (have < need) {
        s = hcr__fail(HCR_EFORMAT,
                     "%s: truncated: header says %s (%zu bytes) but the file has %zu bytes of data%s",
                     path, what, need, have, gzdirect(r->gz) ? "" : " (after decompression)");
        goto fail;
    }
    *data = buf;
    return HCR_OK;

fail:
    free(buf);
    return s;
}

/* Nothing may follow the data; reading to the end also checks the gzip CRC. */
static hcr_status idx_check_end(idx_reader *r, size_t need, const char *what)
{
    uint64_t rest = 0;
    hcr_status s = reader_count_rest(r, (uint64_t)1 << 30, &rest);
    if (s != HCR_OK) return s;
    if (rest > 0)
        return hcr__fail(HCR_EFORMAT,
                        "%s: trailing garbage: header says %s (%zu bytes) but the file has %s%llu "
                        "more bytes of data after them",
                        r->path, what, need, rest >= ((uint64_t)1 << 30) ? "at least " : "",
                        (unsigned long long)rest);
    return HCR_OK;
}

/*
 * Read an IDX file of unsigned bytes with `ndims` dimensions (3 or 1):
 * dims receives the dimensions, *data the payload (malloc'd, *len bytes)
 * and hex the SHA-256 of the whole uncompressed file.
 */
static hcr_status idx_read(const char *path, int ndims, uint32_t dims[3], uint8_t **data,
                           size_t *len, char hex[65])
{
    idx_reader r;
    uint8_t *buf = NULL;
    size_t need = 0;
    char what[96];

    *data = NULL;
    *len = 0;
    hcr_status s = reader_open(&r, path);
    if (s != HCR_OK) return s;
    if ((s = idx_read_magic(&r, ndims)) != HCR_OK ||
        (s = idx_read_dims(&r, ndims, dims, &need, what, sizeof what)) != HCR_OK ||
        (s = idx_check_disk_size(&r, 4 + 4 * (size_t)ndims, need, what)) != HCR_OK ||
        (s = idx_read_payload(&r, need, what, &buf)) != HCR_OK ||
        (s = idx_check_end(&r, need, what)) != HCR_OK ||
        (s = sha256_finish(r.sha, path, hex)) != HCR_OK) {
        free(buf);
        reader_close(&r);
        return s;
    }
    reader_close(&r);
    *data = buf;
    *len = need;
    return HCR_OK;
}

/* --------------------------------------------------------------- datasets */

hcr_status hcr_dataset_load_idx(const char *images_path, const char *labels_path, hcr_dataset **out)
{
    if (!out) return hcr__fail(HCR_EINVAL, "hcr_dataset_load_idx: out is NULL");
    *out = NULL;
    if (!images_path || !labels_path)
        return hcr__fail(HCR_EINVAL, "hcr_dataset_load_idx: a file path is NULL");

    hcr_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return hcr__fail(HCR_ENOMEM, "out of memory for a dataset");

    uint32_t idims[3] = {0}, ldims[3] = {0};
    size_t ilen = 0, llen = 0;
    hcr_status s = idx_read(images_path, 3, idims, &ds->pixels, &ilen, ds->images_sha256);
    if (s != HCR_OK) goto fail;
    s = idx_read(labels_path, 1, ldims, &ds->labels, &llen, ds->labels_sha256);
    if (s != HCR_OK) goto fail;
    if (idims[0] != ldims[0]) {
        s = hcr__fail(HCR_EFORMAT, "%s: %u images but %u labels in %s", images_path, idims[0],
                     ldims[0], labels_path);
        goto fail;
    }
    ds->count = (int)idims[0];
    ds->rows = (int)idims[1];
    ds->cols = (int)idims[2];
    int max_label = 0;
    for (size_t i = 0; i < llen; i++)
        if (ds->labels[i] > max_label) max_label = ds->labels[i];
    ds->num_classes = max_label + 1;
    *out = ds;
    return HCR_OK;

fail:
    hcr_dataset_free(ds);
    return s;
}

/* Find the first existing file "<dir>/<prefix>-<kind><sep>idx<n>-ubyte[.gz]"
 * among the usual spellings; `tried` lists the names when none exists. */
static bool find_idx_file(const char *dir, const char *prefix, const char *kind, int n,
                          char *path, size_t path_size, char *tried, size_t tried_size)
{
    static const char *const seps[] = {"-", "."};
    static const char *const exts[] = {"", ".gz"};
    size_t used = 0;
    tried[0] = '\0';
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) {
            char name[256];
            snprintf(name, sizeof name, "%s-%s%sidx%d-ubyte%s", prefix, kind, seps[i], n, exts[j]);
            int k = snprintf(path, path_size, "%s/%s", dir, name);
            struct stat st;
            if (k > 0 && (size_t)k < path_size && stat(path, &st) == 0 && !S_ISDIR(st.st_mode))
                return true;
            k = snprintf(tried + used, tried_size - used, "%s%s", used ? ", " : "", name);
            if (k > 0 && used + (size_t)k < tried_size) used += (size_t)k;
        }
    }
    return false;
}

hcr_status hcr_dataset_load_dir(const char *dir, const char *prefix, hcr_dataset **out)
{
    if (!out) return hcr__fail(HCR_EINVAL, "hcr_dataset_load_dir: out is NULL");
    *out = NULL;
    if (!dir || !*dir || !prefix || !*prefix || strchr(prefix, '/'))
        return hcr__fail(HCR_EINVAL, "hcr_dataset_load_dir: need a directory and a prefix "
                                    "such as \"train\" or \"t10k\"");
    struct stat st;
    if (stat(dir, &st) != 0)
        return hcr__fail(HCR_EIO, "data directory %s: %s (it should hold %s-images-idx3-ubyte[.gz] "
                                 "and %s-labels-idx1-ubyte[.gz])",
                        dir, strerror(errno), prefix, prefix);
    if (!S_ISDIR(st.st_mode)) return hcr__fail(HCR_EIO, "data directory %s: not a directory", dir);

    char images[4096], labels[4096], tried[1024];
    if (!find_idx_file(dir, prefix, "images", 3, images, sizeof images, tried, sizeof tried))
        return hcr__fail(HCR_EIO, "no %s images in %s: tried %s", prefix, dir, tried);
    if (!find_idx_file(dir, prefix, "labels", 1, labels, sizeof labels, tried, sizeof tried))
        return hcr__fail(HCR_EIO, "no %s labels in %s: tried %s", prefix, dir, tried);
    return hcr_dataset_load_idx(images, labels, out);
}

/* ------------------------------------------------------------ checksums */

hcr_status hcr_file_sha256(const char *path, char hex[65])
{
    if (!path || !hex) return hcr__fail(HCR_EINVAL, "hcr_file_sha256: NULL argument");
    hex[0] = '\0';
    idx_reader r;
    hcr_status s = reader_open(&r, path);
    if (s != HCR_OK) return s;
    uint64_t total;
    s = reader_count_rest(&r, UINT64_MAX, &total);
    if (s == HCR_OK) s = sha256_finish(r.sha, path, hex);
    reader_close(&r);
    return s;
}

/* ---------------------------------------------------------------- cache */

hcr_status hcr_cache_dir(char *buf, size_t n)
{
    if (!buf || n == 0) return hcr__fail(HCR_EINVAL, "hcr_cache_dir: no buffer");
    buf[0] = '\0';
    const char *env, *suffix;
    if ((env = getenv("HCR_DATA")) && *env) {
        suffix = "";
    } else if ((env = getenv("XDG_CACHE_HOME")) && *env) {
        suffix = "/hcr";
    } else if ((env = getenv("HOME")) && *env) {
        suffix = "/.cache/hcr";
    } else {
        return hcr__fail(HCR_EINVAL, "no cache directory: none of HCR_DATA, XDG_CACHE_HOME and "
                                    "HOME is set (set HCR_DATA or pass a data directory)");
    }
    int k = snprintf(buf, n, "%s%s", env, suffix);
    if (k < 0 || (size_t)k >= n) {
        buf[0] = '\0';
        return hcr__fail(HCR_EINVAL, "cache directory %s%s is longer than %zu bytes", env, suffix,
                        n - 1);
    }
    return HCR_OK;
}
