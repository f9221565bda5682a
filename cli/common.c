/*
 * common.c - helpers shared by the hcr commands: errors, option values,
 * finding the data, Ctrl-C.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_fail(const char *what)
{
    fprintf(stderr, "hcr: %s: %s\n", what, hcr_last_error());
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "hcr %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun 'hcr %s --help' for usage.\n", cmd);
    return 2;
}

bool cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) {
        cli_usage_error(cmd, "%s: '%s' is not a whole number between %ld and %ld", opt, s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || v < lo || v > hi) {
        cli_usage_error(cmd, "%s: '%s' is not a number between %g and %g", opt, s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

static int fetch_progress(void *user, const char *what, uint64_t done, uint64_t total)
{
    (void)user;
    if (!isatty(STDERR_FILENO)) return cli_interrupted();
    if (total)
        fprintf(stderr, "\r  %s: %5.1f%% of %.1f MB", what, 100.0 * done / total, total / 1e6);
    else
        fprintf(stderr, "\r  %s: %.1f MB", what, done / 1e6);
    if (total && done >= total) fputc('\n', stderr);
    return cli_interrupted();
}

/* The loaded files are the known MNIST files (the loader hashes what it
 * reads, so this costs nothing extra). */
static bool is_known_mnist(const hcr_dataset *ds, const char *prefix)
{
    char name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    const char *images = hcr_known_sha256(name);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    const char *labels = hcr_known_sha256(name);
    return images && labels && !strcmp(ds->images_sha256, images) &&
           !strcmp(ds->labels_sha256, labels);
}

int cli_load_mnist(const char *data_dir, const char *prefix, hcr_dataset **out)
{
    char dir[4096];
    if (data_dir) {
        if (hcr_dataset_load_dir(data_dir, prefix, out)) return cli_fail("loading MNIST");
        return 0;
    }
    /* The cache: use it quietly when it holds the right files, otherwise
     * fetch (saying what is being done) and load again. */
    if (hcr_cache_dir(dir, sizeof dir - 8) == HCR_OK) {
        strcat(dir, "/mnist");
        hcr_dataset *ds = NULL;
        if (hcr_dataset_load_dir(dir, prefix, &ds) == HCR_OK && is_known_mnist(ds, prefix)) {
            *out = ds;
            return 0;
        }
        hcr_dataset_free(ds);
    }
    if (hcr_fetch_dataset("mnist", NULL, stderr, fetch_progress, NULL, dir, sizeof dir))
        return cli_fail("fetching MNIST");
    if (hcr_dataset_load_dir(dir, prefix, out)) return cli_fail("loading MNIST");
    return 0;
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    if (interrupted) {
        signal(SIGINT, SIG_DFL);
        raise(SIGINT);
    }
    interrupted = 1;
    static const char msg[] = "\nhcr: interrupted: finishing cleanly (press Ctrl-C again to abort)\n";
    ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)r;
}

void cli_catch_interrupt(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool cli_interrupted(void) { return interrupted != 0; }
