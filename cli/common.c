/*
 * common.c - helpers shared by the hcr commands: errors, option values,
 * finding the data, Ctrl-C.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

int cli_bad_option(const char *cmd, int argc, char **argv, const char *optstring,
                   const struct option *longopts)
{
    const char *arg = optind >= 2 && optind <= argc ? argv[optind - 1] : "";
    if (strncmp(arg, "--", 2) == 0 && arg[2]) {
        /* A long option (unless the error is a short one later in a
         * cluster, when optopt names another option than this one). */
        const char *name = arg + 2;
        const size_t len = strcspn(name, "=");
        const struct option *hit = NULL;
        int matches = 0;
        char list[256] = "";
        for (const struct option *o = longopts; o && o->name; o++) {
            if (strncmp(o->name, name, len) != 0) continue;
            if (strlen(o->name) == len) { /* exact */
                hit = o;
                matches = 1;
                break;
            }
            hit = o;
            matches++;
            size_t u = strlen(list);
            snprintf(list + u, sizeof list - u, "%s--%s", u ? ", " : "", o->name);
        }
        if (matches == 0 && optopt == 0)
            return cli_usage_error(cmd, "unknown option '--%.*s'", (int)len, name);
        if (matches > 1 && optopt == 0)
            return cli_usage_error(cmd, "option '--%.*s' is ambiguous: %s", (int)len, name, list);
        if (matches == 1 && hit->val == optopt) {
            if (name[len] == '=' && hit->has_arg == no_argument)
                return cli_usage_error(cmd, "option '--%s' takes no value", hit->name);
            return cli_usage_error(cmd, "option '--%s' needs a value", hit->name);
        }
    }
    if (optopt > 0 && optopt < 128 && optopt != ':') {
        const char *p = strchr(optstring, optopt);
        if (p && p[1] == ':') return cli_usage_error(cmd, "option '-%c' needs a value", optopt);
        return cli_usage_error(cmd, "unknown option '-%c'", optopt);
    }
    return cli_usage_error(cmd, "unknown option '%s'", arg);
}

int cli_load_model(const char *path, hcr_model **m)
{
    /* A FIFO or a device is refused here at once, before the library
     * opens it (opening a FIFO would wait for a writer). */
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        char why[4200];
        cli_open_regular(path, why, sizeof why);
        fprintf(stderr, "hcr: loading the model: %s\n", why);
        *m = NULL;
        return 1;
    }
    if (hcr_model_load(path, m)) return cli_fail("loading the model");
    return 0;
}

int cli_check_dataset(const char *cmd, const char *dataset, const char *data_dir)
{
    if (!dataset) return 0;
    if (strncmp(dataset, "idx:", 4) == 0) {
        if (!dataset[4]) return cli_usage_error(cmd, "--dataset idx: needs a folder (idx:DIR)");
        if (data_dir)
            return cli_usage_error(cmd, "--dataset %s names its folder; --data %s names another: "
                                        "give one of them", dataset, data_dir);
        return 0;
    }
    if (hcr_dataset_find(dataset)) return 0;
    char list[512] = "";
    for (int i = 0; i < hcr_dataset_known_count(); i++) {
        size_t u = strlen(list);
        snprintf(list + u, sizeof list - u, "%s%s", i ? ", " : "", hcr_dataset_known(i)->name);
    }
    return cli_usage_error(cmd, "unknown dataset '%s' (known: %s, or idx:DIR for a folder "
                                "of IDX files; hcr data list shows them)", cli_text(dataset), list);
}

const char *cli_text(const char *s)
{
    enum { NBUF = 8, SIZE = 512 };
    static char bufs[NBUF][SIZE];
    static int next;
    char *out = bufs[next];
    next = (next + 1) % NBUF;
    if (!s) s = "(null)";
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    while (*p) {
        char piece[16];
        size_t len;
        size_t seq = cli_utf8_len(p);
        if (*p == '\n' || *p == '\t' || *p == '\r') {
            piece[0] = '\\';
            piece[1] = *p == '\n' ? 'n' : *p == '\t' ? 't' : 'r';
            len = 2;
        } else if (*p < 0x20 || *p == 0x7f || seq == 0) {
            len = (size_t)snprintf(piece, sizeof piece, "\\x%02x", *p);
            seq = 1;
        } else if (seq == 2 && p[0] == 0xc2 && p[1] < 0xa0) { /* U+0080..U+009F: C1 controls */
            len = (size_t)snprintf(piece, sizeof piece, "\\u%04x", p[1]);
        } else {
            memcpy(piece, p, len = seq);
        }
        if (len > sizeof piece || n + len + 4 > SIZE) { /* (the first: for the compiler) */
            memcpy(out + n, "...", 3);
            n += 3;
            break;
        }
        memcpy(out + n, piece, len);
        n += len;
        p += seq;
    }
    out[n] = '\0';
    return out;
}

