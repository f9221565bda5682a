/*
 * bench_hcr.c - throughput benchmark of libhcr on MNIST; prints one JSON
 * object on stdout (progress and errors go to stderr).
 *
 * What it measures, with the reference model (HCR_DEFAULT_SPEC), batch 128
 * and Adam defaults, so that bench/torch_ref.py can do the same in PyTorch:
 *   - training: images/s and seconds per epoch over the first 54,000
 *     training images (6,400 with --quick), median over --epochs epochs;
 *   - test accuracy after training (a sanity check, not a benchmark);
 *   - inference at batch 1 on 1 thread: hcr_model_predict on 2,000 test
 *     images one at a time (500 with --quick), median of --repeat runs;
 *   - inference at batch 1000 on --threads threads: one hcr_model_predict
 *     call on 1,000 test images, median of --repeat runs;
 *   - one training step of 128 images taken apart (median of 20 steps, 5
 *     with --quick): forward, loss, backward and Adam milliseconds as the
 *     model runs them ("step_ms"), and each layer's forward and backward
 *     milliseconds run on its own, with GFLOP/s for convolution and dense
 *     layers ("layers");
 *   - peak resident memory of the whole process (getrusage ru_maxrss), which
 *     includes the training set (60,000 x 784 bytes) and its 54,000 slice.
 *
 * FLOPs are 2 x MACs. Convolution forward MACs = B*OH*OW*F*K*K*C, dense
 * forward MACs = B*I*O; backward is twice the forward (input gradient plus
 * weight gradient) except for the first layer, which needs no input
 * gradient (once the forward).
 *
 * The machine may be shared and noisy: every figure is a median, and
 * nothing here asserts a time.
 *
 * Usage: bench_hcr [--data DIR] [--threads N] [--epochs N] [--repeat N] [--quick]
 *                  [--save MODEL]   (MODEL: the trained model, for bench/run's
 *                                    start-up timing of hcr predict)
 */
#include "hcr.h"
#include "hcr_data.h"
#include "kernels/kernels.h"
#include "nn/layers.h"
#include "nn/layer_kinds.h"
#include "nn/model.h"
#include "nn/optimizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS's build description, when the library linked is OpenBLAS. */
extern char *openblas_get_config(void) __attribute__((weak));

#define BATCH 128
#define TRAIN_IMAGES 54000
#define QUICK_TRAIN_IMAGES 6400
#define BATCH1_IMAGES 2000
#define QUICK_BATCH1_IMAGES 500
#define BIG_BATCH 1000
#define LAYER_REPS 20
#define QUICK_LAYER_REPS 5
#define MAX_REPS 1000

typedef struct options {
    const char *data;
    int threads, epochs, repeat, quick;
    const char *save; /* --save: where to write the trained model, or NULL */
} options;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts a copy). */
static double median(const double *v, int n)
{
    if (n <= 0) return 0;
    double *c = malloc(sizeof *c * (size_t)n);
    if (!c) return v[0];
    memcpy(c, v, sizeof *c * (size_t)n);
    qsort(c, (size_t)n, sizeof *c, cmp_double);
    double r = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
    free(c);
    return r;
}

static void print_array(const char *key, const double *v, int n, const char *fmt, int last)
{
    printf("  \"%s\": [", key);
    for (int i = 0; i < n; i++) {
        printf(i ? ", " : "");
        printf(fmt, v[i]);
    }
    printf("]%s\n", last ? "" : ",");
}

/* A string as a JSON literal (the few characters that need escaping). */
static void print_json_string(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static int parse_positive(const char *flag, const char *s, int *out)
{
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || *end || v < 1 || v > 100000) {
        fprintf(stderr, "bench_hcr: %s needs a positive integer (got '%s')\n", flag, s ? s : "");
        return 0;
    }
    *out = (int)v;
    return 1;
}

