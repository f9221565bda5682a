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
#include "kernels/kernels.h"

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

/* db[F] += the column sums of dout[P][F] (F % 8 == 0). */
static void bias_grad(float *db, const float *dout, int P, int F)
{
    for (int f = 0; f < F; f += 8) {
        __m256 s = _mm256_setzero_ps();
        for (int p = 0; p < P; p++) s = _mm256_add_ps(s, _mm256_loadu_ps(dout + (size_t)p * F + f));
        _mm256_storeu_ps(db + f, _mm256_add_ps(_mm256_loadu_ps(db + f), s));
    }
}

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
    bias_grad(db, dout, OH * OW, F);
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

/* ---------------------------------------------------- Winograd F(2x2, 3x3) */

/* Each 2x2 block of output pixels is A^T [ (G g G^T) .* (B^T d B) ] A, with
 * d the 4x4 input patch and g a 3x3 kernel:
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   G   = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 * The 16 element-wise products, summed over channels, are 16 matrix
 * products V[xi][tile][c] x U[xi][c][f], register-blocked 6 tiles x 16
 * filters as in the direct kernel: 2.25 times fewer multiply-adds than
 * the direct kernel on 2x2 blocks (1.89 times on 11x11 outputs, padded to
 * 12x12). Tiles past the input read zeros; outputs past OH x OW are not
 * stored. */
#define WG_CMAX 64

int conv_winograd_ok(int H, int W, int C, int K, int F)
{
    return K == 3 && C > 0 && C % 8 == 0 && C <= WG_CMAX && F > 0 && F % 16 == 0 && H >= 3 &&
           W >= 3;
}

/* U = G g G^T of each (c, f) kernel, stored where `at` says. */
static void wg_transform_kernel(float *wp, const float *w, int C, int F, int for_dgrad)
{
    const size_t CF = (size_t)C * F;
    const __m256 half = _mm256_set1_ps(0.5f);
    for (size_t cf = 0; cf < CF; cf += 8) {
        __m256 g[3][3], t[4][3], u[4][4];
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 3; x++) g[y][x] = _mm256_loadu_ps(w + (size_t)(y * 3 + x) * CF + cf);
        for (int x = 0; x < 3; x++) { /* t = G g */
            const __m256 s = _mm256_add_ps(g[0][x], g[2][x]);
            t[0][x] = g[0][x];
            t[1][x] = _mm256_mul_ps(half, _mm256_add_ps(s, g[1][x]));
            t[2][x] = _mm256_mul_ps(half, _mm256_sub_ps(s, g[1][x]));
            t[3][x] = g[2][x];
        }
        for (int a = 0; a < 4; a++) { /* U = t G^T */
            const __m256 s = _mm256_add_ps(t[a][0], t[a][2]);
            u[a][0] = t[a][0];
            u[a][1] = _mm256_mul_ps(half, _mm256_add_ps(s, t[a][1]));
            u[a][2] = _mm256_mul_ps(half, _mm256_sub_ps(s, t[a][1]));
            u[a][3] = t[a][2];
        }
        const size_t c = cf / F, f = cf % F;
        if (!for_dgrad) {
            /* U[xi][f/16][c][f%16]: the 16 filters a tile of the forward
             * product reads are contiguous over c. */
            const size_t at = ((f / 16) * C + c) * 16 + f % 16;
            for (int xi = 0; xi < 16; xi++) _mm256_storeu_ps(wp + xi * CF + at, u[xi / 4][xi % 4]);
        } else {
            /* U[xi][c/16][f][c%16]: the 16 channels a tile of the input
             * gradient's product reads are contiguous over f. */
            const size_t at = ((c / 16) * F + f) * 16 + c % 16;
            for (int xi = 0; xi < 16; xi++) {
                _Alignas(32) float lane[8];
                _mm256_store_ps(lane, u[xi / 4][xi % 4]);
                for (int k = 0; k < 8; k++) wp[xi * CF + at + (size_t)k * 16] = lane[k];
            }
        }
    }
}

void conv_winograd2_prepare(float *wp, const float *w, int C, int F) { wg_transform_kernel(wp, w, C, F, 0); }

/* Tiles per group: WG_NB register blocks of MR tiles share each slice of
 * U while it is in L1. */
#define WG_NB 3
#define WG_TG (WG_NB * MR)

/* V[xi][i][c] = (B^T d B)[xi] of tile i's patch, whose top-left input pixel
 * is (ty, tx); pixels outside H x W read as zero. */
