/*
 * cmd_train.c - hcr train: the reference notebook in one command. Loads
 * MNIST, holds out the last images as the validation split, trains with
 * Adam printing Keras-style progress, evaluates on the test set once at the
 * end, and saves the model (safetensors) and the history (CSV).
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char help[] =
    "usage: hcr train [options]\n"
    "\n"
    "Train a convolutional network on MNIST (or another dataset) and save it. With\n"
    "no options this is the reference recipe: the CNN below, Adam (lr 0.001), batch\n"
    "128, 10 epochs, the last 10% of the training images (MNIST: 6,000) held out\n"
    "for validation, the test set used once at the end. The output layer follows\n"
    "the dataset's class count.\n"
    "\n"
    "options:\n"
    CLI_DATASET_HELP
    "                  (default mnist)\n"
    "  --arch SPEC|NAME   architecture: a preset name or a spec of tokens\n"
    "                     conv<F>[x<K>] pool[<S>] dense<N> drop<R> bn joined by '-'\n"
    "                     presets: default = " HCR_DEFAULT_SPEC "\n"
    "                              wide    = " HCR_WIDE_SPEC "\n"
    "                              wide-bn = " HCR_WIDE_BN_SPEC "\n"
    "                     (bn: batch normalization of the conv or dense layer before)\n"
    "  --epochs N         passes over the training images (default 10)\n"
    "  --batch-size N     images per step (default 128)\n"
    "  --lr X             Adam learning rate (default 0.001)\n"
    "  --lr-schedule S    constant (default) or cosine: the rate falls along half a\n"
    "                     cosine from --lr at the first step to 0 after the last\n"
    "  --seed N           weights, shuffling, dropout and augmentation (default 42)\n"
    "  --shift N          augmentation: move each training image by a random\n"
    "                     -N..N pixels on each axis every time it is used (default 0)\n"
    "  --flip             augmentation: mirror half of the training images left to\n"
    "                     right (for pictures such as clothes, not for characters)\n"
    "  --threads N        threads (default: all cores)\n"
    "  --val-split X      validation images taken from the end of the training set:\n"
    "                     a count (6000) or a fraction (0.1); 0 for none (default\n"
    "                     0.1: 6,000 of MNIST's 60,000)\n"
    "  --limit N          train on the first N training images only (a quick try)\n"
    "  --data DIR         the dataset's files in DIR; default: the cache ($HCR_DATA\n"
    "                     or $XDG_CACHE_HOME/hcr, or a system copy), fetched when\n"
    "                     missing\n"
    "  --out PATH         where to save the model (default <dataset>_cnn.safetensors,\n"
    "                     e.g. mnist_cnn.safetensors)\n"
    "  --history PATH     per-epoch history CSV (default: the model path with\n"
    "                     .history.csv in place of .safetensors)\n"
    "  --no-report        do not write the report folder (pictures and report.html,\n"
    "                     next to the model: see hcr report --help)\n"
    "  --resume[=FILE]    continue the run saved in the checkpoint FILE (default: the\n"
    "                     model path with .ckpt added); it holds the recipe, so other\n"
    "                     options may be left out; --epochs may be raised and\n"
    "                     --threads changed (the same thread count gives the same\n"
    "                     weights, bit for bit, as a run never stopped)\n"
    "  --no-checkpoint    do not write the checkpoint\n"
    "  -q, --quiet        no summary table and no progress\n"
    "  -h, --help         this help\n"
    "\n"
    "Every output is checked for writability before the data is loaded. After each\n"
    "epoch the whole state of the run is saved, atomically, in the checkpoint\n"
    "(<model>.ckpt), which is removed once the model is saved: a run killed at\n"
    "any moment continues from its last epoch with --resume. Ctrl-C (or SIGTERM)\n"
    "stops after the current step and saves the model, the history and the\n"
    "checkpoint of that step (exit status 130); a second Ctrl-C ends at once.\n";

typedef struct progress_state {
    bool tty, quiet;
    double last_draw;
} progress_state;

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void draw_bar(char *bar, int width, int step, int steps)
{
    int filled = steps ? (int)((long)width * step / steps) : width;
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '=' : '.';
    if (filled > 0 && filled < width) bar[filled - 1] = '>';
    bar[width] = '\0';
}

static int on_progress(void *user, const hcr_progress *p)
{
    progress_state *st = user;
    if (st->quiet) return cli_interrupted();
    double ms_per_step = p->step ? 1000.0 * p->epoch_seconds / p->step : 0;
    if (p->end_of_epoch) {
        char bar[31];
        draw_bar(bar, 30, p->steps, p->steps);
        const char *lead = st->tty ? "\r" : "";
        if (st->tty)
            printf("%s%d/%d [%s] - %.0fs %.0fms/step", lead, p->steps, p->steps, bar,
                   p->epoch_seconds, ms_per_step);
        else
            printf("Epoch %d/%d - %d/%d - %.1fs %.0fms/step", p->epoch, p->epochs, p->steps,
                   p->steps, p->epoch_seconds, ms_per_step);
        printf(" - loss: %.4f - accuracy: %.4f", p->loss, p->accuracy);
        if (p->val_accuracy > 0 || p->val_loss > 0)
            printf(" - val_loss: %.4f - val_accuracy: %.4f", p->val_loss, p->val_accuracy);
        fputs(st->tty ? "\033[K\n" : "\n", stdout);
        fflush(stdout);
        return cli_interrupted();
    }
    if (!st->tty) return cli_interrupted();
    if (p->step == 1) printf("Epoch %d/%d\n", p->epoch, p->epochs);
    double t = wall();
    if (p->step == p->steps || t - st->last_draw >= 0.1) {
        st->last_draw = t;
        char bar[31];
        draw_bar(bar, 30, p->step, p->steps);
        double eta = p->step ? p->epoch_seconds / p->step * (p->steps - p->step) : 0;
        printf("\r%d/%d [%s] - ETA: %.0fs - loss: %.4f - accuracy: %.4f\033[K", p->step, p->steps,
               bar, eta, p->loss, p->accuracy);
        fflush(stdout);
    }
    return cli_interrupted();
}

/* Record the recipe, dataset and results in the model's metadata. */
static void set_metadata(hcr_model *m, const char *dataset, const hcr_train_config *cfg,
                         const hcr_dataset *train, const hcr_dataset *test, int val_count, int total,
                         const hcr_history *h, const hcr_eval *ev)
{
    char buf[2048];
    snprintf(buf, sizeof buf,
             "{\"optimizer\":\"adam\",\"lr\":%g,\"beta1\":%g,\"beta2\":%g,\"epsilon\":%g,"
             "\"loss\":\"sparse_categorical_crossentropy\",\"batch_size\":%d,\"epochs\":%d,"
             "\"epochs_done\":%d,\"seed\":%llu,\"validation_images\":%d,\"training_images\":%d,"
             "\"threads\":%d,\"init\":\"glorot_uniform\",\"shift\":%d,\"flip\":%s,"
             "\"lr_schedule\":\"%s\"}",
             cfg->lr, cfg->beta1, cfg->beta2, cfg->epsilon, cfg->batch_size, cfg->epochs,
             h->epochs, (unsigned long long)cfg->seed, val_count, total - val_count, cfg->threads,
             cfg->shift, cfg->flip ? "true" : "false",
             cfg->lr_schedule == HCR_LR_COSINE ? "cosine" : "constant");
    hcr_model_set_meta(m, "recipe", buf);
    hcr_model_set_meta(m, "dataset", dataset);
    snprintf(buf, sizeof buf,
             "{\"train-images-idx3-ubyte\":\"%s\",\"train-labels-idx1-ubyte\":\"%s\","
             "\"t10k-images-idx3-ubyte\":\"%s\",\"t10k-labels-idx1-ubyte\":\"%s\"}",
             train->images_sha256, train->labels_sha256, test ? test->images_sha256 : "",
             test ? test->labels_sha256 : "");
    hcr_model_set_meta(m, "dataset_sha256", buf);
    /* The class names travel with the model: eval, report, predict and read
     * print them. */
    cJSON *names = cJSON_CreateArray();
    for (int i = 0; names && i < hcr_model_num_classes(m); i++)
        cJSON_AddItemToArray(names, cJSON_CreateString(hcr_dataset_class_name(train, i)));
    char *json = names ? cJSON_PrintUnformatted(names) : NULL;
    if (json) hcr_model_set_meta(m, "class_names", json);
    cJSON_free(json);
    cJSON_Delete(names);
    /* The per-epoch history, so a report can be drawn from the model alone. */
    size_t cap = 128 + (size_t)h->epochs * 160, len2 = 0;
    char *hist = malloc(cap);
    if (hist) {
        len2 += (size_t)snprintf(hist, cap, "[");
        for (int i = 0; i < h->epochs; i++)
            len2 += (size_t)snprintf(hist + len2, cap - len2,
                                     "%s{\"epoch\":%d,\"loss\":%.6f,\"accuracy\":%.6f,"
                                     "\"val_loss\":%.6f,\"val_accuracy\":%.6f,\"seconds\":%.3f}",
                                     i ? "," : "", i + 1, h->rows[i].loss, h->rows[i].accuracy,
                                     h->rows[i].val_loss, h->rows[i].val_accuracy, h->rows[i].seconds);
        snprintf(hist + len2, cap - len2, "]");
        hcr_model_set_meta(m, "history", hist);
        free(hist);
    }
    if (ev) {
        snprintf(buf, sizeof buf, "%.6f", ev->accuracy);
        hcr_model_set_meta(m, "test_accuracy", buf);
        snprintf(buf, sizeof buf, "%.6f", ev->loss);
        hcr_model_set_meta(m, "test_loss", buf);
    }
}

