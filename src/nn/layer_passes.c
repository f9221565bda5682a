/*
 * layer_passes.c - each kind's forward and backward, named by the table in
 * layer_kinds.c and called by model.c's passes on images [b0, b0+nb) (one
 * image, a thread's share or the whole batch: layer_run in layer_kinds.h).
 * Convolutions run through the plan chosen when the model was built
 * (kernels/dispatch.c), pooling through the selected kernels, dense
 * layers through BLAS (layers.c); batch normalization sums across the
 * pass's threads here.
 */
#include "nn/layer_kinds.h"
#include "nn/layers.h"

#include <math.h>
#include <string.h>

#define BN_EPSILON 1e-3f /* Keras's epsilon */
/* The moving statistics keep 90% of their value per step (PyTorch's
 * choice; Keras keeps 99%, which leaves them far from the data for the
 * first few hundred steps, so short runs evaluate badly). */
#define BN_MOMENTUM 0.9f

/* Where images from b0 on sit in layer i's buffers. */
typedef struct span {
    size_t isz, osz;  /* per-image floats of the input and output       */
    const float *in;
    float *out, *dout;
    float *din;       /* the input's gradient, or NULL when none is needed:
                         the first layer, or the image through a Flatten
                         (whose dout is NULL)                             */
} span;

static span span_of(const hcr_model *m, int i, int b0)
{
    const layer *l = &m->layers[i];
    span s;
    s.isz = layer_in_size(l);
    s.osz = layer_out_size(l);
    s.in = model_layer_input(m, i) + (size_t)b0 * s.isz;
    s.out = l->out + (size_t)b0 * s.osz;
    s.dout = l->dout ? l->dout + (size_t)b0 * s.osz : NULL;
    float *prev = i ? m->layers[i - 1].dout : NULL;
    s.din = prev ? prev + (size_t)b0 * s.isz : NULL;
    return s;
}

/* The gradient of parameters p in the gradient array g. */
static float *grad_of(const hcr_model *m, float *g, const float *p)
{
    return p ? g + (p - m->params) : NULL;
}

/* ------------------------------------------------------------ Conv2D */

void conv_layer_prepare_forward(layer *l) { conv_plan_prepare_forward(&l->plan, l->wfwd, l->w); }

void conv_layer_prepare_backward(layer *l) { conv_plan_prepare_backward(&l->plan, l->wbwd, l->w); }

void conv_layer_forward(hcr_model *m, int i, int b0, int nb, int training)
{
    const layer *l = &m->layers[i];
    const span s = span_of(m, i, b0);
    if (l->plan.forward == CONV_FUSED_POOL) {
        /* Writes the pooling's output; our own output buffer gets, when
         * training, the route of each pooled gradient instead. */
        const layer *p = &m->layers[i + 1];
        const size_t psz = layer_out_size(p);
        for (int b = 0; b < nb; b++)
            conv_plan_forward_pool(&l->plan, p->out + (size_t)(b0 + b) * psz,
                                   training ? s.out + b * s.osz : NULL, s.in + b * s.isz, l->w, l->b);
        return;
    }
    for (int b = 0; b < nb; b++)
        conv_plan_forward(&l->plan, s.out + b * s.osz, s.in + b * s.isz, l->w, l->wfwd, l->b);
}

/* A Winograd backward sums the kernel gradient of a thread's images in
 * the transformed domain and transforms it back once, at the end. */
void conv_layer_backward_begin(hcr_model *m, int i, int t)
{
    const layer *l = &m->layers[i];
    if (l->plan.du_floats) memset(model_thread_du(m, l, t), 0, sizeof(float) * l->plan.du_floats);
}

void conv_layer_backward_end(hcr_model *m, int i, int t, float *g)
{
    const layer *l = &m->layers[i];
    if (l->plan.du_floats) conv_plan_wgrad_finish(&l->plan, grad_of(m, g, l->w), model_thread_du(m, l, t));
}

void conv_layer_backward(hcr_model *m, int i, int b0, int nb, int t, float *g)
{
    const layer *l = &m->layers[i];
    const span s = span_of(m, i, b0);
    float *dw = grad_of(m, g, l->w), *db = grad_of(m, g, l->b);
    if (l->plan.backward == CONV_FUSED_POOL) { /* with the pooling's backward */
        const layer *p = &m->layers[i + 1];
        const size_t psz = layer_out_size(p);
        for (int b = 0; b < nb; b++)
            conv_plan_backward_pool(&l->plan, dw, db, s.in + b * s.isz, s.out + b * s.osz,
                                    p->dout + (size_t)(b0 + b) * psz);
        return;
    }
    float *du = l->plan.du_floats ? model_thread_du(m, l, t) : NULL;
    for (int b = 0; b < nb; b++) {
        if (l->relu && !l->relu_by_pool) relu_mask(s.dout + b * s.osz, s.out + b * s.osz, (long)s.osz);
        conv_plan_backward(&l->plan, s.din ? s.din + b * s.isz : NULL, dw, db, du, s.in + b * s.isz,
                           s.dout + b * s.osz, l->wbwd);
    }
}