static void wg_input_tile(float *V, int i, const float *in, int ty, int tx, int H, int W, int C)
{
    const float *row[4];
    int ok[4][4];
    for (int y = 0; y < 4; y++) {
        row[y] = in + ((size_t)(ty + y) * W + tx) * C;
        for (int x = 0; x < 4; x++) ok[y][x] = ty + y < H && tx + x < W;
    }
    const int full = ty + 4 <= H && tx + 4 <= W;
    const size_t xs = (size_t)WG_TG * C; /* V stride between xi */
    float *v = V + (size_t)i * C;
    for (int c = 0; c < C; c += 8) {
        __m256 d[4][4], t[4][4];
        UNROLL for (int y = 0; y < 4; y++)
            UNROLL for (int x = 0; x < 4; x++)
                d[y][x] = full || ok[y][x] ? _mm256_loadu_ps(row[y] + x * C + c) : _mm256_setzero_ps();
        UNROLL for (int x = 0; x < 4; x++) { /* t = B^T d */
            t[0][x] = _mm256_sub_ps(d[0][x], d[2][x]);
            t[1][x] = _mm256_add_ps(d[1][x], d[2][x]);
            t[2][x] = _mm256_sub_ps(d[2][x], d[1][x]);
            t[3][x] = _mm256_sub_ps(d[1][x], d[3][x]);
        }
        UNROLL for (int y = 0; y < 4; y++) { /* V = t B */
            float *o = v + (size_t)(4 * y) * xs + c;
            _mm256_store_ps(o, _mm256_sub_ps(t[y][0], t[y][2]));
            _mm256_store_ps(o + xs, _mm256_add_ps(t[y][1], t[y][2]));
            _mm256_store_ps(o + 2 * xs, _mm256_sub_ps(t[y][2], t[y][1]));
            _mm256_store_ps(o + 3 * xs, _mm256_sub_ps(t[y][1], t[y][3]));
        }
    }
}

/* One group of tiles for the products: the transforms of tiles t0 ..
 * t0+tr-1 (tile() writes tile i's into V; tiles are `step` pixels apart,
 * TW to a row) and their top-left pixels in ty, tx; then zeros up to
 * `rows` tiles (a register block's tiles past the last, whose sums are
 * dropped). V holds nxi slices of tg tiles x C. */
typedef void (*wg_tile_fn)(float *V, int i, const float *in, int ty, int tx, int H, int W, int C);

static void wg_group(float *V, int *ty, int *tx, int t0, int tr, int rows, int TW, int step,
                     int nxi, int tg, wg_tile_fn tile, const float *in, int H, int W, int C)
{
    for (int i = 0; i < tr; i++) {
        ty[i] = step * ((t0 + i) / TW);
        tx[i] = step * ((t0 + i) % TW);
        tile(V, i, in, ty[i], tx[i], H, W, C);
    }
    for (int i = tr; i < rows; i++)
        for (int xi = 0; xi < nxi; xi++) memset(V + ((size_t)xi * tg + i) * C, 0, sizeof(float) * C);
}

void conv_winograd2_forward(float *out, const float *in, const float *wp, const float *b, int H,
                            int W, int C, int F, int relu)
{
    const int OH = H - 2, OW = W - 2, TW = (OW + 1) / 2, T = (OH + 1) / 2 * TW;
    const size_t CF = (size_t)C * F;
    _Alignas(32) float V[16 * WG_TG * WG_CMAX];
    _Alignas(32) float M[16][WG_TG][16];
    const __m256 zero = _mm256_setzero_ps();
    for (int t0 = 0; t0 < T; t0 += WG_TG) {
        const int tr = T - t0 < WG_TG ? T - t0 : WG_TG, nb = (tr + MR - 1) / MR;
        int ty[WG_TG], tx[WG_TG];
        wg_group(V, ty, tx, t0, tr, nb * MR, TW, 2, 16, WG_TG, wg_input_tile, in, H, W, C);
        for (int f0 = 0; f0 < F; f0 += 16) {
            for (int xi = 0; xi < 16; xi++) {
                const float *u0 = wp + (size_t)xi * CF + (size_t)f0 * C;
                for (int blk = 0; blk < nb; blk++) {
                    const float *v = V + ((size_t)xi * WG_TG + blk * MR) * C, *u = u0;
                    __m256 acc[MR][2];
                    UNROLL for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = zero;
                    for (int k = 0; k < C; k++, u += 16) {
                        const __m256 w0 = _mm256_loadu_ps(u), w1 = _mm256_loadu_ps(u + 8);
                        UNROLL for (int i = 0; i < MR; i++) {
                            const __m256 x = _mm256_broadcast_ss(v + (size_t)i * C + k);
                            acc[i][0] = _mm256_fmadd_ps(x, w0, acc[i][0]);
                            acc[i][1] = _mm256_fmadd_ps(x, w1, acc[i][1]);
                        }
                    }
                    float *m = M[xi][blk * MR];
                    UNROLL for (int i = 0; i < MR; i++) {
                        _mm256_store_ps(m + 16 * i, acc[i][0]);
                        _mm256_store_ps(m + 16 * i + 8, acc[i][1]);
                    }
                }
            }
            /* Y = A^T M A, plus bias, ReLU. */
            for (int i = 0; i < tr; i++)
                for (int j = 0; j < 2; j++) {
                    const __m256 bj = _mm256_loadu_ps(b + f0 + 8 * j);
                    __m256 r0[4], r1[4];
                    UNROLL for (int x = 0; x < 4; x++) {
                        const __m256 m1 = _mm256_load_ps(M[4 + x][i] + 8 * j);
                        const __m256 m2 = _mm256_load_ps(M[8 + x][i] + 8 * j);
                        r0[x] = _mm256_add_ps(_mm256_add_ps(_mm256_load_ps(M[x][i] + 8 * j), m1), m2);
                        r1[x] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), _mm256_load_ps(M[12 + x][i] + 8 * j));
                    }
                    __m256 y[2][2];
                    y[0][0] = _mm256_add_ps(_mm256_add_ps(r0[0], r0[1]), _mm256_add_ps(r0[2], bj));
                    y[0][1] = _mm256_add_ps(_mm256_sub_ps(r0[1], r0[2]), _mm256_sub_ps(bj, r0[3]));
                    y[1][0] = _mm256_add_ps(_mm256_add_ps(r1[0], r1[1]), _mm256_add_ps(r1[2], bj));
                    y[1][1] = _mm256_add_ps(_mm256_sub_ps(r1[1], r1[2]), _mm256_sub_ps(bj, r1[3]));
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++) {
                            const int oy = ty[i] + dy, ox = tx[i] + dx;
                            if (oy >= OH || ox >= OW) continue;
                            const __m256 r = relu ? _mm256_max_ps(y[dy][dx], zero) : y[dy][dx];
                            _mm256_storeu_ps(out + ((size_t)oy * OW + ox) * F + f0 + 8 * j, r);
                        }
                }
        }
    }
}