/* ------------------------------------------------------------- options */

/* The options of one run; `given` has a bit per option named on the
 * command line (a resumed run takes the others from its checkpoint). */
typedef struct train_opts {
    hcr_train_config cfg;
    const char *arch, *data, *dataset, *out, *history, *ckpt;
    double val_split;
    long limit;
    bool quiet, report, resume, checkpoints;
    unsigned given;
    char out_buf[4200], hist_buf[4200], ckpt_buf[4200];
} train_opts;

enum { G_ARCH = 1, G_EPOCHS = 2, G_BATCH = 4, G_LR = 8, G_SEED = 16, G_VAL = 32, G_LIMIT = 64,
       G_DATASET = 128, G_SHIFT = 256, G_FLIP = 512, G_SCHEDULE = 1024, G_THREADS = 2048 };

static const struct option long_opts[] = {
    {"arch", required_argument, 0, 'a'},       {"epochs", required_argument, 0, 'e'},
    {"batch-size", required_argument, 0, 'b'}, {"lr", required_argument, 0, 'l'},
    {"seed", required_argument, 0, 's'},       {"threads", required_argument, 0, 't'},
    {"val-split", required_argument, 0, 'v'},  {"limit", required_argument, 0, 'n'},
    {"data", required_argument, 0, 'd'},       {"out", required_argument, 0, 'o'},
    {"history", required_argument, 0, 'H'},    {"quiet", no_argument, 0, 'q'},
    {"no-report", no_argument, 0, 'R'},        {"shift", required_argument, 0, 'S'},
    {"flip", no_argument, 0, 'F'},             {"lr-schedule", required_argument, 0, 'L'},
    {"dataset", required_argument, 0, 'D'},    {"resume", optional_argument, 0, 'r'},
    {"no-checkpoint", no_argument, 0, 'C'},    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

/* One option; 0 to go on, or the exit status (2: bad value; -1: --help). */
static int take_option(train_opts *o, int c)
{
    long v;
    double d;
    hcr_train_config *cfg = &o->cfg;
    switch (c) {
    case 'a': o->arch = optarg; o->given |= G_ARCH; break;
    case 'e': if (!cli_int("train", "--epochs", optarg, 1, 100000, &v)) return 2; cfg->epochs = (int)v; o->given |= G_EPOCHS; break;
    case 'b': if (!cli_int("train", "--batch-size", optarg, 1, 65536, &v)) return 2; cfg->batch_size = (int)v; o->given |= G_BATCH; break;
    case 'l': if (!cli_float("train", "--lr", optarg, 1e-12, 10, &d)) return 2; cfg->lr = (float)d; o->given |= G_LR; break;
    case 's': if (!cli_int("train", "--seed", optarg, 0, 0x7fffffffffffffffL, &v)) return 2; cfg->seed = (uint64_t)v; o->given |= G_SEED; break;
    case 't': if (!cli_int("train", "--threads", optarg, 0, 1024, &v)) return 2; cfg->threads = (int)v; o->given |= G_THREADS; break;
    case 'v': if (!cli_float("train", "--val-split", optarg, 0, 1e9, &d)) return 2; o->val_split = d; o->given |= G_VAL; break;
    case 'n': if (!cli_int("train", "--limit", optarg, 1, 1000000000, &o->limit)) return 2; o->given |= G_LIMIT; break;
    case 'd': o->data = optarg; break;
    case 'D': o->dataset = optarg; o->given |= G_DATASET; break;
    case 'o': o->out = optarg; break;
    case 'H': o->history = optarg; break;
    case 'q': o->quiet = true; break;
    case 'R': o->report = false; break;
    case 'S': if (!cli_int("train", "--shift", optarg, 0, 8, &v)) return 2; cfg->shift = (int)v; o->given |= G_SHIFT; break;
    case 'F': cfg->flip = 1; o->given |= G_FLIP; break;
    case 'L':
        if (!strcmp(optarg, "constant")) cfg->lr_schedule = HCR_LR_CONSTANT;
        else if (!strcmp(optarg, "cosine")) cfg->lr_schedule = HCR_LR_COSINE;
        else return cli_usage_error("train", "--lr-schedule: '%s' is neither constant nor cosine", optarg);
        o->given |= G_SCHEDULE;
        break;
    case 'r': o->resume = true; o->ckpt = optarg; break;
    case 'C': o->checkpoints = false; break;
    case 'h': fputs(help, stdout); return -1;
    default: return 2;
    }
    return 0;
}

static int parse_options(train_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    hcr_train_config_default(&o->cfg);
    o->arch = HCR_DEFAULT_SPEC;
    o->dataset = "mnist";
    o->val_split = 0.1; /* Keras's validation_split=0.1: MNIST's last 6,000 */
    o->report = o->checkpoints = true;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", long_opts, NULL)) != -1) {
        int rc = c == '?' ? cli_bad_option("train", argc, argv, "qh", long_opts) : take_option(o, c);
        if (rc) return rc;
    }
    if (optind < argc) return cli_usage_error("train", "unexpected argument '%s'", argv[optind]);
    if (o->val_split >= 1 && o->val_split != (double)(long)o->val_split)
        return cli_usage_error("train", "--val-split: a count must be a whole number, a fraction below 1");
    if (o->resume && !o->checkpoints)
        return cli_usage_error("train", "--resume and --no-checkpoint do not go together");
    if (cli_check_dataset("train", (o->given & G_DATASET) ? o->dataset : NULL, o->data)) return 2;
    if (hcr_arch_preset(o->arch)) o->arch = hcr_arch_preset(o->arch);
    return 0;
}

