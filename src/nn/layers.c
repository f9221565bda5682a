/*
 * layers.c - forward and backward of every layer (see layers.h).
 *
 * Convolutions and dense layers are matrix products handed to BLAS
 * (cblas_sgemm): a convolution becomes one product over the whole batch
 * after im2col, so the library sees large, well-shaped matrices. Only the
 * data movement around the products (im2col, col2im, bias, ReLU, pooling)
 * is written here, as it is specific to the model's layout.
 * Every loop that is split across threads writes disjoint outputs and every
 * reduction runs in a fixed order, so results do not depend on scheduling.
 */
#include "nn/layers.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------ convolution */

static void im2col(float *col, const float *in, int B, int H, int W, int C, int K)
{
    const int OH = H - K + 1, OW = W - K + 1;
    const size_t row_len = (size_t)K * K * C;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        for (int oy = 0; oy < OH; oy++) {
            for (int ox = 0; ox < OW; ox++) {
                float *dst = col + (((size_t)b * OH + oy) * OW + ox) * row_len;
                for (int ky = 0; ky < K; ky++) {
                    const float *src = in + (((size_t)b * H + oy + ky) * W + ox) * C;
                    memcpy(dst, src, (size_t)K * C * sizeof(float));
                    dst += (size_t)K * C;
                }
            }
        }
    }
}

static void col2im(float *din, const float *col, int B, int H, int W, int C, int K)
{
    const int OH = H - K + 1, OW = W - K + 1;
    const size_t row_len = (size_t)K * K * C;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *img = din + (size_t)b * H * W * C;
        memset(img, 0, (size_t)H * W * C * sizeof(float));
        for (int oy = 0; oy < OH; oy++) {
            for (int ox = 0; ox < OW; ox++) {
                const float *src = col + (((size_t)b * OH + oy) * OW + ox) * row_len;
                for (int ky = 0; ky < K; ky++) {
                    float *dst = img + ((size_t)(oy + ky) * W + ox) * C;
                    for (int i = 0; i < K * C; i++) dst[i] += src[i];
                    src += (size_t)K * C;
                }
            }
        }
    }
}

/* out[M][F] += b[F], then ReLU if asked. Single-threaded: the model calls
 * the dense layers from inside its own parallel region, one share of the
 * batch per thread. */
static void bias_relu(float *out, const float *b, size_t M, int F, int relu)
{
    for (size_t r = 0; r < M; r++) {
        float *o = out + r * F;
        for (int f = 0; f < F; f++) {
            float v = o[f] + b[f];
            o[f] = relu && v < 0.0f ? 0.0f : v;
        }
    }
}

/* dout *= (out > 0) */
static void relu_backward(float *dout, const float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) dout[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

/* db[F] = sum over the M rows of dout, in a fixed order. */
static void bias_grad(float *db, const float *dout, size_t M, int F)
{
    memset(db, 0, (size_t)F * sizeof(float));
    for (size_t r = 0; r < M; r++) {
        const float *d = dout + r * F;
        for (int f = 0; f < F; f++) db[f] += d[f];
    }
}

void conv2d_forward(float *out, float *col, const float *in, const float *w, const float *b,
                    int B, int H, int W, int C, int K, int F, int relu)
{
    const int OH = H - K + 1, OW = W - K + 1;
    const int M = B * OH * OW, KC = K * K * C;
    im2col(col, in, B, H, W, C, K);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, F, KC, 1.0f, col, KC, w, F, 0.0f,
                out, F);
    bias_relu(out, b, (size_t)M, F, relu);
}

void conv2d_backward(float *din, float *dw, float *db, float *dout, const float *out, float *col,
                     const float *w, int B, int H, int W, int C, int K, int F, int relu)
{
    const int OH = H - K + 1, OW = W - K + 1;
    const int M = B * OH * OW, KC = K * K * C;
    if (relu) relu_backward(dout, out, (size_t)M * F);
    /* dw[KC][F] = col^T . dout */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, KC, F, M, 1.0f, col, KC, dout, F, 0.0f,
                dw, F);
    bias_grad(db, dout, (size_t)M, F);
    if (din) {
        /* dcol[M][KC] = dout . w^T, written over the patches, then folded back. */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, KC, F, 1.0f, dout, F, w, F, 0.0f,
                    col, KC);
        col2im(din, col, B, H, W, C, K);
    }
}

