/*
 * test_data.c - IDX loading (real MNIST, tiny good files, and every kind of
 * bad file with its message), slicing, load_dir naming, SHA-256 and the
 * cache directory.
 */
#include "harness.h"
#include "data/data.h"

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Checksums of the uncompressed MNIST files (as published with the data). */
#define SHA_TRAIN_IMAGES "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
#define SHA_TRAIN_LABELS "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
#define SHA_T10K_IMAGES "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
#define SHA_T10K_LABELS "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"

/* ------------------------------------------------------------- helpers */

static void write_raw(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(n == 0 || fwrite(data, 1, n, f) == n);
    CHECK(fclose(f) == 0);
}

static void write_gz(const char *path, const void *data, size_t n)
{
    gzFile g = gzopen(path, "wb");
    CHECK(g != NULL);
    if (!g) return;
    CHECK(n == 0 || gzwrite(g, data, (unsigned)n) == (int)n);
    CHECK(gzclose(g) == Z_OK);
}

static size_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

static uint8_t *read_all(const char *path, size_t *n)
{
    *n = file_size(path);
    uint8_t *b = malloc(*n ? *n : 1);
    FILE *f = fopen(path, "rb");
    if (!b || !f || fread(b, 1, *n, f) != *n) *n = 0;
    if (f) fclose(f);
    return b;
}

/* An IDX image file: header + count*rows*cols pixels (i*7+3 mod 256). */
static uint8_t *make_images(uint32_t magic, uint32_t count, uint32_t rows, uint32_t cols, size_t *n)
{
    size_t data = (size_t)count * rows * cols;
    *n = 16 + data;
    uint8_t *b = malloc(*n);
    harness_be32(b, magic);
    harness_be32(b + 4, count);
    harness_be32(b + 8, rows);
    harness_be32(b + 12, cols);
    for (size_t i = 0; i < data; i++) b[16 + i] = (uint8_t)(i * 7 + 3);
    return b;
}

static uint8_t *make_labels(uint32_t count, const uint8_t *labels, size_t *n)
{
    *n = 8 + count;
    uint8_t *b = malloc(*n);
    harness_be32(b, 0x801);
    harness_be32(b + 4, count);
    memcpy(b + 8, labels, count);
    return b;
}

static const uint8_t tiny_labels[5] = {3, 0, 7, 1, 3};

/* Good tiny files: 5 images of 3x4 in tiny-images (raw), tiny-images.gz,
 * tiny-labels (raw), tiny-labels.gz. */
static void write_tiny(void)
{
    size_t n;
    uint8_t *b = make_images(0x803, 5, 3, 4, &n);
    write_raw(harness_tmp_path("tiny-images"), b, n);
    write_gz(harness_tmp_path("tiny-images.gz"), b, n);
    free(b);
    b = make_labels(5, tiny_labels, &n);
    write_raw(harness_tmp_path("tiny-labels"), b, n);
    write_gz(harness_tmp_path("tiny-labels.gz"), b, n);
    free(b);
}

/* Loading must fail with status `want` and a message containing `sub`. */
static void expect_fail(const char *images, const char *labels, hcr_status want, const char *sub)
{
    hcr_dataset *ds = (hcr_dataset *)&ds; /* must be reset to NULL */
    hcr_status s = hcr_dataset_load_idx(images, labels, &ds);
    CHECK_MSG(s == want, "status %s, expected %s (%s)", hcr_status_name(s), hcr_status_name(want),
              hcr_last_error());
    CHECK(ds == NULL);
    CHECK_CONTAINS(hcr_last_error(), sub);
    if (s == HCR_OK) hcr_dataset_free(ds);
}

static long pixel_sum(const hcr_dataset *ds, int i)
{
    long sum = 0;
    const uint8_t *p = ds->pixels + (size_t)i * ds->rows * ds->cols;
    for (int k = 0; k < ds->rows * ds->cols; k++) sum += p[k];
    return sum;
}

/* ---------------------------------------------------------- real MNIST */