/* The default file names: <dataset>_cnn.safetensors (for idx:DIR the
 * folder's own name), the history and checkpoint beside it. */
static void default_paths(train_opts *o)
{
    size_t cl = o->ckpt ? strlen(o->ckpt) : 0;
    if (!o->out && cl > 5 && !strcmp(o->ckpt + cl - 5, ".ckpt")) {
        /* --resume=X.ckpt: the model is X */
        snprintf(o->out_buf, sizeof o->out_buf, "%.*s", (int)(cl - 5), o->ckpt);
        o->out = o->out_buf;
    }
    if (!o->out) {
        const char *base = o->dataset;
        size_t blen = strlen(base);
        if (!strncmp(o->dataset, "idx:", 4)) {
            base = o->dataset + 4;
            blen = strlen(base);
            while (blen > 1 && base[blen - 1] == '/') blen--;
            for (size_t i = blen; i > 0; i--)
                if (base[i - 1] == '/') {
                    base += i;
                    blen -= i;
                    break;
                }
            if (blen == 0 || (blen == 1 && base[0] == '.')) base = "idx", blen = 3;
        }
        snprintf(o->out_buf, sizeof o->out_buf, "%.*s_cnn.safetensors", (int)blen, base);
        o->out = o->out_buf;
    }
    if (!o->history) {
        size_t n = strlen(o->out), e = strlen(".safetensors");
        if (n > e && !strcmp(o->out + n - e, ".safetensors"))
            snprintf(o->hist_buf, sizeof o->hist_buf, "%.*s.history.csv", (int)(n - e), o->out);
        else
            snprintf(o->hist_buf, sizeof o->hist_buf, "%s.history.csv", o->out);
        o->history = o->hist_buf;
    }
    if (!o->ckpt) {
        snprintf(o->ckpt_buf, sizeof o->ckpt_buf, "%s.ckpt", o->out);
        o->ckpt = o->ckpt_buf;
    }
}

