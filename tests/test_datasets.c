/*
 * test_datasets.c - datasets by name: EMNIST's layout (transposed images,
 * 1-based letters, the mapping file) on a fixture drawn with fonts, bad
 * mapping files, idx:DIR with classes.txt, mismatched files, class names
 * through slicing, Fashion-MNIST from Debian's package, and the default
 * directory's checksum check.
 */
#include "glyphs.h"
#include "harness.h"
#include "data/data.h"
#include "nn/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    CHECK(fclose(f) == 0);
}

/* An IDX pair of n images (rows x cols, pixel value = image index) and the
 * given labels, under <dir>/<prefix>-images-idx3-ubyte.gz etc. */
static void write_pair(const char *dir, const char *prefix, int n, int rows, int cols,
                       const uint8_t *labels, int nlabels)
{
    char path[600];
    unsigned char head[16];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    gzFile g = gzopen(path, "wb");
    CHECK(g != NULL);
    if (!g) return;
    harness_be32(head, 0x803);
    harness_be32(head + 4, (uint32_t)n);
    harness_be32(head + 8, (uint32_t)rows);
    harness_be32(head + 12, (uint32_t)cols);
    gzwrite(g, head, 16);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < rows * cols; k++) {
            unsigned char v = (unsigned char)i;
            gzwrite(g, &v, 1);
        }
    gzclose(g);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    g = gzopen(path, "wb");
    CHECK(g != NULL);
    if (!g) return;
    harness_be32(head, 0x801);
    harness_be32(head + 4, (uint32_t)nlabels);
    gzwrite(g, head, 8);
    gzwrite(g, labels, (unsigned)nlabels);
    gzclose(g);
}

static const char *letters_dir(void)
{
    static char dir[512];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s", harness_tmp_path("letters"));
        mkdir(dir, 0755);
        CHECK(glyphs_write_emnist_letters(dir, 3, 2) == 0);
    }
    return dir;
}

/* Ink extent (first to last inked column) of row y. */
static int row_width(const uint8_t *img, int y)
{
    int lo = -1, hi = -1;
    for (int x = 0; x < 28; x++)
        if (img[y * 28 + x] > 128) {
            if (lo < 0) lo = x;
            hi = x;
        }
    return lo < 0 ? 0 : hi - lo + 1;
}

/* ------------------------------------------------------------------ EMNIST */

static void test_emnist_letters_layout(void)
{
    hcr_dataset *train = NULL, *test = NULL;
    CHECK(hcr_dataset_load("emnist-letters", letters_dir(), "train", &train) == HCR_OK);
    CHECK(hcr_dataset_load("emnist-letters", letters_dir(), "test", &test) == HCR_OK);
    if (!train || !test) return;
    CHECK(train->count == 78 && test->count == 52);
    CHECK(train->num_classes == 26 && test->num_classes == 26);
    /* labels 1..26 in the file become 0..25, named by the mapping file */
    CHECK(train->labels[0] == 0 && train->labels[25] == 25 && train->labels[26] == 0);
    CHECK(strcmp(hcr_dataset_class_name(train, 0), "A") == 0);
    CHECK(strcmp(hcr_dataset_class_name(train, 25), "Z") == 0);
    CHECK(strcmp(hcr_dataset_class_name(train, 26), "?") == 0);
    hcr_dataset_free(train);
    hcr_dataset_free(test);
}

/* The stored images are transposed; the loaded ones must be upright: an
 * "A" is narrow at the top and wide at the bottom, a "T" the other way
 * round, and the same pictures read without the fix would be lying on
 * their side. */