static void test_real_mnist(void)
{
    hcr_dataset *train = NULL, *test = NULL;
    CHECK_MSG(hcr_dataset_load_dir(harness_data_dir, "train", &train) == HCR_OK, "%s", hcr_last_error());
    CHECK_MSG(hcr_dataset_load_dir(harness_data_dir, "t10k", &test) == HCR_OK, "%s", hcr_last_error());
    if (!train || !test) {
        hcr_dataset_free(train);
        hcr_dataset_free(test);
        return;
    }
    CHECK(train->count == 60000);
    CHECK(test->count == 10000);
    CHECK(train->rows == 28 && train->cols == 28);
    CHECK(test->rows == 28 && test->cols == 28);
    CHECK(train->num_classes == 10);
    CHECK(test->num_classes == 10);
    CHECK(train->labels[0] == 5);
    CHECK(train->labels[1] == 0);
    CHECK(train->labels[2] == 4);
    CHECK(test->labels[0] == 7);
    CHECK(test->labels[1] == 2);
    /* Known answers, computed once with Python:
     *   d = gzip.open('train-images-idx3-ubyte.gz').read(); sum(d[16:16+784])  -> 27525
     *   d = gzip.open('t10k-images-idx3-ubyte.gz').read();  sum(d[16:16+784])  -> 18454 */
    CHECK(pixel_sum(train, 0) == 27525);
    CHECK(pixel_sum(test, 0) == 18454);
    CHECK_CONTAINS(train->images_sha256, SHA_TRAIN_IMAGES);
    CHECK_CONTAINS(train->labels_sha256, SHA_TRAIN_LABELS);
    CHECK_CONTAINS(test->images_sha256, SHA_T10K_IMAGES);
    CHECK_CONTAINS(test->labels_sha256, SHA_T10K_LABELS);
    /* Every label in range and every class present. */
    int seen[10] = {0};
    for (int i = 0; i < train->count; i++)
        if (train->labels[i] < 10) seen[train->labels[i]]++;
    for (int c = 0; c < 10; c++) CHECK(seen[c] > 5000);

    char hex[65], path[1024];
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte.gz", harness_data_dir);
    CHECK(hcr_file_sha256(path, hex) == HCR_OK);
    CHECK(strcmp(hex, SHA_T10K_LABELS) == 0);
    hcr_dataset_free(train);
    hcr_dataset_free(test);
}

/* ------------------------------------------------------ good tiny files */

static void check_tiny(const hcr_dataset *ds)
{
    CHECK(ds->count == 5);
    CHECK(ds->rows == 3 && ds->cols == 4);
    CHECK(ds->num_classes == 8); /* 1 + largest label (7) */
    CHECK(memcmp(ds->labels, tiny_labels, 5) == 0);
    for (int i = 0; i < 60; i++) CHECK(ds->pixels[i] == (uint8_t)(i * 7 + 3));
    CHECK(strlen(ds->images_sha256) == 64);
    CHECK(strlen(ds->labels_sha256) == 64);
}

static void test_tiny_raw_and_gz(void)
{
    write_tiny();
    char hex[65];
    hcr_dataset *a = NULL, *b = NULL, *c = NULL;
    CHECK_MSG(hcr_dataset_load_idx(harness_tmp_path("tiny-images"), harness_tmp_path("tiny-labels"), &a) == HCR_OK,
              "%s", hcr_last_error());
    CHECK_MSG(hcr_dataset_load_idx(harness_tmp_path("tiny-images.gz"), harness_tmp_path("tiny-labels.gz"), &b) == HCR_OK,
              "%s", hcr_last_error());
    CHECK_MSG(hcr_dataset_load_idx(harness_tmp_path("tiny-images.gz"), harness_tmp_path("tiny-labels"), &c) == HCR_OK,
              "%s", hcr_last_error());
    if (a && b && c) {
        check_tiny(a);
        check_tiny(b);
        check_tiny(c);
        /* The checksum is of the uncompressed content, whatever the file. */
        CHECK(strcmp(a->images_sha256, b->images_sha256) == 0);
        CHECK(strcmp(a->labels_sha256, b->labels_sha256) == 0);
        CHECK(strcmp(a->images_sha256, a->labels_sha256) != 0);
        CHECK(hcr_file_sha256(harness_tmp_path("tiny-images"), hex) == HCR_OK);
        CHECK(strcmp(hex, a->images_sha256) == 0);
        CHECK(hcr_file_sha256(harness_tmp_path("tiny-labels.gz"), hex) == HCR_OK);
        CHECK(strcmp(hex, a->labels_sha256) == 0);
    }
    hcr_dataset_free(a);
    hcr_dataset_free(b);
    hcr_dataset_free(c);
    hcr_dataset_free(NULL);
}

