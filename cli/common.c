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

int cli_load_dataset(const char *name, const char *data_dir, const char *split, hcr_dataset **out)
{
    char what[256];
    snprintf(what, sizeof what, "loading %s", name);
    /* A folder given by the user, or idx:DIR, is read as it is. */
    if (data_dir || strncmp(name, "idx:", 4) == 0) {
        if (hcr_dataset_load(name, data_dir, split, out)) return cli_fail(what);
        return 0;
    }
    if (!hcr_dataset_find(name)) {
        hcr_dataset_load(name, NULL, split, out); /* for its message */
        return cli_fail("--dataset");
    }
    /* The default place: use it quietly when it holds the right files,
     * otherwise fetch (saying what is being done) and load again. */
    if (hcr_dataset_load(name, NULL, split, out) == HCR_OK) return 0;
    char dir[4096];
    snprintf(what, sizeof what, "fetching %s", name);
    if (hcr_fetch_dataset(name, NULL, stderr, fetch_progress, NULL, dir, sizeof dir)) return cli_fail(what);
    snprintf(what, sizeof what, "loading %s", name);
    if (hcr_dataset_load(name, dir, split, out)) return cli_fail(what);
    return 0;
}

int cli_check_classes(const hcr_model *m, const hcr_dataset *ds)
{
    const int k = hcr_model_num_classes(m);
    if (ds->num_classes > k) {
        fprintf(stderr, "hcr: the data has %d classes but the model only %d: was it trained on "
                        "another dataset? (it says: %s)\n",
                ds->num_classes, k, hcr_model_get_meta(m, "dataset") ? hcr_model_get_meta(m, "dataset") : "nothing");
        return 1;
    }
    {
        for (int i = 0; i < ds->num_classes; i++) {
            if (strcmp(hcr_dataset_class_name(ds, i), hcr_model_class_name(m, i)) != 0) {
                fprintf(stderr, "hcr: class %d is '%s' in the data but '%s' in the model: was it "
                                "trained on another dataset? (it says: %s)\n",
                        i, hcr_dataset_class_name(ds, i), hcr_model_class_name(m, i),
                        hcr_model_get_meta(m, "dataset") ? hcr_model_get_meta(m, "dataset") : "nothing");
                return 1;
            }
        }
    }
    return 0;
}

const char *cli_dataset_of(const char *option, const hcr_model *m)
{
    if (option) return option;
    const char *d = m ? hcr_model_get_meta(m, "dataset") : NULL;
    return d && *d ? d : "mnist";
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