/* ---------------------------------------------------- Winograd F(4x4, 3x3) */

/* Each 4x4 block of output pixels is A^T [ (G g G^T) .* (B^T d B) ] A, with
 * d the 6x6 input patch (points 0, +-1, +-2 and infinity):
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
 *          0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
 *          1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * 36 products per 16 outputs: 4 times fewer multiply-adds than the direct
 * kernel on 4x4 blocks (3.4 times on an 11x11 output, padded to 12x12),
 * against F(2x2)'s 2.25 (1.9). The 36 products over channels are matrix
 * products V[xi][tile][c] x U[xi][c][f], register-blocked 3 tiles x 32
 * filters (an 11x11 output is 9 tiles). Rounding grows with the larger
 * transforms, still far inside the tests' tolerance. */
#define WG4_TG 9 /* tiles per group: three blocks of three */

static inline void wg4_bt(const __m256 d[6], __m256 o[6])
{
    const __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f), two = _mm256_set1_ps(2.0f);
    o[0] = _mm256_fmadd_ps(four, d[0], _mm256_fnmadd_ps(five, d[2], d[4]));
    o[1] = _mm256_fnmadd_ps(four, _mm256_add_ps(d[1], d[2]), _mm256_add_ps(d[3], d[4]));
    o[2] = _mm256_fmadd_ps(four, _mm256_sub_ps(d[1], d[2]), _mm256_sub_ps(d[4], d[3]));
    o[3] = _mm256_fmadd_ps(two, _mm256_sub_ps(d[3], d[1]), _mm256_sub_ps(d[4], d[2]));
    o[4] = _mm256_fmadd_ps(two, _mm256_sub_ps(d[1], d[3]), _mm256_sub_ps(d[4], d[2]));
    o[5] = _mm256_fmadd_ps(four, d[1], _mm256_fnmadd_ps(five, d[3], d[5]));
}

static inline void wg4_g(const __m256 g[3], __m256 o[6])
{
    const __m256 s = _mm256_add_ps(g[0], g[2]);
    const __m256 sixth = _mm256_set1_ps(1.0f / 6.0f);
    const __m256 a = _mm256_fmadd_ps(_mm256_set1_ps(0.25f), g[0], g[2]); /* g0/4 + g2 */
    o[0] = _mm256_mul_ps(_mm256_set1_ps(0.25f), g[0]);
    o[1] = _mm256_mul_ps(_mm256_set1_ps(-1.0f / 6.0f), _mm256_add_ps(s, g[1]));
    o[2] = _mm256_mul_ps(_mm256_set1_ps(-1.0f / 6.0f), _mm256_sub_ps(s, g[1]));
    o[3] = _mm256_mul_ps(sixth, _mm256_fmadd_ps(_mm256_set1_ps(0.5f), g[1], a)); /* g0/24 + g1/12 + g2/6 */
    o[4] = _mm256_mul_ps(sixth, _mm256_fnmadd_ps(_mm256_set1_ps(0.5f), g[1], a));
    o[5] = g[2];
}

static inline void wg4_at(const __m256 m[6], __m256 o[4])
{
    const __m256 p12 = _mm256_add_ps(m[1], m[2]), m12 = _mm256_sub_ps(m[1], m[2]);
    const __m256 p34 = _mm256_add_ps(m[3], m[4]), m34 = _mm256_sub_ps(m[3], m[4]);
    o[0] = _mm256_add_ps(_mm256_add_ps(m[0], p12), p34);
    o[1] = _mm256_fmadd_ps(_mm256_set1_ps(2.0f), m34, m12);
    o[2] = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), p34, p12);
    o[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0f), m34, m12), m[5]);
}

int conv_winograd4_ok(int H, int W, int C, int K, int F)
{
    return conv_winograd_ok(H, W, C, K, F) && F % 32 == 0;
}

