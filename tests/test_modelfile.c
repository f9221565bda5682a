/*
 * test_modelfile.c - hcr_model_save / hcr_model_load: round trips, the file
 * layout (checked by hand against the safetensors convention), atomic
 * writes, and one corrupt file per kind of damage with the message it must
 * produce. Corrupt files are made the way they happen in practice: by
 * editing the JSON header of a good file, truncating it, or flipping bytes.
 */
#include "harness.h"
#include "hcr.h"
#include "nn/model.h"

#include <cjson/cJSON.h>

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPEC HCR_DEFAULT_SPEC

/* ---------------------------------------------------------------- helpers */

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spit(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    if (len && fwrite(data, 1, len, f) != len) exit(2);
    if (fclose(f) != 0) exit(2);
}

static uint64_t get_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Metadata key k of m is v (false, not a crash, when it is missing). */
static int meta_is(const hcr_model *m, const char *k, const char *v)
{
    const char *got = hcr_model_get_meta(m, k);
    return got && strcmp(got, v) == 0;
}

/* A model with random weights and non-zero biases (so a loader that drops
 * the biases is caught) and some metadata. */
static hcr_model *make_model(uint64_t seed)
{
    hcr_model *m = NULL;
    CHECK(hcr_model_create(SPEC, 28, 28, 10, seed, &m) == HCR_OK);
    if (!m) exit(2);
    hcr_rng r;
    hcr_rng_seed(&r, seed ^ 0xb1a5);
    for (int t = 0; t < m->ntensors; t++)
        if (m->tensors[t].ndim == 1)
            for (size_t i = 0; i < m->tensors[t].count; i++)
                m->tensors[t].data[i] = hcr_rng_uniform(&r) - 0.5f;
    return m;
}

/* A good file, split into its parts for editing. */
typedef struct good_file {
    unsigned char *bytes;
    size_t len;
    char *header;          /* the JSON text, NUL-terminated, padding kept */
    size_t header_len;
    const unsigned char *data;
    size_t data_len;
} good_file;

static good_file good;

static void make_good(void)
{
    if (good.bytes) return;
    hcr_model *m = make_model(11);
    const char *p = harness_tmp_path("good.safetensors");
    CHECK(hcr_model_save(m, p) == HCR_OK);
    hcr_model_free(m);
    good.bytes = slurp(p, &good.len);
    if (!good.bytes || good.len < 8) exit(2);
    good.header_len = (size_t)get_le64(good.bytes);
    if (good.header_len > good.len - 8) exit(2);
    good.header = malloc(good.header_len + 1);
    memcpy(good.header, good.bytes + 8, good.header_len);
    good.header[good.header_len] = '\0';
    good.data = good.bytes + 8 + good.header_len;
    good.data_len = good.len - 8 - good.header_len;
}

/* Write a file with the given header text (padded to 8 like the saver does)
 * and the good file's data. */
static void write_with_header(const char *path, const char *hdr)
{
    size_t n = strlen(hdr), padded = (n + 7) & ~(size_t)7;
    size_t len = 8 + padded + good.data_len;
    unsigned char *b = malloc(len);
    put_le64(b, padded);
    memcpy(b + 8, hdr, n);
    memset(b + 8 + n, ' ', padded - n);
    memcpy(b + 8 + padded, good.data, good.data_len);
    spit(path, b, len);
    free(b);
}

/* The good header with the first occurrence of `from` replaced by `to`. */
static char *replace(const char *hdr, const char *from, const char *to)
{
    const char *at = strstr(hdr, from);
    CHECK_MSG(at != NULL, "'%s' not in the header", from);
    if (!at) return NULL;
    size_t a = (size_t)(at - hdr), fl = strlen(from), tl = strlen(to), hl = strlen(hdr);
    char *s = malloc(hl - fl + tl + 1);
    memcpy(s, hdr, a);
    memcpy(s + a, to, tl);
    memcpy(s + a + tl, at + fl, hl - a - fl + 1);
    return s;
}

/* Load path and expect failure with status st and a message that starts with
 * the path and contains `sub`. */
static void expect_fail(const char *path, hcr_status st, const char *sub)
{
    hcr_model *m = (hcr_model *)1;
    hcr_status got = hcr_model_load(path, &m);
    CHECK_MSG(got == st, "status %s, expected %s (%s)", hcr_status_name(got), hcr_status_name(st),
              hcr_last_error());
    CHECK(m == NULL);
    if (got == HCR_OK) hcr_model_free(m);
    const char *msg = hcr_last_error();
    CHECK_MSG(strncmp(msg, path, strlen(path)) == 0 && msg[strlen(path)] == ':',
              "message does not start with the path: %s", msg);
    CHECK_CONTAINS(msg, sub);
}

/* Edit the good header textually and expect the load to fail. */
static void expect_edit_fails(const char *name, const char *from, const char *to, const char *sub)
{
    make_good();
    char *h = replace(good.header, from, to);
    if (!h) return;
    const char *p = harness_tmp_path(name);
    write_with_header(p, h);
    free(h);
    expect_fail(p, HCR_EFORMAT, sub);
}

/* Edit the good header as JSON (parsed with cJSON) and write it. */
static cJSON *good_json(void)
{
    make_good();
    cJSON *j = cJSON_Parse(good.header);
    if (!j) exit(2);
    return j;
}

