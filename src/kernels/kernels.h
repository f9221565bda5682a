/*
 * kernels.h - the per-image convolution and pooling kernels the model runs
 * on its hot path, in several instruction sets, chosen at run time.
 *
 * Why hand-written: a BLAS sees a convolution only after im2col has copied
 * every input value K*K times, and its threads split one product at a time.
 * These kernels read the NHWC input in place (implicit GEMM), work on one
 * image at a time so its activations stay in the core's cache between
 * layers, and let the model split the batch across threads. The dense
 * layers, which are plain matrix products, stay with BLAS.
 *
 * Layouts: input [H][W][C], output [OH][OW][F] with OH = H-K+1, OW = W-K+1,
 * kernel [K][K][C][F] (HWIO), valid padding, stride 1. Pooling is S x S,
 * stride S, floor.
 */
#ifndef HCR_KERNELS_H
#define HCR_KERNELS_H

#include <stddef.h>

typedef struct hcr_kernels {
    const char *name;
    /* out = conv(in, w) + b, then ReLU if relu. */
    void (*conv_forward)(float *out, const float *in, const float *w, const float *b, int H, int W,
                         int C, int K, int F, int relu);
    /* dw[K][K][C][F] += sum over pixels of patch x dout; db[F] += sum of dout. */
    void (*conv_wgrad)(float *dw, float *db, const float *in, const float *dout, int H, int W, int C,
                       int K, int F);
    /* din[H][W][C] += the gradient through the kernel; wt is the kernel
     * packed by conv_pack_wt. */
    void (*conv_dgrad)(float *din, const float *dout, const float *wt, int H, int W, int C, int K,
                       int F);
    /* Max pooling. */
    void (*pool_forward)(float *out, const float *in, int H, int W, int C, int S);
    /* din (written in full) = dout routed to the first maximum of each
     * window (row-major window order), zero elsewhere; with relu, also zero
     * where in <= 0 (the gradient of the ReLU that produced `in`, fused). */
    void (*pool_backward)(float *din, const float *dout, const float *in, const float *out, int H,
                          int W, int C, int S, int relu);

    /* Faster algorithms for some shapes, NULL in a set that has none (the
     * generic one): conv_plan_make picks them only where the set has them and
     * its *_ok says the shape suits. What each computes is described with
     * the AVX2 functions below (conv_winograd_*, conv1_pool_*). */
    int (*winograd_ok)(int H, int W, int C, int K, int F);
    void (*winograd_prepare)(float *wp, const float *w, int C, int F);
    void (*winograd_forward)(float *out, const float *in, const float *wp, const float *b, int H,
                             int W, int C, int F, int relu);
    int (*winograd_backward_ok)(int H, int W, int C, int K, int F);
    void (*winograd_prepare_dgrad)(float *wpt, const float *w, int C, int F);
    void (*winograd_backward)(float *din, float *du, float *db, const float *in, const float *dout,
                              const float *wpt, int H, int W, int C, int F);
    void (*winograd_wgrad_finish)(float *dw, const float *du, int C, int F);
    int (*conv1_pool_ok)(int H, int W, int C, int K, int F, int S);
    void (*conv1_pool_forward)(float *pooled, float *route, const float *in, const float *w,
                               const float *b, int H, int W, int F, int relu);
    void (*conv1_pool_wgrad)(float *dw, float *db, const float *in, const float *route,
                             const float *dpool, int H, int W, int F);
} hcr_kernels;

/* The fastest kernels this CPU runs; HCR_KERNELS=generic in the
 * environment forces the portable ones. */
const hcr_kernels *kernels_select(void);

/* The floats of a Winograd-transformed kernel: F(2x2,3x3) (the backward's,
 * and the forward's where F % 32 != 0) and the forward's (room for
 * F(4x4,3x3)). */
#define CONV_WINOGRAD_FLOATS(C, F) ((size_t)16 * (size_t)(C) * (size_t)(F))
#define CONV_WINOGRAD_FWD_FLOATS(C, F) ((size_t)36 * (size_t)(C) * (size_t)(F))

/* Portable C, any shape. */
extern const hcr_kernels kernels_generic;
#if defined(__x86_64__) || defined(__i386__)
/* AVX2 + FMA; shapes they do not cover (channel counts not a multiple of 8)
 * go to the generic code. */
