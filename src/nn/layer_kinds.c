/*
 * layer_kinds.c - the table of layer kinds: one row per kind (at the end
 * of this file), and the small functions that describe each kind (how its
 * spec token reads, its output shape, its parameters and tensors, their
 * initial values, its workspace, how it is planned). Its passes (forward,
 * backward) are in layer_passes.c. spec.c and model.c go through the rows
 * only; this file and the enum in model.h are the only places that name a
 * kind.
 *
 * Adding a layer kind
 *   1. Add LAYER_<KIND> to the enum in model.h, before LAYER_KINDS.
 *   2. Here: its description functions (parse, shape, count; tensors and
 *      init if it has parameters; reserve if it needs buffers beyond its
 *      output and output gradient; see layer_ops in layer_kinds.h) and its
 *      row in the table. The row's token, syntax and Keras names are all
 *      that spec parsing, the error messages and the summary need.
 *   3. In layer_passes.c: its forward and backward over a batch (or one
 *      image), declared in layer_kinds.h; the arithmetic itself goes in
 *      layers.c (batched, BLAS) or kernels/ (per image, by instruction set).
 *   4. Tests: tests/test_layers.c (the arithmetic against plain loops),
 *      tests/test_model.c (shapes and summary of a spec using it, and the
 *      whole-model gradient check against finite differences), and, if it
 *      has tensors, a save/load round trip (tests/test_modelfile.c).
 */
#include "nn/layer_kinds.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t in_size(const layer *l) { return (size_t)l->in_h * l->in_w * l->in_c; }

/* Keras's default for kernels: Glorot uniform, limit sqrt(6 / (fan_in +
 * fan_out)); biases start at zero. */
static void glorot_uniform(layer *l, double fan_in, double fan_out, hcr_rng *rng)
{
    float limit = (float)sqrt(6.0 / (fan_in + fan_out));
    for (size_t j = 0; j < l->w_count; j++) l->w[j] = (2.0f * hcr_rng_uniform(rng) - 1.0f) * limit;
    memset(l->b, 0, l->b_count * sizeof(float));
}

/* A layer whose output has its input's shape. */
static int same_shape(layer *l)
{
    l->out_h = l->in_h;
    l->out_w = l->in_w;
    l->out_c = l->in_c;
    return 1;
}

/* The kernel and bias tensors of a convolution or dense layer. */
static int kernel_and_bias(const layer *l, layer_tensor *t, int ndim, const int64_t *kshape)
{
    t[0] = (layer_tensor){"kernel", l->w, l->w_count, ndim, {0}};
    memcpy(t[0].shape, kshape, sizeof(int64_t) * (size_t)ndim);
    t[1] = (layer_tensor){"bias", l->b, l->b_count, 1, {l->out_c}};
    return 2;
}

/* ------------------------------------------------------------ Conv2D */

/* conv<F>[x<K>]: F filters, K x K (default 3, at most 15), ReLU. */
static hcr_status conv_parse(layer *l, const char *a, layer *prev, const spec_token *t)
{
    (void)prev;
    long f, k = 3;
    if (!spec_int(&a, &f)) return spec_unreadable(t);
    if (*a == 'x') {
        a++;
        if (!spec_int(&a, &k)) return spec_unreadable(t);
    }
    if (*a || k > 15) return spec_unreadable(t);
    l->k = (int)k;
    l->out_c = (int)f;
    l->relu = 1;
    return HCR_OK;
}

/* Valid padding, stride 1. */
static int conv_shape_of(layer *l)
{
    l->out_h = l->in_h - l->k + 1;
    l->out_w = l->in_w - l->k + 1;
    return l->out_h > 0 && l->out_w > 0;
}

static layer_counts conv_count(const layer *l)
{
    return (layer_counts){(size_t)l->k * l->k * l->in_c * l->out_c, (size_t)l->out_c, 0};
}

static int conv_tensors(const layer *l, layer_tensor *t)
{
    const int64_t ks[4] = {l->k, l->k, l->in_c, l->out_c}; /* HWIO, as Keras */
    return kernel_and_bias(l, t, 4, ks);
}

static void conv_init(layer *l, hcr_rng *rng)
{
    glorot_uniform(l, (double)l->k * l->k * l->in_c, (double)l->k * l->k * l->out_c, rng);
}

/* The algorithms (kernels/dispatch.c), from the shape and whether a
 * pooling follows; a pooling after a ReLU convolution applies the ReLU's
 * gradient in its own backward, and after a fused one does nothing. */