static void write_json(const char *path, cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    write_with_header(path, s);
    free(s);
    cJSON_Delete(j);
}

/* The text `"<tensor>":{...}` data_offsets of a tensor in the good header. */
static void offsets_of(const char *tensor, uint64_t *b, uint64_t *e)
{
    cJSON *j = good_json();
    cJSON *o = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, tensor), "data_offsets");
    *b = (uint64_t)cJSON_GetArrayItem(o, 0)->valuedouble;
    *e = (uint64_t)cJSON_GetArrayItem(o, 1)->valuedouble;
    cJSON_Delete(j);
}

static int count_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* ------------------------------------------------------------ round trip */

static void test_round_trip(void)
{
    hcr_model *m = make_model(42);
    CHECK(hcr_model_set_meta(m, "recipe", "epochs=10 batch=128 lr=0.001") == HCR_OK);
    CHECK(hcr_model_set_meta(m, "note", "quotes \" backslash \\ newline \n tab \t unicode \xc3\xbc \xe2\x9c\x93")
          == HCR_OK);
    CHECK(hcr_model_set_meta(m, "class_names",
                             "[\"zero\",\"one\",\"two\",\"three\",\"four\",\"five\",\"six\",\"seven\","
                             "\"eight\",\"nine\"]") == HCR_OK);
    const char *p = harness_tmp_path("round.safetensors");
    CHECK(hcr_model_save(m, p) == HCR_OK);

    hcr_model *l = NULL;
    hcr_status st = hcr_model_load(p, &l);
    CHECK_MSG(st == HCR_OK, "%s", hcr_last_error());
    if (!l) {
        hcr_model_free(m);
        return;
    }
    CHECK(strcmp(hcr_model_spec(l), SPEC) == 0);
    CHECK(hcr_model_input_rows(l) == 28 && hcr_model_input_cols(l) == 28);
    CHECK(hcr_model_num_classes(l) == 10);
    CHECK(hcr_model_param_count(l) == hcr_model_param_count(m));
    CHECK(l->ntensors == m->ntensors && m->ntensors == 8);
    for (int t = 0; t < m->ntensors && t < l->ntensors; t++) {
        CHECK(strcmp(l->tensors[t].name, m->tensors[t].name) == 0);
        CHECK(l->tensors[t].count == m->tensors[t].count);
        CHECK_MSG(memcmp(l->tensors[t].data, m->tensors[t].data, m->tensors[t].count * 4) == 0,
                  "tensor %s differs", m->tensors[t].name);
    }
    /* Every metadata entry comes back, plus the ones the format adds. */
    for (int i = 0; i < hcr_model_meta_count(m); i++) {
        const char *k = hcr_model_meta_key(m, i);
        const char *v = hcr_model_get_meta(l, k);
        CHECK_MSG(v && meta_is(m, k, v), "metadata %s: %s", k, v ? v : "(missing)");
    }
    CHECK(meta_is(l, "format", "hcr"));
    CHECK(meta_is(l, "format_version", "1"));
    CHECK(meta_is(l, "spec", SPEC));
    CHECK(meta_is(l, "input_rows", "28"));
    CHECK(meta_is(l, "input_cols", "28"));
    CHECK(meta_is(l, "num_classes", "10"));
    CHECK(strcmp(hcr_model_class_name(l, 3), "three") == 0);

    /* Predictions are bit-identical. */
    enum { N = 5 };
    uint8_t px[N * 28 * 28];
    hcr_rng r;
    hcr_rng_seed(&r, 3);
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)hcr_rng_below(&r, 256);
    float a[N * 10], b[N * 10];
    CHECK(hcr_model_predict(m, px, N, a) == HCR_OK);
    CHECK(hcr_model_predict(l, px, N, b) == HCR_OK);
    CHECK(memcmp(a, b, sizeof a) == 0);
    float sum = 0;
    for (int i = 0; i < 10; i++) sum += a[i];
    CHECK_NEAR(sum, 1.0, 1e-5);

    /* Saving the loaded model gives the same bytes. */
    const char *p2 = harness_tmp_path("round2.safetensors");
    CHECK(hcr_model_save(l, p2) == HCR_OK);
    size_t n1, n2;
    unsigned char *b1 = slurp(p, &n1), *b2 = slurp(p2, &n2);
    CHECK(b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0);
    free(b1);
    free(b2);
    hcr_model_free(l);
    hcr_model_free(m);
}

/* A model of another shape (3 classes, 20x16 input, no pooling, big
 * kernel) survives too, and a user "spec" entry cannot shadow the real one. */
static void test_round_trip_other_spec(void)
{
    hcr_model *m = NULL;
    CHECK(hcr_model_create("conv8x5-dense16", 20, 16, 3, 9, &m) == HCR_OK);
    if (!m) return;
    CHECK(hcr_model_set_meta(m, "spec", "conv1-dense1") == HCR_OK);
    CHECK(hcr_model_set_meta(m, "format", "something-else") == HCR_OK);
    const char *p = harness_tmp_path("other.safetensors");
    CHECK_MSG(hcr_model_save(m, p) == HCR_OK, "%s", hcr_last_error());
    hcr_model *l = NULL;
    CHECK_MSG(hcr_model_load(p, &l) == HCR_OK, "%s", hcr_last_error());
    if (l) {
        CHECK(strcmp(hcr_model_spec(l), "conv8x5-dense16") == 0);
        CHECK(hcr_model_input_rows(l) == 20 && hcr_model_input_cols(l) == 16);
        CHECK(hcr_model_num_classes(l) == 3);
        CHECK(meta_is(l, "spec", "conv8x5-dense16"));
        CHECK(meta_is(l, "format", "hcr"));
        CHECK(l->ntensors == m->ntensors);
        for (int t = 0; t < m->ntensors && t < l->ntensors; t++)
            CHECK(memcmp(l->tensors[t].data, m->tensors[t].data, m->tensors[t].count * 4) == 0);
        hcr_model_free(l);
    }
    hcr_model_free(m);
}

