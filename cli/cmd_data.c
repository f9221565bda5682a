/*
 * cmd_data.c - hcr data: fetch datasets into the cache and show what is
 * there.
 */
#include "cli.h"

#include <cjson/cJSON.h>

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char help[] =
    "usage: hcr data list [--json]\n"
    "       hcr data fetch [NAME] [--dir DIR]\n"
    "       hcr data where\n"
    "\n"
    "list    every dataset hcr knows: its classes, sizes, whether it is on this\n"
    "        machine (and where), and where it comes from\n"
    "fetch   download dataset NAME (default mnist) into the cache ($HCR_DATA, else\n"
    "        $XDG_CACHE_HOME/hcr, else ~/.cache/hcr) or into DIR, verifying every\n"
    "        file's published checksum; files already present and right are kept.\n"
    "        Fashion-MNIST is used where Debian's dataset-fashion-mnist installed it.\n"
    "        EMNIST is NIST's archive of all splits (about 560 MB, needs unzip): it\n"
    "        is kept in the cache and only the split asked for is extracted.\n"
    "where   print the cache directory\n"
    "\n"
    "options:\n"
    "  --dir DIR     fetch into DIR instead of the cache\n"
    "  --json        list as JSON\n"
    "  -h, --help    this help\n";

static int progress(void *user, const char *what, uint64_t done, uint64_t total)
{
    (void)user;
    if (isatty(STDERR_FILENO)) {
        if (total)
            fprintf(stderr, "\r  %s: %5.1f%% of %.1f MB", what, 100.0 * done / total, total / 1e6);
        else
            fprintf(stderr, "\r  %s: %.1f MB", what, done / 1e6);
        if (total && done >= total) fputc('\n', stderr);
    }
    return cli_interrupted();
}

/* Is the dataset on this machine? Loads both splits from the default
 * place (which checks the published checksums where there are some). */
static bool present(const char *name, char *where, size_t n)
{
    if (hcr_dataset_default_dir(name, where, n)) return false;
    hcr_dataset *a = NULL, *b = NULL;
    bool ok = hcr_dataset_load(name, NULL, "train", &a) == HCR_OK &&
              hcr_dataset_load(name, NULL, "test", &b) == HCR_OK;
    hcr_dataset_free(a);
    hcr_dataset_free(b);
    return ok;
}

static int list(bool json)
{
    cJSON *root = json ? cJSON_CreateArray() : NULL;
    if (!json)
        printf("%-16s %7s %8s %7s  %-8s %s\n", "dataset", "classes", "train", "test", "here", "what, and where it comes from");
    for (int i = 0; i < hcr_dataset_known_count(); i++) {
        const hcr_dataset_info *d = hcr_dataset_known(i);
        char where[4096];
        bool here = present(d->name, where, sizeof where);
        if (root) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", d->name);
            cJSON_AddStringToObject(o, "title", d->title);
            cJSON_AddNumberToObject(o, "classes", d->num_classes);
            cJSON_AddNumberToObject(o, "train", d->train_count);
            cJSON_AddNumberToObject(o, "test", d->test_count);
            cJSON_AddBoolToObject(o, "present", here);
            cJSON_AddStringToObject(o, "directory", where);
            cJSON_AddStringToObject(o, "source", d->source);
            cJSON_AddItemToArray(root, o);
        } else {
            printf("%-16s %7d %8d %7d  %-8s %s\n", d->name, d->num_classes, d->train_count,
                   d->test_count, here ? "yes" : "no", d->title);
            printf("%-16s %7s %8s %7s  %-8s %s: %s\n", "", "", "", "", "", here ? "in" : "would go to",
                   where);
            printf("%-16s %7s %8s %7s  %-8s from %s\n", "", "", "", "", "", d->source);
        }
    }
    if (root) {
        char *text = cJSON_Print(root);
        if (text) cli_puts_json(text);
        cJSON_free(text);
        cJSON_Delete(root);
    } else {
        printf("\nAlso: idx:DIR, any folder holding train-images-idx3-ubyte[.gz],\n"
               "train-labels-idx1-ubyte[.gz] and the t10k- (or test-) pair, plus optionally\n"
               "classes.txt with one class name per line.\n");
    }
    return 0;
}

int cmd_data(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'},
        {"json", no_argument, 0, 'j'},      {0, 0, 0, 0},
    };
    const char *dir = NULL;
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'j': json = true; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_bad_option("data", argc, argv, "h", opts);
        }
    }
    if (optind >= argc) return cli_usage_error("data", "what to do? (list, fetch or where)");
    const char *verb = argv[optind];
    if (!strcmp(verb, "list")) {
        if (optind + 1 < argc) return cli_usage_error("data", "unexpected argument '%s'", argv[optind + 1]);
        return list(json);
    }
    if (!strcmp(verb, "where")) {
        char buf[4096];
        if (hcr_cache_dir(buf, sizeof buf)) return cli_fail("cache directory");
        printf("%s\n", buf);
        return 0;
    }
    if (strcmp(verb, "fetch")) return cli_usage_error("data", "unknown action '%s'", verb);
    const char *name = optind + 1 < argc ? argv[optind + 1] : "mnist";
    if (optind + 2 < argc) return cli_usage_error("data", "unexpected argument '%s'", argv[optind + 2]);
    if (!strncmp(name, "idx:", 4))
        return cli_usage_error("data", "%s is a folder of your own: there is nothing to fetch", cli_text(name));
    if (cli_check_dataset("data", name, NULL)) return 2;
    /* Ctrl-C or SIGTERM cancels the fetch, which removes its temporary
     * files (a second Ctrl-C ends it at once; the next fetch removes what
     * that left). */
    cli_catch_interrupt();
    char used[4096];
    hcr_status s = hcr_fetch_dataset(name, dir, stderr, progress, NULL, used, sizeof used);
    if (s != HCR_OK) {
        cli_fail("fetch");
        return s == HCR_EINTERRUPTED ? 130 : 1;
    }
    printf("%s is ready in %s\n", name, used);
    return 0;
}