static void conv_plan_layer(layer *layers, int n, int i)
{
    layer *l = &layers[i];
    layer *pool = i + 1 < n && layers[i + 1].kind == LAYER_POOL ? &layers[i + 1] : NULL;
    const conv_shape s = {l->in_h, l->in_w, l->in_c, l->k,   l->out_c,
                          l->relu, pool ? pool->k : 0, i == 0};
    l->plan = conv_plan_make(kernels_select(), &s);
    if (!pool) return;
    pool->fused_into_prev = l->plan.forward == CONV_FUSED_POOL;
    l->relu_by_pool = pool->pool_relu = l->relu;
}

/* The kernel copies the plan's algorithms read. */
static void conv_reserve(layer *l, int n, ws_cursor *c)
{
    (void)n;
    if (l->plan.fwd_floats) l->wfwd = ws_take(c, l->plan.fwd_floats);
    if (l->plan.bwd_floats) l->wbwd = ws_take(c, l->plan.bwd_floats);
}

static double conv_macs(const layer *l)
{
    return (double)l->out_h * l->out_w * l->out_c * l->k * l->k * l->in_c;
}

/* ------------------------------------------------------ MaxPooling2D */

/* pool[<S>]: S x S windows, stride S (default 2, at most 16). */
static hcr_status pool_parse(layer *l, const char *a, layer *prev, const spec_token *t)
{
    (void)prev;
    long s = 2;
    if (*a && !spec_int(&a, &s)) return spec_unreadable(t);
    if (*a || s > 16) return spec_unreadable(t);
    l->k = (int)s;
    return HCR_OK;
}

/* Floor: a trailing row or column is dropped. */
static int pool_shape(layer *l)
{
    l->out_h = l->in_h / l->k;
    l->out_w = l->in_w / l->k;
    l->out_c = l->in_c;
    return l->out_h > 0 && l->out_w > 0;
}

/* ----------------------------------------------------------- Flatten */

static int flatten_shape(layer *l)
{
    /* Saturated, not wrapped: a size past INT_MAX then fails the
     * parameter limit of the dense layer after it. */
    long long units = (long long)l->in_h * l->in_w * l->in_c;
    l->out_h = l->out_w = 1;
    l->out_c = units > INT_MAX ? INT_MAX : (int)units;
    return 1;
}

layer layer_implied_flatten(void) { return (layer){.kind = LAYER_FLATTEN}; }

/* ------------------------------------------------------------- Dense */

/* dense<N>: N units, ReLU. */
static hcr_status dense_parse(layer *l, const char *a, layer *prev, const spec_token *t)
{
    (void)prev;
    long units;
    if (!spec_int(&a, &units) || *a) return spec_unreadable(t);
    l->out_c = (int)units;
    l->relu = 1;
    return HCR_OK;
}

static int dense_shape(layer *l)
{
    l->out_h = l->out_w = 1;
    return l->in_h == 1 && l->in_w == 1;
}

static layer_counts dense_count(const layer *l)
{
    return (layer_counts){in_size(l) * l->out_c, (size_t)l->out_c, 0};
}

static int dense_tensors(const layer *l, layer_tensor *t)
{
    const int64_t ks[2] = {(int64_t)in_size(l), l->out_c}; /* [in][out], as Keras */
    return kernel_and_bias(l, t, 2, ks);
}

static void dense_init(layer *l, hcr_rng *rng) { glorot_uniform(l, (double)in_size(l), l->out_c, rng); }

static double dense_macs(const layer *l) { return (double)in_size(l) * l->out_c; }

layer layer_classifier(int num_classes)
{
    return (layer){.kind = LAYER_DENSE, .out_c = num_classes, .relu = 0};
}

/* ------------------------------------------------ BatchNormalization */

/* bn: normalizes the conv or dense layer before it. Keras's Conv ->
 * BatchNormalization -> ReLU: the ReLU moves from the layer before to
 * after the normalization. */
static hcr_status bn_parse(layer *l, const char *a, layer *prev, const spec_token *t)
{
    if (*a) return spec_unreadable(t);
    if (!prev || !(layer_ops_of(prev)->flags & LK_NORMALIZABLE))
        return hcr__fail(HCR_EINVAL, "spec '%s': 'bn' must follow a conv or dense layer", t->spec);
    prev->relu = 0;
    l->relu = 1;
    return HCR_OK;
}

/* gamma and beta (trainable), the moving mean and variance (state). */
static layer_counts bn_count(const layer *l)
{
    return (layer_counts){(size_t)l->out_c, (size_t)l->out_c, 2 * (size_t)l->out_c};
}

static int bn_tensors(const layer *l, layer_tensor *t)
{
    const size_t c = (size_t)l->out_c;
    t[0] = (layer_tensor){"gamma", l->w, l->w_count, 1, {l->out_c}};
    t[1] = (layer_tensor){"beta", l->b, l->b_count, 1, {l->out_c}};
    t[2] = (layer_tensor){"moving_mean", l->mmean, c, 1, {l->out_c}};
    t[3] = (layer_tensor){"moving_variance", l->mvar, c, 1, {l->out_c}};
    return 4;
}