/* "conv8x1-bn" n times: 6 tensors a block (the 1x1 convolution keeps the
 * 28x28 size), so 30 blocks need 182 tensors and 62 layers. */
static char *deep_spec(int n)
{
    char *s = malloc((size_t)n * 11 + 1);
    if (!s) exit(2);
    s[0] = '\0';
    for (int i = 0; i < n; i++) strcat(strcat(s, i ? "-" : ""), "conv8x1-bn");
    return s;
}

/* The deepest spec that fits round-trips with every tensor; one block more
 * is refused by name, from a spec and from a crafted file alike (once an
 * overflow of the tensor table). */
static void test_deep_spec(void)
{
    char *spec = deep_spec(30);
    hcr_model *m = NULL;
    CHECK_MSG(hcr_model_create(spec, 28, 28, 10, 3, &m) == HCR_OK, "%s", hcr_last_error());
    free(spec);
    if (!m) return;
    CHECK(m->ntensors == 30 * 6 + 2);
    const char *p = harness_tmp_path("deep.safetensors");
    CHECK_MSG(hcr_model_save(m, p) == HCR_OK, "%s", hcr_last_error());
    hcr_model *l = NULL;
    CHECK_MSG(hcr_model_load(p, &l) == HCR_OK, "%s", hcr_last_error());
    if (l) {
        CHECK(l->ntensors == m->ntensors);
        for (int t = 0; t < m->ntensors && t < l->ntensors; t++)
            CHECK(memcmp(l->tensors[t].data, m->tensors[t].data, m->tensors[t].count * 4) == 0);
        hcr_model_free(l);
    }
    hcr_model_free(m);

    spec = deep_spec(31);
    m = (hcr_model *)&m;
    CHECK(hcr_model_create(spec, 28, 28, 10, 3, &m) == HCR_EINVAL && m == NULL);
    CHECK_CONTAINS(hcr_last_error(), "too many layers (at most 62)");
    /* The same spec in a file's metadata. */
    make_good();
    size_t len = 0;
    unsigned char *file = slurp(p, &len);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)file[i] << (8 * i);
    char *hdr = malloc((size_t)n + 1);
    memcpy(hdr, file + 8, (size_t)n);
    hdr[n] = '\0';
    char *old = deep_spec(30);
    char *h = replace(hdr, old, spec);
    if (h) {
        write_with_header(p, h);
        expect_fail(p, HCR_EFORMAT, "too many layers");
    }
    free(h);
    free(old);
    free(hdr);
    free(file);
    free(spec);
}

/* Malformed class names are an error, from the API and from a file, and
 * leave the names there were. */
static void test_bad_class_names(void)
{
    hcr_model *m = make_model(2);
    static const char *const bad[] = {"[\"a\",\"b\"]", "not json", "{\"0\":\"a\"}",
                                      "[\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",9]",
                                      "[\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"\"]"};
    CHECK(hcr_model_set_meta(m, "class_names", "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\"]") ==
          HCR_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(hcr_model_set_meta(m, "class_names", bad[i]) == HCR_EINVAL, "%s", bad[i]);
        CHECK_CONTAINS(hcr_last_error(), "class_names");
        CHECK(strcmp(hcr_model_class_name(m, 9), "j") == 0);
    }
    hcr_model_free(m);
    cJSON *j = good_json();
    cJSON *meta = cJSON_GetObjectItem(j, "__metadata__");
    cJSON_AddStringToObject(meta, "class_names", "[\"a\",\"b\"]");
    const char *p = harness_tmp_path("names.safetensors");
    write_json(p, j);
    expect_fail(p, HCR_EFORMAT, "__metadata__.class_names: class_names must be a JSON array of 10 strings");
}

/* Tokens and specs past their length limits are refused, never cut. */
static void test_long_spec(void)
{
    char tok[200] = "conv32-drop0.5";
    memset(tok + strlen(tok), '0', 60);
    strcpy(tok + strlen(tok), "garbage");
    hcr_model *m = NULL;
    CHECK(hcr_spec_check(tok, 28, 28, 10, NULL) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "characters long (at most 63)");
    char *big = malloc(2000);
    strcpy(big, "conv8");
    while (strlen(big) < 1500) strcat(big, "-drop0.1");
    CHECK(hcr_model_create(big, 28, 28, 10, 1, &m) == HCR_EINVAL && m == NULL);
    CHECK_CONTAINS(hcr_last_error(), "at most 1024 allowed");
    free(big);
}

/* ------------------------------------------------------------ the layout */

