/*
 * bench_kernels.c - the convolution layers of the reference model, one
 * thread, batch 128, through each implementation hcr has had: im2col over
 * the batch plus one OpenBLAS sgemm (layers.c: conv2d_forward/backward), the
 * per-image AVX2 kernels and the per-image portable kernels (kernels.h).
 * Prints JSON: GFLOP/s forward and backward (median of 9 runs), and the
 * share of the measured one-thread FMA peak is in bench_hcr's output.
 *
 *   build/bench_kernels
 */
#include "kernels/kernels.h"
#include "nn/layers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define REPS 9

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static float *random_floats(size_t n)
{
    float *v = malloc(sizeof(float) * (n ? n : 1));
    if (!v) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) v[i] = (float)(rand() % 200 - 100) / 100.0f;
    return v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v)
{
    qsort(v, REPS, sizeof *v, cmp_double);
    return v[REPS / 2];
}

#ifdef HCR_HAVE_AVX2_KERNELS
#define WG_REPS 21

/* The forward of one layer through the direct AVX2 kernel, Winograd
 * F(2x2,3x3) and Winograd F(4x4,3x3), interleaved rep by rep so that all
 * see the same machine load; medians of WG_REPS. batch: 128 different
 * images (b128) or one image 128 times (b1, in cache). The kernel is
 * transformed once per batch (timed), as a training step does; predict
 * keeps it between calls. GFLOP/s-equivalent: 2 x the direct kernel's
 * multiply-adds / time. Prints one JSON row. */
static void bench_winograd(const float *in, const float *w, const float *b, float *out, int B,
                           int H, int W, int C, int F)
{
    const int K = 3, OH = H - K + 1, OW = W - K + 1, f4 = conv_winograd4_ok(H, W, C, K, F);
    const size_t isz = (size_t)H * W * C, osz = (size_t)OH * OW * F;
    float *wp = random_floats(CONV_WINOGRAD_FWD_FLOATS(C, F));
    double t[6][WG_REPS];
    for (int r = 0; r < WG_REPS; r++)
        for (int v = 0; v < 6; v++) {
            const int one = v >= 3, kind = v % 3; /* 0 direct, 1 F(2x2), 2 F(4x4) */
            if (kind == 2 && !f4) {
                t[v][r] = 1;
                continue;
            }
            double t0 = now();
            if (kind == 1) conv_winograd2_prepare(wp, w, C, F);
            if (kind == 2) conv_winograd4_prepare(wp, w, C, F);
            for (int i = 0; i < B; i++) {
                const float *x = in + (one ? 0 : (size_t)i * isz);
                float *y = out + (one ? 0 : (size_t)i * osz);
                if (kind == 0)
                    kernels_avx2.conv_forward(y, x, w, b, H, W, C, K, F, 1);
                else if (kind == 1)
                    conv_winograd2_forward(y, x, wp, b, H, W, C, F, 1);
                else
                    conv_winograd4_forward(y, x, wp, b, H, W, C, F, 1);
            }
            t[v][r] = now() - t0;
        }
    double g[6];
    const double flop = 2.0 * B * osz * K * K * C;
    for (int v = 0; v < 6; v++) {
        qsort(t[v], WG_REPS, sizeof(double), cmp_double);
        g[v] = flop / t[v][WG_REPS / 2] * 1e-9;
    }
    printf("      ,{\"impl\": \"avx2-winograd\", \"f2x2_forward_gflops\": %.1f, "
           "\"f2x2_forward_gflops_batch1\": %.1f, ", g[1], g[4]);
    if (f4)
        printf("\"f4x4_forward_gflops\": %.1f, \"f4x4_forward_gflops_batch1\": %.1f, ", g[2], g[5]);
    printf("\"reps\": %d, \"direct_avx2_same_run\": {\"forward_gflops\": %.1f, "
           "\"forward_gflops_batch1\": %.1f}}\n", WG_REPS, g[0], g[3]);
    free(wp);
}

/* The backward of one layer (kernel, bias and input gradients of a batch)
 * through the direct AVX2 kernels and through the Winograd backward,
 * interleaved rep by rep; medians of WG_REPS. GFLOP/s-equivalent: 2 x the
 * direct kernels' multiply-adds (two products) / time. Prints one JSON row. */