static void bn_bind_state(layer *l, float *state)
{
    l->mmean = state;
    l->mvar = state + l->out_c;
}

/* Keras: gamma 1, beta 0, mean 0, variance 1. */
static void bn_init(layer *l, hcr_rng *rng)
{
    (void)rng;
    for (int c = 0; c < l->out_c; c++) {
        l->w[c] = 1.0f;
        l->b[c] = 0.0f;
        l->mmean[c] = 0.0f;
        l->mvar[c] = 1.0f;
    }
}

/* The batch's statistics, and the sums of the backward. */
static void bn_reserve(layer *l, int n, ws_cursor *c)
{
    (void)n;
    l->bstat = ws_take(c, 2 * (size_t)l->out_c);
    l->bsum = ws_take(c, 2 * (size_t)l->out_c);
}

/* ----------------------------------------------------------- Dropout */

/* drop<R>: a rate in [0, 1). */
static hcr_status dropout_parse(layer *l, const char *a, layer *prev, const spec_token *t)
{
    (void)prev;
    char *end;
    errno = 0;
    double r = strtod(a, &end);
    if (end == a || *end || errno || !(r >= 0.0 && r < 1.0))
        return hcr__fail(HCR_EINVAL, "spec '%s': '%s': dropout rate must be a number in [0, 1)",
                         t->spec, t->token);
    l->rate = (float)r;
    return HCR_OK;
}

static void dropout_reserve(layer *l, int n, ws_cursor *c)
{
    l->mask = ws_take(c, layer_out_size(l) * n);
}

/* ------------------------------------------------------------- table */

/* In the order of the error message's list of tokens. */
const layer_ops layer_kinds[LAYER_KINDS] = {
    [LAYER_CONV] = {
        .token = "conv", .syntax = "conv<F>[x<K>]",
        .keras_class = "Conv2D", .keras_name = "conv2d",
        .flags = LK_SPATIAL | LK_NORMALIZABLE, .run = RUN_IMAGE,
        .parse = conv_parse, .shape = conv_shape_of, .count = conv_count,
        .tensors = conv_tensors, .init = conv_init, .plan = conv_plan_layer,
        .reserve = conv_reserve, .macs = conv_macs,
        .prepare_forward = conv_layer_prepare_forward,
        .prepare_backward = conv_layer_prepare_backward,
        .forward = conv_layer_forward,
        .backward_begin = conv_layer_backward_begin,
        .backward = conv_layer_backward,
        .backward_end = conv_layer_backward_end,
    },
    [LAYER_POOL] = {
        .token = "pool", .syntax = "pool[<S>]",
        .keras_class = "MaxPooling2D", .keras_name = "max_pooling2d",
        .flags = LK_SPATIAL, .run = RUN_IMAGE,
        .parse = pool_parse, .shape = pool_shape,
        .forward = pool_layer_forward, .backward = pool_layer_backward,
    },
    [LAYER_FLATTEN] = {
        .keras_class = "Flatten", .keras_name = "flatten",
        .flags = LK_FLAT_OUT | LK_ALIAS, .run = RUN_SHARE,
        .shape = flatten_shape,
    },
    [LAYER_DENSE] = {
        .token = "dense", .syntax = "dense<N>",
        .keras_class = "Dense", .keras_name = "dense",
        .flags = LK_FLAT_IN | LK_FLAT_OUT | LK_NORMALIZABLE, .run = RUN_SHARE,
        .parse = dense_parse, .shape = dense_shape, .count = dense_count,
        .tensors = dense_tensors, .init = dense_init, .macs = dense_macs,
        .forward = dense_layer_forward, .backward = dense_layer_backward,
    },
    [LAYER_BN] = {
        .token = "bn", .syntax = "bn",
        .keras_class = "BatchNormalization", .keras_name = "batch_normalization",
        .run = RUN_BATCH,
        .parse = bn_parse, .shape = same_shape, .count = bn_count,
        .tensors = bn_tensors, .bind_state = bn_bind_state, .init = bn_init,
        .reserve = bn_reserve,
        .forward = bn_layer_forward, .backward = bn_layer_backward,
    },
    [LAYER_DROPOUT] = {
        .token = "drop", .syntax = "drop<R>",
        .keras_class = "Dropout", .keras_name = "dropout",
        .run = RUN_SHARE,
        .parse = dropout_parse, .shape = same_shape, .reserve = dropout_reserve,
        .draw = dropout_layer_draw,
        .forward = dropout_layer_forward, .backward = dropout_layer_backward,
    },
};