void conv2d_forward_ref(float *out, const float *in, const float *w, const float *b,
                        int B, int H, int W, int C, int K, int F, int relu)
{
    const int OH = H - K + 1, OW = W - K + 1;
    for (int n = 0; n < B; n++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++)
                for (int f = 0; f < F; f++) {
                    double s = b[f];
                    for (int ky = 0; ky < K; ky++)
                        for (int kx = 0; kx < K; kx++)
                            for (int c = 0; c < C; c++)
                                s += (double)in[(((size_t)n * H + oy + ky) * W + ox + kx) * C + c] *
                                     w[(((size_t)ky * K + kx) * C + c) * F + f];
                    float v = (float)s;
                    out[(((size_t)n * OH + oy) * OW + ox) * F + f] = relu && v < 0 ? 0 : v;
                }
}

void conv2d_backward_ref(float *din, float *dw, float *db, const float *dout, const float *out,
                         const float *in, const float *w, int B, int H, int W, int C, int K,
                         int F, int relu)
{
    const int OH = H - K + 1, OW = W - K + 1;
    memset(dw, 0, sizeof(float) * (size_t)K * K * C * F);
    memset(db, 0, sizeof(float) * (size_t)F);
    if (din) memset(din, 0, sizeof(float) * (size_t)B * H * W * C);
    for (int n = 0; n < B; n++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++)
                for (int f = 0; f < F; f++) {
                    size_t o = (((size_t)n * OH + oy) * OW + ox) * F + f;
                    float g = dout[o];
                    if (relu && out[o] <= 0) g = 0;
                    db[f] += g;
                    for (int ky = 0; ky < K; ky++)
                        for (int kx = 0; kx < K; kx++)
                            for (int c = 0; c < C; c++) {
                                size_t i = (((size_t)n * H + oy + ky) * W + ox + kx) * C + c;
                                size_t k = (((size_t)ky * K + kx) * C + c) * F + f;
                                dw[k] += g * in[i];
                                if (din) din[i] += g * w[k];
                            }
                }
}

/* ------------------------------------------------------------- max pooling */

void maxpool_forward(float *out, int32_t *argmax, const float *in, int B, int H, int W, int C, int S)
{
    const int OH = H / S, OW = W / S;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++)
                for (int c = 0; c < C; c++) {
                    size_t best = (((size_t)b * H + oy * S) * W + ox * S) * C + c;
                    float m = in[best];
                    for (int dy = 0; dy < S; dy++)
                        for (int dx = 0; dx < S; dx++) {
                            size_t i = (((size_t)b * H + oy * S + dy) * W + ox * S + dx) * C + c;
                            if (in[i] > m) {
                                m = in[i];
                                best = i;
                            }
                        }
                    size_t o = (((size_t)b * OH + oy) * OW + ox) * C + c;
                    out[o] = m;
                    argmax[o] = (int32_t)best;
                }
}

void maxpool_backward(float *din, const float *dout, const int32_t *argmax, int B, int H, int W,
                      int C, int S)
{
    const int OH = H / S, OW = W / S;
    const size_t per_out = (size_t)OH * OW * C;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        memset(din + (size_t)b * H * W * C, 0, sizeof(float) * (size_t)H * W * C);
        /* Each input index belongs to one window of image b: no races. */
        for (size_t o = (size_t)b * per_out; o < (size_t)(b + 1) * per_out; o++)
            din[argmax[o]] += dout[o];
    }
}

/* ------------------------------------------------------------------ dense */

void dense_forward(float *out, const float *in, const float *w, const float *b, int B, int NI, int NO,
                   int relu)
{
    if (B == 1) /* one image: a matrix-vector product reads w once, without packing it */
        cblas_sgemv(CblasRowMajor, CblasTrans, NI, NO, 1.0f, w, NO, in, 1, 0.0f, out, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, NO, NI, 1.0f, in, NI, w, NO, 0.0f, out, NO);
    bias_relu(out, b, (size_t)B, NO, relu);
}