extern const hcr_kernels kernels_avx2;
#define HCR_HAVE_AVX2_KERNELS 1

/* Winograd forward convolution, AVX2 + FMA (call only where
 * kernels_select() returned &kernels_avx2; the model reaches them through
 * kernels_avx2's entries and conv_plan, tests and benchmarks directly).
 *   conv_winograd_ok: whether a shape takes this path (K == 3, C % 8 == 0,
 *     C <= 64, F % 16 == 0, H >= 3, W >= 3); others keep conv_forward.
 *   conv_winograd_prepare: wp = the transformed kernel, at most
 *     CONV_WINOGRAD_FWD_FLOATS floats, once per weight update.
 *   conv_winograd_forward: what conv_forward computes (to float rounding),
 *     from the prepared kernel; the shape must pass conv_winograd_ok.
 * Both use F(4x4,3x3) where F % 32 == 0 (conv_winograd4_ok) and F(2x2,3x3)
 * otherwise; the variants are callable on their own (bench, tests):
 * conv_winograd2_* take 16*C*F floats, conv_winograd4_* 36*C*F. */
int conv_winograd_ok(int H, int W, int C, int K, int F);
void conv_winograd_prepare(float *wp, const float *w, int C, int F);
void conv_winograd_forward(float *out, const float *in, const float *wp, const float *b, int H,
                           int W, int C, int F, int relu);
int conv_winograd4_ok(int H, int W, int C, int K, int F);
void conv_winograd2_prepare(float *wp, const float *w, int C, int F);
void conv_winograd2_forward(float *out, const float *in, const float *wp, const float *b, int H,
                            int W, int C, int F, int relu);
void conv_winograd4_prepare(float *wp, const float *w, int C, int F);
void conv_winograd4_forward(float *out, const float *in, const float *wp, const float *b, int H,
                            int W, int C, int F, int relu);

/* Winograd F(2x2,3x3) backward, the adjoint of the forward's arithmetic:
 *   conv_winograd_backward_ok: conv_winograd_ok, C % 16 == 0 and F <= 64.
 *   conv_winograd_prepare_dgrad: wpt = the same transformed kernel laid
 *     out [16][C/16][F][16] (CONV_WINOGRAD_FLOATS), once per weight update.
 *   conv_winograd_backward: one image. db[F] += column sums of dout;
 *     du[16][C][F] (CONV_WINOGRAD_FLOATS) += the kernel's gradient in the
 *     transformed domain; din[H][W][C], unless NULL, = the input gradient
 *     (written in full).
 *   conv_winograd_wgrad_finish: dw[3][3][C][F] += G^T du G, once after
 *     the images whose gradients du holds. */
int conv_winograd_backward_ok(int H, int W, int C, int K, int F);
void conv_winograd_prepare_dgrad(float *wpt, const float *w, int C, int F);
void conv_winograd_backward(float *din, float *du, float *db, const float *in, const float *dout,
                            const float *wpt, int H, int W, int C, int F);
void conv_winograd_wgrad_finish(float *dw, const float *du, int C, int F);

/* A first layer fused with the pooling after it, AVX2 + FMA (call only
 * where kernels_select() returned &kernels_avx2):
 *   conv1_pool_ok: C == 1, K == 3, S == 2, F % 16 == 0, H and W even
 *     (so the pooling drops nothing), 4 <= W <= 514.
 *   conv1_pool_forward: pooled[PH][PW][F] = pool(conv(in, w) + b, then
 *     ReLU if relu); route, unless NULL, gets for each pooled value which
 *     pixel of its window pool_backward would send its gradient to (0-3 in
 *     row-major window order, the first maximum) or 4 for none (with relu,
 *     where the maximum is not positive).
 *   conv1_pool_wgrad: from the pooled gradient dpool and that route, what
 *     pool_backward followed by conv_wgrad computes (dw[K][K][1][F] and
 *     db[F] accumulate); no input gradient. */
int conv1_pool_ok(int H, int W, int C, int K, int F, int S);
void conv1_pool_forward(float *pooled, float *route, const float *in, const float *w,
                        const float *b, int H, int W, int F, int relu);
void conv1_pool_wgrad(float *dw, float *db, const float *in, const float *route,
                      const float *dpool, int H, int W, int F);