static void bench_winograd_backward(const float *in, const float *w, const float *dout, float *dw,
                                    float *db, float *din, int B, int H, int W, int C, int F)
{
    const int K = 3, OH = H - K + 1, OW = W - K + 1;
    const size_t isz = (size_t)H * W * C, osz = (size_t)OH * OW * F, nu = CONV_WINOGRAD_FLOATS(C, F);
    float *wt = random_floats((size_t)K * K * C * F), *wpt = random_floats(nu), *du = random_floats(nu);
    double t[2][WG_REPS];
    for (int r = 0; r < WG_REPS; r++)
        for (int v = 0; v < 2; v++) {
            double t0 = now();
            if (v == 0) {
                conv_pack_wt(wt, w, K, C, F);
                for (int i = 0; i < B; i++) {
                    kernels_avx2.conv_wgrad(dw, db, in + i * isz, dout + i * osz, H, W, C, K, F);
                    memset(din + i * isz, 0, sizeof(float) * isz);
                    kernels_avx2.conv_dgrad(din + i * isz, dout + i * osz, wt, H, W, C, K, F);
                }
            } else {
                conv_winograd_prepare_dgrad(wpt, w, C, F);
                memset(du, 0, sizeof(float) * nu);
                for (int i = 0; i < B; i++)
                    conv_winograd_backward(din + i * isz, du, db, in + i * isz, dout + i * osz, wpt,
                                           H, W, C, F);
                conv_winograd_wgrad_finish(dw, du, C, F);
            }
            t[v][r] = now() - t0;
        }
    const double flop = 2.0 * 2.0 * B * osz * K * K * C;
    double g[2];
    for (int v = 0; v < 2; v++) {
        qsort(t[v], WG_REPS, sizeof(double), cmp_double);
        g[v] = flop / t[v][WG_REPS / 2] * 1e-9;
    }
    printf("      ,{\"impl\": \"avx2-winograd-backward\", \"backward_gflops\": %.1f, \"reps\": %d, "
           "\"direct_avx2_same_run\": {\"backward_gflops\": %.1f}}\n", g[1], WG_REPS, g[0]);
    free(wt); free(wpt); free(du);
}

/* The first layer with its pooling: the direct AVX2 convolution then the
 * AVX2 pooling (forward), pool_backward then conv_wgrad (backward), against
 * the fused conv1_pool_* kernels, interleaved rep by rep; medians of
 * WG_REPS, one thread. GFLOP/s: 2 x the convolution's multiply-adds / time
 * (the pooling counts no FLOPs). Prints one JSON row. */
static void bench_conv1_pool(const float *in, const float *w, const float *b, int B, int H, int W, int F)
{
    const int OH = H - 2, OW = W - 2;
    const size_t isz = (size_t)H * W, csz = (size_t)OH * OW * F, psz = csz / 4;
    float *conv = random_floats((size_t)B * csz), *pool = random_floats((size_t)B * psz);
    float *dpool = random_floats((size_t)B * psz), *dconv = random_floats(csz);
    float *dw = random_floats((size_t)9 * F), *db = random_floats((size_t)F);
    double t[5][WG_REPS]; /* unfused fwd, fused fwd (training), fused fwd (inference), unfused bwd, fused bwd */
    for (int r = 0; r < WG_REPS; r++)
        for (int v = 0; v < 5; v++) {
            double t0 = now();
            for (int i = 0; i < B; i++) {
                const float *x = in + i * isz;
                float *c = conv + i * csz, *p = pool + i * psz, *dp = dpool + i * psz;
                if (v == 0) {
                    kernels_avx2.conv_forward(c, x, w, b, H, W, 1, 3, F, 1);
                    kernels_avx2.pool_forward(p, c, OH, OW, F, 2);
                } else if (v == 1 || v == 2) {
                    conv1_pool_forward(p, v == 1 ? c : NULL, x, w, b, H, W, F, 1); /* c: the route */
                } else if (v == 3) {
                    kernels_avx2.pool_backward(dconv, dp, c, p, OH, OW, F, 2, 1);
                    kernels_avx2.conv_wgrad(dw, db, x, dconv, H, W, 1, 3, F);
                } else {
                    conv1_pool_wgrad(dw, db, x, c, dp, H, W, F);
                }
            }
            t[v][r] = now() - t0;
        }
    const double flop = 2.0 * B * csz * 9;
    double g[5];
    for (int v = 0; v < 5; v++) {
        qsort(t[v], WG_REPS, sizeof(double), cmp_double);
        g[v] = flop / t[v][WG_REPS / 2] * 1e-9;
    }
    printf("      ,{\"impl\": \"avx2-fused-with-pooling\", \"forward_gflops\": %.1f, "
           "\"forward_gflops_inference\": %.1f, \"backward_gflops\": %.1f, \"reps\": %d, "
           "\"direct_avx2_then_pooling_same_run\": {\"forward_gflops\": %.1f, \"backward_gflops\": %.1f}}\n",
           g[1], g[2], g[4], WG_REPS, g[0], g[3]);
    free(conv); free(pool); free(dpool); free(dconv); free(dw); free(db);
}
#endif