static void test_file_sha256(void)
{
    char hex[65];
    /* FIPS 180-2 test vector: SHA-256("abc"). */
    const char *abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    write_raw(harness_tmp_path("abc"), "abc", 3);
    write_gz(harness_tmp_path("abc.gz"), "abc", 3);
    CHECK(hcr_file_sha256(harness_tmp_path("abc"), hex) == HCR_OK);
    CHECK(strcmp(hex, abc) == 0);
    CHECK(hcr_file_sha256(harness_tmp_path("abc.gz"), hex) == HCR_OK);
    CHECK(strcmp(hex, abc) == 0);
    /* SHA-256 of nothing. */
    write_raw(harness_tmp_path("empty-sha"), "", 0);
    CHECK(hcr_file_sha256(harness_tmp_path("empty-sha"), hex) == HCR_OK);
    CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    CHECK(hcr_file_sha256(harness_tmp_path("no-such-file"), hex) == HCR_EIO);
    CHECK_CONTAINS(hcr_last_error(), "no-such-file");
}

/* ----------------------------------------------------------- bad files */

static void test_missing_and_empty(void)
{
    write_tiny();
    expect_fail(harness_tmp_path("does-not-exist"), harness_tmp_path("tiny-labels"), HCR_EIO, "does-not-exist: cannot open");
    expect_fail(harness_tmp_path("tiny-images"), harness_tmp_path("nope-labels"), HCR_EIO, "nope-labels: cannot open");
    expect_fail(harness_tmpdir(), harness_tmp_path("tiny-labels"), HCR_EIO, "is a directory");
    write_raw(harness_tmp_path("empty"), "", 0);
    expect_fail(harness_tmp_path("empty"), harness_tmp_path("tiny-labels"), HCR_EFORMAT, "empty: empty file, expected an IDX image file");
    expect_fail(harness_tmp_path("tiny-images"), harness_tmp_path("empty"), HCR_EFORMAT, "empty file, expected an IDX label file");
    write_gz(harness_tmp_path("empty.gz"), "", 0);
    expect_fail(harness_tmp_path("empty.gz"), harness_tmp_path("tiny-labels"), HCR_EFORMAT, "empty file");
    /* A header cut short. */
    size_t n;
    uint8_t *b = make_images(0x803, 5, 3, 4, &n);
    write_raw(harness_tmp_path("short-header"), b, 10);
    expect_fail(harness_tmp_path("short-header"), harness_tmp_path("tiny-labels"), HCR_EFORMAT, "truncated header");
    write_raw(harness_tmp_path("short-magic"), b, 2);
    expect_fail(harness_tmp_path("short-magic"), harness_tmp_path("tiny-labels"), HCR_EFORMAT, "truncated header");
    free(b);
}

static void test_bad_magic_type_dims(void)
{
    write_tiny();
    /* A label file where images are expected, and the other way round. */
    expect_fail(harness_tmp_path("tiny-labels"), harness_tmp_path("tiny-labels"), HCR_EFORMAT,
                "tiny-labels: bad magic 0x00000801, expected 0x00000803 (an IDX image file)");
    expect_fail(harness_tmp_path("tiny-images"), harness_tmp_path("tiny-images"), HCR_EFORMAT,
                "bad magic 0x00000803, expected 0x00000801 (an IDX label file)");
    /* Not IDX at all. */
    write_raw(harness_tmp_path("png"), "\x89PNG\r\n\x1a\n........", 16);
    expect_fail(harness_tmp_path("png"), harness_tmp_path("tiny-labels"), HCR_EFORMAT, "bad magic 0x89504e47");
    expect_fail(harness_tmp_path("png"), harness_tmp_path("tiny-labels"), HCR_EFORMAT, "not an IDX file");

    size_t n;
    uint8_t *b = make_images(0x903, 5, 3, 4, &n); /* signed byte */
    write_raw(harness_tmp_path("dtype"), b, n);
    expect_fail(harness_tmp_path("dtype"), harness_tmp_path("tiny-labels"), HCR_EFORMAT, "data type 0x09 is not unsigned byte");
    free(b);
    b = make_images(0xD03, 5, 3, 4, &n); /* float */
    write_gz(harness_tmp_path("dtype-float.gz"), b, n);
    expect_fail(harness_tmp_path("dtype-float.gz"), harness_tmp_path("tiny-labels"), HCR_EFORMAT, "data type 0x0d");
    free(b);
    b = make_images(0x802, 5, 3, 4, &n); /* two dimensions */
    write_raw(harness_tmp_path("dims"), b, n);
    expect_fail(harness_tmp_path("dims"), harness_tmp_path("tiny-labels"), HCR_EFORMAT, "2 dimensions, expected 3");
    free(b);
    b = make_images(0x804, 5, 3, 4, &n); /* four dimensions */
    write_raw(harness_tmp_path("dims4"), b, n);
    expect_fail(harness_tmp_path("dims4"), harness_tmp_path("tiny-labels"), HCR_EFORMAT, "4 dimensions, expected 3");
    free(b);
}