static void test_emnist_upright(void)
{
    hcr_dataset *ds = NULL;
    CHECK(hcr_dataset_load("emnist-letters", letters_dir(), "train", &ds) == HCR_OK);
    if (!ds) return;
    for (int i = 0; i < ds->count; i++) {
        int cls = ds->labels[i];
        if (cls != 0 && cls != 'T' - 'A') continue;
        const uint8_t *img = ds->pixels + (size_t)i * 784;
        int top = 28, bottom = -1;
        for (int y = 0; y < 28; y++)
            if (row_width(img, y)) {
                if (top == 28) top = y;
                bottom = y;
            }
        CHECK(bottom > top + 10);
        int w_top = row_width(img, top + 2), w_bottom = row_width(img, bottom - 2);
        if (cls == 0)
            CHECK_MSG(w_top < w_bottom, "image %d ('A'): ink %d px wide at the top, %d at the bottom", i,
                      w_top, w_bottom);
        else
            CHECK_MSG(w_top > w_bottom, "image %d ('T'): ink %d px wide at the top, %d at the bottom", i,
                      w_top, w_bottom);
    }
    /* An upright plain "A" drawn the same way equals what the loader gives
     * back for a stored (transposed) copy of it. */
    uint8_t a[784], stored[784];
    CHECK(glyphs_letter('A', a, 1) == 0);
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) stored[x * 28 + y] = a[y * 28 + x];
    const char *dir = harness_tmp_path("upright");
    mkdir(dir, 0755);
    uint8_t label = 1;
    char path[600];
    unsigned char head[16];
    snprintf(path, sizeof path, "%s/emnist-letters-train-images-idx3-ubyte", dir);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        harness_be32(head, 0x803);
        harness_be32(head + 4, 1);
        harness_be32(head + 8, 28);
        harness_be32(head + 12, 28);
        fwrite(head, 1, 16, f);
        fwrite(stored, 1, 784, f);
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/emnist-letters-train-labels-idx1-ubyte", dir);
    f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        harness_be32(head, 0x801);
        harness_be32(head + 4, 1);
        fwrite(head, 1, 8, f);
        fwrite(&label, 1, 1, f);
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/emnist-letters-mapping.txt", dir);
    char mapping[600] = "";
    for (int i = 0; i < 26; i++)
        snprintf(mapping + strlen(mapping), sizeof mapping - strlen(mapping), "%d %d %d\n", i + 1,
                 'A' + i, 'a' + i);
    write_text(path, mapping);
    hcr_dataset_free(ds);
    ds = NULL;
    CHECK(hcr_dataset_load("emnist-letters", dir, "train", &ds) == HCR_OK);
    if (ds) CHECK(memcmp(ds->pixels, a, 784) == 0 && ds->labels[0] == 0);
    hcr_dataset_free(ds);
}

