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
    "  -q, --quiet        no summary table and no progress\n"
    "  -h, --help         this help\n"
    "\n"
    "Ctrl-C stops after the current step and still saves the model and history.\n";

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

static int write_history(const char *path, const hcr_history *h, bool with_val)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        fprintf(stderr, "hcr: history path too long: %s\n", path);
        return 1;
    }
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "hcr: cannot write history %s: ", path);
        perror(NULL);
        return 1;
    }
    fprintf(f, "epoch,loss,accuracy%s,seconds\n", with_val ? ",val_loss,val_accuracy" : "");
    for (int i = 0; i < h->epochs; i++) {
        const hcr_epoch_record *r = &h->rows[i];
        fprintf(f, "%d,%.6f,%.6f", i + 1, r->loss, r->accuracy);
        if (with_val) fprintf(f, ",%.6f,%.6f", r->val_loss, r->val_accuracy);
        fprintf(f, ",%.3f\n", r->seconds);
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "hcr: cannot write history %s: ", path);
        perror(NULL);
        remove(tmp);
        return 1;
    }
    return 0;
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

int cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {
        {"arch", required_argument, 0, 'a'},       {"epochs", required_argument, 0, 'e'},
        {"batch-size", required_argument, 0, 'b'}, {"lr", required_argument, 0, 'l'},
        {"seed", required_argument, 0, 's'},       {"threads", required_argument, 0, 't'},
        {"val-split", required_argument, 0, 'v'},  {"limit", required_argument, 0, 'n'},
        {"data", required_argument, 0, 'd'},       {"out", required_argument, 0, 'o'},
        {"history", required_argument, 0, 'H'},    {"quiet", no_argument, 0, 'q'},
        {"no-report", no_argument, 0, 'R'},        {"shift", required_argument, 0, 'S'},
        {"flip", no_argument, 0, 'F'},             {"lr-schedule", required_argument, 0, 'L'},        {"dataset", required_argument, 0, 'D'},
        {"help", no_argument, 0, 'h'},             {0, 0, 0, 0},
    };
    hcr_train_config cfg;
    hcr_train_config_default(&cfg);
    const char *arch = HCR_DEFAULT_SPEC, *data = NULL, *out = NULL, *dataset = "mnist";
    const char *history_path = NULL;
    double val_split = 0.1; /* Keras's validation_split=0.1: MNIST's last 6,000 */
    long limit = 0;
    bool quiet = false, report = true;
    long v;
    double d;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case 'a': arch = optarg; break;
        case 'e': if (!cli_int("train", "--epochs", optarg, 1, 100000, &v)) return 2; cfg.epochs = (int)v; break;
        case 'b': if (!cli_int("train", "--batch-size", optarg, 1, 65536, &v)) return 2; cfg.batch_size = (int)v; break;
        case 'l': if (!cli_float("train", "--lr", optarg, 1e-12, 10, &d)) return 2; cfg.lr = (float)d; break;
        case 's': if (!cli_int("train", "--seed", optarg, 0, 0x7fffffffffffffffL, &v)) return 2; cfg.seed = (uint64_t)v; break;
        case 't': if (!cli_int("train", "--threads", optarg, 0, 1024, &v)) return 2; cfg.threads = (int)v; break;
        case 'v': if (!cli_float("train", "--val-split", optarg, 0, 1e9, &d)) return 2; val_split = d; break;
        case 'n': if (!cli_int("train", "--limit", optarg, 1, 1000000000, &limit)) return 2; break;
        case 'd': data = optarg; break;
        case 'D': dataset = optarg; break;
        case 'o': out = optarg; break;
        case 'H': history_path = optarg; break;
        case 'q': quiet = true; break;
        case 'R': report = false; break;
        case 'S': if (!cli_int("train", "--shift", optarg, 0, 8, &v)) return 2; cfg.shift = (int)v; break;
        case 'F': cfg.flip = 1; break;
        case 'L':
            if (!strcmp(optarg, "constant")) cfg.lr_schedule = HCR_LR_CONSTANT;
            else if (!strcmp(optarg, "cosine")) cfg.lr_schedule = HCR_LR_COSINE;
            else return cli_usage_error("train", "--lr-schedule: '%s' is neither constant nor cosine", optarg);
            break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_usage_error("train", "unknown or incomplete option");
        }
    }
    if (optind < argc) return cli_usage_error("train", "unexpected argument '%s'", argv[optind]);
    if (val_split >= 1 && val_split != (double)(long)val_split)
        return cli_usage_error("train", "--val-split: a count must be a whole number, a fraction below 1");

    if (hcr_arch_preset(arch)) arch = hcr_arch_preset(arch);
    char out_buf[4200];
    if (!out) {
        /* <dataset>_cnn.safetensors; for idx:DIR the folder's own name */
        const char *base = dataset;
        size_t blen = strlen(base);
        if (!strncmp(dataset, "idx:", 4)) {
            base = dataset + 4;
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
        snprintf(out_buf, sizeof out_buf, "%.*s_cnn.safetensors", (int)blen, base);
        out = out_buf;
    }
    char hist_buf[4200];
    if (!history_path) {
        size_t n = strlen(out);
        const char *ext = ".safetensors";
        size_t e = strlen(ext);
        if (n > e && !strcmp(out + n - e, ext))
            snprintf(hist_buf, sizeof hist_buf, "%.*s.history.csv", (int)(n - e), out);
        else
            snprintf(hist_buf, sizeof hist_buf, "%s.history.csv", out);
        history_path = hist_buf;
    }

    /* A bad spec is reported before any data is loaded (the known datasets
     * are all 28x28; a folder's size is known once it is read). */
    if (hcr_dataset_find(dataset) && hcr_spec_check(arch, 28, 28, 10, NULL)) return cli_fail("--arch");

    hcr_model *m = NULL;
    hcr_dataset *full = NULL, *test = NULL, *train = NULL, *val = NULL;
    int rc = 1;
    hcr_history hist = {0};
    hcr_eval ev = {0};
    if (cli_load_dataset(dataset, data, "train", &full) || cli_load_dataset(dataset, data, "test", &test))
        goto done;
    if (full->rows != test->rows || full->cols != test->cols) {
        fprintf(stderr, "hcr: the training images are %dx%d but the test images %dx%d\n", full->rows,
                full->cols, test->rows, test->cols);
        goto done;
    }
    /* The output layer follows the class count. */
    int classes = full->num_classes > test->num_classes ? full->num_classes : test->num_classes;
    if (classes < 2) {
        fprintf(stderr, "hcr: the training labels hold a single class: nothing to learn\n");
        goto done;
    }
    if (full->class_names && test->class_names)
        for (int i = 0; i < classes; i++)
            if (strcmp(hcr_dataset_class_name(full, i), hcr_dataset_class_name(test, i))) {
                fprintf(stderr, "hcr: class %d is '%s' in the training set but '%s' in the test set\n",
                        i, hcr_dataset_class_name(full, i), hcr_dataset_class_name(test, i));
                goto done;
            }
    if (full->num_classes < classes && !full->class_names) full->num_classes = classes;
    if (hcr_model_create(arch, full->rows, full->cols, classes, cfg.seed, &m)) {
        cli_fail("--arch");
        goto done;
    }

    /* The validation split is the end of the (limited) training set. */
    int total = limit > 0 && limit < full->count ? (int)limit : full->count;
    int val_count = val_split >= 1 ? (int)val_split : (int)(val_split * total + 0.5);
    if (val_count >= total) {
        fprintf(stderr, "hcr: --val-split %g leaves no training images out of %d\n", val_split, total);
        goto done;
    }
    if (hcr_dataset_slice(full, 0, total - val_count, &train) ||
        (val_count > 0 && hcr_dataset_slice(full, total - val_count, val_count, &val))) {
        cli_fail("splitting the data");
        goto done;
    }
    hcr_dataset_free(full); /* the slices are copies that keep its checksums */
    full = NULL;

    progress_state st = {.tty = isatty(STDOUT_FILENO) != 0, .quiet = quiet};
    if (!quiet) {
        hcr_model_summary(m, stdout);
        printf("Training on %d images, validating on %d, %d epochs of batch %d\n", train->count,
               val_count, cfg.epochs, cfg.batch_size);
        fflush(stdout);
    }
    cli_catch_interrupt();
    double t0 = wall();
    hcr_status s = hcr_train(m, train, val, &cfg, on_progress, &st, &hist);
    double seconds = wall() - t0;
    if (s && s != HCR_EINTERRUPTED) {
        cli_fail("training");
        goto done;
    }
    if (s == HCR_EINTERRUPTED) {
        printf("\nInterrupted after %d complete epoch%s; saving the model as it is.\n", hist.epochs,
               hist.epochs == 1 ? "" : "s");
    } else {
        if (hcr_evaluate(m, test, cfg.threads, &ev)) {
            cli_fail("evaluating on the test set");
            goto done;
        }
        printf("Test loss: %.4f - test accuracy: %.4f (%d images)\n", ev.loss, ev.accuracy,
               ev.count);
    }
    set_metadata(m, dataset, &cfg, train, test, val_count, total, &hist, s ? NULL : &ev);
    char secs[32];
    snprintf(secs, sizeof secs, "%.3f", seconds);
    hcr_model_set_meta(m, "train_seconds", secs);
    if (hcr_model_save(m, out)) {
        cli_fail("saving the model");
        goto done;
    }
    printf("Model saved to %s\n", out);
    if (write_history(history_path, &hist, val != NULL)) goto done;
    printf("History saved to %s\n", history_path);
    printf("Training took %.1fs (%.2fs per epoch)\n", seconds,
           hist.epochs ? seconds / hist.epochs : seconds);
    if (report) {
        char report_dir[4200];
        cli_report_dir(out, report_dir, sizeof report_dir);
        if (hcr_report_write(m, test, report_dir)) {
            cli_fail("writing the report (the model is saved)");
            goto done;
        }
        printf("Report written to %s/report.html\n", report_dir);
    }
    rc = s == HCR_EINTERRUPTED ? 130 : 0;
done:
    hcr_eval_free(&ev);
    hcr_history_free(&hist);
    hcr_dataset_free(full);
    hcr_dataset_free(test);
    hcr_dataset_free(train);
    hcr_dataset_free(val);
    hcr_model_free(m);
    return rc;
}