static void test_zero_and_huge_dimensions(void)
{
    write_tiny();
    size_t n;
    uint8_t *b = make_images(0x803, 5, 0, 4, &n);
    write_raw(harness_tmp_path("zero-rows"), b, n);
    expect_fail(harness_tmp_path("zero-rows"), harness_tmp_path("tiny-labels"), HCR_EFORMAT, "dimension 2 of 3 is zero");
    free(b);
    b = make_images(0x803, 0, 3, 4, &n);
    write_raw(harness_tmp_path("zero-count"), b, n);
    expect_fail(harness_tmp_path("zero-count"), harness_tmp_path("tiny-labels"), HCR_EFORMAT, "dimension 1 of 3 is zero");
    free(b);
    uint8_t zero_labels[8] = {0, 0, 8, 1, 0, 0, 0, 0};
    write_raw(harness_tmp_path("zero-labels"), zero_labels, 8);
    expect_fail(harness_tmp_path("tiny-images"), harness_tmp_path("zero-labels"), HCR_EFORMAT, "dimension 1 of 1 is zero");

    uint8_t hdr[16 + 8];
    memset(hdr, 0, sizeof hdr);
    harness_be32(hdr, 0x803);
    harness_be32(hdr + 4, 5);
    harness_be32(hdr + 8, 4097);
    harness_be32(hdr + 12, 4);
    write_raw(harness_tmp_path("wide"), hdr, sizeof hdr);
    expect_fail(harness_tmp_path("wide"), harness_tmp_path("tiny-labels"), HCR_EFORMAT, "image size 4097x4 exceeds the limit of 4096x4096");
    harness_be32(hdr + 4, 0x80000000u);
    harness_be32(hdr + 8, 4);
    write_raw(harness_tmp_path("many"), hdr, sizeof hdr);
    expect_fail(harness_tmp_path("many"), harness_tmp_path("tiny-labels"), HCR_EFORMAT, "2147483648 images, more than the limit");
}

/* Headers that claim far more data than the file holds must fail with
 * "truncated" before allocating: under ASan (allocator_may_return_null=0)
 * a 36-petabyte malloc would abort the program. */
static void test_hostile_header(void)
{
    write_tiny();
    uint8_t hdr[16 + 84];
    for (size_t i = 0; i < sizeof hdr; i++) hdr[i] = (uint8_t)i;
    harness_be32(hdr, 0x803);
    harness_be32(hdr + 4, 0x7fffffffu);
    harness_be32(hdr + 8, 4096);
    harness_be32(hdr + 12, 4096);
    write_raw(harness_tmp_path("hostile"), hdr, sizeof hdr);
    expect_fail(harness_tmp_path("hostile"), harness_tmp_path("tiny-labels"), HCR_EFORMAT,
                "hostile: truncated: header says 2147483647 images of 4096x4096 (36028797002186752 bytes) "
                "but the file has 84 bytes of data");
    write_gz(harness_tmp_path("hostile.gz"), hdr, sizeof hdr);
    CHECK(file_size(harness_tmp_path("hostile.gz")) < 200);
    expect_fail(harness_tmp_path("hostile.gz"), harness_tmp_path("tiny-labels"), HCR_EFORMAT,
                "truncated: header says 2147483647 images of 4096x4096 (36028797002186752 bytes) "
                "but the file has 84 bytes of data (after decompression)");
    /* A labels file claiming 2^31-1 labels. */
    uint8_t lhdr[8 + 5] = {0, 0, 8, 1, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5};
    write_gz(harness_tmp_path("hostile-labels.gz"), lhdr, sizeof lhdr);
    expect_fail(harness_tmp_path("tiny-images"), harness_tmp_path("hostile-labels.gz"), HCR_EFORMAT,
                "truncated: header says 2147483647 labels");
}

