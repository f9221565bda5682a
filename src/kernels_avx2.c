/*
 * kernels_avx2.c - the per-image kernels of kernels.h with AVX2 and FMA
 * intrinsics. This file alone is compiled with -mavx2 -mfma; nothing in it
 * runs unless kernels_select() found both on the CPU.
 *
 * Each kernel is a register-blocked matrix product read straight from the
 * NHWC tensors (no im2col copy):
 *   forward  out[p][f]  = sum_k  x(p,k)  w[k][f]   6 pixels x 16 filters
 *   wgrad    dw[k][f]  += sum_p  x(p,k)  dout[p][f] 6 taps   x 16 filters
 *   dgrad    din(p,k)  += sum_f  dout[p][f] wt[f][k] 6 pixels x 16 channels
 * where p is an output pixel and k = (ky, kx, c) a kernel tap: 12 of the
 * 16 YMM registers hold accumulators, two hold the vector operand, one the
 * broadcast scalar. Channel counts that are not a multiple of 8 go to the
 * generic kernels.
 */
#include "kernels.h"

#ifdef HCR_HAVE_AVX2_KERNELS
#include <immintrin.h>
#include <string.h>

#define MR 6
/* Fully unroll the register-block loops so the accumulators stay in registers. */
#define UNROLL _Pragma("GCC unroll 8")

/* Base offset (in floats) of output pixel p's receptive field. */
static inline int pixel_base(int p, int OW, int W, int C) { return ((p / OW) * W + p % OW) * C; }

/* ----------------------------------------------------------------- forward */

/* One tile: pixels at x[off[i]] (i < MR), NV vectors (8 filters each) from
 * f0, over the K rows of K*C contiguous inputs. */
#define CONV_FWD_TILE(NV)                                                                   \
    static void conv_fwd_tile##NV(float *out, const float *in, const int *off, int mr,     \
                                   const float *w, const float *b, int W, int C, int K, int F, \
                                   int f0, int relu)                                        \
    {                                                                                      \
        __m256 acc[MR][NV];                                                                \
        UNROLL for (int j = 0; j < NV; j++) {                                                     \
            __m256 bj = _mm256_loadu_ps(b + f0 + 8 * j);                                   \
            UNROLL for (int i = 0; i < MR; i++) acc[i][j] = bj;                                   \
        }                                                                                  \
        const int KC = K * C;                                                              \
        for (int ky = 0; ky < K; ky++) {                                                   \
            const float *x0 = in + off[0] + ky * W * C, *x1 = in + off[1] + ky * W * C;    \
            const float *x2 = in + off[2] + ky * W * C, *x3 = in + off[3] + ky * W * C;    \
            const float *x4 = in + off[4] + ky * W * C, *x5 = in + off[5] + ky * W * C;    \
            const float *wk = w + (size_t)ky * KC * F + f0;                                \
            for (int k = 0; k < KC; k++, wk += F) {                                        \
                __m256 wv[NV];                                                             \
                UNROLL for (int j = 0; j < NV; j++) wv[j] = _mm256_loadu_ps(wk + 8 * j);          \
                __m256 xv;                                                                 \
                xv = _mm256_broadcast_ss(x0 + k);                                          \
                UNROLL for (int j = 0; j < NV; j++) acc[0][j] = _mm256_fmadd_ps(xv, wv[j], acc[0][j]); \
                xv = _mm256_broadcast_ss(x1 + k);                                          \
                UNROLL for (int j = 0; j < NV; j++) acc[1][j] = _mm256_fmadd_ps(xv, wv[j], acc[1][j]); \
                xv = _mm256_broadcast_ss(x2 + k);                                          \
                UNROLL for (int j = 0; j < NV; j++) acc[2][j] = _mm256_fmadd_ps(xv, wv[j], acc[2][j]); \
                xv = _mm256_broadcast_ss(x3 + k);                                          \
                UNROLL for (int j = 0; j < NV; j++) acc[3][j] = _mm256_fmadd_ps(xv, wv[j], acc[3][j]); \
                xv = _mm256_broadcast_ss(x4 + k);                                          \
                UNROLL for (int j = 0; j < NV; j++) acc[4][j] = _mm256_fmadd_ps(xv, wv[j], acc[4][j]); \
                xv = _mm256_broadcast_ss(x5 + k);                                          \
                UNROLL for (int j = 0; j < NV; j++) acc[5][j] = _mm256_fmadd_ps(xv, wv[j], acc[5][j]); \
            }                                                                              \
        }                                                                                  \
        const __m256 zero = _mm256_setzero_ps();                                           \
        UNROLL for (int i = 0; i < MR; i++)                                                \
            UNROLL for (int j = 0; j < NV; j++)                                            \
                if (i < mr) _mm256_storeu_ps(out + (size_t)i * F + f0 + 8 * j,                         \
                                 relu ? _mm256_max_ps(acc[i][j], zero) : acc[i][j]);       \
    }
CONV_FWD_TILE(2)
CONV_FWD_TILE(1)