static int parse_args(int argc, char **argv, options *o)
{
    o->data = "../shared/data/mnist";
    o->threads = 2;
    o->epochs = 1;
    o->repeat = 5;
    o->quick = 0;
    o->save = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--data") == 0 && v) {
            o->data = v;
            i++;
        } else if (strcmp(a, "--threads") == 0) {
            if (!parse_positive(a, v, &o->threads)) return 0;
            i++;
        } else if (strcmp(a, "--epochs") == 0) {
            if (!parse_positive(a, v, &o->epochs)) return 0;
            i++;
        } else if (strcmp(a, "--repeat") == 0) {
            if (!parse_positive(a, v, &o->repeat) || o->repeat > MAX_REPS) return 0;
            i++;
        } else if (strcmp(a, "--quick") == 0) {
            o->quick = 1;
        } else if (strcmp(a, "--save") == 0 && v) {
            o->save = v;
            i++;
        } else {
            fprintf(stderr,
                    "usage: bench_hcr [--data DIR] [--threads N] [--epochs N] [--repeat N] "
                    "[--quick] [--save MODEL]\n");
            return 0;
        }
    }
    return 1;
}

/* The machine's measured FP32 peak: 12 independent chains of fused
 * multiply-adds, in the widest vectors the CPU runs (AVX2 here, plain
 * scalar elsewhere), on one thread and on `threads` threads. */
#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx2,fma"))) static double fma_gflops_avx2(long n)
{
    __m256 a[12];
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i * 1e-3f);
    const __m256 x = _mm256_set1_ps(0.9999f), y = _mm256_set1_ps(1e-4f);
    double t0 = now();
    for (long k = 0; k < n; k++) {
        a[0] = _mm256_fmadd_ps(a[0], x, y); a[1] = _mm256_fmadd_ps(a[1], x, y);
        a[2] = _mm256_fmadd_ps(a[2], x, y); a[3] = _mm256_fmadd_ps(a[3], x, y);
        a[4] = _mm256_fmadd_ps(a[4], x, y); a[5] = _mm256_fmadd_ps(a[5], x, y);
        a[6] = _mm256_fmadd_ps(a[6], x, y); a[7] = _mm256_fmadd_ps(a[7], x, y);
        a[8] = _mm256_fmadd_ps(a[8], x, y); a[9] = _mm256_fmadd_ps(a[9], x, y);
        a[10] = _mm256_fmadd_ps(a[10], x, y); a[11] = _mm256_fmadd_ps(a[11], x, y);
    }
    double t = now() - t0;
    __m256 sum = a[0];
    for (int i = 1; i < 12; i++) sum = _mm256_add_ps(sum, a[i]);
    volatile float sink = _mm256_cvtss_f32(sum);
    (void)sink;
    return (double)n * 12 * 16 / t * 1e-9;
}
#endif

static double fma_gflops(long n)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return fma_gflops_avx2(n);
#endif
    float a[12];
    for (int i = 0; i < 12; i++) a[i] = (float)i * 1e-3f;
    double t0 = now();
    for (long k = 0; k < n; k++)
        for (int i = 0; i < 12; i++) a[i] = a[i] * 0.9999f + 1e-4f;
    double t = now() - t0;
    volatile float sink = a[0] + a[11];
    (void)sink;
    return (double)n * 12 * 2 / t * 1e-9;
}

/* Best of 5 short runs, on one thread and on all `threads` at once. */
static void measure_peak(int threads, double *one, double *all)
{
    *one = *all = 0;
    for (int r = 0; r < 5; r++) {
        double g = fma_gflops(20000000);
        if (g > *one) *one = g;
        double total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
        total += fma_gflops(20000000);
        if (total > *all) *all = total;
    }
}

static double peak_all_gflops; /* set in main, used for the layers' share of peak */

static int fail(const char *what, hcr_status s)
{
    fprintf(stderr, "bench_hcr: %s: %s (%s)\n", what, hcr_last_error(), hcr_status_name(s));
    return 1;
}

/* ------------------------------------------------------------ per layer */

/* Per-layer timing runs each layer on its own through model.c's
 * model_layer_forward and model_layer_backward: the same kernels (Winograd
 * where the passes use it), the same split of the batch across threads and
 * the same per-thread gradient sums as the real step. model.c fuses runs of
 * per-image layers into one parallel region, so the per-layer sum can
 * differ a little from the real step, which "step_ms" measures with
 * model_forward, model_backward and adam_step themselves. */

/* Forward and backward FLOPs of layer i for a batch of B (0 for layers
 * without multiply-adds). */
static void layer_flops(const layer *l, int i, int B, double *fwd, double *bwd)
{
    const layer_ops *o = layer_ops_of(l);
    const double macs = o->macs ? B * o->macs(l) : 0;
    *fwd = 2 * macs;
    *bwd = 2 * macs * (i == 0 ? 1 : 2);
}