#endif

/* wt[tap][f][c] = w[tap][c][f] for tap = ky*K + kx: the layout conv_dgrad
 * reads, so that it loads contiguous input channels. */
void conv_pack_wt(float *wt, const float *w, int K, int C, int F);

/* dout[i] = 0 where out[i] <= 0 (the ReLU's gradient). */
void relu_mask(float *dout, const float *out, long n);

/* ------------------------------------------------- convolution plans
 *
 * Which algorithm a convolution layer runs is chosen once, when the model
 * is built, from the layer's shape and the kernel set (conv_plan); the
 * model then runs the layer through the conv_plan_* functions below, which
 * call the plan's kernels. The choices:
 *   CONV_FUSED_POOL  a first layer (one input channel) and the 2x2 pooling
 *                    after it in one kernel (conv1_pool_*), forward and
 *                    backward, where the set has it and conv1_pool_ok;
 *   CONV_WINOGRAD    forward where winograd_ok (F(4x4,3x3) or F(2x2,3x3),
 *                    the set's choice), backward where winograd_backward_ok
 *                    too (F(2x2,3x3));
 *   CONV_DIRECT      everything else (conv_forward; conv_wgrad and, with
 *                    the kernel packed by conv_pack_wt, conv_dgrad).
 */
typedef enum conv_algo { CONV_DIRECT, CONV_WINOGRAD, CONV_FUSED_POOL } conv_algo;

typedef struct conv_shape {
    int H, W, C; /* input                                                    */
    int K, F;    /* K x K kernel, F filters                                  */
    int relu;    /* ReLU after it                                            */
    int pool;    /* S of the max pooling right after it, 0 for none          */
    int first;   /* the model's first layer: no input gradient is needed     */
} conv_shape;

typedef struct conv_plan {
    const hcr_kernels *kern; /* the set it was made for, which runs it  */
    conv_shape s;
    conv_algo forward, backward;
    size_t fwd_floats; /* the forward's prepared kernel (Winograd's transform), or 0 */
    size_t bwd_floats; /* the backward's prepared kernel (Winograd's transform, or
                          the direct input gradient's packed copy), or 0  */
    size_t du_floats;  /* per thread: Winograd's kernel gradient in the
                          transformed domain, or 0                        */
} conv_plan;

conv_plan conv_plan_make(const hcr_kernels *k, const conv_shape *s);

/* The prepared kernels, from w, after each change of the weights:
 * wfwd gets plan->fwd_floats floats, wbwd plan->bwd_floats (nothing to do
 * for 0). */
void conv_plan_prepare_forward(const conv_plan *p, float *wfwd, const float *w);
void conv_plan_prepare_backward(const conv_plan *p, float *wbwd, const float *w);

/* One image, forward: CONV_DIRECT or CONV_WINOGRAD, out = conv(in, w) + b
 * (ReLU if the shape says so); wfwd is the prepared kernel. */
void conv_plan_forward(const conv_plan *p, float *out, const float *in, const float *w,
                       const float *wfwd, const float *b);
/* CONV_FUSED_POOL: pooled = the pooling's output; route (NULL when not
 * training) = which pixel of each window won (conv1_pool_forward). */
void conv_plan_forward_pool(const conv_plan *p, float *pooled, float *route, const float *in,
                            const float *w, const float *b);

/* One image, backward, from dout (the ReLU's gradient already applied):
 * CONV_DIRECT: dw, db += the parameter gradients; din, unless NULL, = the
 * input gradient (written in full), from wbwd.
 * CONV_WINOGRAD: db += the bias gradient, du += the kernel gradient in the
 * transformed domain (conv_plan_wgrad_finish adds it to dw once after the
 * images), din as above. */
void conv_plan_backward(const conv_plan *p, float *din, float *dw, float *db, float *du,
                        const float *in, const float *dout, const float *wbwd);
void conv_plan_wgrad_finish(const conv_plan *p, float *dw, const float *du);
/* CONV_FUSED_POOL: dw, db += the parameter gradients from the pooled
 * gradient dpool and the forward's route (conv1_pool_wgrad). */
void conv_plan_backward_pool(const conv_plan *p, float *dw, float *db, const float *in,
                             const float *route, const float *dpool);

#endif