void conv_winograd4_prepare(float *wp, const float *w, int C, int F)
{
    const size_t CF = (size_t)C * F;
    for (size_t cf = 0; cf < CF; cf += 8) {
        __m256 g[3][3], t[6][3], u[6][6], col[3], row[6];
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 3; x++) g[y][x] = _mm256_loadu_ps(w + (size_t)(y * 3 + x) * CF + cf);
        for (int x = 0; x < 3; x++) { /* t = G g, column by column */
            __m256 o[6];
            for (int y = 0; y < 3; y++) col[y] = g[y][x];
            wg4_g(col, o);
            for (int a = 0; a < 6; a++) t[a][x] = o[a];
        }
        for (int a = 0; a < 6; a++) { /* U = t G^T, row by row */
            wg4_g(t[a], row);
            for (int b = 0; b < 6; b++) u[a][b] = row[b];
        }
        /* U[xi][f/32][c][f%32]: the 32 filters a block of the product reads
         * are contiguous over c. */
        const size_t c = cf / F, f = cf % F, at = ((f / 32) * C + c) * 32 + f % 32;
        for (int xi = 0; xi < 36; xi++) _mm256_storeu_ps(wp + xi * CF + at, u[xi / 6][xi % 6]);
    }
}

/* V[xi][i][c] = (B^T d B)[xi] of tile i's 6x6 patch at input (ty, tx);
 * pixels outside H x W read as zero. */
static void wg4_input_tile(float *V, int i, const float *in, int ty, int tx, int H, int W, int C)
{
    const int full = ty + 6 <= H && tx + 6 <= W;
    const size_t xs = (size_t)WG4_TG * C;
    float *v = V + (size_t)i * C;
    for (int c = 0; c < C; c += 8) {
        __m256 t[6][6];
        for (int x = 0; x < 6; x++) { /* t = B^T d, column by column */
            __m256 d[6];
            UNROLL for (int y = 0; y < 6; y++)
                d[y] = full || (ty + y < H && tx + x < W)
                           ? _mm256_loadu_ps(in + ((size_t)(ty + y) * W + tx + x) * C + c)
                           : _mm256_setzero_ps();
            __m256 o[6];
            wg4_bt(d, o);
            UNROLL for (int a = 0; a < 6; a++) t[a][x] = o[a];
        }
        UNROLL for (int a = 0; a < 6; a++) { /* V = t B, row by row */
            __m256 o[6];
            wg4_bt(t[a], o);
            UNROLL for (int b = 0; b < 6; b++) _mm256_store_ps(v + (size_t)(6 * a + b) * xs + c, o[b]);
        }
    }
}

