/*
 * layers.h - the network's layers as pairs of plain functions over flat
 * float arrays, forward next to backward (layers.c).
 *
 * Shapes are spelled out in the parameter names: B images, an H x W x C
 * input (NHWC), K x K kernels, F filters, S x S pooling windows. Backward
 * functions write (not accumulate) the parameter gradients of the batch.
 * The *_ref versions are plain loops kept as the reference the fast paths
 * are tested against.
 *
 * The model runs dense, dropout and softmax layers from here. Convolution
 * and pooling run through the per-image kernels of kernels.h instead; the
 * batched conv2d_forward/backward (im2col + BLAS) and maxpool_* (with
 * argmax) below stay as the baseline bench/bench_kernels compares against
 * and as references in the tests.
 */
#ifndef HCR_LAYERS_H
#define HCR_LAYERS_H

#include "core/internal.h"

/* Valid 3-D convolution, stride 1, kernel HWIO [K][K][C][F], optional ReLU.
 * col receives the im2col patches (B*OH*OW rows of K*K*C), which backward
 * reuses. out is B x OH x OW x F with OH = H-K+1, OW = W-K+1. */
void conv2d_forward(float *out, float *col, const float *in, const float *w, const float *b,
                    int B, int H, int W, int C, int K, int F, int relu);
/* dout is overwritten (ReLU mask applied), col is overwritten (used as the
 * patch gradient). din may be NULL (first layer). */
void conv2d_backward(float *din, float *dw, float *db, float *dout, const float *out, float *col,
                     const float *w, int B, int H, int W, int C, int K, int F, int relu);

void conv2d_forward_ref(float *out, const float *in, const float *w, const float *b,
                        int B, int H, int W, int C, int K, int F, int relu);
void conv2d_backward_ref(float *din, float *dw, float *db, const float *dout, const float *out,
                         const float *in, const float *w, int B, int H, int W, int C, int K,
                         int F, int relu);

/* S x S max pooling, stride S, floor (a trailing row/column is dropped).
 * argmax gets, for each output, the index into `in` of the maximum; ties go
 * to the first element in row-major window order. */
void maxpool_forward(float *out, int32_t *argmax, const float *in, int B, int H, int W, int C, int S);
void maxpool_backward(float *din, const float *dout, const int32_t *argmax, int B, int H, int W,
                      int C, int S);

/* out[B][NO] = in[B][NI] . w[NI][NO] + b[NO], optional ReLU. */
void dense_forward(float *out, const float *in, const float *w, const float *b, int B, int NI, int NO,
                   int relu);
/* dout is overwritten (ReLU mask applied). din may be NULL. */
void dense_backward(float *din, float *dw, float *db, float *dout, const float *out, const float *in,
                    const float *w, int B, int NI, int NO, int relu);

void dense_forward_ref(float *out, const float *in, const float *w, const float *b, int B, int NI,
                       int NO, int relu);
void dense_backward_ref(float *din, float *dw, float *db, const float *dout, const float *out,
                        const float *in, const float *w, int B, int NI, int NO, int relu);

/* Inverted dropout: each of the n units is kept with probability 1-rate and
 * scaled by 1/(1-rate); mask records the factor (0 or 1/(1-rate)). */
void dropout_forward(float *out, float *mask, const float *in, size_t n, float rate, hcr_rng *rng);
/* The two halves of dropout_forward: draw the mask, then out = in * mask
 * (the backward is the same product with the gradient). */
void dropout_mask(float *mask, size_t n, float rate, hcr_rng *rng);
void dropout_apply(float *out, const float *in, const float *mask, size_t n);
void dropout_backward(float *din, const float *dout, const float *mask, size_t n);

/* Row-wise softmax of B x N logits, stable for large logits. */
void softmax_forward(float *probs, const float *logits, int B, int N);
/* Mean over the batch of -log p[label]; probabilities are clamped at 1e-7
 * as Keras does. *correct (may be NULL) counts rows whose argmax is the label. */
double cross_entropy(const float *probs, const uint8_t *labels, int B, int N, int *correct);
/* Gradient w.r.t. the logits of B rows of the mean cross-entropy over a
 * batch of `total` images (B <= total: a thread's share): (p - onehot) / total. */
void softmax_cross_entropy_backward(float *dlogits, const float *probs, const uint8_t *labels,
                                    int B, int N, int total);

#endif