static void test_file_is_safetensors(void)
{
    hcr_model *m = make_model(5);
    CHECK(hcr_model_set_meta(m, "dataset", "mnist") == HCR_OK);
    const char *p = harness_tmp_path("layout.safetensors");
    CHECK(hcr_model_save(m, p) == HCR_OK);
    size_t len;
    unsigned char *b = slurp(p, &len);
    CHECK(b && len > 8);
    if (!b) return;
    uint64_t n = get_le64(b);
    CHECK(n >= 2 && n <= len - 8);
    CHECK((8 + n) % 8 == 0);
    CHECK(b[8] == '{');
    /* Only spaces after the closing brace. */
    size_t last = 8 + (size_t)n - 1;
    while (last > 8 && b[last] == ' ') last--;
    CHECK(b[last] == '}');
    CHECK(8 + (size_t)n - 1 - last < 8);

    cJSON *j = cJSON_ParseWithLength((const char *)b + 8, (size_t)n);
    CHECK(cJSON_IsObject(j));
    if (!j) return;
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(j, "__metadata__");
    CHECK(cJSON_IsObject(meta));
    static const char *const want[][2] = {
        {"format", "hcr"},       {"format_version", "1"}, {"spec", SPEC},        {"input_rows", "28"},
        {"input_cols", "28"},    {"num_classes", "10"},   {"dataset", "mnist"},
        {"input_normalization", "x / 255, light ink on dark background (MNIST polarity), NHWC"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, want[i][0]);
        CHECK_MSG(cJSON_IsString(v) && strcmp(v->valuestring, want[i][1]) == 0, "__metadata__.%s", want[i][0]);
    }
    for (cJSON *e = meta ? meta->child : NULL; e; e = e->next) CHECK(cJSON_IsString(e));

    /* Tensors: Keras names and layouts, packed in order from offset 0. */
    static const struct {
        const char *name;
        int ndim;
        int shape[4];
    } tensors[] = {{"conv2d.kernel", 4, {3, 3, 1, 32}},  {"conv2d.bias", 1, {32}},
                   {"conv2d_1.kernel", 4, {3, 3, 32, 64}}, {"conv2d_1.bias", 1, {64}},
                   {"dense.kernel", 2, {1600, 128}},       {"dense.bias", 1, {128}},
                   {"dense_1.kernel", 2, {128, 10}},       {"dense_1.bias", 1, {10}}};
    CHECK(cJSON_GetArraySize(j) == 9);
    const unsigned char *data = b + 8 + n;
    size_t data_len = len - 8 - (size_t)n;
    double offset = 0;
    for (int t = 0; t < 8; t++) {
        cJSON *e = cJSON_GetObjectItemCaseSensitive(j, tensors[t].name);
        CHECK_MSG(cJSON_IsObject(e), "tensor %s", tensors[t].name);
        if (!e) continue;
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        CHECK(cJSON_IsString(dt) && strcmp(dt->valuestring, "F32") == 0);
        cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        CHECK(cJSON_GetArraySize(sh) == tensors[t].ndim);
        double count = 1;
        for (int d = 0; d < tensors[t].ndim; d++) {
            cJSON *x = cJSON_GetArrayItem(sh, d);
            CHECK(x && x->valuedouble == tensors[t].shape[d]);
            count *= tensors[t].shape[d];
        }
        cJSON *o = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        CHECK(cJSON_GetArraySize(o) == 2);
        if (cJSON_GetArraySize(o) != 2) continue;
        double ob = cJSON_GetArrayItem(o, 0)->valuedouble, oe = cJSON_GetArrayItem(o, 1)->valuedouble;
        CHECK(ob == offset);
        CHECK(oe == ob + 4 * count);
        offset = oe;
        /* The bytes are the little-endian floats of the model's tensor. */
        CHECK(strcmp(m->tensors[t].name, tensors[t].name) == 0);
        int ok = oe <= (double)data_len;
        for (size_t i = 0; ok && i < (size_t)count; i++) {
            uint32_t u;
            memcpy(&u, &m->tensors[t].data[i], 4);
            const unsigned char *q = data + (size_t)ob + 4 * i;
            ok = q[0] == (u & 0xff) && q[1] == ((u >> 8) & 0xff) && q[2] == ((u >> 16) & 0xff) && q[3] == (u >> 24);
        }
        CHECK_MSG(ok, "data of %s", tensors[t].name);
    }
    CHECK(offset == (double)data_len);
    CHECK(data_len == hcr_model_param_count(m) * 4);
    cJSON_Delete(j);
    free(b);
    hcr_model_free(m);
}

/* --------------------------------------------------------- atomic writes */