/* Every output is checked before any work: a run of hours is not lost to
 * a missing folder at the end. */
static int check_outputs(const train_opts *o)
{
    if (hcr_output_check(o->out)) return cli_fail("--out");
    if (hcr_output_check(o->history)) return cli_fail("--history");
    if (o->checkpoints && hcr_output_check(o->ckpt)) return cli_fail("the checkpoint");
    if (o->report) {
        char dir[4200];
        cli_report_dir(o->out, dir, sizeof dir);
        if (hcr_output_check_dir(dir)) return cli_fail("the report folder");
    }
    return 0;
}

/* ------------------------------------------------------------- resuming */

/* What the command line adds to the library's checkpoint: the dataset and
 * how it was split, kept in the model's "train_options" metadata. */
static void store_options(hcr_model *m, const train_opts *o, const char *train_sha)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "dataset", o->dataset);
    cJSON_AddStringToObject(j, "arch", o->arch);
    if (o->data) { /* absolute, so that a resume from elsewhere finds it */
        char *abs = realpath(o->data, NULL);
        cJSON_AddStringToObject(j, "data", abs ? abs : o->data);
        free(abs);
    }
    cJSON_AddNumberToObject(j, "limit", (double)o->limit);
    cJSON_AddNumberToObject(j, "val_split", o->val_split);
    cJSON_AddStringToObject(j, "train_sha256", train_sha);
    char *text = cJSON_PrintUnformatted(j);
    if (text) hcr_model_set_meta(m, "train_options", text);
    cJSON_free(text);
    cJSON_Delete(j);
}