void conv_winograd4_forward(float *out, const float *in, const float *wp, const float *b, int H,
                            int W, int C, int F, int relu)
{
    const int OH = H - 2, OW = W - 2, TW = (OW + 3) / 4, T = (OH + 3) / 4 * TW;
    const size_t CF = (size_t)C * F;
    _Alignas(32) float V[36 * WG4_TG * WG_CMAX];
    _Alignas(32) float M[36][WG4_TG][32];
    const __m256 zero = _mm256_setzero_ps();
    for (int t0 = 0; t0 < T; t0 += WG4_TG) {
        const int tr = T - t0 < WG4_TG ? T - t0 : WG4_TG, nb = (tr + 2) / 3;
        int ty[WG4_TG], tx[WG4_TG];
        wg_group(V, ty, tx, t0, tr, nb * 3, TW, 4, 36, WG4_TG, wg4_input_tile, in, H, W, C);
        for (int f0 = 0; f0 < F; f0 += 32) {
            for (int xi = 0; xi < 36; xi++) {
                const float *u0 = wp + (size_t)xi * CF + (size_t)f0 * C;
                for (int blk = 0; blk < nb; blk++) {
                    const float *v = V + ((size_t)xi * WG4_TG + blk * 3) * C, *u = u0;
                    __m256 acc[3][4];
                    UNROLL for (int i = 0; i < 3; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = zero;
                    for (int k = 0; k < C; k++, u += 32) {
                        const __m256 w0 = _mm256_loadu_ps(u), w1 = _mm256_loadu_ps(u + 8);
                        const __m256 w2 = _mm256_loadu_ps(u + 16), w3 = _mm256_loadu_ps(u + 24);
                        UNROLL for (int i = 0; i < 3; i++) {
                            const __m256 x = _mm256_broadcast_ss(v + (size_t)i * C + k);
                            acc[i][0] = _mm256_fmadd_ps(x, w0, acc[i][0]);
                            acc[i][1] = _mm256_fmadd_ps(x, w1, acc[i][1]);
                            acc[i][2] = _mm256_fmadd_ps(x, w2, acc[i][2]);
                            acc[i][3] = _mm256_fmadd_ps(x, w3, acc[i][3]);
                        }
                    }
                    UNROLL for (int i = 0; i < 3; i++)
                        UNROLL for (int j = 0; j < 4; j++) _mm256_store_ps(M[xi][blk * 3 + i] + 8 * j, acc[i][j]);
                }
            }
            /* Y = A^T M A, plus bias, ReLU. */
            for (int i = 0; i < tr; i++)
                for (int j = 0; j < 4; j++) {
                    const __m256 bj = _mm256_loadu_ps(b + f0 + 8 * j);
                    __m256 t[4][6];
                    for (int x = 0; x < 6; x++) { /* t = A^T M, column by column */
                        __m256 mcol[6], o[4];
                        UNROLL for (int a = 0; a < 6; a++) mcol[a] = _mm256_load_ps(M[6 * a + x][i] + 8 * j);
                        wg4_at(mcol, o);
                        UNROLL for (int r = 0; r < 4; r++) t[r][x] = o[r];
                    }
                    for (int r = 0; r < 4; r++) {
                        const int oy = ty[i] + r;
                        if (oy >= OH) break;
                        __m256 y[4];
                        wg4_at(t[r], y);
                        for (int s = 0; s < 4 && tx[i] + s < OW; s++) {
                            __m256 v = _mm256_add_ps(y[s], bj);
                            if (relu) v = _mm256_max_ps(v, zero);
                            _mm256_storeu_ps(out + ((size_t)oy * OW + tx[i] + s) * F + f0 + 8 * j, v);
                        }
                    }
                }
        }
    }
}

/* The forward's choice: F(4x4) where the filters come in blocks of 32. */
void conv_winograd_prepare(float *wp, const float *w, int C, int F)
{
    if (F % 32 == 0)
        conv_winograd4_prepare(wp, w, C, F);
    else
        conv_winograd2_prepare(wp, w, C, F);
}

void conv_winograd_forward(float *out, const float *in, const float *wp, const float *b, int H,
                           int W, int C, int F, int relu)
{
    if (F % 32 == 0)
        conv_winograd4_forward(out, in, wp, b, H, W, C, F, relu);
    else
        conv_winograd2_forward(out, in, wp, b, H, W, C, F, relu);
}

/* ------------------------------------------- Winograd F(2x2, 3x3), backward */

/* The adjoint of the forward pass, tile by tile, for the same tiles:
 *   dM = A dY A^T                the 4x4 gradient of a tile's M from its
 *                                2x2 block of output gradients
 *   dU[xi][c][f] += sum_tiles V[xi][tile][c] dM[xi][tile][f]
 *                                the kernel's gradient in the transformed
 *                                domain (16 products C x F over the tiles)
 *   dV[xi][tile][c] = sum_f dM[xi][tile][f] U[xi][c][f]
 *   din(patch) += B dV B^T       scattered back over the overlapping 4x4
 *                                input patches
 * and, once per pass, dw += G^T dU G. Both products do 1.9 times fewer
 * multiply-adds than the direct kernels on an 11x11 output. */
#define WG_FMAX 64

int conv_winograd_backward_ok(int H, int W, int C, int K, int F)
{
    return conv_winograd_ok(H, W, C, K, F) && C % 16 == 0 && F <= WG_FMAX;
}

void conv_winograd_prepare_dgrad(float *wpt, const float *w, int C, int F)
{
    wg_transform_kernel(wpt, w, C, F, 1);
}

/* DM[xi][i][f] = (A dY A^T)[xi] of the output gradients of tile i, whose
 * top-left output pixel is (ty, tx); pixels outside OH x OW are zero. */
static void wg_output_grad_tile(float *DM, int i, const float *dout, int ty, int tx, int OH, int OW,
                                int F)
{
    const size_t xs = (size_t)WG_TG * F;
    const int right = tx + 1 < OW, down = ty + 1 < OH;
    const float *y0 = dout + ((size_t)ty * OW + tx) * F, *y1 = y0 + (size_t)OW * F;
    float *d = DM + (size_t)i * F;
    const __m256 zero = _mm256_setzero_ps();
    for (int f = 0; f < F; f += 8) {
        const __m256 y00 = _mm256_loadu_ps(y0 + f);
        const __m256 y01 = right ? _mm256_loadu_ps(y0 + F + f) : zero;
        const __m256 y10 = down ? _mm256_loadu_ps(y1 + f) : zero;
        const __m256 y11 = right && down ? _mm256_loadu_ps(y1 + F + f) : zero;
        /* rows: r = A dY (A's rows: [1 0], [1 1], [1 -1], [0 -1]) */
        __m256 r[4][2];
        r[0][0] = y00;
        r[0][1] = y01;
        r[1][0] = _mm256_add_ps(y00, y10);
        r[1][1] = _mm256_add_ps(y01, y11);
        r[2][0] = _mm256_sub_ps(y00, y10);
        r[2][1] = _mm256_sub_ps(y01, y11);
        r[3][0] = _mm256_sub_ps(zero, y10);
        r[3][1] = _mm256_sub_ps(zero, y11);
        UNROLL for (int a = 0; a < 4; a++) { /* dM = r A^T */
            float *o = d + (size_t)(4 * a) * xs + f;
            _mm256_store_ps(o, r[a][0]);
            _mm256_store_ps(o + xs, _mm256_add_ps(r[a][0], r[a][1]));
            _mm256_store_ps(o + 2 * xs, _mm256_sub_ps(r[a][0], r[a][1]));
            _mm256_store_ps(o + 3 * xs, _mm256_sub_ps(zero, r[a][1]));
        }
    }
}

/* din(4x4 patch at (ty, tx)) += B dV[.][i] B^T, over all C channels;
 * pixels outside H x W are dropped. */
static void wg_input_grad_tile(float *din, const float *dV, int i, int ty, int tx, int H, int W,
                               int C)
{
    const size_t xs = (size_t)WG_TG * C;
    const float *v = dV + (size_t)i * C;
    const int full = ty + 4 <= H && tx + 4 <= W;
    for (int c = 0; c < C; c += 8) {
        __m256 t[4][4], d[4][4];
        UNROLL for (int y = 0; y < 4; y++) { /* t = dV B^T, row by row */
            const float *o = v + (size_t)(4 * y) * xs + c;
            const __m256 v0 = _mm256_load_ps(o), v1 = _mm256_load_ps(o + xs);
            const __m256 v2 = _mm256_load_ps(o + 2 * xs), v3 = _mm256_load_ps(o + 3 * xs);
            t[y][0] = v0;
            t[y][1] = _mm256_add_ps(_mm256_sub_ps(v1, v2), v3);
            t[y][2] = _mm256_sub_ps(_mm256_add_ps(v1, v2), v0);
            t[y][3] = _mm256_sub_ps(_mm256_setzero_ps(), v3);
        }
        UNROLL for (int x = 0; x < 4; x++) { /* d = B t */
            d[0][x] = t[0][x];
            d[1][x] = _mm256_add_ps(_mm256_sub_ps(t[1][x], t[2][x]), t[3][x]);
            d[2][x] = _mm256_sub_ps(_mm256_add_ps(t[1][x], t[2][x]), t[0][x]);
            d[3][x] = _mm256_sub_ps(_mm256_setzero_ps(), t[3][x]);
        }
        UNROLL for (int y = 0; y < 4; y++)
            UNROLL for (int x = 0; x < 4; x++) {
                if (!full && (ty + y >= H || tx + x >= W)) continue;
                float *p = din + ((size_t)(ty + y) * W + tx + x) * C + c;
                _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), d[y][x]));
            }
    }
}