/* Time `reps` training steps of BATCH images (the first of ds), first as
 * the model runs them (model_forward, model_loss, model_backward,
 * adam_step), then layer by layer, and print the "layers" and "step_ms"
 * members. Both start with two untimed warm-up steps. */
static int bench_layers(hcr_model *m, const hcr_dataset *ds, int threads, int reps)
{
    const int B = BATCH, warmup = 2, total = reps + warmup;
    const int L = m->nlayers;
    hcr_set_threads(threads);
    hcr_status s = model_reserve(m, B);
    if (s) return fail("model_reserve", s);
    adam opt;
    if ((s = adam_init(&opt, m->nparams, 0.001f, 0.9f, 0.999f, 1e-7f))) return fail("adam", s);

    hcr_rng rng;
    double *fwd = calloc((size_t)L * total, sizeof(double));
    double *bwd = calloc((size_t)L * total, sizeof(double));
    double *split = calloc((size_t)5 * total, sizeof(double)); /* fwd, loss, bwd, adam, all */
    int rc = 1;
    if (!fwd || !bwd || !split) {
        fprintf(stderr, "bench_hcr: out of memory\n");
        goto done;
    }
    hcr_rng_seed(&rng, 7);
    model_load_input(m, ds->pixels, NULL, B);

    /* The step as the model runs it. */
    for (int r = 0; r < total; r++) {
        double t0 = now();
        model_forward(m, B, 1, &rng);
        double t1 = now();
        (void)model_loss(m, B, ds->labels, NULL);
        double t2 = now();
        if ((s = model_backward(m, B, ds->labels))) {
            fail("model_backward", s);
            goto done;
        }
        double t3 = now();
        adam_step(&opt, m->params, m->grads);
        double t4 = now();
        double *row = split + (size_t)5 * r;
        row[0] = (t1 - t0) * 1e3;
        row[1] = (t2 - t1) * 1e3;
        row[2] = (t3 - t2) * 1e3;
        row[3] = (t4 - t3) * 1e3;
        row[4] = (t4 - t0) * 1e3;
    }

    /* Layer by layer. */
    layer *last = &m->layers[L - 1];
    for (int r = 0; r < total; r++) {
        for (int i = 0; i < L; i++) {
            double t0 = now();
            model_layer_forward(m, i, B, &rng);
            fwd[(size_t)i * total + r] = (now() - t0) * 1e3;
        }
        softmax_forward(m->probs, last->out, B, m->num_classes);
        softmax_cross_entropy_backward(last->dout, m->probs, ds->labels, B, m->num_classes, B);
        for (int i = L - 1; i >= 0; i--) {
            double t0 = now();
            if ((s = model_layer_backward(m, i, B))) {
                fail("model_layer_backward", s);
                goto done;
            }
            bwd[(size_t)i * total + r] = (now() - t0) * 1e3;
        }
    }

    printf("  \"kernels\": \"%s\",\n", kernels_select()->name);
    printf("  \"layers\": [\n");
    int printed = 0;
    for (int i = 0; i < L; i++) {
        const layer *l = &m->layers[i];
        if (layer_ops_of(l)->flags & LK_ALIAS) continue; /* a view of its input: no work */
        double f = median(fwd + (size_t)i * total + warmup, reps);
        double b = median(bwd + (size_t)i * total + warmup, reps);
        double ff, bf;
        layer_flops(l, i, B, &ff, &bf);
        printf("%s    {\"name\": \"%s\", \"forward_ms\": %.4f, \"backward_ms\": %.4f",
               printed ? ",\n" : "", l->name, f, b);
        const char *fa = NULL, *ba = NULL; /* how the passes compute it */
        if (model_layer_fused(m, i)) {
            fa = "direct, fused with the pooling after it";
            ba = "kernel gradient fused with the pooling's backward";
        } else if (i > 0 && model_layer_fused(m, i - 1)) {
            fa = ba = "in the convolution before it";
        } else if (l->plan.kern) { /* a convolution */
            fa = l->plan.forward != CONV_WINOGRAD ? "direct"
                 : l->out_c % 32 == 0             ? "winograd F(4x4,3x3)"
                                                  : "winograd F(2x2,3x3)";
            ba = l->plan.backward == CONV_WINOGRAD ? "winograd F(2x2,3x3)" : "direct";
        }
        if (fa) printf(", \"forward_algorithm\": \"%s\", \"backward_algorithm\": \"%s\"", fa, ba);
        if (ff > 0) {
            double fg = f > 0 ? ff / (f * 1e6) : 0, bg = b > 0 ? bf / (b * 1e6) : 0;
            printf(", \"forward_gflop\": %.4f, \"backward_gflop\": %.4f, \"forward_gflops\": %.2f, "
                   "\"backward_gflops\": %.2f, \"forward_pct_peak\": %.1f, \"backward_pct_peak\": %.1f",
                   ff * 1e-9, bf * 1e-9, fg, bg, 100 * fg / peak_all_gflops, 100 * bg / peak_all_gflops);
        }
        printf("}");
        printed = 1;
    }
    printf("\n  ],\n");
    double col[5][MAX_REPS + 2];
    for (int r = 0; r < reps; r++)
        for (int c = 0; c < 5; c++) col[c][r] = split[(size_t)5 * (r + warmup) + c];
    printf("  \"step_ms\": {\"batch\": %d, \"threads\": %d, \"reps\": %d, \"forward\": %.4f, "
           "\"loss\": %.4f, \"backward\": %.4f, \"optimizer\": %.4f, \"total\": %.4f},\n",
           B, threads, reps, median(col[0], reps), median(col[1], reps), median(col[2], reps),
           median(col[3], reps), median(col[4], reps));
    rc = 0;
done:
    free(fwd);
    free(bwd);
    free(split);
    adam_free(&opt);
    return rc;
}