void cli_puts_json(const char *text)
{
    /* Outside strings cJSON writes ASCII only, so every byte changed here
     * is inside a string, where \u00XX is the same character. */
    for (const unsigned char *p = (const unsigned char *)text; *p;) {
        size_t seq = cli_utf8_len(p);
        if (seq == 0) { /* not UTF-8: the byte as the Latin-1 character */
            printf("\\u%04x", *p);
            p++;
        } else if (seq == 2 && p[0] == 0xc2 && p[1] < 0xa0) { /* a C1 control */
            printf("\\u%04x", p[1]);
            p += 2;
        } else {
            fwrite(p, 1, seq, stdout);
            p += seq;
        }
    }
    putchar('\n');
}

int cli_mkdir_p(const char *cmd, const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        fprintf(stderr, "hcr %s: folder name too long: %.200s...\n", cmd, dir);
        return 1;
    }
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "hcr %s: cannot create folder %s: %s\n", cmd, path, strerror(errno));
            return 1;
        }
        *p = saved;
        if (!saved) break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "hcr %s: cannot create folder %s: %s\n", cmd, dir,
                stat(dir, &st) != 0 ? strerror(errno) : "a file of that name is in the way");
        return 1;
    }
    return 0;
}

int cli_open_regular(const char *path, char *why, size_t n)
{
    /* As the library's readers: stat first, so a device is never opened;
     * then open without blocking (a FIFO swapped in cannot hang us) and
     * check the file actually opened. */
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(why, n, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISREG(st.st_mode)) {
        int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC), flags;
        if (fd < 0 || fstat(fd, &st) != 0 || ((flags = fcntl(fd, F_GETFL)) < 0) ||
            fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
            snprintf(why, n, "%s: cannot open: %s", path, strerror(errno));
            if (fd >= 0) close(fd);
            return -1;
        }
        if (S_ISREG(st.st_mode)) return fd;
        close(fd);
    }
    const mode_t m = st.st_mode;
    snprintf(why, n, "%s: is %s, not a regular file", path,
             S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO (named pipe)" : S_ISCHR(m) ? "a character device"
             : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "something else");
    return -1;
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
    snprintf(what, sizeof what, "loading %s", cli_text(name));
    /* idx:DIR with --data: the model says idx:DIR, the files are now in
     * --data (the command line cannot give both: cli_check_dataset). */
    if (data_dir && strncmp(name, "idx:", 4) == 0) {
        char idx[4200];
        snprintf(idx, sizeof idx, "idx:%s", data_dir);
        snprintf(what, sizeof what, "loading %s", cli_text(idx));
        if (hcr_dataset_load(idx, NULL, split, out)) return cli_fail(what);
        return 0;
    }
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
     * otherwise fetch (saying what is being done) and load again. While
     * fetching, Ctrl-C and SIGTERM cancel the fetch, which then removes
     * its temporary files, instead of killing the program mid-way. */
    if (hcr_dataset_load(name, NULL, split, out) == HCR_OK) return 0;
    char dir[4096];
    snprintf(what, sizeof what, "fetching %s", name);
    struct sigaction old_int, old_term;
    sigaction(SIGINT, NULL, &old_int);
    sigaction(SIGTERM, NULL, &old_term);
    cli_catch_interrupt();
    hcr_status s = hcr_fetch_dataset(name, NULL, stderr, fetch_progress, NULL, dir, sizeof dir);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (s != HCR_OK) {
        cli_fail(what);
        return s == HCR_EINTERRUPTED ? 130 : 1;
    }
    snprintf(what, sizeof what, "loading %s", name);
    if (hcr_dataset_load(name, dir, split, out)) return cli_fail(what);
    return 0;
}

int cli_check_classes(const hcr_model *m, const hcr_dataset *ds)
{
    const int k = hcr_model_num_classes(m);
    const char *said = hcr_model_get_meta(m, "dataset") ? cli_text(hcr_model_get_meta(m, "dataset")) : "nothing";
    if (ds->num_classes > k) {
        fprintf(stderr, "hcr: the data has %d classes but the model only %d: was it trained on "
                        "another dataset? (it says: %s)\n",
                ds->num_classes, k, said);
        return 1;
    }
    {
        for (int i = 0; i < ds->num_classes; i++) {
            if (strcmp(hcr_dataset_class_name(ds, i), hcr_model_class_name(m, i)) != 0) {
                fprintf(stderr, "hcr: class %d is '%s' in the data but '%s' in the model: was it "
                                "trained on another dataset? (it says: %s)\n",
                        i, cli_text(hcr_dataset_class_name(ds, i)), cli_text(hcr_model_class_name(m, i)),
                        said);
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