/* du[c0+r][f0..f0+16] += sum_{i<tr} v[i][c0+r] dm[i][f0..f0+16], r < R;
 * du, v and dm point at (c0, f0) of one xi. */
#define WG_WGRAD_BLOCK(R)                                                                   \
    static void wg_wgrad_block##R(float *du, const float *v, const float *dm, int tr, int C, \
                                  int F)                                                   \
    {                                                                                      \
        __m256 acc[R][2];                                                                  \
        UNROLL for (int r = 0; r < R; r++) {                                               \
            acc[r][0] = _mm256_loadu_ps(du + (size_t)r * F);                               \
            acc[r][1] = _mm256_loadu_ps(du + (size_t)r * F + 8);                           \
        }                                                                                  \
        for (int i = 0; i < tr; i++, v += C, dm += F) {                                    \
            const __m256 g0 = _mm256_load_ps(dm), g1 = _mm256_load_ps(dm + 8);            \
            UNROLL for (int r = 0; r < R; r++) {                                           \
                const __m256 x = _mm256_broadcast_ss(v + r);                               \
                acc[r][0] = _mm256_fmadd_ps(x, g0, acc[r][0]);                             \
                acc[r][1] = _mm256_fmadd_ps(x, g1, acc[r][1]);                             \
            }                                                                              \
        }                                                                                  \
        UNROLL for (int r = 0; r < R; r++) {                                               \
            _mm256_storeu_ps(du + (size_t)r * F, acc[r][0]);                               \
            _mm256_storeu_ps(du + (size_t)r * F + 8, acc[r][1]);                           \
        }                                                                                  \
    }
WG_WGRAD_BLOCK(6)
WG_WGRAD_BLOCK(4)
WG_WGRAD_BLOCK(2)

void conv_winograd_backward(float *din, float *du, float *db, const float *in, const float *dout,
                            const float *wpt, int H, int W, int C, int F)
{
    const int OH = H - 2, OW = W - 2, TW = (OW + 1) / 2, T = (OH + 1) / 2 * TW;
    const size_t CF = (size_t)C * F;
    _Alignas(32) float V[16 * WG_TG * WG_CMAX]; /* input transform, then dV */
    _Alignas(32) float DM[16 * WG_TG * WG_FMAX];
    const __m256 zero = _mm256_setzero_ps();
    bias_grad(db, dout, OH * OW, F);
    if (din) memset(din, 0, sizeof(float) * (size_t)H * W * C);
    for (int t0 = 0; t0 < T; t0 += WG_TG) {
        const int tr = T - t0 < WG_TG ? T - t0 : WG_TG;
        int ty[WG_TG], tx[WG_TG];
        wg_group(V, ty, tx, t0, tr, tr, TW, 2, 16, WG_TG, wg_input_tile, in, H, W, C);
        for (int i = 0; i < tr; i++) wg_output_grad_tile(DM, i, dout, ty[i], tx[i], OH, OW, F);
        /* the kernel's gradient: rows of 6 channels (then 4 or 2) x 16 filters */
        for (int xi = 0; xi < 16; xi++) {
            const float *v = V + (size_t)xi * WG_TG * C, *dm = DM + (size_t)xi * WG_TG * F;
            float *u = du + (size_t)xi * CF;
            for (int c0 = 0; c0 < C;) {
                const int R = C - c0 >= 6 ? 6 : C - c0;
                for (int f0 = 0; f0 < F; f0 += 16) {
                    float *uo = u + (size_t)c0 * F + f0;
                    if (R == 6) wg_wgrad_block6(uo, v + c0, dm + f0, tr, C, F);
                    else if (R == 4) wg_wgrad_block4(uo, v + c0, dm + f0, tr, C, F);
                    else wg_wgrad_block2(uo, v + c0, dm + f0, tr, C, F);
                }
                c0 += R;
            }
        }
        if (!din) continue;
        /* dV = dM U^T: blocks of MR tiles x 16 channels, over the filters;
         * rows past the last tile repeat it and are not used. */
        for (int xi = 0; xi < 16; xi++) {
            const float *dm = DM + (size_t)xi * WG_TG * F;
            for (int i0 = 0; i0 < tr; i0 += MR) {
                const float *row[MR];
                UNROLL for (int i = 0; i < MR; i++) row[i] = dm + (size_t)(i0 + i < tr ? i0 + i : tr - 1) * F;
                for (int c0 = 0; c0 < C; c0 += 16) {
                    const float *u = wpt + (size_t)xi * CF + (size_t)c0 * F;
                    __m256 acc[MR][2];
                    UNROLL for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = zero;
                    for (int f = 0; f < F; f++, u += 16) {
                        const __m256 w0 = _mm256_loadu_ps(u), w1 = _mm256_loadu_ps(u + 8);
                        UNROLL for (int i = 0; i < MR; i++) {
                            const __m256 x = _mm256_broadcast_ss(row[i] + f);
                            acc[i][0] = _mm256_fmadd_ps(x, w0, acc[i][0]);
                            acc[i][1] = _mm256_fmadd_ps(x, w1, acc[i][1]);
                        }
                    }
                    float *o = V + ((size_t)xi * WG_TG + i0) * C + c0;
                    UNROLL for (int i = 0; i < MR; i++) {
                        _mm256_store_ps(o + (size_t)i * C, acc[i][0]);
                        _mm256_store_ps(o + (size_t)i * C + 8, acc[i][1]);
                    }
                }
            }
        }
        for (int i = 0; i < tr; i++) wg_input_grad_tile(din, V, i, ty[i], tx[i], H, W, C);
    }
}