static void test_atomic_write(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/atomic", harness_tmpdir());
    CHECK(mkdir(dir, 0755) == 0);
    char p[600];
    snprintf(p, sizeof p, "%s/m.safetensors", dir);
    hcr_model *a = make_model(1), *b = make_model(2);
    CHECK(hcr_model_save(a, p) == HCR_OK);
    CHECK(count_dir_entries(dir) == 1);
    struct stat sb;
    CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0644);
    /* Overwriting replaces the file and leaves nothing else behind. */
    CHECK(hcr_model_save(b, p) == HCR_OK);
    CHECK(count_dir_entries(dir) == 1);
    hcr_model *l = NULL;
    CHECK(hcr_model_load(p, &l) == HCR_OK);
    if (l) CHECK(memcmp(l->tensors[0].data, b->tensors[0].data, b->tensors[0].count * 4) == 0);
    hcr_model_free(l);

    /* A missing directory: the message names the path and the reason. */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no/such/dir/m.safetensors", dir);
    CHECK(hcr_model_save(a, missing) == HCR_EIO);
    CHECK_CONTAINS(hcr_last_error(), missing);
    CHECK_CONTAINS(hcr_last_error(), "does not exist");

    /* A directory or a FIFO at the path is refused, never replaced, and
     * nothing is left behind. */
    char sub[600], fifo[600];
    snprintf(sub, sizeof sub, "%s/adir", dir);
    CHECK(mkdir(sub, 0755) == 0);
    CHECK(hcr_model_save(a, sub) == HCR_EIO);
    CHECK_CONTAINS(hcr_last_error(), sub);
    CHECK_CONTAINS(hcr_last_error(), "is a directory; refusing to replace it");
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    CHECK(mkfifo(fifo, 0644) == 0);
    CHECK(hcr_model_save(a, fifo) == HCR_EIO);
    CHECK_CONTAINS(hcr_last_error(), "is a FIFO");
    struct stat fs;
    CHECK(lstat(fifo, &fs) == 0 && S_ISFIFO(fs.st_mode));
    CHECK(count_dir_entries(dir) == 3);
    unlink(fifo);
    rmdir(sub);

    /* A symbolic link is written through: it still points at the target,
     * which holds the new model; the temporary went to the target's folder. */
    char link[600], target[600];
    snprintf(target, sizeof target, "%s/real", dir);
    CHECK(mkdir(target, 0755) == 0);
    snprintf(target, sizeof target, "%s/real/m.safetensors", dir);
    snprintf(link, sizeof link, "%s/link.safetensors", dir);
    CHECK(symlink("real/m.safetensors", link) == 0); /* dangling for now */
    CHECK_MSG(hcr_model_save(a, link) == HCR_OK, "%s", hcr_last_error());
    CHECK(lstat(link, &fs) == 0 && S_ISLNK(fs.st_mode));
    CHECK(lstat(target, &fs) == 0 && S_ISREG(fs.st_mode));
    CHECK_MSG(hcr_model_save(b, link) == HCR_OK, "%s", hcr_last_error());
    CHECK(lstat(link, &fs) == 0 && S_ISLNK(fs.st_mode));
    l = NULL;
    CHECK(hcr_model_load(target, &l) == HCR_OK);
    if (l) CHECK(memcmp(l->tensors[0].data, b->tensors[0].data, b->tensors[0].count * 4) == 0);
    hcr_model_free(l);
    snprintf(sub, sizeof sub, "%s/real", dir);
    CHECK(count_dir_entries(sub) == 1);
    CHECK(count_dir_entries(dir) == 3);

    /* A full disk (a file size limit): the error names the file, the old
     * model stays whole and no temporary is left. */
    size_t before_len = 0, after_len = 0;
    unsigned char *before = slurp(p, &before_len);
    struct rlimit old_lim, lim;
    getrlimit(RLIMIT_FSIZE, &old_lim);
    lim = old_lim;
    lim.rlim_cur = 4096;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    CHECK(hcr_model_save(a, p) == HCR_EIO);
    setrlimit(RLIMIT_FSIZE, &old_lim);
    signal(SIGXFSZ, old_handler);
    CHECK_CONTAINS(hcr_last_error(), p);
    CHECK_CONTAINS(hcr_last_error(), "File too large");
    unsigned char *after = slurp(p, &after_len);
    CHECK(before && after && before_len == after_len && memcmp(before, after, before_len) == 0);
    free(before);
    free(after);
    CHECK(count_dir_entries(dir) == 3);

    /* A non-finite weight is refused before anything is written. */
    char q[600];
    snprintf(q, sizeof q, "%s/nan.safetensors", dir);
    a->tensors[2].data[7] = NAN;
    CHECK(hcr_model_save(a, q) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "conv2d_1.kernel");
    CHECK_CONTAINS(hcr_last_error(), "NaN");
    CHECK(count_dir_entries(dir) == 3);
    hcr_model_free(a);
    hcr_model_free(b);
}

/* --------------------------------------------------------- corrupt files */

static void test_missing_file(void)
{
    expect_fail(harness_tmp_path("does-not-exist.safetensors"), HCR_EIO, "No such file or directory");
    expect_fail(harness_tmpdir(), HCR_EIO, "is a directory, not a regular file");
    /* A FIFO with no writer and a device are refused at once. */
    const char *fifo = harness_tmp_path("fifo.safetensors");
    unlink(fifo);
    CHECK(mkfifo(fifo, 0644) == 0);
    expect_fail(fifo, HCR_EIO, "is a FIFO (named pipe), not a regular file");
    expect_fail("/dev/zero", HCR_EIO, "is a character device, not a regular file");
}