/* Refuse an option given now that differs from the run being resumed. */
static int same_as_saved(const train_opts *o, const hcr_train_config *c, const cJSON *saved)
{
    const char *ds = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(saved, "dataset"));
    const char *arch = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(saved, "arch"));
    const cJSON *limit = cJSON_GetObjectItemCaseSensitive(saved, "limit");
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(saved, "val_split");
    const hcr_train_config *a = &o->cfg;
    const char *diff = (o->given & G_DATASET) && (!ds || strcmp(ds, o->dataset)) ? "--dataset"
                       : (o->given & G_ARCH) && (!arch || strcmp(arch, o->arch)) ? "--arch"
                       : (o->given & G_LIMIT) && (!cJSON_IsNumber(limit) || limit->valuedouble != (double)o->limit) ? "--limit"
                       : (o->given & G_VAL) && (!cJSON_IsNumber(val) || val->valuedouble != o->val_split) ? "--val-split"
                       : (o->given & G_BATCH) && a->batch_size != c->batch_size ? "--batch-size"
                       : (o->given & G_LR) && a->lr != c->lr ? "--lr"
                       : (o->given & G_SEED) && a->seed != c->seed ? "--seed"
                       : (o->given & G_SHIFT) && a->shift != c->shift ? "--shift"
                       : (o->given & G_FLIP) && a->flip != c->flip ? "--flip"
                       : (o->given & G_SCHEDULE) && a->lr_schedule != c->lr_schedule ? "--lr-schedule"
                                                                                        : NULL;
    if (diff)
        return cli_usage_error("train", "%s differs from the run being resumed (%s holds its recipe; "
                                        "leave the option out)", diff, o->ckpt);
    return 0;
}

/* Load the checkpoint: its model, and its recipe into o (options given
 * now must agree, but --epochs may grow and --threads change). */
static int load_resume(train_opts *o, hcr_model **m, cJSON **saved)
{
    if (access(o->ckpt, F_OK) != 0) {
        fprintf(stderr, "hcr: no checkpoint %s to resume from (name it with --resume=FILE or --out "
                        "MODEL; without --resume a new run starts)\n", o->ckpt);
        return 1;
    }
    hcr_train_config c;
    if (hcr_checkpoint_load(o->ckpt, m, &c)) return cli_fail("--resume");
    *saved = cJSON_Parse(hcr_model_get_meta(*m, "train_options") ? hcr_model_get_meta(*m, "train_options") : "");
    const char *ds = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(*saved, "dataset"));
    const char *arch = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(*saved, "arch"));
    if (!ds || !arch) {
        fprintf(stderr, "hcr: %s was not written by hcr train (no train_options)\n", o->ckpt);
        return 1;
    }
    int rc = same_as_saved(o, &c, *saved);
    if (rc) return rc;
    if (o->given & G_EPOCHS) c.epochs = o->cfg.epochs;
    if (o->given & G_THREADS) c.threads = o->cfg.threads;
    o->cfg = c;
    o->cfg.checkpoint = o->ckpt;
    o->dataset = ds;
    o->arch = arch;
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(*saved, "limit");
    o->limit = cJSON_IsNumber(j) ? (long)j->valuedouble : 0;
    j = cJSON_GetObjectItemCaseSensitive(*saved, "val_split");
    o->val_split = cJSON_IsNumber(j) ? j->valuedouble : 0.1;
    j = cJSON_GetObjectItemCaseSensitive(*saved, "data");
    if (!o->data && cJSON_IsString(j) && strncmp(o->dataset, "idx:", 4) != 0) o->data = j->valuestring;
    return 0;
}