static void test_truncated_and_trailing(void)
{
    write_tiny();
    size_t n;
    uint8_t *b = make_images(0x803, 5, 3, 4, &n); /* 16 + 60 bytes */
    write_raw(harness_tmp_path("cut"), b, n - 1);
    expect_fail(harness_tmp_path("cut"), harness_tmp_path("tiny-labels"), HCR_EFORMAT,
                "cut: truncated: header says 5 images of 3x4 (60 bytes) but the file has 59 bytes of data");
    write_gz(harness_tmp_path("cut.gz"), b, n - 20);
    expect_fail(harness_tmp_path("cut.gz"), harness_tmp_path("tiny-labels"), HCR_EFORMAT,
                "cut.gz: truncated: header says 5 images of 3x4 (60 bytes) but the file has 40 bytes");

    uint8_t *longer = malloc(n + 3);
    memcpy(longer, b, n);
    memcpy(longer + n, "xyz", 3);
    write_raw(harness_tmp_path("long"), longer, n + 3);
    expect_fail(harness_tmp_path("long"), harness_tmp_path("tiny-labels"), HCR_EFORMAT,
                "long: trailing garbage: header says 5 images of 3x4 (60 bytes) but the file has 63 bytes");
    write_gz(harness_tmp_path("long.gz"), longer, n + 3);
    expect_fail(harness_tmp_path("long.gz"), harness_tmp_path("tiny-labels"), HCR_EFORMAT, "long.gz: trailing garbage");
    expect_fail(harness_tmp_path("long.gz"), harness_tmp_path("tiny-labels"), HCR_EFORMAT, "3 more bytes");
    free(longer);
    free(b);

    uint8_t labels[8 + 6];
    memset(labels, 1, sizeof labels);
    harness_be32(labels, 0x801);
    harness_be32(labels + 4, 5);
    write_raw(harness_tmp_path("long-labels"), labels, sizeof labels);
    expect_fail(harness_tmp_path("tiny-images"), harness_tmp_path("long-labels"), HCR_EFORMAT, "long-labels: trailing garbage");
}

static void test_count_mismatch(void)
{
    write_tiny();
    size_t n;
    uint8_t *b = make_labels(4, tiny_labels, &n);
    write_raw(harness_tmp_path("four-labels"), b, n);
    free(b);
    expect_fail(harness_tmp_path("tiny-images"), harness_tmp_path("four-labels"), HCR_EFORMAT, "tiny-images: 5 images but 4 labels in ");
    expect_fail(harness_tmp_path("tiny-images"), harness_tmp_path("four-labels"), HCR_EFORMAT, "four-labels");
}