/* ------------------------------------------------------ MaxPooling2D */

void pool_layer_forward(hcr_model *m, int i, int b0, int nb, int training)
{
    (void)training;
    const layer *l = &m->layers[i];
    if (l->fused_into_prev) return; /* done with the convolution */
    const hcr_kernels *kern = kernels_select();
    const span s = span_of(m, i, b0);
    for (int b = 0; b < nb; b++)
        kern->pool_forward(s.out + b * s.osz, s.in + b * s.isz, l->in_h, l->in_w, l->in_c, l->k);
}

void pool_layer_backward(hcr_model *m, int i, int b0, int nb, int t, float *g)
{
    (void)t, (void)g;
    const layer *l = &m->layers[i];
    const span s = span_of(m, i, b0);
    if (!s.din || l->fused_into_prev) return;
    const hcr_kernels *kern = kernels_select();
    for (int b = 0; b < nb; b++)
        kern->pool_backward(s.din + b * s.isz, s.dout + b * s.osz, s.in + b * s.isz, s.out + b * s.osz,
                            l->in_h, l->in_w, l->in_c, l->k, l->pool_relu);
}

/* ------------------------------------------------------------- Dense */

void dense_layer_forward(hcr_model *m, int i, int b0, int nb, int training)
{
    (void)training;
    const layer *l = &m->layers[i];
    const span s = span_of(m, i, b0);
    if (nb > 0) dense_forward(s.out, s.in, l->w, l->b, nb, (int)s.isz, l->out_c, l->relu);
}

void dense_layer_backward(hcr_model *m, int i, int b0, int nb, int t, float *g)
{
    (void)t;
    const layer *l = &m->layers[i];
    const span s = span_of(m, i, b0);
    float *dw = grad_of(m, g, l->w), *db = grad_of(m, g, l->b);
    if (nb > 0) {
        dense_backward(s.din, dw, db, s.dout, s.out, s.in, l->w, nb, (int)s.isz, l->out_c, l->relu);
    } else { /* a thread without images still writes its gradients */
        memset(dw, 0, sizeof(float) * l->w_count);
        memset(db, 0, sizeof(float) * l->b_count);
    }
}

/* ----------------------------------------------------------- Dropout */

void dropout_layer_draw(layer *l, int n, hcr_rng *rng)
{
    if (l->rate > 0) dropout_mask(l->mask, layer_out_size(l) * n, l->rate, rng);
}

void dropout_layer_forward(hcr_model *m, int i, int b0, int nb, int training)
{
    const layer *l = &m->layers[i];
    const span s = span_of(m, i, b0);
    if (training && l->rate > 0)
        dropout_apply(s.out, s.in, l->mask + (size_t)b0 * s.osz, (size_t)nb * s.osz);
    else
        memcpy(s.out, s.in, sizeof(float) * (size_t)nb * s.osz);
}

void dropout_layer_backward(hcr_model *m, int i, int b0, int nb, int t, float *g)
{
    (void)t, (void)g;
    const layer *l = &m->layers[i];
    const span s = span_of(m, i, b0);
    if (!s.din) return;
    if (l->rate > 0)
        dropout_backward(s.din, s.dout, l->mask + (size_t)b0 * s.osz, (size_t)nb * s.osz);
    else
        memcpy(s.din, s.dout, sizeof(float) * (size_t)nb * s.osz);
}

/* ------------------------------------------------ BatchNormalization */

/*
 * Batch normalization needs the whole batch: per channel, the mean and
 * variance over n*H*W values. Each thread sums its share into its own row
 * of bn_partial (in double), then, after a barrier, one thread adds the rows
 * in thread order (so results do not depend on scheduling) while the
 * others wait. These functions run inside the pass's parallel region and
 * every thread of the team must call them, with the whole batch (b0 = 0,
 * nb = n: RUN_BATCH).
 */

/* Training: from this thread's share `in` of the input, the batch's mean
 * and 1/std into bstat, the moving statistics updated, and the affine map
 * they give into scale and shift. */