/* ----------------------------------------------------------------- data */

typedef struct run_data {
    hcr_dataset *test, *train, *val;
    int total, val_count, classes;
    char train_sha[65];
} run_data;

static void free_data(run_data *d)
{
    hcr_dataset_free(d->test);
    hcr_dataset_free(d->train);
    hcr_dataset_free(d->val);
}

/* The classes of the training and test sets: the larger count, the same
 * names. */
static int class_count(const hcr_dataset *full, const hcr_dataset *test)
{
    if (full->rows != test->rows || full->cols != test->cols) {
        fprintf(stderr, "hcr: the training images are %dx%d but the test images %dx%d\n", full->rows,
                full->cols, test->rows, test->cols);
        return -1;
    }
    int classes = full->num_classes > test->num_classes ? full->num_classes : test->num_classes;
    if (classes < 2) {
        fprintf(stderr, "hcr: the training labels hold a single class: nothing to learn\n");
        return -1;
    }
    if (full->class_names && test->class_names)
        for (int i = 0; i < classes; i++)
            if (strcmp(hcr_dataset_class_name(full, i), hcr_dataset_class_name(test, i))) {
                fprintf(stderr, "hcr: class %d is '%s' in the training set but '%s' in the test set\n", i,
                        cli_text(hcr_dataset_class_name(full, i)), cli_text(hcr_dataset_class_name(test, i)));
                return -1;
            }
    return classes;
}

/* Load the data and split off the validation images (the end of the
 * possibly limited training set). */
static int load_data(const train_opts *o, run_data *d)
{
    hcr_dataset *full = NULL;
    int rc = cli_load_dataset(o->dataset, o->data, "train", &full);
    if (rc || (rc = cli_load_dataset(o->dataset, o->data, "test", &d->test))) {
        hcr_dataset_free(full);
        return rc;
    }
    rc = 1;
    snprintf(d->train_sha, sizeof d->train_sha, "%s", full->images_sha256);
    d->classes = class_count(full, d->test);
    if (d->classes < 0) goto done;
    if (full->num_classes < d->classes && !full->class_names) full->num_classes = d->classes;
    d->total = o->limit > 0 && o->limit < full->count ? (int)o->limit : full->count;
    d->val_count = o->val_split >= 1 ? (int)o->val_split : (int)(o->val_split * d->total + 0.5);
    if (d->val_count >= d->total) {
        fprintf(stderr, "hcr: --val-split %g leaves no training images out of %d\n", o->val_split, d->total);
        goto done;
    }
    if (hcr_dataset_slice(full, 0, d->total - d->val_count, &d->train) ||
        (d->val_count > 0 && hcr_dataset_slice(full, d->total - d->val_count, d->val_count, &d->val))) {
        cli_fail("splitting the data");
        goto done;
    }
    rc = 0;
done:
    hcr_dataset_free(full); /* the slices are copies that keep its checksums */
    return rc;
}

/* --------------------------------------------------------------- saving */

/* Evaluate (unless interrupted), then save the model, the history and the
 * report; the checkpoint goes once the model is safe. */