/* ------------------------------------------------------------- inference */

/* Images per second of hcr_model_predict on `count` images, `per_call` at
 * a time; median over `repeat` runs after one warm-up call. */
static int bench_predict(hcr_model *m, const hcr_dataset *ds, int count, int per_call,
                         int threads, int repeat, double *ips)
{
    const size_t sz = (size_t)ds->rows * ds->cols;
    const int k = hcr_model_num_classes(m);
    float *probs = malloc(sizeof(float) * (size_t)per_call * k);
    double *runs = malloc(sizeof(double) * (size_t)repeat);
    if (!probs || !runs) {
        free(probs);
        free(runs);
        fprintf(stderr, "bench_hcr: out of memory\n");
        return 1;
    }
    hcr_set_threads(threads);
    hcr_status s = hcr_model_predict(m, ds->pixels, per_call, probs);
    for (int r = 0; r < repeat && !s; r++) {
        double t0 = now();
        for (int i = 0; i + per_call <= count && !s; i += per_call)
            s = hcr_model_predict(m, ds->pixels + (size_t)i * sz, per_call, probs);
        runs[r] = count / (now() - t0);
    }
    if (!s) *ips = median(runs, repeat);
    free(probs);
    free(runs);
    return s ? fail("hcr_model_predict", s) : 0;
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    options o;
    if (!parse_args(argc, argv, &o)) return 2;
    const int train_count = o.quick ? QUICK_TRAIN_IMAGES : TRAIN_IMAGES;
    const int batch1_count = o.quick ? QUICK_BATCH1_IMAGES : BATCH1_IMAGES;
    const int layer_reps = o.quick ? QUICK_LAYER_REPS : LAYER_REPS;

    hcr_dataset *all = NULL, *train = NULL, *test = NULL;
    hcr_model *m = NULL;
    double *epoch_s = NULL, *epoch_ips = NULL;
    hcr_status s;
    int rc = 1;
    fprintf(stderr, "bench_hcr: loading %s\n", o.data);
    if ((s = hcr_dataset_load_dir(o.data, "train", &all))) return fail("training set", s);
    if ((s = hcr_dataset_load_dir(o.data, "t10k", &test))) {
        rc = fail("test set", s);
        goto out;
    }
    if (all->count < train_count || test->count < BIG_BATCH || test->count < batch1_count) {
        fprintf(stderr, "bench_hcr: %s holds too few images (%d training, %d test)\n", o.data,
                all->count, test->count);
        goto out;
    }
    if ((s = hcr_dataset_slice(all, 0, train_count, &train))) {
        rc = fail("slice", s);
        goto out;
    }
    if ((s = hcr_model_create(HCR_DEFAULT_SPEC, train->rows, train->cols, 10, 42, &m))) {
        rc = fail("model", s);
        goto out;
    }

    /* Training: hcr_train itself, without validation, so that each history
     * row is the wall time of one epoch of forward, backward and Adam. */
    hcr_train_config cfg;
    hcr_train_config_default(&cfg);
    cfg.epochs = o.epochs;
    cfg.threads = o.threads;
    hcr_history hist;
    fprintf(stderr, "bench_hcr: training %d epoch(s) on %d images, %d thread(s)\n", o.epochs,
            train_count, o.threads);
    if ((s = hcr_train(m, train, NULL, &cfg, NULL, NULL, &hist))) {
        rc = fail("training", s);
        goto out;
    }
    epoch_s = malloc(sizeof(double) * (size_t)hist.epochs);
    epoch_ips = malloc(sizeof(double) * (size_t)hist.epochs);
    if (!epoch_s || !epoch_ips) {
        hcr_history_free(&hist);
        fprintf(stderr, "bench_hcr: out of memory\n");
        goto out;
    }
    for (int e = 0; e < hist.epochs; e++) {
        epoch_s[e] = hist.rows[e].seconds;
        epoch_ips[e] = train_count / hist.rows[e].seconds;
    }
    const int epochs_done = hist.epochs;
    const double train_loss = hist.rows[hist.epochs - 1].loss;
    const double train_acc = hist.rows[hist.epochs - 1].accuracy;
    hcr_history_free(&hist);

    hcr_eval ev;
    if ((s = hcr_evaluate(m, test, o.threads, &ev))) {
        rc = fail("evaluation", s);
        goto out;
    }
    const double test_acc = ev.accuracy;
    hcr_eval_free(&ev);
    if (o.save && (s = hcr_model_save(m, o.save))) {
        rc = fail("saving the model", s);
        goto out;
    }

    fprintf(stderr, "bench_hcr: inference\n");
    double ips1 = 0, ips1000 = 0;
    if (bench_predict(m, test, batch1_count, 1, 1, o.repeat, &ips1)) goto out;
    if (bench_predict(m, test, BIG_BATCH, BIG_BATCH, o.threads, o.repeat, &ips1000)) goto out;

    double peak_one = 0;
    measure_peak(o.threads, &peak_one, &peak_all_gflops);
    printf("{\n");
    printf("  \"impl\": \"hcr\",\n  \"version\": \"%s\",\n", HCR_VERSION);
    printf("  \"peak_gflops\": {\"one_thread\": %.1f, \"all_threads\": %.1f},\n", peak_one,
           peak_all_gflops);
    printf("  \"spec\": \"%s\",\n  \"params\": %zu,\n", hcr_model_spec(m), hcr_model_param_count(m));
    printf("  \"blas\": ");
    print_json_string(openblas_get_config ? openblas_get_config() : "unknown");
    printf(",\n  \"threads\": %d,\n  \"batch_size\": %d,\n  \"quick\": %s,\n", o.threads, BATCH,
           o.quick ? "true" : "false");
    printf("  \"train_images\": %d,\n  \"epochs\": %d,\n", train_count, epochs_done);
    printf("  \"train_images_per_s\": %.2f,\n", median(epoch_ips, epochs_done));
    printf("  \"train_seconds_per_epoch\": %.4f,\n", median(epoch_s, epochs_done));
    print_array("train_epoch_seconds", epoch_s, epochs_done, "%.4f", 0);
    printf("  \"train_loss\": %.5f,\n  \"train_accuracy\": %.5f,\n", train_loss, train_acc);
    printf("  \"test_accuracy\": %.5f,\n", test_acc);
    printf("  \"infer_batch1_images\": %d,\n  \"infer_batch1_threads\": 1,\n", batch1_count);
    printf("  \"infer_batch1_images_per_s\": %.2f,\n", ips1);
    printf("  \"infer_batch1000_threads\": %d,\n", o.threads);
    printf("  \"infer_batch1000_images_per_s\": %.2f,\n", ips1000);
    printf("  \"repeat\": %d,\n", o.repeat);
    fflush(stdout);

    fprintf(stderr, "bench_hcr: per-layer timing\n");
    if (bench_layers(m, train, o.threads, layer_reps)) goto out;

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("  \"peak_rss_mb\": %.2f\n}\n", ru.ru_maxrss / 1024.0); /* ru_maxrss is in KiB */
    rc = 0;
out:
    free(epoch_s);
    free(epoch_ips);
    hcr_model_free(m);
    hcr_dataset_free(train);
    hcr_dataset_free(test);
    hcr_dataset_free(all);
    return rc;
}