static void bn_batch_stats(hcr_model *m, layer *l, int n, share s, const float *in, float *scale,
                           float *shift)
{
    const int C = l->out_c;
    const size_t P = (size_t)l->out_h * l->out_w, rows = (size_t)s.nb * P;
    double *part = m->bn_partial + (size_t)s.t * 2 * C;
    memset(part, 0, sizeof(double) * 2 * (size_t)C);
    for (size_t r = 0; r < rows; r++) {
        const float *x = in + r * C;
        for (int c = 0; c < C; c++) {
            part[c] += x[c];
            part[C + c] += (double)x[c] * x[c];
        }
    }
#pragma omp barrier
#pragma omp single
    {
        const double N = (double)n * (double)P;
        for (int c = 0; c < C; c++) {
            double s1 = 0, s2 = 0;
            for (int t = 0; t < s.nt; t++) {
                s1 += m->bn_partial[(size_t)t * 2 * C + c];
                s2 += m->bn_partial[(size_t)t * 2 * C + C + c];
            }
            const double mu = s1 / N, var = fmax(s2 / N - mu * mu, 0.0);
            const float inv = (float)(1.0 / sqrt(var + BN_EPSILON));
            l->bstat[c] = (float)mu;
            l->bstat[C + c] = inv;
            l->mmean[c] = BN_MOMENTUM * l->mmean[c] + (1 - BN_MOMENTUM) * (float)mu;
            l->mvar[c] = BN_MOMENTUM * l->mvar[c] + (1 - BN_MOMENTUM) * (float)var;
            scale[c] = l->w[c] * inv;
            shift[c] = l->b[c] - (float)mu * scale[c];
        }
    }
}

void bn_layer_forward(hcr_model *m, int i, int b0, int nb, int training)
{
    (void)b0;
    layer *l = &m->layers[i];
    const int n = nb;
    const share s = model_share(n);
    const int C = l->out_c;
    const size_t P = (size_t)l->out_h * l->out_w, rows = (size_t)s.nb * P;
    const float *in = model_layer_input(m, i) + (size_t)s.b0 * P * C;
    float *out = l->out + (size_t)s.b0 * P * C;
    float *scale = l->bsum, *shift = l->bsum + C; /* free until backward */
    if (training) {
        bn_batch_stats(m, l, n, s, in, scale, shift);
    } else {
#pragma omp single
        for (int c = 0; c < C; c++) {
            scale[c] = l->w[c] / sqrtf(l->mvar[c] + BN_EPSILON);
            shift[c] = l->b[c] - l->mmean[c] * scale[c];
        }
    }
    for (size_t r = 0; r < rows; r++) {
        const float *x = in + r * C;
        float *y = out + r * C;
        for (int c = 0; c < C; c++) {
            const float v = x[c] * scale[c] + shift[c];
            y[c] = l->relu && v < 0 ? 0.0f : v;
        }
    }
}

/* dy (through the ReLU), then dgamma = sum dy*xhat, dbeta = sum dy over the
 * batch, and dx = gamma/std/N * (N*dy - dbeta - xhat*dgamma). The parameter
 * gradients are written by thread 0 into its array; the other threads
 * zero theirs (they are summed afterwards). */
void bn_layer_backward(hcr_model *m, int i, int b0, int nb, int t, float *g)
{
    (void)b0, (void)t;
    layer *l = &m->layers[i];
    const int n = nb;
    const share s = model_share(n);
    const int C = l->out_c;
    const size_t P = (size_t)l->out_h * l->out_w, rows = (size_t)s.nb * P, at = (size_t)s.b0 * P * C;
    const float *in = model_layer_input(m, i) + at, *out = l->out + at;
    float *dout = l->dout + at, *din = m->layers[i - 1].dout + at;
    const float *mean = l->bstat, *inv = l->bstat + C;
    double *part = m->bn_partial + (size_t)s.t * 2 * C;
    memset(part, 0, sizeof(double) * 2 * (size_t)C);
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) {
            const size_t k = r * C + c;
            if (l->relu && out[k] <= 0) dout[k] = 0;
            part[c] += dout[k];
            part[C + c] += (double)dout[k] * ((in[k] - mean[c]) * inv[c]);
        }
#pragma omp barrier
#pragma omp single
    for (int c = 0; c < C; c++) {
        double s1 = 0, s2 = 0;
        for (int tt = 0; tt < s.nt; tt++) {
            s1 += m->bn_partial[(size_t)tt * 2 * C + c];
            s2 += m->bn_partial[(size_t)tt * 2 * C + C + c];
        }
        l->bsum[c] = (float)s1;     /* dbeta  */
        l->bsum[C + c] = (float)s2; /* dgamma */
    }
    float *dgamma = grad_of(m, g, l->w), *dbeta = grad_of(m, g, l->b);
    for (int c = 0; c < C; c++) {
        dbeta[c] = s.t == 0 ? l->bsum[c] : 0.0f;
        dgamma[c] = s.t == 0 ? l->bsum[C + c] : 0.0f;
    }
    const float N = (float)((double)n * (double)P);
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) {
            const size_t k = r * C + c;
            const float xhat = (in[k] - mean[c]) * inv[c];
            din[k] = l->w[c] * inv[c] / N * (N * dout[k] - l->bsum[c] - xhat * l->bsum[C + c]);
        }
}