static void check_mapping_error(const char *text, const char *expect)
{
    const char *dir = harness_tmp_path("badmap");
    mkdir(dir, 0755);
    char path[600];
    snprintf(path, sizeof path, "%s/emnist-letters-mapping.txt", dir);
    write_text(path, text);
    /* the fixture's image files, so only the mapping can be wrong */
    static const char *const files[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"};
    for (int i = 0; i < 2; i++) {
        char src[600], dst[600];
        snprintf(src, sizeof src, "%s/emnist-letters-%s", letters_dir(), files[i]);
        snprintf(dst, sizeof dst, "%s/emnist-letters-%s", dir, files[i]);
        unlink(dst);
        CHECK(link(src, dst) == 0);
    }
    hcr_dataset *ds = NULL;
    hcr_status s = hcr_dataset_load("emnist-letters", dir, "train", &ds);
    CHECK_MSG(s == HCR_EFORMAT, "mapping '%s': status %d", text, s);
    CHECK(ds == NULL);
    CHECK_CONTAINS(hcr_last_error(), expect);
}

static void test_bad_mapping_files(void)
{
    char good[600] = "";
    for (int i = 0; i < 26; i++)
        snprintf(good + strlen(good), sizeof good - strlen(good), "%d %d %d\n", i + 1, 'A' + i, 'a' + i);
    check_mapping_error("", "no classes in it");
    check_mapping_error("1 65\n1 66\n", "label 1 appears twice");
    check_mapping_error("1 65\n3 67\n", "label 2 is missing");
    check_mapping_error("one 65\n", "line 1: expected \"<label> <character code>\"");
    check_mapping_error("1\n", "line 1: expected");
    check_mapping_error("1 x\n", "no character code after label 1");
    check_mapping_error("1 65 z\n", "unexpected 'z'");
    check_mapping_error("1 7\n", "7 is not a printable character code");
    check_mapping_error("2 65\n3 66\n", "labels start at 2");
    check_mapping_error("1 65\n2 65\n", "labels 1 and 2 are both 'A'");
    /* a well-formed file with the wrong number of classes */
    check_mapping_error("0 48\n1 49\n", "lists 2 classes, but emnist-letters has 26");
    /* 26 classes, but counted from 0: the file's label 26 is not listed */
    char zero[600] = "";
    for (int i = 0; i < 26; i++)
        snprintf(zero + strlen(zero), sizeof zero - strlen(zero), "%d %d\n", i, 'A' + i);
    check_mapping_error(zero, "which the mapping file does not list (labels 0..25)");
    /* and the good one loads */
    const char *dir = harness_tmp_path("badmap");
    char path[600];
    snprintf(path, sizeof path, "%s/emnist-letters-mapping.txt", dir);
    write_text(path, good);
    hcr_dataset *ds = NULL;
    CHECK(hcr_dataset_load("emnist-letters", dir, "train", &ds) == HCR_OK);
    hcr_dataset_free(ds);
    /* a missing mapping file says where it comes from */
    unlink(path);
    CHECK(hcr_dataset_load("emnist-letters", dir, "train", &ds) == HCR_EIO);
    CHECK_CONTAINS(hcr_last_error(), "emnist-letters-mapping.txt is missing");
    CHECK_CONTAINS(hcr_last_error(), "hcr data fetch emnist-letters");
    /* one that is a FIFO or a device is refused at once, naming it */
    alarm(20);
    CHECK(mkfifo(path, 0644) == 0);
    CHECK(hcr_dataset_load("emnist-letters", dir, "train", &ds) == HCR_EIO);
    CHECK_CONTAINS(hcr_last_error(), "emnist-letters-mapping.txt: is a FIFO (named pipe), not a regular file");
    unlink(path);
    CHECK(symlink("/dev/zero", path) == 0);
    CHECK(hcr_dataset_load("emnist-letters", dir, "train", &ds) == HCR_EIO);
    CHECK_CONTAINS(hcr_last_error(), "mapping file: ");
    CHECK_CONTAINS(hcr_last_error(), "emnist-letters-mapping.txt: is a character device");
    unlink(path);
    alarm(0);
}

static void test_mapping_parser_balanced(void)
{
    /* balanced: 0-based, digits then letters, one code per line */
    const char *path = harness_tmp_path("balanced-mapping.txt");
    write_text(path, "0 48\n1 49\n2 50\n10 65\n3 51\r\n4 52\n5 53\n6 54\n7 55\n8 56\n9 57\n11 97\n\n");
    char **names = NULL;
    int n = 0, first = -1;
    CHECK(dataset_parse_mapping(path, &names, &n, &first) == HCR_OK);
    CHECK(n == 12 && first == 0);
    if (names && n == 12) {
        CHECK(strcmp(names[0], "0") == 0 && strcmp(names[3], "3") == 0);
        CHECK(strcmp(names[10], "A") == 0 && strcmp(names[11], "a") == 0);
        for (int i = 0; i < n; i++) free(names[i]);
        free(names);
    }
    /* a code beyond ASCII becomes UTF-8 */
    write_text(path, "0 233\n1 12354\n");
    CHECK(dataset_parse_mapping(path, &names, &n, &first) == HCR_OK);
    if (names && n == 2) {
        CHECK(strcmp(names[0], "\xc3\xa9") == 0);
        CHECK(strcmp(names[1], "\xe3\x81\x82") == 0);
        for (int i = 0; i < n; i++) free(names[i]);
        free(names);
    }
}

/* ------------------------------------------------------------------ idx:DIR */

static void test_idx_dir_with_classes(void)
{
    const char *dir = harness_tmp_path("shapes");
    mkdir(dir, 0755);
    const uint8_t train_labels[6] = {0, 1, 2, 0, 1, 2}, test_labels[3] = {2, 1, 0};
    write_pair(dir, "train", 6, 8, 8, train_labels, 6);
    write_pair(dir, "test", 3, 8, 8, test_labels, 3); /* "test", not "t10k" */
    char path[600], name[620];
    snprintf(path, sizeof path, "%s/classes.txt", dir);
    write_text(path, "circle\nsquare\r\ntriangle\n");
    snprintf(name, sizeof name, "idx:%s", dir);
    hcr_dataset *tr = NULL, *te = NULL;
    CHECK(hcr_dataset_load(name, NULL, "train", &tr) == HCR_OK);
    CHECK(hcr_dataset_load(name, NULL, "test", &te) == HCR_OK);
    if (tr && te) {
        CHECK(tr->count == 6 && te->count == 3 && tr->rows == 8 && tr->cols == 8);
        CHECK(tr->num_classes == 3);
        CHECK(strcmp(hcr_dataset_class_name(te, 0), "circle") == 0);
        CHECK(strcmp(hcr_dataset_class_name(te, 1), "square") == 0);
        CHECK(strcmp(hcr_dataset_class_name(te, 2), "triangle") == 0);
        /* a slice keeps the names */
        hcr_dataset *s = NULL;
        CHECK(hcr_dataset_slice(tr, 2, 3, &s) == HCR_OK);
        if (s) CHECK(strcmp(hcr_dataset_class_name(s, 2), "triangle") == 0 && s->num_classes == 3);
        hcr_dataset_free(s);
        /* images are not transposed for idx: pixel value = image index */
        CHECK(tr->pixels[5 * 64 + 7] == 5);
    }
    hcr_dataset_free(tr);
    hcr_dataset_free(te);

    /* more classes named than labels used is fine; fewer is not */
    write_text(path, "circle\nsquare\n");
    CHECK(hcr_dataset_load(name, NULL, "train", &tr) == HCR_EFORMAT);
    CHECK_CONTAINS(hcr_last_error(), "image 2 has label 2, but there are only 2 classes");
    write_text(path, "circle\n\ntriangle\n");
    CHECK(hcr_dataset_load(name, NULL, "train", &tr) == HCR_EFORMAT);
    CHECK_CONTAINS(hcr_last_error(), "line 2: it is empty");
    write_text(path, "circle\nsquare\ncircle\n");
    CHECK(hcr_dataset_load(name, NULL, "train", &tr) == HCR_EFORMAT);
    CHECK_CONTAINS(hcr_last_error(), "class names 0 and 2 are both 'circle'");
    write_text(path, "");
    CHECK(hcr_dataset_load(name, NULL, "train", &tr) == HCR_EFORMAT);
    CHECK_CONTAINS(hcr_last_error(), "is empty");
    unlink(path);
    CHECK(hcr_dataset_load(name, NULL, "train", &tr) == HCR_OK);
    if (tr) CHECK(tr->class_names == NULL && strcmp(hcr_dataset_class_name(tr, 1), "1") == 0);
    hcr_dataset_free(tr);

    /* a classes.txt that is not a plain file is refused at once (a FIFO
     * would block; it is not skipped either); alarm: a hang fails */
    alarm(20);
    CHECK(mkfifo(path, 0644) == 0);
    tr = NULL;
    CHECK(hcr_dataset_load(name, NULL, "train", &tr) == HCR_EIO && tr == NULL);
    CHECK_CONTAINS(hcr_last_error(), "classes.txt: is a FIFO (named pipe), not a regular file");
    unlink(path);
    CHECK(symlink("/dev/zero", path) == 0);
    CHECK(hcr_dataset_load(name, NULL, "train", &tr) == HCR_EIO && tr == NULL);
    CHECK_CONTAINS(hcr_last_error(), "classes.txt: is a character device, not a regular file");
    unlink(path);
    CHECK(mkdir(path, 0755) == 0);
    CHECK(hcr_dataset_load(name, NULL, "train", &tr) == HCR_EIO && tr == NULL);
    CHECK_CONTAINS(hcr_last_error(), "classes.txt: is a directory, not a regular file");
    rmdir(path);
    alarm(0);
}

static void test_mismatched_files(void)
{
    const char *dir = harness_tmp_path("mismatch");
    mkdir(dir, 0755);
    const uint8_t labels[5] = {0, 1, 0, 1, 0};
    write_pair(dir, "train", 4, 28, 28, labels, 5);
    char name[620];
    snprintf(name, sizeof name, "idx:%s", dir);
    hcr_dataset *ds = NULL;
    CHECK(hcr_dataset_load(name, NULL, "train", &ds) == HCR_EFORMAT);
    CHECK_CONTAINS(hcr_last_error(), "4 images but 5 labels");
    /* no test split at all: both spellings are named */
    CHECK(hcr_dataset_load(name, NULL, "test", &ds) == HCR_EIO);
    CHECK_CONTAINS(hcr_last_error(), "t10k-images-idx3-ubyte");
    CHECK_CONTAINS(hcr_last_error(), "test-images-idx3-ubyte");
    CHECK(hcr_dataset_load("idx:", NULL, "train", &ds) == HCR_EINVAL);
    CHECK(hcr_dataset_load("idx:/nonexistent/folder", NULL, "train", &ds) == HCR_EIO);
    CHECK_CONTAINS(hcr_last_error(), "/nonexistent/folder");
}

static void test_names_and_splits(void)
{
    hcr_dataset *ds = NULL;
    CHECK(hcr_dataset_load("emnist-greek", NULL, "train", &ds) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "unknown dataset 'emnist-greek'");
    CHECK_CONTAINS(hcr_last_error(), "fashion-mnist");
    CHECK(hcr_dataset_load("mnist", NULL, "validation", &ds) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "unknown split 'validation'");
    CHECK(hcr_dataset_find("kmnist") != NULL && hcr_dataset_find("kmnist")->num_classes == 10);
    CHECK(hcr_dataset_find("emnist-balanced")->num_classes == 47);
    CHECK(hcr_dataset_find("emnist-byclass")->num_classes == 62);
    CHECK(hcr_dataset_find("nope") == NULL);
    int n = hcr_dataset_known_count();
    CHECK(n >= 7);
    for (int i = 0; i < n; i++) CHECK(hcr_dataset_known(i)->name && hcr_dataset_known(i)->source);
    CHECK(hcr_dataset_known(n) == NULL && hcr_dataset_known(-1) == NULL);
    CHECK(strcmp(hcr_arch_preset("default"), HCR_DEFAULT_SPEC) == 0);
    CHECK(hcr_arch_preset("wide") != NULL && hcr_arch_preset("huge") == NULL);
    CHECK(hcr_spec_check(hcr_arch_preset("wide"), 28, 28, 26, NULL) == HCR_OK);
}

static void test_set_class_names(void)
{
    hcr_dataset *ds = NULL;
    CHECK(hcr_dataset_load("emnist-letters", letters_dir(), "test", &ds) == HCR_OK);
    if (!ds) return;
    const char *few[2] = {"x", "y"};
    CHECK(hcr_dataset_set_class_names(ds, 2, few) == HCR_EFORMAT);
    CHECK_CONTAINS(hcr_last_error(), "2 class names, but image");
    const char *bad[26];
    for (int i = 0; i < 26; i++) bad[i] = "ok";
    CHECK(hcr_dataset_set_class_names(ds, 26, bad) == HCR_EFORMAT);
    CHECK_CONTAINS(hcr_last_error(), "both 'ok'");
    bad[0] = "tab\there";
    CHECK(hcr_dataset_set_class_names(ds, 26, bad) == HCR_EFORMAT);
    CHECK_CONTAINS(hcr_last_error(), "control character");
    /* the old names survive a failed call */
    CHECK(strcmp(hcr_dataset_class_name(ds, 1), "B") == 0);
    hcr_dataset_free(ds);
}

/* ------------------------------------------------------------ Fashion-MNIST */

static void test_fashion_from_debian(void)
{
    char dir[4096];
    if (dataset_system_dir("fashion-mnist", dir, sizeof dir) != HCR_OK) {
        printf("  (skipped: Debian's dataset-fashion-mnist is not installed)\n");
        return;
    }
    hcr_dataset *ds = NULL;
    CHECK(hcr_dataset_load("fashion-mnist", NULL, "test", &ds) == HCR_OK);
    if (!ds) return;
    CHECK(ds->count == 10000 && ds->num_classes == 10);
    CHECK(strcmp(hcr_dataset_class_name(ds, 0), "T-shirt/top") == 0);
    CHECK(strcmp(hcr_dataset_class_name(ds, 9), "Ankle boot") == 0);
    CHECK(ds->labels[0] == 9); /* the first test image is an ankle boot */
    CHECK(strcmp(ds->images_sha256, dataset_file_sha256("fashion-mnist", "t10k-images-idx3-ubyte")) == 0);
    hcr_dataset_free(ds);
}

/* A default place holding other files than the published ones is refused. */
static void test_default_dir_checksums(void)
{
    const char *root = harness_tmp_path("system");
    char dir[600];
    snprintf(dir, sizeof dir, "%s/fashion-mnist", root);
    mkdir(root, 0755);
    mkdir(dir, 0755);
    const uint8_t labels[4] = {0, 1, 2, 3};
    write_pair(dir, "train", 4, 28, 28, labels, 4);
    write_pair(dir, "t10k", 4, 28, 28, labels, 4);
    setenv("HCR_SYSTEM_DATASETS", root, 1);
    char got[4096];
    CHECK(hcr_dataset_default_dir("fashion-mnist", got, sizeof got) == HCR_OK);
    CHECK(strcmp(got, dir) == 0);
    hcr_dataset *ds = NULL;
    CHECK(hcr_dataset_load("fashion-mnist", NULL, "test", &ds) == HCR_ECHECKSUM);
    CHECK_CONTAINS(hcr_last_error(), "not the published ones");
    /* the same files named explicitly are read as they are */
    CHECK(hcr_dataset_load("fashion-mnist", dir, "test", &ds) == HCR_OK);
    if (ds) CHECK(ds->count == 4 && strcmp(hcr_dataset_class_name(ds, 3), "Dress") == 0);
    hcr_dataset_free(ds);
    unsetenv("HCR_SYSTEM_DATASETS");
    /* an incomplete system copy is not used: the cache is */
    setenv("HCR_SYSTEM_DATASETS", "/nonexistent", 1);
    setenv("HCR_DATA", harness_tmp_path("cache"), 1);
    CHECK(hcr_dataset_default_dir("fashion-mnist", got, sizeof got) == HCR_OK);
    CHECK_CONTAINS(got, "cache/fashion-mnist");
    CHECK(hcr_dataset_default_dir("emnist-letters", got, sizeof got) == HCR_OK);
    CHECK_CONTAINS(got, "cache/emnist");
    unsetenv("HCR_SYSTEM_DATASETS");
    unsetenv("HCR_DATA");
}

/* The report draws EMNIST letters upright: in samples.png the first test
 * image (an "A" in the fixture) is narrow at the top, wide at the bottom. */
static void test_emnist_upright_in_report(void)
{
    hcr_dataset *train = NULL, *test = NULL;
    hcr_model *m = NULL;
    hcr_image *img = NULL;
    CHECK(hcr_dataset_load("emnist-letters", letters_dir(), "train", &train) == HCR_OK);
    CHECK(hcr_dataset_load("emnist-letters", letters_dir(), "test", &test) == HCR_OK);
    CHECK(hcr_model_create("conv4-pool-dense8", 28, 28, 26, 3, &m) == HCR_OK);
    if (!train || !test || !m) goto out;
    CHECK(test->labels[0] == 0);
    hcr_train_config cfg;
    hcr_train_config_default(&cfg);
    cfg.epochs = 1;
    cfg.threads = 1;
    CHECK(hcr_train(m, train, NULL, &cfg, NULL, NULL, NULL) == HCR_OK);
    const char *dir = harness_tmp_path("letters_report");
    CHECK(hcr_report_write(m, test, dir) == HCR_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/samples.png", dir);
    CHECK(hcr_image_load(path, &img) == HCR_OK);
    if (!img) goto out;
    /* The first cell: left eighth of the picture, below the title lines and
     * above the first caption; the frame is light grey (or red, about 70
     * in grey, for a wrong prediction), the ink black. */
    const int x1 = img->width / 8, y0 = img->height * 11 / 100, y1 = img->height * 27 / 100;
    int top = -1, bottom = -1;
    for (int y = y0; y < y1; y++)
        for (int x = 0; x < x1; x++)
            if (img->pixels[(size_t)y * img->width + x] < 40) {
                if (top < 0) top = y;
                bottom = y;
            }
    CHECK_MSG(top >= 0 && bottom - top > 20, "no letter found in the first cell (%d..%d)", top, bottom);
    if (top >= 0) {
        int w[2];
        for (int k = 0; k < 2; k++) {
            int y = k ? bottom - (bottom - top) / 8 : top + (bottom - top) / 8, lo = -1, hi = -1;
            for (int x = 0; x < x1; x++)
                if (img->pixels[(size_t)y * img->width + x] < 40) {
                    if (lo < 0) lo = x;
                    hi = x;
                }
            w[k] = lo < 0 ? 0 : hi - lo + 1;
        }
        CHECK_MSG(w[0] * 2 < w[1], "the A in samples.png is %d px wide near the top, %d near the bottom",
                  w[0], w[1]);
    }
out:
    hcr_image_free(img);
    hcr_model_free(m);
    hcr_dataset_free(train);
    hcr_dataset_free(test);
}

/* ------------------------------------------------------------ augmentation */

static void test_augment_image(void)
{
    /* a 3x4 image with distinct pixels 1..12 */
    uint8_t src[12], dst[12];
    for (int i = 0; i < 12; i++) src[i] = (uint8_t)(i + 1);
    augment_image(dst, src, 3, 4, 0, 0, 0);
    CHECK(memcmp(dst, src, 12) == 0);
    augment_image(dst, src, 3, 4, 1, 0, 0); /* right by one: column 0 blank */
    const uint8_t right[12] = {0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11};
    CHECK(memcmp(dst, right, 12) == 0);
    augment_image(dst, src, 3, 4, 0, -1, 0); /* up by one: last row blank */
    const uint8_t up[12] = {5, 6, 7, 8, 9, 10, 11, 12, 0, 0, 0, 0};
    CHECK(memcmp(dst, up, 12) == 0);
    augment_image(dst, src, 3, 4, 0, 0, 1); /* mirrored */
    const uint8_t mirror[12] = {4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9};
    CHECK(memcmp(dst, mirror, 12) == 0);
    augment_image(dst, src, 3, 4, 5, 0, 0); /* moved out entirely */
    for (int i = 0; i < 12; i++) CHECK(dst[i] == 0);
}

static void test_lr_schedule(void)
{
    hcr_train_config cfg;
    hcr_train_config_default(&cfg);
    CHECK(cfg.lr_schedule == HCR_LR_CONSTANT);
    CHECK(train_lr_at(&cfg, 0, 100) == 0.001f && train_lr_at(&cfg, 99, 100) == 0.001f);
    cfg.lr_schedule = HCR_LR_COSINE;
    CHECK_NEAR(train_lr_at(&cfg, 0, 100), 0.001, 1e-9);
    CHECK_NEAR(train_lr_at(&cfg, 50, 100), 0.0005, 1e-9);
    CHECK_NEAR(train_lr_at(&cfg, 25, 100), 0.001 * 0.5 * (1 + sqrt(0.5)), 1e-9);
    CHECK(train_lr_at(&cfg, 99, 100) < 0.001 * 0.001);
    CHECK(train_lr_at(&cfg, 60, 100) < train_lr_at(&cfg, 59, 100));
    cfg.lr_schedule = 7;
    hcr_model *m = NULL;
    hcr_dataset *ds = NULL;
    CHECK(hcr_dataset_load("emnist-letters", letters_dir(), "test", &ds) == HCR_OK);
    CHECK(hcr_model_create("dense4", 28, 28, 26, 1, &m) == HCR_OK);
    if (m && ds) {
        CHECK(hcr_train(m, ds, NULL, &cfg, NULL, NULL, NULL) == HCR_EINVAL);
        CHECK_CONTAINS(hcr_last_error(), "unknown learning-rate schedule 7");
    }
    hcr_model_free(m);
    hcr_dataset_free(ds);
}

/* Training with augmentation is deterministic for a seed, and differs from
 * training without it; a bad shift is refused. */
static void test_train_with_augmentation(void)
{
    hcr_dataset *ds = NULL;
    CHECK(hcr_dataset_load("emnist-letters", letters_dir(), "train", &ds) == HCR_OK);
    if (!ds) return;
    float probs[3][26];
    for (int run = 0; run < 3; run++) {
        hcr_model *m = NULL;
        CHECK(hcr_model_create("conv4-pool-dense8", 28, 28, 26, 5, &m) == HCR_OK);
        if (!m) return;
        hcr_train_config cfg;
        hcr_train_config_default(&cfg);
        cfg.epochs = 2;
        cfg.batch_size = 16;
        cfg.threads = 1;
        cfg.shift = run < 2 ? 2 : 0;
        cfg.flip = run < 2;
        CHECK(hcr_train(m, ds, NULL, &cfg, NULL, NULL, NULL) == HCR_OK);
        CHECK(hcr_model_predict(m, ds->pixels, 1, probs[run]) == HCR_OK);
        if (run == 0) {
            cfg.shift = 9;
            CHECK(hcr_train(m, ds, NULL, &cfg, NULL, NULL, NULL) == HCR_EINVAL);
            CHECK_CONTAINS(hcr_last_error(), "between 0 and 8 pixels (got 9)");
        }
        hcr_model_free(m);
    }
    CHECK(memcmp(probs[0], probs[1], sizeof probs[0]) == 0);
    CHECK(memcmp(probs[0], probs[2], sizeof probs[0]) != 0);
    hcr_dataset_free(ds);
}

TEST_MAIN(TEST(test_emnist_letters_layout), TEST(test_emnist_upright_in_report), TEST(test_augment_image), TEST(test_train_with_augmentation), TEST(test_lr_schedule), TEST(test_emnist_upright), TEST(test_bad_mapping_files),
          TEST(test_mapping_parser_balanced), TEST(test_idx_dir_with_classes),
          TEST(test_mismatched_files), TEST(test_names_and_splits), TEST(test_set_class_names),
          TEST(test_fashion_from_debian), TEST(test_default_dir_checksums))