static void conv_forward(float *out, const float *in, const float *w, const float *b, int H, int W,
                         int C, int K, int F, int relu)
{
    if (F % 8) {
        kernels_generic.conv_forward(out, in, w, b, H, W, C, K, F, relu);
        return;
    }
    const int OW = W - K + 1, P = (H - K + 1) * OW;
    for (int p0 = 0; p0 < P; p0 += MR) {
        const int mr = P - p0 < MR ? P - p0 : MR;
        int off[MR];
        UNROLL for (int i = 0; i < MR; i++) off[i] = pixel_base(p0 + (i < mr ? i : mr - 1), OW, W, C);
        float *o = out + (size_t)p0 * F;
        int f0 = 0;
        for (; f0 + 16 <= F; f0 += 16) conv_fwd_tile2(o, in, off, mr, w, b, W, C, K, F, f0, relu);
        if (f0 < F) conv_fwd_tile1(o, in, off, mr, w, b, W, C, K, F, f0, relu);
    }
}

/* ------------------------------------------------------------------- wgrad */

/* dw rows k_i = k0+i (i < kr) over filters f0..f0+8*NV, summed over all
 * output pixels. Tap k reads input offset koff[i] from a pixel's base. */
#define CONV_WGRAD_TILE(NV)                                                                 \
    static void conv_wgrad_tile##NV(float *dw, const float *in, const float *dout,          \
                                     const int *koff, int kr, int k0, int W, int C, int OH, \
                                     int OW, int F, int f0)                                \
    {                                                                                      \
        __m256 acc[MR][NV];                                                                \
        UNROLL for (int i = 0; i < MR; i++)                                                       \
            UNROLL for (int j = 0; j < NV; j++) acc[i][j] = _mm256_setzero_ps();                  \
        const float *d = dout + f0;                                                        \
        for (int oy = 0; oy < OH; oy++) {                                                  \
            const float *x = in + (size_t)oy * W * C;                                      \
            for (int ox = 0; ox < OW; ox++, x += C, d += F) {                              \
                __m256 dv[NV];                                                             \
                UNROLL for (int j = 0; j < NV; j++) dv[j] = _mm256_loadu_ps(d + 8 * j);           \
                UNROLL for (int i = 0; i < MR; i++) {                                             \
                    __m256 xv = _mm256_broadcast_ss(x + koff[i]);                          \
                    UNROLL for (int j = 0; j < NV; j++) acc[i][j] = _mm256_fmadd_ps(xv, dv[j], acc[i][j]); \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        UNROLL for (int i = 0; i < MR; i++) {                                              \
            if (i >= kr) break;                                                            \
            float *r = dw + (size_t)(k0 + i) * F + f0;                                     \
            UNROLL for (int j = 0; j < NV; j++)                                                   \
                _mm256_storeu_ps(r + 8 * j, _mm256_add_ps(_mm256_loadu_ps(r + 8 * j), acc[i][j])); \
        }                                                                                  \
    }
CONV_WGRAD_TILE(2)
CONV_WGRAD_TILE(1)

static void conv_wgrad(float *dw, float *db, const float *in, const float *dout, int H, int W, int C,
                       int K, int F)
{
    if (F % 8) {
        kernels_generic.conv_wgrad(dw, db, in, dout, H, W, C, K, F);
        return;
    }
    const int OH = H - K + 1, OW = W - K + 1, KK = K * K * C;
    for (int k0 = 0; k0 < KK; k0 += MR) {
        const int kr = KK - k0 < MR ? KK - k0 : MR;
        int koff[MR];
        UNROLL for (int i = 0; i < MR; i++) {
            int k = k0 + (i < kr ? i : kr - 1);
            int ky = k / (K * C), rest = k % (K * C); /* rest = kx*C + c */
            koff[i] = ky * W * C + rest;
        }
        int f0 = 0;
        for (; f0 + 16 <= F; f0 += 16) conv_wgrad_tile2(dw, in, dout, koff, kr, k0, W, C, OH, OW, F, f0);
        if (f0 < F) conv_wgrad_tile1(dw, in, dout, koff, kr, k0, W, C, OH, OW, F, f0);
    }
    /* db += column sums of dout */
    for (int f = 0; f < F; f += 8) {
        __m256 s = _mm256_setzero_ps();
        for (int p = 0; p < OH * OW; p++) s = _mm256_add_ps(s, _mm256_loadu_ps(dout + (size_t)p * F + f));
        _mm256_storeu_ps(db + f, _mm256_add_ps(_mm256_loadu_ps(db + f), s));
    }
}

/* ------------------------------------------------------------------- dgrad */

/* For one tap (offset tapoff) and channels c0..c0+8*NV: din at pixel
 * bases off[i] (i < mr) += sum_f dout[p0+i][f] wt_tap[f][c]. */
#define CONV_DGRAD_TILE(NV)                                                                 \
    static void conv_dgrad_tile##NV(float *din, const float *d, const int *doff,            \
                                     const int *off, int mr, const float *wt_tap, int tapoff, \
                                     int C, int F, int c0)                                  \
    {                                                                                      \
        __m256 acc[MR][NV];                                                                \
        UNROLL for (int i = 0; i < MR; i++)                                                       \
            UNROLL for (int j = 0; j < NV; j++) acc[i][j] = _mm256_setzero_ps();                  \
        const float *wr = wt_tap + c0;                                                     \
        for (int f = 0; f < F; f++, wr += C) {                                             \
            __m256 wv[NV];                                                                 \
            UNROLL for (int j = 0; j < NV; j++) wv[j] = _mm256_loadu_ps(wr + 8 * j);              \
            UNROLL for (int i = 0; i < MR; i++) {                                                 \
                __m256 dv = _mm256_broadcast_ss(d + doff[i] + f);                          \
                UNROLL for (int j = 0; j < NV; j++) acc[i][j] = _mm256_fmadd_ps(dv, wv[j], acc[i][j]); \
            }                                                                              \
        }                                                                                  \
        UNROLL for (int i = 0; i < MR; i++) {                                              \
            if (i >= mr) break;                                                            \
            float *x = din + off[i] + tapoff + c0;                                         \
            UNROLL for (int j = 0; j < NV; j++)                                                   \
                _mm256_storeu_ps(x + 8 * j, _mm256_add_ps(_mm256_loadu_ps(x + 8 * j), acc[i][j])); \
        }                                                                                  \
    }
CONV_DGRAD_TILE(2)
CONV_DGRAD_TILE(1)

static void conv_dgrad(float *din, const float *dout, const float *wt, int H, int W, int C, int K,
                       int F)
{
    if (C % 8) {
        kernels_generic.conv_dgrad(din, dout, wt, H, W, C, K, F);
        return;
    }
    const int OW = W - K + 1, P = (H - K + 1) * OW;
    for (int p0 = 0; p0 < P; p0 += MR) {
        const int mr = P - p0 < MR ? P - p0 : MR;
        int off[MR], doff[MR];
        UNROLL for (int i = 0; i < MR; i++) {
            /* Rows past the end repeat the last pixel; their sums are dropped. */
            const int r = i < mr ? i : mr - 1;
            off[i] = pixel_base(p0 + r, OW, W, C);
            doff[i] = r * F;
        }
        const float *d = dout + (size_t)p0 * F;
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                const float *wt_tap = wt + (size_t)(ky * K + kx) * F * C;
                const int tapoff = (ky * W + kx) * C;
                int c0 = 0;
                for (; c0 + 16 <= C; c0 += 16)
                    conv_dgrad_tile2(din, d, doff, off, mr, wt_tap, tapoff, C, F, c0);
                if (c0 < C) conv_dgrad_tile1(din, d, doff, off, mr, wt_tap, tapoff, C, F, c0);
            }
    }
}

/* ----------------------------------------------------------------- pooling */

static void pool_forward(float *out, const float *in, int H, int W, int C, int S)
{
    if (C % 8) {
        kernels_generic.pool_forward(out, in, H, W, C, S);
        return;
    }
    const int OH = H / S, OW = W / S;
    for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
            float *o = out + ((size_t)oy * OW + ox) * C;
            for (int c = 0; c < C; c += 8) {
                __m256 m = _mm256_loadu_ps(in + ((size_t)oy * S * W + ox * S) * C + c);
                for (int dy = 0; dy < S; dy++)
                    for (int dx = 0; dx < S; dx++)
                        m = _mm256_max_ps(m, _mm256_loadu_ps(in + ((size_t)(oy * S + dy) * W + ox * S + dx) * C + c));
                _mm256_storeu_ps(o + c, m);
            }
        }
}