static int finish(const train_opts *o, hcr_model *m, const run_data *d, const hcr_history *hist,
                  hcr_status s, double seconds)
{
    hcr_eval ev = {0};
    int rc = 1;
    if (s == HCR_EINTERRUPTED) {
        printf("\nInterrupted after %d complete epoch%s; saving the model as it is.\n", hist->epochs,
               hist->epochs == 1 ? "" : "s");
    } else {
        if (hcr_evaluate(m, d->test, o->cfg.threads, &ev)) return cli_fail("evaluating on the test set");
        printf("Test loss: %.4f - test accuracy: %.4f (%d images)\n", ev.loss, ev.accuracy, ev.count);
    }
    set_metadata(m, o->dataset, &o->cfg, d->train, d->test, d->val_count, d->total, hist, s ? NULL : &ev);
    char secs[32];
    snprintf(secs, sizeof secs, "%.3f", seconds);
    hcr_model_set_meta(m, "train_seconds", secs);
    if (hcr_model_save(m, o->out)) {
        cli_fail("saving the model");
        goto done;
    }
    printf("Model saved to %s\n", o->out);
    if (hcr_history_save(hist, d->val != NULL, o->history)) {
        cli_fail("saving the history");
        goto done;
    }
    printf("History saved to %s\n", o->history);
    printf("Training took %.1fs (%.2fs per epoch)\n", seconds, hist->epochs ? seconds / hist->epochs : seconds);
    if (s == HCR_EINTERRUPTED && o->checkpoints)
        printf("Checkpoint saved to %s: hcr train --resume=%s continues the run\n", o->ckpt, o->ckpt);
    else if (o->checkpoints)
        remove(o->ckpt);
    if (o->report) {
        char report_dir[4200];
        cli_report_dir(o->out, report_dir, sizeof report_dir);
        if (hcr_report_write(m, d->test, report_dir)) {
            cli_fail("writing the report (the model is saved)");
            goto done;
        }
        printf("Report written to %s/report.html\n", report_dir);
    }
    rc = s == HCR_EINTERRUPTED ? 130 : 0;
done:
    hcr_eval_free(&ev);
    return rc;
}

/* ------------------------------------------------------------------ run */

static int check_same_data(const train_opts *o, const cJSON *saved, const run_data *d)
{
    const char *sha = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(saved, "train_sha256"));
    if (sha && strcmp(sha, d->train_sha) != 0) {
        fprintf(stderr, "hcr: the training images of %s are not those of the run in %s (checksums "
                        "differ)\n", o->dataset, o->ckpt);
        return 1;
    }
    return 0;
}

static int run(train_opts *o, hcr_model *m, const cJSON *saved)
{
    run_data d = {0};
    hcr_history hist = {0};
    int rc = load_data(o, &d);
    if (rc) goto done;
    rc = 1;
    if (saved && check_same_data(o, saved, &d)) goto done;
    if (!m && hcr_model_create(o->arch, d.train->rows, d.train->cols, d.classes, o->cfg.seed, &m)) {
        cli_fail("--arch");
        goto done;
    }
    store_options(m, o, d.train_sha);
    if (!o->quiet) {
        hcr_model_summary(m, stdout);
        printf("Training on %d images, validating on %d, %d epochs of batch %d%s\n", d.train->count,
               d.val_count, o->cfg.epochs, o->cfg.batch_size, o->cfg.resume ? " (resumed)" : "");
        fflush(stdout);
    }
    progress_state st = {.tty = isatty(STDOUT_FILENO) != 0, .quiet = o->quiet};
    hcr_set_threads(o->cfg.threads); /* the report's predictions too */
    cli_catch_interrupt();
    double t0 = wall();
    hcr_status s = hcr_train(m, d.train, d.val, &o->cfg, on_progress, &st, &hist);
    if (s && s != HCR_EINTERRUPTED) {
        cli_fail("training");
        goto done;
    }
    rc = finish(o, m, &d, &hist, s, wall() - t0);
done:
    hcr_history_free(&hist);
    free_data(&d);
    hcr_model_free(m);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    train_opts o;
    int rc = parse_options(&o, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    default_paths(&o);
    if (o.checkpoints) o.cfg.checkpoint = o.ckpt;
    hcr_model *m = NULL;
    cJSON *saved = NULL;
    if (o.resume && (rc = load_resume(&o, &m, &saved))) goto done;
    /* A bad spec is reported before any data is loaded (the known datasets
     * are all 28x28; a folder's size is known once it is read). */
    if (!m && hcr_dataset_find(o.dataset) && hcr_spec_check(o.arch, 28, 28, 10, NULL)) {
        rc = cli_fail("--arch");
        goto done;
    }
    if ((rc = check_outputs(&o))) goto done;
    rc = run(&o, m, saved);
    m = NULL; /* run frees it */
done:
    hcr_model_free(m);
    cJSON_Delete(saved);
    return rc;
}