static void test_corrupt_gzip(void)
{
    write_tiny();
    /* Enough incompressible-ish data that the stream is more than a few bytes. */
    size_t n;
    uint8_t *b = make_images(0x803, 200, 28, 28, &n);
    for (size_t i = 16; i < n; i++) b[i] = (uint8_t)((i * 2654435761u) >> 13);
    write_gz(harness_tmp_path("big.gz"), b, n);
    uint8_t lab[200] = {0};
    size_t ln;
    uint8_t *l = make_labels(200, lab, &ln);
    write_raw(harness_tmp_path("big-labels"), l, ln);
    free(l);
    free(b);

    hcr_dataset *ds = NULL;
    CHECK_MSG(hcr_dataset_load_idx(harness_tmp_path("big.gz"), harness_tmp_path("big-labels"), &ds) == HCR_OK, "%s", hcr_last_error());
    CHECK(ds && ds->num_classes == 1);
    hcr_dataset_free(ds);

    size_t gn;
    uint8_t *g = read_all(harness_tmp_path("big.gz"), &gn);
    CHECK(gn > 1000);
    /* The compressed stream cut in half. */
    write_raw(harness_tmp_path("half.gz"), g, gn / 2);
    expect_fail(harness_tmp_path("half.gz"), harness_tmp_path("big-labels"), HCR_EFORMAT, "half.gz: corrupt gzip data");
    expect_fail(harness_tmp_path("half.gz"), harness_tmp_path("big-labels"), HCR_EFORMAT, "truncated");
    /* Only the 8-byte trailer (CRC, length) missing: all data is there. */
    write_raw(harness_tmp_path("notrailer.gz"), g, gn - 8);
    expect_fail(harness_tmp_path("notrailer.gz"), harness_tmp_path("big-labels"), HCR_EFORMAT, "corrupt gzip data");
    /* A flipped bit in the CRC. */
    g[gn - 6] ^= 0x40;
    write_raw(harness_tmp_path("badcrc.gz"), g, gn);
    expect_fail(harness_tmp_path("badcrc.gz"), harness_tmp_path("big-labels"), HCR_EFORMAT, "corrupt gzip data");
    g[gn - 6] ^= 0x40;
    /* Garbage in the middle of the deflate stream. */
    for (size_t i = gn / 3; i < gn / 3 + 64; i++) g[i] = 0xff;
    write_raw(harness_tmp_path("garbled.gz"), g, gn);
    expect_fail(harness_tmp_path("garbled.gz"), harness_tmp_path("big-labels"), HCR_EFORMAT, "corrupt gzip data");
    /* zlib's own message, without the "<fd:N>: " it puts before it */
    CHECK_MSG(strstr(hcr_last_error(), "<fd:") == NULL, "%s", hcr_last_error());
    CHECK_CONTAINS(hcr_last_error(), "garbled.gz: corrupt gzip data after");
    /* not gzip after the magic: zlib's message, named by the file */
    write_raw(harness_tmp_path("notgz.gz"), "\x1f\x8b\x08\x00garbage-garbage-garbage", 27);
    expect_fail(harness_tmp_path("notgz.gz"), harness_tmp_path("big-labels"), HCR_EFORMAT, "notgz.gz: corrupt gzip data");
    CHECK_MSG(strstr(hcr_last_error(), "<fd:") == NULL, "%s", hcr_last_error());
    char hex[65];
    CHECK(hcr_file_sha256(harness_tmp_path("garbled.gz"), hex) == HCR_EFORMAT);
    CHECK(hcr_file_sha256(harness_tmp_path("half.gz"), hex) == HCR_EFORMAT);
    free(g);
}

/* Files that are not plain files: refused at once, naming the file, and
 * never waited on (a FIFO) or read (a device). alarm: a hang fails. */
static void test_not_regular_files(void)
{
    write_tiny();
    alarm(20);
    char fifo[PATH_MAX];
    snprintf(fifo, sizeof fifo, "%s", harness_tmp_path("fifo-images"));
    CHECK(mkfifo(fifo, 0644) == 0);
    expect_fail(fifo, harness_tmp_path("tiny-labels"), HCR_EIO, "fifo-images: is a FIFO (named pipe), not a regular file");
    expect_fail(harness_tmp_path("tiny-images"), "/dev/zero", HCR_EIO, "/dev/zero: is a character device, not a regular file");
    expect_fail(harness_tmp_path(""), harness_tmp_path("tiny-labels"), HCR_EIO, "is a directory, not a regular file");
    char hex[65];
    CHECK(hcr_file_sha256(fifo, hex) == HCR_EIO);
    CHECK_CONTAINS(hcr_last_error(), "fifo-images: is a FIFO");
    CHECK(hcr_file_sha256("/dev/zero", hex) == HCR_EIO);
    /* a link to a device is the device */
    const char *link = harness_tmp_path("zero-link");
    CHECK(symlink("/dev/zero", link) == 0);
    expect_fail(link, harness_tmp_path("tiny-labels"), HCR_EIO, "zero-link: is a character device");
    /* through a folder: the FIFO is found by name, then refused */
    const char *dir = harness_tmp_path("fifo-dir");
    CHECK(mkdir(dir, 0755) == 0);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
    CHECK(mkfifo(path, 0644) == 0);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
    CHECK(symlink(harness_tmp_path("tiny-labels.gz"), path) == 0);
    hcr_dataset *ds = NULL;
    CHECK(hcr_dataset_load_dir(dir, "train", &ds) == HCR_EIO && ds == NULL);
    CHECK_CONTAINS(hcr_last_error(), "fifo-dir/train-images-idx3-ubyte: is a FIFO");
    alarm(0);

    /* the helper itself: a regular file opens blocking and close-on-exec */
    int fd = -1;
    struct stat st;
    CHECK(hcr__open_regular(harness_tmp_path("tiny-images"), &fd, &st) == HCR_OK);
    CHECK(fd >= 0 && S_ISREG(st.st_mode) && st.st_size == 16 + 60);
    if (fd >= 0) {
        CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) == 0);
        CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
        close(fd);
    }
    CHECK(hcr__open_regular(fifo, &fd, NULL) == HCR_EIO && fd == -1);
    CHECK(hcr__open_regular(harness_tmp_path("no-such-file"), &fd, NULL) == HCR_EIO && fd == -1);
    CHECK_CONTAINS(hcr_last_error(), "no-such-file: cannot open: No such file or directory");
    FILE *f = NULL;
    CHECK(hcr__fopen_regular("/dev/null", &f) == HCR_EIO && f == NULL);
    CHECK_CONTAINS(hcr_last_error(), "/dev/null: is a character device");
    CHECK(hcr__fopen_regular(harness_tmp_path("tiny-labels"), &f) == HCR_OK && f != NULL);
    if (f) fclose(f);
}