static void pool_backward(float *din, const float *dout, const float *in, const float *out, int H,
                          int W, int C, int S, int relu)
{
    if (C % 8) {
        kernels_generic.pool_backward(din, dout, in, out, H, W, C, S, relu);
        return;
    }
    const int OH = H / S, OW = W / S;
    if (OH * S != H || OW * S != W) memset(din, 0, sizeof(float) * (size_t)H * W * C);
    for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
            const size_t o = ((size_t)oy * OW + ox) * C;
            for (int c = 0; c < C; c += 8) {
                const __m256 y = _mm256_loadu_ps(out + o + c), g = _mm256_loadu_ps(dout + o + c);
                __m256 todo = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
                for (int dy = 0; dy < S; dy++)
                    for (int dx = 0; dx < S; dx++) {
                        const size_t i = ((size_t)(oy * S + dy) * W + ox * S + dx) * C + c;
                        const __m256 x = _mm256_loadu_ps(in + i);
                        __m256 hit = _mm256_and_ps(_mm256_cmp_ps(x, y, _CMP_EQ_OQ), todo);
                        todo = _mm256_andnot_ps(hit, todo);
                        if (relu) hit = _mm256_and_ps(hit, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ));
                        _mm256_storeu_ps(din + i, _mm256_and_ps(hit, g));
                    }
            }
        }
}

const hcr_kernels kernels_avx2 = {
    "avx2", conv_forward, conv_wgrad, conv_dgrad, pool_forward, pool_backward,
};
#endif /* HCR_HAVE_AVX2_KERNELS */