static void test_truncated(void)
{
    make_good();
    const char *p = harness_tmp_path("trunc.safetensors");
    spit(p, good.bytes, good.len - 100);
    expect_fail(p, HCR_EFORMAT, "truncated: the architecture");
    expect_fail(p, HCR_EFORMAT, "has 225034 parameters (900136 bytes) but the data section holds 900036 bytes");
    spit(p, good.bytes, good.len - 1);
    expect_fail(p, HCR_EFORMAT, "data section holds 900135 bytes");
    spit(p, good.bytes, 5);
    expect_fail(p, HCR_EFORMAT, "file is 5 bytes, too short");
    spit(p, good.bytes, 0);
    expect_fail(p, HCR_EFORMAT, "file is 0 bytes");
    /* Cut inside the header. */
    spit(p, good.bytes, 40);
    char want[128];
    snprintf(want, sizeof want, "header length %zu exceeds the file size (40 bytes)", good.header_len);
    expect_fail(p, HCR_EFORMAT, want);
    /* Every cut from 0 bytes to just past the header fails cleanly. */
    for (size_t n = 0; n < 8 + good.header_len + 16; n++) {
        spit(p, good.bytes, n);
        hcr_model *m = NULL;
        CHECK(hcr_model_load(p, &m) == HCR_EFORMAT);
        CHECK(m == NULL);
    }
}

static void test_header_length(void)
{
    make_good();
    const char *p = harness_tmp_path("hlen.safetensors");
    unsigned char *b = malloc(good.len);
    memcpy(b, good.bytes, good.len);
    char want[128];

    put_le64(b, 9999999);
    spit(p, b, good.len);
    snprintf(want, sizeof want, "header length 9999999 exceeds the file size (%zu bytes)", good.len);
    expect_fail(p, HCR_EFORMAT, want);

    put_le64(b, 0);
    spit(p, b, good.len);
    expect_fail(p, HCR_EFORMAT, "header length 0 is too small");

    put_le64(b, 1);
    spit(p, b, good.len);
    expect_fail(p, HCR_EFORMAT, "header length 1 is too small");

    put_le64(b, UINT64_MAX);
    spit(p, b, good.len);
    expect_fail(p, HCR_EFORMAT, "header length 18446744073709551615 exceeds the 100 MB limit");

    /* Too short by a few bytes: the JSON is cut. */
    put_le64(b, good.header_len - 20);
    spit(p, b, good.len);
    expect_fail(p, HCR_EFORMAT, "not valid JSON");
    free(b);
}

static void test_not_json(void)
{
    make_good();
    const char *p = harness_tmp_path("notjson.safetensors");
    write_with_header(p, "this is not json");
    expect_fail(p, HCR_EFORMAT, "header is not valid JSON");
    /* A good header with the opening brace gone. */
    expect_edit_fails("brace.safetensors", "{", " ", "not valid JSON");
    /* Text after the object (not padding). */
    char *h = malloc(good.header_len + 8);
    strcpy(h, good.header);
    size_t n = strlen(h);
    while (n && h[n - 1] == ' ') n--;
    strcpy(h + n, "xyz");
    write_with_header(p, h);
    free(h);
    expect_fail(p, HCR_EFORMAT, "not valid JSON");
    /* A NUL byte and invalid UTF-8 in the header. */
    h = replace(good.header, "\"format\":\"hcr\"", "\"format\":\"h\xff\xfe\"");
    if (h) {
        write_with_header(p, h);
        expect_fail(p, HCR_EFORMAT, "not valid UTF-8");
        free(h);
    }
    unsigned char *b = malloc(good.len);
    memcpy(b, good.bytes, good.len);
    b[8 + 20] = '\0';
    spit(p, b, good.len);
    expect_fail(p, HCR_EFORMAT, "NUL");
    free(b);
}

static void test_not_object(void)
{
    make_good();
    const char *p = harness_tmp_path("array.safetensors");
    write_with_header(p, "[1, 2, 3]");
    expect_fail(p, HCR_EFORMAT, "header is not a JSON object");
    write_with_header(p, "\"hcr\"");
    expect_fail(p, HCR_EFORMAT, "header is not a JSON object");
}

static void test_metadata(void)
{
    expect_edit_fails("nometa.safetensors", "\"__metadata__\"", "\"__metadatum__\"", "missing __metadata__");
    expect_edit_fails("metastr.safetensors", "\"format_version\":\"1\"", "\"format_version\":1",
                      "__metadata__.format_version is not a string");
    expect_edit_fails("fmt.safetensors", "\"format\":\"hcr\"", "\"format\":\"gguf\"",
                      "__metadata__.format is 'gguf', expected 'hcr'");
    expect_edit_fails("ver.safetensors", "\"format_version\":\"1\"", "\"format_version\":\"2\"",
                      "format_version is '2'");
    expect_edit_fails("nospec.safetensors", "\"spec\":", "\"spex\":", "missing __metadata__.spec");
    expect_edit_fails("norows.safetensors", "\"input_rows\":", "\"input_rowz\":", "missing __metadata__.input_rows");
    expect_edit_fails("classes0.safetensors", "\"num_classes\":\"10\"", "\"num_classes\":\"0\"",
                      "__metadata__.num_classes is '0', expected an integer 2..1000");
    expect_edit_fails("classesx.safetensors", "\"num_classes\":\"10\"", "\"num_classes\":\"10x\"",
                      "__metadata__.num_classes is '10x'");
    expect_edit_fails("rowsneg.safetensors", "\"input_rows\":\"28\"", "\"input_rows\":\"-28\"",
                      "__metadata__.input_rows is '-28'");
    expect_edit_fails("rowsbig.safetensors", "\"input_rows\":\"28\"", "\"input_rows\":\"99999999999999999999\"",
                      "__metadata__.input_rows is '99999999999999999999'");
    expect_edit_fails("metadup.safetensors", "\"format\":\"hcr\"", "\"format\":\"hcr\",\"format\":\"hcr\"",
                      "__metadata__.format appears twice");
    expect_edit_fails("metaarr.safetensors", "\"__metadata__\":{", "\"__metadata__\":[],\"x\":{",
                      "__metadata__ is not a JSON object");

    /* Without "format" the file still loads if the rest is there. */
    cJSON *j = good_json();
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "__metadata__"), "format");
    const char *p = harness_tmp_path("noformat.safetensors");
    write_json(p, j);
    hcr_model *m = NULL;
    CHECK_MSG(hcr_model_load(p, &m) == HCR_OK, "%s", hcr_last_error());
    hcr_model_free(m);
}