/* ----------------------------------------------------------- slicing */

static void test_slice(void)
{
    write_tiny();
    hcr_dataset *ds = NULL, *s = (hcr_dataset *)&ds;
    CHECK(hcr_dataset_load_idx(harness_tmp_path("tiny-images"), harness_tmp_path("tiny-labels"), &ds) == HCR_OK);
    if (!ds) return;
    CHECK(hcr_dataset_slice(ds, 1, 3, &s) == HCR_OK);
    if (s) {
        CHECK(s->count == 3 && s->rows == 3 && s->cols == 4);
        CHECK(s->num_classes == 8);
        CHECK(memcmp(s->labels, tiny_labels + 1, 3) == 0);
        CHECK(memcmp(s->pixels, ds->pixels + 12, 36) == 0);
        CHECK(s->pixels != ds->pixels + 12); /* a copy */
        CHECK(strcmp(s->images_sha256, ds->images_sha256) == 0);
        hcr_dataset_free(s);
    }
    s = NULL;
    CHECK(hcr_dataset_slice(ds, 0, 5, &s) == HCR_OK);
    CHECK(s && s->count == 5 && memcmp(s->pixels, ds->pixels, 60) == 0);
    hcr_dataset_free(s);
    s = NULL;
    CHECK(hcr_dataset_slice(ds, 4, 1, &s) == HCR_OK);
    CHECK(s && s->count == 1 && s->labels[0] == 3);
    hcr_dataset_free(s);

    const int bad[][2] = {{-1, 2}, {0, 0}, {0, -1}, {0, 6}, {4, 2}, {5, 1}, {6, 1}, {1, INT_MAX}, {INT_MAX, 1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = (hcr_dataset *)&ds;
        CHECK_MSG(hcr_dataset_slice(ds, bad[i][0], bad[i][1], &s) == HCR_EINVAL, "slice(%d, %d)", bad[i][0], bad[i][1]);
        CHECK(s == NULL);
        CHECK_CONTAINS(hcr_last_error(), "does not fit a dataset of 5 images");
    }
    CHECK(hcr_dataset_slice(NULL, 0, 1, &s) == HCR_EINVAL);
    hcr_dataset_free(ds);
}

/* ----------------------------------------------------------- load_dir */

static void test_load_dir_names(void)
{
    /* A missing directory names itself. */
    hcr_dataset *ds = (hcr_dataset *)&ds;
    CHECK(hcr_dataset_load_dir(harness_tmp_path("no-such-dir"), "train", &ds) == HCR_EIO);
    CHECK(ds == NULL);
    CHECK_CONTAINS(hcr_last_error(), "no-such-dir");
    CHECK_CONTAINS(hcr_last_error(), "train-images-idx3-ubyte");

    /* An empty directory lists every name tried. */
    const char *dir = harness_tmp_path("dir-empty");
    CHECK(mkdir(dir, 0755) == 0);
    CHECK(hcr_dataset_load_dir(dir, "t10k", &ds) == HCR_EIO);
    CHECK_CONTAINS(hcr_last_error(), "dir-empty");
    CHECK_CONTAINS(hcr_last_error(), "t10k-images-idx3-ubyte, t10k-images-idx3-ubyte.gz, "
                                     "t10k-images.idx3-ubyte, t10k-images.idx3-ubyte.gz");

    /* Images but no labels: the labels' names are listed. */
    size_t n;
    uint8_t *b = make_images(0x803, 5, 3, 4, &n);
    char path[600];
    snprintf(path, sizeof path, "%s/t10k-images.idx3-ubyte", dir);
    write_raw(path, b, n);
    free(b);
    CHECK(hcr_dataset_load_dir(dir, "t10k", &ds) == HCR_EIO);
    CHECK_CONTAINS(hcr_last_error(), "no t10k labels");
    CHECK_CONTAINS(hcr_last_error(), "t10k-labels-idx1-ubyte.gz");

    /* Dot naming for the images, gz dash naming for the labels. */
    b = make_labels(5, tiny_labels, &n);
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte.gz", dir);
    write_gz(path, b, n);
    free(b);
    CHECK_MSG(hcr_dataset_load_dir(dir, "t10k", &ds) == HCR_OK, "%s", hcr_last_error());
    if (ds) check_tiny(ds);
    hcr_dataset_free(ds);

    /* The dash name wins over the dot name. */
    b = make_images(0x803, 5, 2, 2, &n);
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte", dir);
    write_raw(path, b, n);
    free(b);
    ds = NULL;
    CHECK(hcr_dataset_load_dir(dir, "t10k", &ds) == HCR_OK);
    CHECK(ds && ds->rows == 2 && ds->cols == 2);
    hcr_dataset_free(ds);

    CHECK(hcr_dataset_load_dir(dir, "", &ds) == HCR_EINVAL);
    CHECK(hcr_dataset_load_dir(NULL, "train", &ds) == HCR_EINVAL);
}

/* ----------------------------------------------------------- cache dir */

static void test_cache_dir(void)
{
    char *old_data = getenv("HCR_DATA") ? hcr__strdup(getenv("HCR_DATA")) : NULL;
    char *old_xdg = getenv("XDG_CACHE_HOME") ? hcr__strdup(getenv("XDG_CACHE_HOME")) : NULL;
    char *old_home = getenv("HOME") ? hcr__strdup(getenv("HOME")) : NULL;
    char buf[256];

    setenv("HCR_DATA", "/data/here", 1);
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    setenv("HOME", "/home/u", 1);
    CHECK(hcr_cache_dir(buf, sizeof buf) == HCR_OK);
    CHECK(strcmp(buf, "/data/here") == 0);
    setenv("HCR_DATA", "", 1);
    CHECK(hcr_cache_dir(buf, sizeof buf) == HCR_OK);
    CHECK(strcmp(buf, "/xdg/hcr") == 0);
    unsetenv("HCR_DATA");
    unsetenv("XDG_CACHE_HOME");
    CHECK(hcr_cache_dir(buf, sizeof buf) == HCR_OK);
    CHECK(strcmp(buf, "/home/u/.cache/hcr") == 0);
    CHECK(hcr_cache_dir(buf, 8) == HCR_EINVAL);
    CHECK(buf[0] == '\0');
    unsetenv("HOME");
    CHECK(hcr_cache_dir(buf, sizeof buf) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "HCR_DATA");

    if (old_data) setenv("HCR_DATA", old_data, 1);
    if (old_xdg) setenv("XDG_CACHE_HOME", old_xdg, 1);
    if (old_home) setenv("HOME", old_home, 1);
    free(old_data);
    free(old_xdg);
    free(old_home);
}

TEST_MAIN(TEST(test_real_mnist), TEST(test_tiny_raw_and_gz), TEST(test_file_sha256),
          TEST(test_missing_and_empty), TEST(test_bad_magic_type_dims),
          TEST(test_zero_and_huge_dimensions), TEST(test_hostile_header),
          TEST(test_truncated_and_trailing), TEST(test_count_mismatch), TEST(test_corrupt_gzip),
          TEST(test_not_regular_files),
          TEST(test_slice), TEST(test_load_dir_names), TEST(test_cache_dir))