void conv_winograd_wgrad_finish(float *dw, const float *du, int C, int F)
{
    const size_t CF = (size_t)C * F;
    const __m256 half = _mm256_set1_ps(0.5f);
    for (size_t cf = 0; cf < CF; cf += 8) {
        __m256 u[4][4], t[3][4];
        for (int xi = 0; xi < 16; xi++) u[xi / 4][xi % 4] = _mm256_loadu_ps(du + xi * CF + cf);
        for (int b = 0; b < 4; b++) { /* t = G^T u (G^T's rows: [1 .5 .5 0], [0 .5 -.5 0], [0 .5 .5 1]) */
            const __m256 s = _mm256_mul_ps(half, _mm256_add_ps(u[1][b], u[2][b]));
            t[0][b] = _mm256_add_ps(u[0][b], s);
            t[1][b] = _mm256_mul_ps(half, _mm256_sub_ps(u[1][b], u[2][b]));
            t[2][b] = _mm256_add_ps(s, u[3][b]);
        }
        for (int k = 0; k < 3; k++) { /* g = t G */
            const __m256 s = _mm256_mul_ps(half, _mm256_add_ps(t[k][1], t[k][2]));
            const __m256 g[3] = {_mm256_add_ps(t[k][0], s),
                                 _mm256_mul_ps(half, _mm256_sub_ps(t[k][1], t[k][2])),
                                 _mm256_add_ps(s, t[k][3])};
            for (int l = 0; l < 3; l++) {
                float *o = dw + (size_t)(k * 3 + l) * CF + cf;
                _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), g[l]));
            }
        }
    }
}

/* --------------------------------- first layer: convolution fused with pooling */

/* A first layer (one input channel, 3x3, ReLU, then 2x2 max pooling) does
 * only 9 multiply-adds per output before the direct kernel stores it, and
 * the pooling then reads all of it back (86 KB an image for 32 filters on
 * 28x28). Here one tile is one pooled pixel (a 2x2 block of convolution
 * outputs) x 16 filters: 8 accumulators, fully unrolled over the 9 taps,
 * pooled in registers. Instead of the convolution's output, training keeps
 * which pixel of each window won (a quarter of the size), and the backward
 * routes each pooled gradient there and sums it straight into the kernel
 * gradient: the convolution's output and its gradient are never stored. */
#define C1P_MAX_PW 256 /* widest pooled row */

int conv1_pool_ok(int H, int W, int C, int K, int F, int S)
{
    return C == 1 && K == 3 && S == 2 && F > 0 && F % 16 == 0 && H >= 4 && W >= 4 && H % 2 == 0 &&
           W % 2 == 0 && (W - 2) / 2 <= C1P_MAX_PW;
}

