/*
 * cmd_data.c - hcr data: fetch datasets into the cache and show what is
 * there.
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char help[] =
    "usage: hcr data fetch [mnist] [--dir DIR]\n"
    "       hcr data where\n"
    "\n"
    "fetch   download a dataset into the cache ($HCR_DATA, else $XDG_CACHE_HOME/hcr,\n"
    "        else ~/.cache/hcr) or into DIR, verifying every file's SHA-256; files\n"
    "        already present with the right checksum are kept\n"
    "where   print the cache directory\n"
    "\n"
    "options:\n"
    "  --dir DIR     fetch into DIR instead of the cache\n"
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

int cmd_data(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    const char *dir = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_usage_error("data", "unknown or incomplete option");
        }
    }
    if (optind >= argc) return cli_usage_error("data", "what to do? (fetch or where)");
    const char *verb = argv[optind];
    if (!strcmp(verb, "where")) {
        char buf[4096];
        if (hcr_cache_dir(buf, sizeof buf)) return cli_fail("cache directory");
        printf("%s\n", buf);
        return 0;
    }
    if (strcmp(verb, "fetch")) return cli_usage_error("data", "unknown action '%s'", verb);
    const char *name = optind + 1 < argc ? argv[optind + 1] : "mnist";
    if (optind + 2 < argc) return cli_usage_error("data", "unexpected argument '%s'", argv[optind + 2]);
    cli_catch_interrupt();
    char used[4096];
    if (hcr_fetch_dataset(name, dir, stderr, progress, NULL, used, sizeof used))
        return cli_fail("fetch");
    printf("%s is ready in %s\n", name, used);
    return 0;
}