void dense_backward(float *din, float *dw, float *db, float *dout, const float *out, const float *in,
                    const float *w, int B, int NI, int NO, int relu)
{
    if (relu) relu_backward(dout, out, (size_t)B * NO);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, NI, NO, B, 1.0f, in, NI, dout, NO, 0.0f, dw, NO);
    bias_grad(db, dout, (size_t)B, NO);
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, NI, NO, 1.0f, dout, NO, w, NO, 0.0f,
                    din, NI);
}

void dense_forward_ref(float *out, const float *in, const float *w, const float *b, int B, int NI,
                       int NO, int relu)
{
    for (int n = 0; n < B; n++)
        for (int o = 0; o < NO; o++) {
            double s = b[o];
            for (int i = 0; i < NI; i++) s += (double)in[(size_t)n * NI + i] * w[(size_t)i * NO + o];
            float v = (float)s;
            out[(size_t)n * NO + o] = relu && v < 0 ? 0 : v;
        }
}

void dense_backward_ref(float *din, float *dw, float *db, const float *dout, const float *out,
                        const float *in, const float *w, int B, int NI, int NO, int relu)
{
    memset(dw, 0, sizeof(float) * (size_t)NI * NO);
    memset(db, 0, sizeof(float) * (size_t)NO);
    if (din) memset(din, 0, sizeof(float) * (size_t)B * NI);
    for (int n = 0; n < B; n++)
        for (int o = 0; o < NO; o++) {
            float g = dout[(size_t)n * NO + o];
            if (relu && out[(size_t)n * NO + o] <= 0) g = 0;
            db[o] += g;
            for (int i = 0; i < NI; i++) {
                dw[(size_t)i * NO + o] += in[(size_t)n * NI + i] * g;
                if (din) din[(size_t)n * NI + i] += w[(size_t)i * NO + o] * g;
            }
        }
}

/* ---------------------------------------------------------------- dropout */

void dropout_mask(float *mask, size_t n, float rate, hcr_rng *rng)
{
    const float keep = 1.0f - rate, scale = 1.0f / keep;
    for (size_t i = 0; i < n; i++) mask[i] = hcr_rng_uniform(rng) < keep ? scale : 0.0f;
}

void dropout_apply(float *out, const float *in, const float *mask, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = in[i] * mask[i];
}

void dropout_forward(float *out, float *mask, const float *in, size_t n, float rate, hcr_rng *rng)
{
    dropout_mask(mask, n, rate, rng);
    dropout_apply(out, in, mask, n);
}

void dropout_backward(float *din, const float *dout, const float *mask, size_t n)
{
    dropout_apply(din, dout, mask, n);
}

/* ------------------------------------------------------ softmax and loss */

void softmax_forward(float *probs, const float *logits, int B, int N)
{
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * N;
        float *p = probs + (size_t)b * N;
        float mx = z[0];
        for (int i = 1; i < N; i++) mx = z[i] > mx ? z[i] : mx;
        double sum = 0;
        for (int i = 0; i < N; i++) {
            p[i] = expf(z[i] - mx);
            sum += p[i];
        }
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < N; i++) p[i] *= inv;
    }
}

double cross_entropy(const float *probs, const uint8_t *labels, int B, int N, int *correct)
{
    double total = 0;
    int right = 0;
    for (int b = 0; b < B; b++) {
        const float *p = probs + (size_t)b * N;
        float pl = p[labels[b]];
        total -= log(pl > 1e-7f ? (double)pl : 1e-7);
        int best = 0;
        for (int i = 1; i < N; i++)
            if (p[i] > p[best]) best = i;
        right += best == labels[b];
    }
    if (correct) *correct = right;
    return B > 0 ? total / B : 0.0;
}

void softmax_cross_entropy_backward(float *dlogits, const float *probs, const uint8_t *labels,
                                    int B, int N, int total)
{
    const float inv = 1.0f / (float)total;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < N; i++)
            dlogits[(size_t)b * N + i] =
                (probs[(size_t)b * N + i] - (i == labels[b] ? 1.0f : 0.0f)) * inv;
}