void conv1_pool_forward(float *pooled, float *route, const float *in, const float *w,
                        const float *b, int H, int W, int F, int relu)
{
    const int PH = (H - 2) / 2, PW = (W - 2) / 2;
    const __m256 zero = _mm256_setzero_ps();
    for (int py = 0; py < PH; py++)
        for (int px = 0; px < PW; px++) {
            const float *x = in + (size_t)(2 * py) * W + 2 * px;
            for (int f0 = 0; f0 < F; f0 += 16) {
                __m256 acc[4][2];
                const __m256 b0 = _mm256_loadu_ps(b + f0), b1 = _mm256_loadu_ps(b + f0 + 8);
                UNROLL for (int q = 0; q < 4; q++) {
                    acc[q][0] = b0;
                    acc[q][1] = b1;
                }
                UNROLL for (int ky = 0; ky < 3; ky++)
                    UNROLL for (int kx = 0; kx < 3; kx++) {
                        const float *wk = w + (size_t)(ky * 3 + kx) * F + f0;
                        const __m256 w0 = _mm256_loadu_ps(wk), w1 = _mm256_loadu_ps(wk + 8);
                        UNROLL for (int q = 0; q < 4; q++) {
                            const __m256 xv = _mm256_broadcast_ss(x + (ky + q / 2) * W + kx + q % 2);
                            acc[q][0] = _mm256_fmadd_ps(xv, w0, acc[q][0]);
                            acc[q][1] = _mm256_fmadd_ps(xv, w1, acc[q][1]);
                        }
                    }
                const size_t o = ((size_t)py * PW + px) * F + f0;
                UNROLL for (int j = 0; j < 2; j++) {
                    __m256 m = _mm256_max_ps(_mm256_max_ps(acc[0][j], acc[1][j]),
                                             _mm256_max_ps(acc[2][j], acc[3][j]));
                    if (route) {
                        /* The first pixel in window order that equals the
                         * maximum (as pool_backward picks it); 4, nobody,
                         * where the ReLU's gradient is zero. */
                        __m256 r = _mm256_set1_ps(3.0f);
                        UNROLL for (int q = 2; q >= 0; q--)
                            r = _mm256_blendv_ps(r, _mm256_set1_ps((float)q),
                                                 _mm256_cmp_ps(acc[q][j], m, _CMP_EQ_OQ));
                        if (relu) r = _mm256_blendv_ps(_mm256_set1_ps(4.0f), r, _mm256_cmp_ps(m, zero, _CMP_GT_OQ));
                        _mm256_storeu_ps(route + o + 8 * j, r);
                    }
                    if (relu) m = _mm256_max_ps(m, zero);
                    _mm256_storeu_ps(pooled + o + 8 * j, m);
                }
            }
        }
}

void conv1_pool_wgrad(float *dw, float *db, const float *in, const float *route,
                      const float *dpool, int H, int W, int F)
{
    const int PH = (H - 2) / 2, PW = (W - 2) / 2;
    const __m256 zero = _mm256_setzero_ps();
    /* Per 8 filters and pooled row, two phases, so that the 9 accumulators
     * of the second never share the registers with the first's masks:
     * (1) route each pooled gradient to its window's pixel (D), summing the
     * bias gradient; (2) the kernel gradient from D. */
    _Alignas(32) float D[C1P_MAX_PW][4][8];
    for (int f0 = 0; f0 < F; f0 += 8) {
        __m256 dbs = zero, acc[9];
        UNROLL for (int k = 0; k < 9; k++) acc[k] = zero;
        for (int py = 0; py < PH; py++) {
            for (int px = 0; px < PW; px++) {
                const size_t o = ((size_t)py * PW + px) * F + f0;
                const __m256 r = _mm256_loadu_ps(route + o), g = _mm256_loadu_ps(dpool + o);
                dbs = _mm256_add_ps(dbs, _mm256_and_ps(_mm256_cmp_ps(r, _mm256_set1_ps(4.0f), _CMP_LT_OQ), g));
                UNROLL for (int q = 0; q < 4; q++)
                    _mm256_store_ps(D[px][q], _mm256_and_ps(_mm256_cmp_ps(r, _mm256_set1_ps((float)q), _CMP_EQ_OQ), g));
            }
            const float *x = in + (size_t)(2 * py) * W;
            for (int px = 0; px < PW; px++, x += 2)
                UNROLL for (int q = 0; q < 4; q++) {
                    const __m256 dq = _mm256_load_ps(D[px][q]);
                    UNROLL for (int ky = 0; ky < 3; ky++)
                        UNROLL for (int kx = 0; kx < 3; kx++)
                            acc[ky * 3 + kx] = _mm256_fmadd_ps(
                                _mm256_broadcast_ss(x + (ky + q / 2) * W + kx + q % 2), dq, acc[ky * 3 + kx]);
                }
        }
        UNROLL for (int k = 0; k < 9; k++) {
            float *r = dw + (size_t)k * F + f0;
            _mm256_storeu_ps(r, _mm256_add_ps(_mm256_loadu_ps(r), acc[k]));
        }
        _mm256_storeu_ps(db + f0, _mm256_add_ps(_mm256_loadu_ps(db + f0), dbs));
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
    .name = "avx2",
    .conv_forward = conv_forward,
    .conv_wgrad = conv_wgrad,
    .conv_dgrad = conv_dgrad,
    .pool_forward = pool_forward,
    .pool_backward = pool_backward,
    .winograd_ok = conv_winograd_ok,
    .winograd_prepare = conv_winograd_prepare,
    .winograd_forward = conv_winograd_forward,
    .winograd_backward_ok = conv_winograd_backward_ok,
    .winograd_prepare_dgrad = conv_winograd_prepare_dgrad,
    .winograd_backward = conv_winograd_backward,
    .winograd_wgrad_finish = conv_winograd_wgrad_finish,
    .conv1_pool_ok = conv1_pool_ok,
    .conv1_pool_forward = conv1_pool_forward,
    .conv1_pool_wgrad = conv1_pool_wgrad,
};
#endif /* HCR_HAVE_AVX2_KERNELS */
