/*
 * fuzz_mapping.c - libFuzzer harness for the two class-name text files
 * (src/data/registry.c): an EMNIST mapping file (dataset_parse_mapping, lines
 * "<label> <character code> [<code>...]") and an idx:DIR dataset's
 * classes.txt (one name per line), read through the public
 * hcr_dataset_load("idx:DIR", ...).
 *
 * Input: a text file; every input is given to both parsers. The idx:DIR
 * folder holds a tiny valid train and t10k pair (labels 0..3) made at
 * start-up; its train split is loaded, so classes.txt is read each time.
 *
 * Checked: names are non-empty, short, without control characters and
 * distinct; a dataset's names cover its labels.
 */
#include "fuzz_common.h"
#include "data/data.h"

static char dir[300], classes_path[300], mapping_path[300], dataset_name[320];

static void write_in_dir(const char *name, const void *data, size_t n)
{
    char p[400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    fuzz_write(p, data, n);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "%s", fuzz_dir());
    snprintf(classes_path, sizeof classes_path, "%s/classes.txt", dir);
    snprintf(mapping_path, sizeof mapping_path, "%s/mapping.txt", dir);
    snprintf(dataset_name, sizeof dataset_name, "idx:%s", dir);
    static const unsigned char img[] = {0, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 1, 9, 8, 7, 6};
    static const unsigned char lab[] = {0, 0, 8, 1, 0, 0, 0, 4, 0, 1, 2, 3};
    write_in_dir("train-images-idx3-ubyte", img, sizeof img);
    write_in_dir("train-labels-idx1-ubyte", lab, sizeof lab);
    write_in_dir("t10k-images-idx3-ubyte", img, sizeof img);
    write_in_dir("t10k-labels-idx1-ubyte", lab, sizeof lab);
    return 0;
}

static void check_names(char **names, int n)
{
    FUZZ_CHECK(n >= 1 && n <= 1000, "%d names", n);
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        FUZZ_CHECK(len >= 1 && len <= 63, "name %d has %zu bytes", i, len);
        for (const unsigned char *p = (const unsigned char *)names[i]; *p; p++)
            FUZZ_CHECK(*p >= 0x20 && *p != 0x7f, "name %d holds a control character", i);
        for (int j = 0; j < i; j++) FUZZ_CHECK(strcmp(names[i], names[j]) != 0, "names %d and %d", j, i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (2u << 20)) return 0;

    fuzz_write(mapping_path, data, size);
    char **names = NULL;
    int n = 0, first = -1;
    hcr_status s = dataset_parse_mapping(mapping_path, &names, &n, &first);
    if (s == HCR_OK) {
        FUZZ_CHECK(first == 0 || first == 1, "first label %d", first);
        check_names(names, n);
        for (int i = 0; i < n; i++) free(names[i]);
        free(names);
    } else {
        FUZZ_CHECK(names == NULL && hcr_last_error()[0], "failure without a message or with names");
    }

    fuzz_write(classes_path, data, size);
    hcr_dataset *ds = NULL;
    s = hcr_dataset_load(dataset_name, NULL, "train", &ds);
    if (s == HCR_OK) {
        FUZZ_CHECK(ds->class_names != NULL && ds->num_classes >= 4, "%d classes", ds->num_classes);
        check_names(ds->class_names, ds->num_classes);
        for (int i = 0; i < ds->num_classes; i++)
            FUZZ_CHECK(hcr_dataset_class_name(ds, i) == ds->class_names[i], "class_name %d", i);
        hcr_dataset_free(ds);
    } else {
        FUZZ_CHECK(ds == NULL && hcr_last_error()[0], "failure without a message or with a dataset");
    }
    return 0;
}