static void test_bad_spec(void)
{
    expect_edit_fails("spec.safetensors", "\"spec\":\"conv32-pool-conv64", "\"spec\":\"conv32-pool-banana64",
                      "banana");
    expect_edit_fails("spec2.safetensors", "\"spec\":\"" SPEC "\"", "\"spec\":\"\"", "__metadata__.spec is empty");
    expect_edit_fails("spec4.safetensors", "\"spec\":\"" SPEC "\"", "\"spec\":[]", "__metadata__.spec is not a string");
    /* A spec that is valid but not the one the tensors were saved for. */
    expect_edit_fails("spec3.safetensors", "dense128", "dense64",
                      "tensor 'dense.kernel' has shape [1600,128], the architecture needs [1600,64]");
}

static void test_wrong_dtype(void)
{
    expect_edit_fails("dtype.safetensors", "\"F32\"", "\"F16\"",
                      "tensor 'conv2d.kernel' has dtype F16, expected F32");
    expect_edit_fails("dtype2.safetensors", "\"dtype\":\"F32\"", "\"dtype\":32",
                      "tensor 'conv2d.kernel' has a dtype that is not a string");
    expect_edit_fails("dtype3.safetensors", "\"dtype\":\"F32\",", "", "tensor 'conv2d.kernel' has no dtype");
}

static void test_wrong_shape(void)
{
    expect_edit_fails("shape.safetensors", "[1600,128]", "[1600,64]",
                      "tensor 'dense.kernel' has shape [1600,64], the architecture needs [1600,128]");
    expect_edit_fails("shape2.safetensors", "[3,3,1,32]", "[3,3,32]",
                      "tensor 'conv2d.kernel' has shape [3,3,32], the architecture needs [3,3,1,32]");
    expect_edit_fails("shape3.safetensors", "[3,3,1,32]", "[3,3,1,32,1]",
                      "tensor 'conv2d.kernel' has shape [3,3,1,32,1], the architecture needs [3,3,1,32]");
    expect_edit_fails("shape4.safetensors", "[3,3,1,32]", "[3,3,1.5,32]", "tensor 'conv2d.kernel' has an invalid shape");
    expect_edit_fails("shape5.safetensors", "[3,3,1,32]", "\"3x3x1x32\"", "tensor 'conv2d.kernel' has an invalid shape");
}

static void test_offsets_out_of_range(void)
{
    uint64_t b, e;
    offsets_of("dense_1.bias", &b, &e);
    char from[64], to[64];
    snprintf(from, sizeof from, "[%llu,%llu]", (unsigned long long)b, (unsigned long long)e);

    /* Shifted past the end of the data. */
    snprintf(to, sizeof to, "[%llu,%llu]", (unsigned long long)b + 4, (unsigned long long)e + 4);
    expect_edit_fails("off1.safetensors", from, to, "tensor 'dense_1.bias' has data_offsets");
    expect_edit_fails("off1.safetensors", from, to, "past the end of the data");
    /* Far past it. */
    expect_edit_fails("off2.safetensors", from, "[1000000000000,1000000000040]", "past the end of the data");
    /* The span does not match the shape. */
    snprintf(to, sizeof to, "[%llu,%llu]", (unsigned long long)b, (unsigned long long)e - 4);
    expect_edit_fails("off3.safetensors", from, to, "spanning 36 bytes; shape [10] as F32 needs 40");
    /* Not integers, negative, reversed, huge, wrong arity. */
    expect_edit_fails("off4.safetensors", from, "[-40,0]", "tensor 'dense_1.bias' has invalid data_offsets");
    expect_edit_fails("off5.safetensors", from, "[0.5,40.5]", "invalid data_offsets");
    expect_edit_fails("off6.safetensors", from, "[40,0]", "end before begin");
    expect_edit_fails("off7.safetensors", from, "[1e300,1e300]", "invalid data_offsets");
    expect_edit_fails("off8.safetensors", from, "[0,40,80]", "invalid data_offsets");
    expect_edit_fails("off9.safetensors", from, "[\"0\",\"40\"]", "invalid data_offsets");
    expect_edit_fails("off10.safetensors", from, "[18446744073709551616,18446744073709551656]",
                      "invalid data_offsets");
}

