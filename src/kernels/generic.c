/*
 * kernels_generic.c - the per-image kernels of kernels.h in portable C,
 * for any shape and any CPU. The loops are ordered so that the innermost
 * one runs over contiguous output channels, which compilers vectorize.
 */
#include "kernels/kernels.h"

#include <string.h>

static void conv_forward(float *out, const float *in, const float *w, const float *b, int H, int W,
                         int C, int K, int F, int relu)
{
    const int OH = H - K + 1, OW = W - K + 1, KC = K * C;
    for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
            float *o = out + ((size_t)oy * OW + ox) * F;
            memcpy(o, b, sizeof(float) * (size_t)F);
            for (int ky = 0; ky < K; ky++) {
                const float *x = in + ((size_t)(oy + ky) * W + ox) * C;
                const float *wk = w + (size_t)ky * KC * F;
                for (int k = 0; k < KC; k++) {
                    const float xv = x[k];
                    const float *wr = wk + (size_t)k * F;
                    for (int f = 0; f < F; f++) o[f] += xv * wr[f];
                }
            }
            if (relu)
                for (int f = 0; f < F; f++) o[f] = o[f] > 0.0f ? o[f] : 0.0f;
        }
}

static void conv_wgrad(float *dw, float *db, const float *in, const float *dout, int H, int W, int C,
                       int K, int F)
{
    const int OH = H - K + 1, OW = W - K + 1, KC = K * C;
    for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
            const float *d = dout + ((size_t)oy * OW + ox) * F;
            for (int f = 0; f < F; f++) db[f] += d[f];
            for (int ky = 0; ky < K; ky++) {
                const float *x = in + ((size_t)(oy + ky) * W + ox) * C;
                float *dwk = dw + (size_t)ky * KC * F;
                for (int k = 0; k < KC; k++) {
                    const float xv = x[k];
                    float *dr = dwk + (size_t)k * F;
                    for (int f = 0; f < F; f++) dr[f] += xv * d[f];
                }
            }
        }
}

static void conv_dgrad(float *din, const float *dout, const float *wt, int H, int W, int C, int K,
                       int F)
{
    const int OH = H - K + 1, OW = W - K + 1;
    for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
            const float *d = dout + ((size_t)oy * OW + ox) * F;
            for (int ky = 0; ky < K; ky++)
                for (int kx = 0; kx < K; kx++) {
                    float *x = din + ((size_t)(oy + ky) * W + ox + kx) * C;
                    const float *wt_tap = wt + (size_t)(ky * K + kx) * F * C;
                    for (int f = 0; f < F; f++) {
                        const float dv = d[f];
                        const float *wr = wt_tap + (size_t)f * C;
                        for (int c = 0; c < C; c++) x[c] += dv * wr[c];
                    }
                }
        }
}

static void pool_forward(float *out, const float *in, int H, int W, int C, int S)
{
    const int OH = H / S, OW = W / S;
    for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
            float *o = out + ((size_t)oy * OW + ox) * C;
            memcpy(o, in + ((size_t)oy * S * W + ox * S) * C, sizeof(float) * (size_t)C);
            for (int dy = 0; dy < S; dy++)
                for (int dx = 0; dx < S; dx++) {
                    const float *x = in + ((size_t)(oy * S + dy) * W + ox * S + dx) * C;
                    for (int c = 0; c < C; c++) o[c] = x[c] > o[c] ? x[c] : o[c];
                }
        }
}

static void pool_backward(float *din, const float *dout, const float *in, const float *out, int H,
                          int W, int C, int S, int relu)
{
    const int OH = H / S, OW = W / S;
    memset(din, 0, sizeof(float) * (size_t)H * W * C);
    for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
            const float *o = out + ((size_t)oy * OW + ox) * C;
            const float *d = dout + ((size_t)oy * OW + ox) * C;
            for (int c = 0; c < C; c++) {
                int done = 0;
                for (int dy = 0; dy < S && !done; dy++)
                    for (int dx = 0; dx < S && !done; dx++) {
                        size_t i = ((size_t)(oy * S + dy) * W + ox * S + dx) * C + c;
                        if (in[i] == o[c]) {
                            din[i] = relu && in[i] <= 0.0f ? 0.0f : d[c];
                            done = 1;
                        }
                    }
            }
        }
}

/* No faster algorithms: conv_plan keeps every convolution direct. */
const hcr_kernels kernels_generic = {
    .name = "generic",
    .conv_forward = conv_forward,
    .conv_wgrad = conv_wgrad,
    .conv_dgrad = conv_dgrad,
    .pool_forward = pool_forward,
    .pool_backward = pool_backward,
};

void conv_pack_wt(float *wt, const float *w, int K, int C, int F)
{
    for (int tap = 0; tap < K * K; tap++)
        for (int c = 0; c < C; c++)
            for (int f = 0; f < F; f++)
                wt[((size_t)tap * F + f) * C + c] = w[((size_t)tap * C + c) * F + f];
}

void relu_mask(float *dout, const float *out, long n)
{
    /* A select, not a conditional store, so that it vectorizes without
     * branches (half the units are off: a branch would mispredict). */
    for (long i = 0; i < n; i++) dout[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}
