/*
 * fuzz_idx.c - libFuzzer harness for the IDX reader (src/data/idx.c), through
 * the public hcr_dataset_load_idx and hcr_file_sha256.
 *
 * Input: one flag byte, then a file.
 *   flag & 1 == 0  the rest is written as it is (a raw IDX file, or gzip
 *                  data that the seeds or the mutator made);
 *   flag & 1 == 1  the rest is gzip-compressed by the harness first, so
 *                  that mutations of the IDX structure also reach the
 *                  reader through valid gzip streams.
 * The file is read once as an image file (paired with a valid 1-label file)
 * and once as a label file (paired with a valid 1-image file), so both
 * kinds are parsed whatever the count says.
 *
 * Checked: the call returns, frees everything (LeakSanitizer), and on
 * success the dataset is consistent with what was read.
 */
#include "fuzz_common.h"

#include <zlib.h>

static char images_path[300], labels_path[300], input_path[300];
static volatile unsigned pixel_sink;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_path(images_path, sizeof images_path, "one-image");
    fuzz_path(labels_path, sizeof labels_path, "one-label");
    fuzz_path(input_path, sizeof input_path, "input");
    static const unsigned char img[] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 255, 128, 7};
    static const unsigned char lab[] = {0, 0, 8, 1, 0, 0, 0, 1, 3};
    fuzz_write(images_path, img, sizeof img);
    fuzz_write(labels_path, lab, sizeof lab);
    return 0;
}

/* The rest of the input as a gzip file at path. */
static void write_gzip(const char *path, const uint8_t *data, size_t n)
{
    gzFile gz = gzopen(path, "wb1");
    if (!gz) abort();
    if (n && gzwrite(gz, data, (unsigned)n) != (int)n) abort();
    if (gzclose(gz) != Z_OK) abort();
}

static void check_dataset(const hcr_dataset *ds)
{
    FUZZ_CHECK(ds->count >= 1 && ds->rows >= 1 && ds->cols >= 1, "%d images of %dx%d", ds->count,
               ds->rows, ds->cols);
    FUZZ_CHECK(ds->num_classes >= 1 && ds->num_classes <= 256, "%d classes", ds->num_classes);
    int max = 0;
    for (int i = 0; i < ds->count; i++)
        if (ds->labels[i] > max) max = ds->labels[i];
    FUZZ_CHECK(max + 1 == ds->num_classes, "largest label %d, %d classes", max, ds->num_classes);
    /* Touch every pixel: ASan checks the buffer holds them all. */
    for (size_t i = 0; i < (size_t)ds->count * ds->rows * ds->cols; i++) pixel_sink += ds->pixels[i];
    FUZZ_CHECK(strlen(ds->images_sha256) == 64 && strlen(ds->labels_sha256) == 64, "checksums");
    hcr_dataset *s = NULL;
    if (hcr_dataset_slice(ds, 0, ds->count, &s) == HCR_OK) hcr_dataset_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20)) return 0;
    if (data[0] & 1)
        write_gzip(input_path, data + 1, size - 1);
    else
        fuzz_write(input_path, data + 1, size - 1);

    hcr_dataset *ds = NULL;
    if (hcr_dataset_load_idx(input_path, labels_path, &ds) == HCR_OK) {
        check_dataset(ds);
        hcr_dataset_free(ds);
    } else {
        FUZZ_CHECK(ds == NULL && hcr_last_error()[0], "failure without a message or with a dataset");
    }
    ds = NULL;
    if (hcr_dataset_load_idx(images_path, input_path, &ds) == HCR_OK) {
        check_dataset(ds);
        hcr_dataset_free(ds);
    } else {
        FUZZ_CHECK(ds == NULL && hcr_last_error()[0], "failure without a message or with a dataset");
    }
    char hex[65];
    if (hcr_file_sha256(input_path, hex) == HCR_OK) FUZZ_CHECK(strlen(hex) == 64, "sha256 '%s'", hex);
    return 0;
}