static void test_overlapping_offsets(void)
{
    uint64_t b, e;
    offsets_of("dense_1.bias", &b, &e);
    char from[64];
    snprintf(from, sizeof from, "[%llu,%llu]", (unsigned long long)b, (unsigned long long)e);
    expect_edit_fails("ovl1.safetensors", from, "[0,40]", "tensors 'conv2d.kernel' and 'dense_1.bias' overlap");
    /* A partial overlap with the tensor before it. */
    char to[64];
    snprintf(to, sizeof to, "[%llu,%llu]", (unsigned long long)b - 4, (unsigned long long)e - 4);
    expect_edit_fails("ovl2.safetensors", from, to, "tensors 'dense_1.kernel' and 'dense_1.bias' overlap");
    /* Two tensors swapped into the same place. */
    uint64_t cb, ce;
    offsets_of("conv2d.bias", &cb, &ce);
    snprintf(from, sizeof from, "[%llu,%llu]", (unsigned long long)cb, (unsigned long long)ce);
    snprintf(to, sizeof to, "[%llu,%llu]", (unsigned long long)cb + 64, (unsigned long long)ce + 64);
    expect_edit_fails("ovl3.safetensors", from, to, "overlap");
}

static void test_missing_tensor(void)
{
    cJSON *j = good_json();
    cJSON_DeleteItemFromObjectCaseSensitive(j, "dense.bias");
    const char *p = harness_tmp_path("missing.safetensors");
    write_json(p, j);
    expect_fail(p, HCR_EFORMAT, "missing tensor 'dense.bias'");
    expect_edit_fails("renamed.safetensors", "\"dense_1.bias\"", "\"dense_2.bias\"", "dense_2.bias");
}

static void test_extra_tensor(void)
{
    cJSON *j = good_json();
    cJSON *e = cJSON_AddObjectToObject(j, "extra.bias");
    cJSON_AddStringToObject(e, "dtype", "F32");
    cJSON_AddItemToObject(e, "shape", cJSON_CreateIntArray((const int[]){1}, 1));
    cJSON_AddItemToObject(e, "data_offsets", cJSON_CreateIntArray((const int[]){0, 4}, 2));
    const char *p = harness_tmp_path("extra.safetensors");
    write_json(p, j);
    expect_fail(p, HCR_EFORMAT, "unexpected tensor 'extra.bias'");
    /* The same tensor twice. */
    expect_edit_fails("dup.safetensors", "\"conv2d.bias\":", "\"conv2d.bias\":{},\"conv2d.bias\":",
                      "tensor 'conv2d.bias' appears twice");
    j = good_json();
    cJSON_ReplaceItemInObjectCaseSensitive(j, "conv2d.bias", cJSON_CreateString("F32"));
    write_json(p, j);
    expect_fail(p, HCR_EFORMAT, "tensor 'conv2d.bias' is not a JSON object");
}

static void test_non_finite_weight(void)
{
    make_good();
    uint64_t b, e;
    offsets_of("dense.bias", &b, &e);
    const char *p = harness_tmp_path("nan.safetensors");
    unsigned char *buf = malloc(good.len);
    static const unsigned char nan_le[4] = {0x00, 0x00, 0xc0, 0x7f}, inf_le[4] = {0x00, 0x00, 0x80, 0xff};

    memcpy(buf, good.bytes, good.len);
    memcpy(buf + 8 + good.header_len + b + 3 * 4, nan_le, 4);
    spit(p, buf, good.len);
    expect_fail(p, HCR_EFORMAT, "tensor 'dense.bias' element 3 is NaN");

    memcpy(buf, good.bytes, good.len);
    memcpy(buf + 8 + good.header_len, inf_le, 4);
    spit(p, buf, good.len);
    expect_fail(p, HCR_EFORMAT, "tensor 'conv2d.kernel' element 0 is infinite");
    free(buf);
}

/* Random damage to the header or the length never crashes (run under ASan)
 * and never yields a model with a message-less failure. */
static void test_random_damage(void)
{
    make_good();
    const char *p = harness_tmp_path("fuzz.safetensors");
    unsigned char *buf = malloc(good.len);
    hcr_rng r;
    hcr_rng_seed(&r, 2024);
    int loaded = 0;
    for (int it = 0; it < 400; it++) {
        memcpy(buf, good.bytes, good.len);
        int flips = 1 + (int)hcr_rng_below(&r, 4);
        for (int k = 0; k < flips; k++) {
            size_t at = hcr_rng_below(&r, (uint32_t)(8 + good.header_len));
            buf[at] = (unsigned char)hcr_rng_below(&r, 256);
        }
        spit(p, buf, good.len);
        hcr_model *m = NULL;
        hcr_status st = hcr_model_load(p, &m);
        if (st == HCR_OK) {
            loaded++;
            CHECK(m != NULL);
            hcr_model_free(m);
        } else {
            CHECK(m == NULL);
            CHECK(strncmp(hcr_last_error(), p, strlen(p)) == 0);
        }
    }
    CHECK(loaded < 400);
    free(buf);
}

TEST_MAIN(TEST(test_round_trip), TEST(test_round_trip_other_spec), TEST(test_deep_spec), TEST(test_long_spec), TEST(test_bad_class_names), TEST(test_file_is_safetensors),
          TEST(test_atomic_write), TEST(test_missing_file), TEST(test_truncated), TEST(test_header_length),
          TEST(test_not_json), TEST(test_not_object), TEST(test_metadata), TEST(test_bad_spec),
          TEST(test_wrong_dtype), TEST(test_wrong_shape), TEST(test_offsets_out_of_range),
          TEST(test_overlapping_offsets), TEST(test_missing_tensor), TEST(test_extra_tensor),
          TEST(test_non_finite_weight), TEST(test_random_damage))