int main(void)
{
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    static const struct { const char *name; int H, W, C, K, F, dgrad; } shapes[] = {
        {"conv2d", 28, 28, 1, 3, 32, 0},
        {"conv2d_1", 13, 13, 32, 3, 64, 1},
    };
    const hcr_kernels *sets[2] = {&kernels_generic, NULL};
#ifdef HCR_HAVE_AVX2_KERNELS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) sets[1] = &kernels_avx2;
#endif
    const int B = 128;
    printf("{\n  \"batch\": %d,\n  \"threads\": 1,\n  \"layers\": [\n", B);
    for (int s = 0; s < 2; s++) {
        const int H = shapes[s].H, W = shapes[s].W, C = shapes[s].C, K = shapes[s].K, F = shapes[s].F;
        const int OH = H - K + 1, OW = W - K + 1;
        const size_t M = (size_t)B * OH * OW, nin = (size_t)B * H * W * C, nw = (size_t)K * K * C * F;
        float *in = random_floats(nin), *w = random_floats(nw), *b = random_floats((size_t)F);
        float *out = random_floats(M * F), *dout = random_floats(M * F), *dw = random_floats(nw);
        float *db = random_floats((size_t)F), *din = random_floats(nin), *wt = random_floats(nw);
        float *col = random_floats(M * K * K * C);
        const double macs = (double)M * F * K * K * C, bwd_macs = shapes[s].dgrad ? 2 * macs : macs;
        printf("    {\"name\": \"%s\", \"shape\": \"%dx%dx%d -> %dx%dx%d\", \"results\": [\n",
               shapes[s].name, H, W, C, OH, OW, F);
        for (int v = 0; v < 3; v++) {
            double tf[REPS], tb[REPS];
            const hcr_kernels *k = v ? sets[v - 1] : NULL;
            if (v && !k) continue;
            for (int r = 0; r < REPS; r++) {
                double t0 = now();
                if (!k) {
                    conv2d_forward(out, col, in, w, b, B, H, W, C, K, F, 1);
                    tf[r] = now() - t0;
                    t0 = now();
                    conv2d_backward(shapes[s].dgrad ? din : NULL, dw, db, dout, out, col, w, B, H, W,
                                    C, K, F, 1);
                    tb[r] = now() - t0;
                    continue;
                }
                for (int i = 0; i < B; i++)
                    k->conv_forward(out + (size_t)i * OH * OW * F, in + (size_t)i * H * W * C, w, b,
                                    H, W, C, K, F, 1);
                tf[r] = now() - t0;
                t0 = now();
                for (int i = 0; i < B; i++) {
                    k->conv_wgrad(dw, db, in + (size_t)i * H * W * C, dout + (size_t)i * OH * OW * F,
                                  H, W, C, K, F);
                    if (shapes[s].dgrad)
                        k->conv_dgrad(din + (size_t)i * H * W * C, dout + (size_t)i * OH * OW * F, wt,
                                      H, W, C, K, F);
                }
                tb[r] = now() - t0;
            }
            printf("      %s{\"impl\": \"%s\", \"forward_gflops\": %.1f, \"backward_gflops\": %.1f}\n",
                   v ? "," : "", k ? k->name : "im2col+openblas", 2 * macs / median(tf) * 1e-9,
                   2 * bwd_macs / median(tb) * 1e-9);
        }
#ifdef HCR_HAVE_AVX2_KERNELS
        if (sets[1] && conv_winograd_ok(H, W, C, K, F)) bench_winograd(in, w, b, out, B, H, W, C, F);
        if (sets[1] && conv1_pool_ok(H, W, C, K, F, 2)) bench_conv1_pool(in, w, b, B, H, W, F);
        if (sets[1] && conv_winograd_backward_ok(H, W, C, K, F))
            bench_winograd_backward(in, w, dout, dw, db, din, B, H, W, C, F);
#endif
        printf("    ]}%s\n", s ? "" : ",");
        free(in); free(w); free(b); free(out); free(dout); free(dw); free(db); free(din);
        free(wt); free(col);
    }
    printf("  ]\n}\n");
    return 0;
}
