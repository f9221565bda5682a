/*
 * model.c - a network built from a spec string: its layers, parameters,
 * per-batch workspace, forward and backward passes, summary table and
 * metadata. The layers' arithmetic is in layers.c.
 */
#include "nn/model.h"

#include "kernels/kernels.h"
#include "nn/layers.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Batch normalization sums per thread in a fixed buffer: at most this many
 * threads run a model that has it. */
#define BN_MAX_THREADS 64
#define BN_EPSILON 1e-3f  /* Keras's epsilon */
/* The moving statistics keep 90% of their value per step (PyTorch's
 * choice; Keras keeps 99%, which leaves them far from the data for the
 * first few hundred steps, so short runs evaluate badly). */
#define BN_MOMENTUM 0.9f

static void free_class_names(hcr_model *m);
struct view_pool;
static struct view_pool *pool_new(void);
static void pool_free(struct view_pool *p);

size_t layer_out_size(const layer *l) { return (size_t)l->out_h * l->out_w * l->out_c; }
static size_t layer_in_size(const layer *l) { return (size_t)l->in_h * l->in_w * l->in_c; }

/* ---------------------------------------------------------- spec parsing */

/* Parse a positive integer at *p; advance *p. */
static int parse_int(const char **p, long *out)
{
    if (!isdigit((unsigned char)**p)) return 0;
    errno = 0;
    char *end;
    long v = strtol(*p, &end, 10);
    if (errno || v <= 0 || v > 100000) return 0;
    *out = v;
    *p = end;
    return 1;
}

static void name_layer(layer *l, int *counter, const char *base)
{
    if (*counter == 0)
        snprintf(l->name, sizeof l->name, "%s", base);
    else
        snprintf(l->name, sizeof l->name, "%s_%d", base, *counter);
    (*counter)++;
}

typedef struct name_counters {
    int conv, pool, flatten, dense, dropout, bn;
} name_counters;

/* Set a layer's output shape from its input shape and kind; 0 if it does
 * not fit. */
static int layer_shape(layer *l)
{
    switch (l->kind) {
    case LAYER_CONV:
        l->out_h = l->in_h - l->k + 1;
        l->out_w = l->in_w - l->k + 1;
        return l->out_h > 0 && l->out_w > 0;
    case LAYER_POOL:
        l->out_h = l->in_h / l->k;
        l->out_w = l->in_w / l->k;
        l->out_c = l->in_c;
        return l->out_h > 0 && l->out_w > 0;
    case LAYER_FLATTEN: {
        /* Saturated, not wrapped: a size past INT_MAX then fails the
         * parameter limit of the dense layer after it. */
        long long units = (long long)l->in_h * l->in_w * l->in_c;
        l->out_h = l->out_w = 1;
        l->out_c = units > INT_MAX ? INT_MAX : (int)units;
        return 1;
    }
    case LAYER_DENSE:
        l->out_h = l->out_w = 1;
        return l->in_h == 1 && l->in_w == 1;
    case LAYER_DROPOUT:
    case LAYER_BN:
        l->out_h = l->in_h;
        l->out_w = l->in_w;
        l->out_c = l->in_c;
        return 1;
    }
    return 0;
}

static hcr_status parse_spec(const char *spec, int rows, int cols, int num_classes, layer *layers,
                             int *nlayers)
{
    name_counters nc = {0};
    int n = 0, h = rows, w = cols, c = 1;
    int flat = 0;
    const char *p = spec;
    char token[MODEL_MAX_TOKEN + 1];

#define ADD_LAYER(KIND)                                                            \
    do {                                                                           \
        if (n >= MODEL_MAX_LAYERS - 2)                                                   \
            return hcr__fail(HCR_EINVAL, "spec '%s': too many layers (at most %d)", \
                            spec, MODEL_MAX_LAYERS - 2);                                 \
        memset(&layers[n], 0, sizeof layers[n]);                                   \
        layers[n].kind = (KIND);                                                   \
        layers[n].in_h = h;                                                        \
        layers[n].in_w = w;                                                        \
        layers[n].in_c = c;                                                        \
    } while (0)

    if (!*spec) return hcr__fail(HCR_EINVAL, "empty architecture spec");
    if (strlen(spec) > MODEL_MAX_SPEC)
        return hcr__fail(HCR_EINVAL, "architecture spec of %zu characters: at most %d allowed",
                        strlen(spec), MODEL_MAX_SPEC);
    while (*p) {
        const char *start = p;
        size_t len = strcspn(p, "-");
        if (len > MODEL_MAX_TOKEN)
            return hcr__fail(HCR_EINVAL, "spec '%s': token '%.20s...' is %zu characters long (at most %d)",
                            spec, p, len, MODEL_MAX_TOKEN);
        snprintf(token, sizeof token, "%.*s", (int)len, p);
        p += len;
        if (*p == '-') {
            p++;
            if (!*p) return hcr__fail(HCR_EINVAL, "spec '%s': ends with '-'", spec);
        }
        if (len == 0) return hcr__fail(HCR_EINVAL, "spec '%s': empty token", spec);
        const char *t = token;
        long a = 0, b = 0;
        layer *l = &layers[n];
        if (strncmp(t, "conv", 4) == 0) {
            t += 4;
            if (flat)
                return hcr__fail(HCR_EINVAL, "spec '%s': '%s' comes after a dense layer", spec, token);
            if (!parse_int(&t, &a)) goto bad;
            b = 3;
            if (*t == 'x') {
                t++;
                if (!parse_int(&t, &b)) goto bad;
            }
            if (*t || b > 15) goto bad;
            ADD_LAYER(LAYER_CONV);
            l->k = (int)b;
            l->out_c = (int)a;
            l->relu = 1;
            name_layer(l, &nc.conv, "conv2d");
        } else if (strncmp(t, "pool", 4) == 0) {
            t += 4;
            if (flat)
                return hcr__fail(HCR_EINVAL, "spec '%s': '%s' comes after a dense layer", spec, token);
            a = 2;
            if (*t && !parse_int(&t, &a)) goto bad;
            if (*t || a > 16) goto bad;
            ADD_LAYER(LAYER_POOL);
            l->k = (int)a;
            name_layer(l, &nc.pool, "max_pooling2d");
        } else if (strncmp(t, "dense", 5) == 0) {
            t += 5;
            if (!parse_int(&t, &a) || *t) goto bad;
            if (!flat) {
                ADD_LAYER(LAYER_FLATTEN);
                name_layer(&layers[n], &nc.flatten, "flatten");
                if (!layer_shape(&layers[n])) goto nofit;
                h = w = 1;
                c = layers[n].out_c;
                n++;
                l = &layers[n];
                flat = 1;
            }
            ADD_LAYER(LAYER_DENSE);
            l->out_c = (int)a;
            l->relu = 1;
            name_layer(l, &nc.dense, "dense");
        } else if (strcmp(t, "bn") == 0) {
            /* Keras's Conv -> BatchNormalization -> ReLU: the ReLU moves from
             * the layer before to after the normalization. */
            layer *prev = n > 0 ? &layers[n - 1] : NULL;
            if (!prev || (prev->kind != LAYER_CONV && prev->kind != LAYER_DENSE))
                return hcr__fail(HCR_EINVAL, "spec '%s': 'bn' must follow a conv or dense layer", spec);
            ADD_LAYER(LAYER_BN);
            prev->relu = 0;
            l->relu = 1;
            name_layer(l, &nc.bn, "batch_normalization");
        } else if (strncmp(t, "drop", 4) == 0) {
            t += 4;
            char *end;
            errno = 0;
            double r = strtod(t, &end);
            if (end == t || *end || errno || !(r >= 0.0 && r < 1.0)) {
                return hcr__fail(HCR_EINVAL,
                                "spec '%s': '%s': dropout rate must be a number in [0, 1)", spec,
                                token);
            }
            ADD_LAYER(LAYER_DROPOUT);
            l->rate = (float)r;
            name_layer(l, &nc.dropout, "dropout");
        } else {
            goto bad;
        }
        if (!layer_shape(l)) goto nofit;
        h = l->out_h;
        w = l->out_w;
        c = l->out_c;
        n++;
        continue;
    bad:
        return hcr__fail(HCR_EINVAL,
                        "spec '%s': cannot read '%.*s' (expected conv<F>[x<K>], pool[<S>], "
                        "dense<N>, bn or drop<R>, separated by '-')",
                        spec, (int)len, start);
    nofit:
        return hcr__fail(HCR_EINVAL,
                        "spec '%s': '%s' does not fit a %dx%dx%d input (the image is too small "
                        "for this many layers)",
                        spec, token, h, w, c);
    }
    /* The classifier: flatten if needed, then Dense(num_classes), softmax. */
    if (!flat) {
        ADD_LAYER(LAYER_FLATTEN);
        name_layer(&layers[n], &nc.flatten, "flatten");
        layer_shape(&layers[n]);
        h = w = 1;
        c = layers[n].out_c;
        n++;
    }
    ADD_LAYER(LAYER_DENSE);
    layers[n].out_c = num_classes;
    layers[n].relu = 0;
    name_layer(&layers[n], &nc.dense, "dense");
    layer_shape(&layers[n]);
    n++;
#undef ADD_LAYER
    *nlayers = n;
    return HCR_OK;
}

/* --------------------------------------------------------------- building */

static void add_tensor(hcr_model *m, const layer *l, const char *what, float *data, size_t count,
                       int ndim, const int64_t *shape)
{
    /* Cannot fail: parse_spec keeps nlayers <= MODEL_MAX_LAYERS, and a layer
     * has at most 4 tensors (see MODEL_MAX_TENSORS). */
    if (m->ntensors >= MODEL_MAX_TENSORS) abort();
    tensor_ref *t = &m->tensors[m->ntensors++];
    t->trainable = data >= m->params && data < m->params + m->nparams;
    snprintf(t->name, sizeof t->name, "%s.%s", l->name, what);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = data;
    t->count = count;
}

/* Parse and check a spec into tmp[0..*nl) and count its parameters. */
static hcr_status plan_model(const char *spec, int rows, int cols, int num_classes, layer *tmp,
                             int *nl, size_t *nparams)
{
    if (!spec) return hcr__fail(HCR_EINVAL, "no architecture spec");
    if (rows < 1 || cols < 1 || rows > 4096 || cols > 4096)
        return hcr__fail(HCR_EINVAL, "input size %dx%d out of range (1..4096)", rows, cols);
    if (num_classes < 2 || num_classes > 1000)
        return hcr__fail(HCR_EINVAL, "%d classes: need between 2 and 1000", num_classes);
    hcr_status s = parse_spec(spec, rows, cols, num_classes, tmp, nl);
    if (s) return s;
    size_t needed = 0;
    for (int i = 0; i < *nl; i++) {
        const layer *l = &tmp[i];
        if (l->kind == LAYER_CONV)
            needed += (size_t)l->k * l->k * l->in_c * l->out_c + (size_t)l->out_c;
        else if (l->kind == LAYER_DENSE)
            needed += layer_in_size(l) * l->out_c + (size_t)l->out_c;
        else if (l->kind == LAYER_BN)
            needed += 2 * (size_t)l->out_c;
        if (needed > MODEL_MAX_PARAMS)
            return hcr__fail(HCR_EINVAL, "spec '%s' needs more than %zu parameters", spec,
                            MODEL_MAX_PARAMS);
    }
    *nparams = needed;
    return HCR_OK;
}

hcr_status model_spec_params(const char *spec, int rows, int cols, int num_classes, size_t *nparams)
{
    layer tmp[MODEL_MAX_LAYERS];
    int nl = 0;
    return plan_model(spec, rows, cols, num_classes, tmp, &nl, nparams);
}

hcr_status hcr_spec_check(const char *spec, int rows, int cols, int num_classes, size_t *nparams)
{
    size_t n = 0;
    if (!spec) return hcr__fail(HCR_EINVAL, "no architecture spec");
    hcr_status s = model_spec_params(spec, rows, cols, num_classes, &n);
    if (s == HCR_OK && nparams) *nparams = n;
    return s;
}

const char *hcr_arch_preset(const char *name)
{
    if (!name) return NULL;
    if (strcmp(name, "default") == 0) return HCR_DEFAULT_SPEC;
    if (strcmp(name, "wide") == 0) return HCR_WIDE_SPEC;
    if (strcmp(name, "wide-bn") == 0) return HCR_WIDE_BN_SPEC;
    return NULL;
}

hcr_status model_build(const char *spec, int rows, int cols, int num_classes, hcr_model **out)
{
    *out = NULL;
    layer tmp[MODEL_MAX_LAYERS];
    int nl = 0;
    size_t planned = 0;
    hcr_status s = plan_model(spec, rows, cols, num_classes, tmp, &nl, &planned);
    if (s) return s;

    hcr_model *m = calloc(1, sizeof *m);
    if (!m) return hcr__fail(HCR_ENOMEM, "out of memory");
    m->spec = hcr__strdup(spec);
    m->layers = malloc(sizeof(layer) * (size_t)nl);
    if (!m->spec || !m->layers) {
        hcr_model_free(m);
        return hcr__fail(HCR_ENOMEM, "out of memory");
    }
    memcpy(m->layers, tmp, sizeof(layer) * (size_t)nl);
    m->nlayers = nl;
    if (!(m->pool = pool_new())) {
        hcr_model_free(m);
        return hcr__fail(HCR_ENOMEM, "out of memory");
    }
    m->rows = rows;
    m->cols = cols;
    m->num_classes = num_classes;
    for (int i = 0; i < num_classes; i++)
        snprintf(m->index_names[i], sizeof m->index_names[i], "%d", i % 1000);

    size_t total = 0;
    for (int i = 0; i < nl; i++) {
        layer *l = &m->layers[i];
        if (l->kind == LAYER_CONV) {
            l->w_count = (size_t)l->k * l->k * l->in_c * l->out_c;
            l->b_count = (size_t)l->out_c;
        } else if (l->kind == LAYER_DENSE) {
            l->w_count = layer_in_size(l) * l->out_c;
            l->b_count = (size_t)l->out_c;
        } else if (l->kind == LAYER_BN) {
            l->w_count = l->b_count = (size_t)l->out_c; /* gamma, beta */
            m->nstate += 2 * (size_t)l->out_c;           /* moving mean, variance */
            if (l->out_c > m->bn_max_c) m->bn_max_c = l->out_c;
        }
        total += l->w_count + l->b_count;
    }
    m->nparams = total;
    m->params = calloc(total ? total : 1, sizeof(float));
    m->grads = calloc(total ? total : 1, sizeof(float));
    m->state = calloc(m->nstate ? m->nstate : 1, sizeof(float));
    if (m->bn_max_c)
        m->bn_partial = calloc((size_t)BN_MAX_THREADS * 2 * (size_t)m->bn_max_c, sizeof(double));
    if (!m->params || !m->grads || !m->state || (m->bn_max_c && !m->bn_partial)) {
        hcr_model_free(m);
        return hcr__fail(HCR_ENOMEM, "out of memory for %zu parameters", total);
    }
    size_t off = 0, soff = 0;
    for (int i = 0; i < nl; i++) {
        layer *l = &m->layers[i];
        if (!l->w_count) continue;
        l->w = m->params + off;
        l->dw = m->grads + off;
        off += l->w_count;
        l->b = m->params + off;
        l->db = m->grads + off;
        off += l->b_count;
        if (l->kind == LAYER_BN) {
            int64_t cs[1] = {l->out_c};
            l->mmean = m->state + soff;
            l->mvar = m->state + soff + l->out_c;
            soff += 2 * (size_t)l->out_c;
            add_tensor(m, l, "gamma", l->w, l->w_count, 1, cs);
            add_tensor(m, l, "beta", l->b, l->b_count, 1, cs);
            add_tensor(m, l, "moving_mean", l->mmean, (size_t)l->out_c, 1, cs);
            add_tensor(m, l, "moving_variance", l->mvar, (size_t)l->out_c, 1, cs);
            continue;
        }
        if (l->kind == LAYER_CONV) {
            int64_t ks[4] = {l->k, l->k, l->in_c, l->out_c};
            add_tensor(m, l, "kernel", l->w, l->w_count, 4, ks);
        } else {
            int64_t ks[2] = {(int64_t)layer_in_size(l), l->out_c};
            add_tensor(m, l, "kernel", l->w, l->w_count, 2, ks);
        }
        int64_t bs[1] = {l->out_c};
        add_tensor(m, l, "bias", l->b, l->b_count, 1, bs);
    }
    *out = m;
    return HCR_OK;
}

void model_init_weights(hcr_model *m, uint64_t seed)
{
    model_weights_changed(m);
    hcr_rng rng;
    hcr_rng_seed(&rng, seed);
    for (int i = 0; i < m->nlayers; i++) {
        layer *l = &m->layers[i];
        if (!l->w_count) continue;
        if (l->kind == LAYER_BN) { /* Keras: gamma 1, beta 0, mean 0, variance 1 */
            for (int c = 0; c < l->out_c; c++) {
                l->w[c] = 1.0f;
                l->b[c] = 0.0f;
                l->mmean[c] = 0.0f;
                l->mvar[c] = 1.0f;
            }
            continue;
        }
        double fan_in, fan_out;
        if (l->kind == LAYER_CONV) {
            fan_in = (double)l->k * l->k * l->in_c;
            fan_out = (double)l->k * l->k * l->out_c;
        } else {
            fan_in = (double)layer_in_size(l);
            fan_out = l->out_c;
        }
        float limit = (float)sqrt(6.0 / (fan_in + fan_out));
        for (size_t j = 0; j < l->w_count; j++)
            l->w[j] = (2.0f * hcr_rng_uniform(&rng) - 1.0f) * limit;
        memset(l->b, 0, l->b_count * sizeof(float));
    }
}

hcr_status hcr_model_create(const char *spec, int rows, int cols, int num_classes, uint64_t seed,
                            hcr_model **out)
{
    hcr_status s = model_build(spec, rows, cols, num_classes, out);
    if (s) return s;
    model_init_weights(*out, seed);
    return HCR_OK;
}

void hcr_model_free(hcr_model *m)
{
    if (!m) return;
    pool_free(m->pool);
    free(m->spec);
    free(m->layers);
    free(m->params);
    free(m->grads);
    free(m->state);
    free(m->bn_partial);
    for (int i = 0; i < m->nmeta; i++) {
        free(m->meta_keys[i]);
        free(m->meta_vals[i]);
    }
    free(m->meta_keys);
    free(m->meta_vals);
    free_class_names(m);
    free(m->ws);
    free(m->tgrads);
    free(m->tdu);
    free(m);
}

/* ------------------------------------------------------------------ views */

/* The model's views (model.h): all of them, and the ones free for use. */
typedef struct view_pool {
    pthread_mutex_t lock;
    hcr_model **all, **free;
    int nall, nfree, cap;
} view_pool;

static view_pool *pool_new(void)
{
    view_pool *p = calloc(1, sizeof *p);
    if (p && pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p);
        p = NULL;
    }
    return p;
}

/* A view owns its layer table and workspace, nothing else. */
static void view_free(hcr_model *v)
{
    free(v->layers);
    free(v->ws);
    free(v->tgrads);
    free(v->tdu);
    free(v);
}

static void pool_free(view_pool *p)
{
    if (!p) return;
    for (int i = 0; i < p->nall; i++) view_free(p->all[i]);
    free(p->all);
    free(p->free);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static hcr_model *view_new(const hcr_model *m)
{
    hcr_model *v = malloc(sizeof *v);
    layer *layers = malloc(sizeof(layer) * (size_t)m->nlayers);
    if (!v || !layers) {
        free(v);
        free(layers);
        return NULL;
    }
    *v = *m;
    memcpy(layers, m->layers, sizeof(layer) * (size_t)m->nlayers);
    v->layers = layers;
    v->pool = NULL;
    v->bn_partial = NULL; /* training only */
    v->capacity = 0;
    v->ws = NULL;
    v->tgrads = v->tdu = NULL;
    v->tgrads_threads = v->tdu_threads = 0;
    v->kernels_ready = 0;
    v->threads = 0;
    return v;
}

/* Register a new view, growing the lists; 0 when out of memory. */
static int pool_add(view_pool *p, hcr_model *v)
{
    if (p->nall == p->cap) {
        int cap = p->cap ? 2 * p->cap : 4;
        hcr_model **all = realloc(p->all, sizeof *all * (size_t)cap);
        if (!all) return 0;
        p->all = all;
        hcr_model **fr = realloc(p->free, sizeof *fr * (size_t)cap);
        if (!fr) return 0;
        p->free = fr;
        p->cap = cap;
    }
    p->all[p->nall++] = v;
    return 1;
}

hcr_status model_view_acquire(hcr_model *m, hcr_model **view)
{
    view_pool *p = m->pool;
    hcr_model *v = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->nfree > 0) v = p->free[--p->nfree];
    pthread_mutex_unlock(&p->lock);
    if (!v) {
        v = view_new(m);
        pthread_mutex_lock(&p->lock);
        int ok = v && pool_add(p, v);
        pthread_mutex_unlock(&p->lock);
        if (!ok) {
            if (v) view_free(v);
            return hcr__fail(HCR_ENOMEM, "out of memory for a prediction workspace");
        }
    }
    if (v->version != m->version) { /* new weights: transform the kernels again */
        v->version = m->version;
        v->kernels_ready = 0;
    }
    *view = v;
    return HCR_OK;
}

void model_view_release(hcr_model *m, hcr_model *view)
{
    view_pool *p = m->pool;
    pthread_mutex_lock(&p->lock);
    p->free[p->nfree++] = view; /* room: free has as many slots as all */
    pthread_mutex_unlock(&p->lock);
}

void model_weights_changed(hcr_model *m)
{
    m->version++;
    m->kernels_ready = 0;
}

/* -------------------------------------------------------------- workspace */

/* 3x3 convolutions whose channel counts suit it run forward through
 * Winograd F(2x2,3x3) (1.9x fewer multiplies) when the AVX2 kernels are in
 * use; the kernel is transformed once per forward pass. */
static int uses_winograd(const layer *l)
{
#ifdef HCR_HAVE_AVX2_KERNELS
    return l->kind == LAYER_CONV && kernels_select() == &kernels_avx2 &&
           conv_winograd_ok(l->in_h, l->in_w, l->in_c, l->k, l->out_c);
#else
    (void)l;
    return 0;
#endif
}

/* ... and backward too where the channel counts suit the backward kernels
 * (the reference model's second layer). */
static int uses_winograd_backward(const layer *l)
{
#ifdef HCR_HAVE_AVX2_KERNELS
    return uses_winograd(l) && conv_winograd_backward_ok(l->in_h, l->in_w, l->in_c, l->k, l->out_c);
#else
    (void)l;
    return 0;
#endif
}

/* Layer i is a first layer (one input channel) whose pooling, layer i+1,
 * runs fused with it (conv1_pool_*: the AVX2 kernels); see model.h. */
static int fused_conv_pool(const hcr_model *m, int i)
{
#ifdef HCR_HAVE_AVX2_KERNELS
    if (i != 0 || i + 1 >= m->nlayers) return 0;
    const layer *c = &m->layers[i], *p = &m->layers[i + 1];
    return c->kind == LAYER_CONV && p->kind == LAYER_POOL && kernels_select() == &kernels_avx2 &&
           conv1_pool_ok(c->in_h, c->in_w, c->in_c, c->k, c->out_c, p->k);
#else
    (void)m, (void)i;
    return 0;
#endif
}

int model_layer_fused(const hcr_model *m, int i) { return fused_conv_pool(m, i); }

/* Layer i is a convolution whose input gradient the direct kernel computes
 * (from the packed kernel wt): not the first layer, which needs none, nor
 * a Winograd one. */
static int direct_dgrad(const hcr_model *m, int i)
{
    const layer *l = &m->layers[i];
    return i > 0 && l->kind == LAYER_CONV && !uses_winograd_backward(l);
}

#define ALIGN_FLOATS 16 /* 64 bytes */

static size_t round_up(size_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

hcr_status model_reserve(hcr_model *m, int n)
{
    if (n <= m->capacity) return HCR_OK;
    if (n > 1 << 20) return hcr__fail(HCR_EINVAL, "batch of %d images is too large", n);
    /* Count the floats first, then carve one allocation. */
    size_t need = 0;
    size_t in_size = (size_t)m->rows * m->cols;
    need += round_up(in_size * n);                    /* input          */
    need += 2 * round_up((size_t)m->num_classes * n); /* probs, dlogits */
    for (int i = 0; i < m->nlayers; i++) {
        layer *l = &m->layers[i];
        if (l->kind == LAYER_FLATTEN) continue;      /* aliases its input */
        need += 2 * round_up(layer_out_size(l) * n);  /* out, dout */
        if (direct_dgrad(m, i)) need += round_up(l->w_count); /* packed kernel */
        if (uses_winograd(l)) need += round_up(CONV_WINOGRAD_FWD_FLOATS(l->in_c, l->out_c));
        if (uses_winograd_backward(l)) need += round_up(CONV_WINOGRAD_FLOATS(l->in_c, l->out_c));
        if (l->kind == LAYER_DROPOUT) need += round_up(layer_out_size(l) * n); /* mask */
        if (l->kind == LAYER_BN) need += 2 * round_up(2 * (size_t)l->out_c);  /* bstat, bsum */
    }
    float *ws = NULL;
    size_t bytes;
    if (!hcr_mul_size(need, sizeof(float), &bytes) ||
        posix_memalign((void **)&ws, 64, bytes) != 0)
        return hcr__fail(HCR_ENOMEM, "out of memory for a batch of %d images (%zu MB)", n,
                        need * sizeof(float) >> 20);
    free(m->ws);
    m->ws = ws;
    m->kernels_ready = 0;
    m->capacity = n;
    float *p = ws;
#define TAKE(count) (p += round_up(count), p - round_up(count))
    m->input = TAKE(in_size * n);
    m->probs = TAKE((size_t)m->num_classes * n);
    m->dlogits = TAKE((size_t)m->num_classes * n);
    for (int i = 0; i < m->nlayers; i++) {
        layer *l = &m->layers[i];
        l->wt = NULL;
        l->wg = l->wgt = NULL;
        l->mask = NULL;
        l->bstat = l->bsum = NULL;
        if (l->kind == LAYER_FLATTEN) {
            l->out = i ? m->layers[i - 1].out : m->input;
            l->dout = i ? m->layers[i - 1].dout : NULL;
            continue;
        }
        l->out = TAKE(layer_out_size(l) * n);
        l->dout = TAKE(layer_out_size(l) * n);
        if (direct_dgrad(m, i)) l->wt = TAKE(l->w_count);
        if (uses_winograd(l)) l->wg = TAKE(CONV_WINOGRAD_FWD_FLOATS(l->in_c, l->out_c));
        if (uses_winograd_backward(l)) l->wgt = TAKE(CONV_WINOGRAD_FLOATS(l->in_c, l->out_c));
        if (l->kind == LAYER_DROPOUT) l->mask = TAKE(layer_out_size(l) * n);
        if (l->kind == LAYER_BN) {
            l->bstat = TAKE(2 * (size_t)l->out_c);
            l->bsum = TAKE(2 * (size_t)l->out_c);
        }
    }
#undef TAKE
    return HCR_OK;
}

/* Per-thread gradient buffers: thread 0 writes m->grads itself, thread t
 * > 0 its own copy, summed into m->grads in thread order afterwards. Each
 * thread, thread 0 included, also sums the Winograd layers' kernel
 * gradients in the transformed domain (tdu) before adding them to its
 * gradients once per pass. */
static hcr_status reserve_thread_grads(hcr_model *m, int threads)
{
    if (threads > 1 && !(m->tgrads && m->tgrads_threads >= threads)) {
        size_t bytes;
        if (!hcr_mul_size(m->nparams, (size_t)(threads - 1) * sizeof(float), &bytes))
            return hcr__fail(HCR_ENOMEM, "out of memory");
        float *t = NULL;
        if (posix_memalign((void **)&t, 64, bytes ? bytes : 64) != 0)
            return hcr__fail(HCR_ENOMEM, "out of memory for per-thread gradients");
        free(m->tgrads);
        m->tgrads = t;
        m->tgrads_threads = threads;
    }
    size_t du = 0;
    for (int i = 0; i < m->nlayers; i++) {
        layer *l = &m->layers[i];
        if (!l->wgt) continue;
        l->du_off = du;
        du += round_up(CONV_WINOGRAD_FLOATS(l->in_c, l->out_c));
    }
    if (du == 0 || (m->tdu && m->tdu_threads >= threads && m->du_floats == du)) return HCR_OK;
    float *t = NULL;
    if (posix_memalign((void **)&t, 64, sizeof(float) * du * (size_t)threads) != 0)
        return hcr__fail(HCR_ENOMEM, "out of memory for per-thread gradients");
    free(m->tdu);
    m->tdu = t;
    m->tdu_threads = threads;
    m->du_floats = du;
    return HCR_OK;
}

/* Thread t's transformed kernel gradient of Winograd layer l. */
static float *thread_du(hcr_model *m, const layer *l, int t)
{
    return m->tdu + (size_t)t * m->du_floats + l->du_off;
}

/* ------------------------------------------------------ forward, backward */

void model_load_input(hcr_model *m, const uint8_t *pixels, const int *idx, int n)
{
    const size_t sz = (size_t)m->rows * m->cols;
    for (int b = 0; b < n; b++) {
        const uint8_t *src = pixels + (idx ? (size_t)idx[b] : (size_t)b) * sz;
        float *dst = m->input + (size_t)b * sz;
        for (size_t i = 0; i < sz; i++) dst[i] = src[i] * (1.0f / 255.0f);
    }
}

/* Convolution and pooling run image by image inside a thread's share. */
static int per_image(const layer *l) { return l->kind == LAYER_CONV || l->kind == LAYER_POOL; }

static const float *layer_input(const hcr_model *m, int i)
{
    return i ? m->layers[i - 1].out : m->input;
}

/* The share of a batch of n that thread t of nt works on: fixed, so results
 * do not depend on scheduling. */
typedef struct share {
    int t, nt;  /* this thread, of how many     */
    int b0, nb; /* first image, number of images */
} share;

/* Called first in each parallel region: the BLAS calls in it run on one
 * thread. hcr already splits the batch across its threads; an OpenMP BLAS
 * (OpenBLAS follows omp_get_max_threads() outside active regions) would
 * otherwise start threads of its own when the region runs on one thread,
 * for one image: more costly than the matrix-vector product itself. Sets
 * only this region's implicit task's thread count. */
static void blas_one_thread(void)
{
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
}

static share my_share(int n)
{
    share s = {0, 1, 0, n};
#ifdef _OPENMP
    s.t = omp_get_thread_num();
    s.nt = omp_get_num_threads();
#endif
    s.b0 = (int)((long)n * s.t / s.nt);
    s.nb = (int)((long)n * (s.t + 1) / s.nt) - s.b0;
    return s;
}

/* Threads for a pass: all of hcr_threads(), at most BN_MAX_THREADS when
 * batch normalization's per-thread sums are needed. */
static int pass_threads(const hcr_model *m)
{
    const int t = m->threads > 0 ? m->threads : hcr_threads();
    return m->bn_max_c && t > BN_MAX_THREADS ? BN_MAX_THREADS : t;
}

/* ---------------------------------------------------- batch normalization */

/*
 * Batch normalization needs the whole batch: per channel, the mean and
 * variance over n*H*W values. Each thread sums its share into its own row
 * of bn_partial (in double), then, after a barrier, one thread adds the rows
 * in thread order (so results do not depend on scheduling) while the
 * others wait. These functions run inside the pass's parallel region and
 * every thread of the team must call them.
 */
static void bn_forward(hcr_model *m, int i, int n, int training)
{
    layer *l = &m->layers[i];
    const share s = my_share(n);
    const int C = l->out_c;
    const size_t P = (size_t)l->out_h * l->out_w, rows = (size_t)s.nb * P;
    const float *in = layer_input(m, i) + (size_t)s.b0 * P * C;
    float *out = l->out + (size_t)s.b0 * P * C;
    float *scale = l->bsum, *shift = l->bsum + C; /* free until backward */
    if (training) {
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
static void bn_backward(hcr_model *m, int i, int n, float *g)
{
    layer *l = &m->layers[i];
    const share s = my_share(n);
    const int C = l->out_c;
    const size_t P = (size_t)l->out_h * l->out_w, rows = (size_t)s.nb * P, at = (size_t)s.b0 * P * C;
    const float *in = layer_input(m, i) + at, *out = l->out + at;
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
        for (int t = 0; t < s.nt; t++) {
            s1 += m->bn_partial[(size_t)t * 2 * C + c];
            s2 += m->bn_partial[(size_t)t * 2 * C + C + c];
        }
        l->bsum[c] = (float)s1;     /* dbeta  */
        l->bsum[C + c] = (float)s2; /* dgamma */
    }
    float *dgamma = g + (l->w - m->params), *dbeta = g + (l->b - m->params);
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

/* Forward of layer i for images [b0, b0+nb). */
static void layer_forward(hcr_model *m, int i, int b0, int nb, int training)
{
    const hcr_kernels *kern = kernels_select();
    layer *l = &m->layers[i];
    const size_t isz = layer_in_size(l), osz = layer_out_size(l);
    const float *in = layer_input(m, i) + (size_t)b0 * isz;
    float *out = l->out + (size_t)b0 * osz;
    switch (l->kind) {
    case LAYER_CONV:
#ifdef HCR_HAVE_AVX2_KERNELS
        if (fused_conv_pool(m, i)) {
            /* Writes the pooling's output; our own output buffer gets, when
             * training, the route of each pooled gradient instead. */
            const layer *p = &m->layers[i + 1];
            const size_t psz = layer_out_size(p);
            for (int b = 0; b < nb; b++)
                conv1_pool_forward(p->out + (size_t)(b0 + b) * psz, training ? out + b * osz : NULL,
                                   in + b * isz, l->w, l->b, l->in_h, l->in_w, l->out_c, l->relu);
            break;
        }
        if (l->wg) {
            for (int b = 0; b < nb; b++)
                conv_winograd_forward(out + b * osz, in + b * isz, l->wg, l->b, l->in_h, l->in_w,
                                      l->in_c, l->out_c, l->relu);
            break;
        }
#endif
        for (int b = 0; b < nb; b++)
            kern->conv_forward(out + b * osz, in + b * isz, l->w, l->b, l->in_h, l->in_w, l->in_c,
                               l->k, l->out_c, l->relu);
        break;
    case LAYER_POOL:
        if (fused_conv_pool(m, i - 1)) break; /* done with the convolution */
        for (int b = 0; b < nb; b++)
            kern->pool_forward(out + b * osz, in + b * isz, l->in_h, l->in_w, l->in_c, l->k);
        break;
    case LAYER_DENSE:
        if (nb > 0) dense_forward(out, in, l->w, l->b, nb, (int)isz, l->out_c, l->relu);
        break;
    case LAYER_DROPOUT:
        if (training && l->rate > 0)
            dropout_apply(out, in, l->mask + (size_t)b0 * osz, (size_t)nb * osz);
        else
            memcpy(out, in, sizeof(float) * (size_t)nb * osz);
        break;
    case LAYER_FLATTEN:
    case LAYER_BN: /* bn_forward: it needs the whole batch */
        break; /* out aliases the input */
    }
}

/* The forward pass's copy of layer i's kernel in the layout it reads. */
static void prepare_forward(hcr_model *m, int i)
{
#ifdef HCR_HAVE_AVX2_KERNELS
    layer *l = &m->layers[i];
    if (l->wg) conv_winograd_prepare(l->wg, l->w, l->in_c, l->out_c);
#else
    (void)m, (void)i;
#endif
}

void model_forward(hcr_model *m, int n, int training, hcr_rng *rng)
{
    /* Training transforms the kernels every pass (the weights change every
     * step); predicting reuses them until the weights or the workspace
     * change, so that predicting image by image does not redo it. */
    if (training) m->version++; /* the optimizer changes the weights next */
    if (training || !m->kernels_ready) {
        for (int i = 0; i < m->nlayers; i++) prepare_forward(m, i);
        m->kernels_ready = !training;
    }
    /* Dropout masks first, in one sequence from the seed, so they do not
     * depend on the thread count. */
    if (training)
        for (int i = 0; i < m->nlayers; i++) {
            layer *l = &m->layers[i];
            if (l->kind == LAYER_DROPOUT && l->rate > 0)
                dropout_mask(l->mask, layer_out_size(l) * n, l->rate, rng);
        }
    const int threads = pass_threads(m);
#pragma omp parallel num_threads(threads) if (n > 1 && threads > 1)
    {
        blas_one_thread();
        share s = my_share(n);
        for (int i = 0; i < m->nlayers;) {
            /* A run of convolution and pooling layers goes image by image,
             * so each image's activations stay in cache between layers. */
            int j = i;
            while (j < m->nlayers && per_image(&m->layers[j])) j++;
            if (j == i) {
                if (m->layers[i].kind == LAYER_BN)
                    bn_forward(m, i++, n, training);
                else
                    layer_forward(m, i++, s.b0, s.nb, training);
                continue;
            }
            for (int b = s.b0; b < s.b0 + s.nb; b++)
                for (int r = i; r < j; r++) layer_forward(m, r, b, 1, training);
            i = j;
        }
        softmax_forward(m->probs + (size_t)s.b0 * m->num_classes,
                        m->layers[m->nlayers - 1].out + (size_t)s.b0 * m->num_classes, s.nb,
                        m->num_classes);
    }
}

double model_loss(const hcr_model *m, int n, const uint8_t *labels, int *correct)
{
    return cross_entropy(m->probs, labels, n, m->num_classes, correct);
}

/* Layer i is a convolution with ReLU followed by pooling: the pooling's
 * backward applies the ReLU's gradient on the way (one pass less). */
static int relu_fused_below(const hcr_model *m, int i)
{
    return i >= 0 && i + 1 < m->nlayers && m->layers[i].kind == LAYER_CONV && m->layers[i].relu &&
           m->layers[i + 1].kind == LAYER_POOL;
}

/* Zero layer i's parameter gradients in g. */
static void zero_param_grads(hcr_model *m, int i, float *g)
{
    const layer *l = &m->layers[i];
    if (l->w) memset(g + (l->w - m->params), 0, sizeof(float) * l->w_count);
    if (l->b) memset(g + (l->b - m->params), 0, sizeof(float) * l->b_count);
}

/* Clear thread t's transformed kernel gradient of layer i (a Winograd
 * layer, or nothing to do). */
static void wg_begin(hcr_model *m, int i, int t)
{
    const layer *l = &m->layers[i];
    if (l->wgt) memset(thread_du(m, l, t), 0, sizeof(float) * CONV_WINOGRAD_FLOATS(l->in_c, l->out_c));
}

/* Add it, transformed back, to the kernel's gradient in g. */
static void wg_end(hcr_model *m, int i, int t, float *g)
{
#ifdef HCR_HAVE_AVX2_KERNELS
    const layer *l = &m->layers[i];
    if (l->wgt) conv_winograd_wgrad_finish(g + (l->w - m->params), thread_du(m, l, t), l->in_c, l->out_c);
#else
    (void)m, (void)i, (void)t, (void)g;
#endif
}

/* Backward of layer i for images [b0, b0+nb), by thread t, parameter
 * gradients into g (a full-size gradient array: m->grads or a thread's
 * copy); convolution gradients are added to g unless `zero` asks to clear
 * them first. A Winograd layer called with zero == 0 sums its kernel
 * gradient into thread t's tdu; wg_begin and wg_end clear it before the
 * images and add it to g after them. */
static void layer_backward(hcr_model *m, int i, int b0, int nb, int t, float *g, int zero)
{
    const hcr_kernels *kern = kernels_select();
    layer *l = &m->layers[i];
    const size_t isz = layer_in_size(l), osz = layer_out_size(l);
    const float *in = layer_input(m, i) + (size_t)b0 * isz;
    const float *out = l->out + (size_t)b0 * osz;
    /* No input gradient for the first layer, nor for a layer whose input
     * is the image through a Flatten (whose dout is then NULL). */
    float *prev = i ? m->layers[i - 1].dout : NULL;
    float *din = prev ? prev + (size_t)b0 * isz : NULL;
    float *dout = l->dout ? l->dout + (size_t)b0 * osz : NULL; /* NULL: that Flatten */
    float *dw = l->w ? g + (l->w - m->params) : NULL, *db = l->b ? g + (l->b - m->params) : NULL;
    switch (l->kind) {
    case LAYER_CONV:
        if (zero) zero_param_grads(m, i, g);
#ifdef HCR_HAVE_AVX2_KERNELS
        if (fused_conv_pool(m, i)) { /* with the pooling's backward */
            const layer *p = &m->layers[i + 1];
            const size_t psz = layer_out_size(p);
            for (int b = 0; b < nb; b++)
                conv1_pool_wgrad(dw, db, in + b * isz, out + b * osz, p->dout + (size_t)(b0 + b) * psz,
                                 l->in_h, l->in_w, l->out_c);
            break;
        }
        if (l->wgt) {
            if (zero) wg_begin(m, i, t);
            for (int b = 0; b < nb; b++) {
                if (l->relu && !relu_fused_below(m, i)) relu_mask(dout + b * osz, out + b * osz, (long)osz);
                conv_winograd_backward(din ? din + b * isz : NULL, thread_du(m, l, t), db,
                                       in + b * isz, dout + b * osz, l->wgt, l->in_h, l->in_w,
                                       l->in_c, l->out_c);
            }
            if (zero) wg_end(m, i, t, g);
            break;
        }
#endif
        for (int b = 0; b < nb; b++) {
            if (l->relu && !relu_fused_below(m, i)) relu_mask(dout + b * osz, out + b * osz, (long)osz);
            kern->conv_wgrad(dw, db, in + b * isz, dout + b * osz, l->in_h, l->in_w, l->in_c, l->k,
                             l->out_c);
            if (din) {
                memset(din + b * isz, 0, sizeof(float) * isz);
                kern->conv_dgrad(din + b * isz, dout + b * osz, l->wt, l->in_h, l->in_w, l->in_c,
                                 l->k, l->out_c);
            }
        }
        break;
    case LAYER_POOL:
        if (din && !fused_conv_pool(m, i - 1))
            for (int b = 0; b < nb; b++)
                kern->pool_backward(din + b * isz, dout + b * osz, in + b * isz, out + b * osz,
                                    l->in_h, l->in_w, l->in_c, l->k, relu_fused_below(m, i - 1));
        break;
    case LAYER_DENSE:
        if (nb > 0) {
            dense_backward(din, dw, db, dout, out, in, l->w, nb, (int)isz, l->out_c, l->relu);
        } else {
            memset(dw, 0, sizeof(float) * l->w_count);
            memset(db, 0, sizeof(float) * l->b_count);
        }
        break;
    case LAYER_DROPOUT:
        if (din) {
            if (l->rate > 0)
                dropout_backward(din, dout, l->mask + (size_t)b0 * osz, (size_t)nb * osz);
            else
                memcpy(din, dout, sizeof(float) * (size_t)nb * osz);
        }
        break;
    case LAYER_FLATTEN:
    case LAYER_BN: /* bn_backward */
        break; /* dout aliases the previous layer's dout */
    }
}

/* The backward pass's copy of layer i's kernel in the layout its input
 * gradient reads (none for the first layer). */
static void prepare_backward(hcr_model *m, int i)
{
    layer *l = &m->layers[i];
#ifdef HCR_HAVE_AVX2_KERNELS
    if (l->wgt) conv_winograd_prepare_dgrad(l->wgt, l->w, l->in_c, l->out_c);
#endif
    if (l->wt) conv_pack_wt(l->wt, l->w, l->k, l->in_c, l->out_c);
}

hcr_status model_backward(hcr_model *m, int n, const uint8_t *labels)
{
    const int threads = pass_threads(m);
    hcr_status st = reserve_thread_grads(m, threads);
    if (st) return st;
    for (int i = 1; i < m->nlayers; i++) prepare_backward(m, i);
#pragma omp parallel num_threads(threads) if (n > 1 && threads > 1)
    {
        blas_one_thread();
        share s = my_share(n);
        float *g = s.t == 0 ? m->grads : m->tgrads + (size_t)(s.t - 1) * m->nparams;
        const int k = m->num_classes;
        softmax_cross_entropy_backward(m->layers[m->nlayers - 1].dout + (size_t)s.b0 * k,
                                       m->probs + (size_t)s.b0 * k, labels + s.b0, s.nb, k, n);
        for (int i = m->nlayers - 1; i >= 0;) {
            int j = i;
            while (j >= 0 && per_image(&m->layers[j])) j--;
            if (j == i) {
                if (m->layers[i].kind == LAYER_BN)
                    bn_backward(m, i--, n, g);
                else
                    layer_backward(m, i--, s.b0, s.nb, s.t, g, 1);
                continue;
            }
            for (int r = j + 1; r <= i; r++) {
                zero_param_grads(m, r, g);
                wg_begin(m, r, s.t);
            }
            for (int b = s.b0; b < s.b0 + s.nb; b++)
                for (int r = i; r > j; r--) layer_backward(m, r, b, 1, s.t, g, 0);
            for (int r = j + 1; r <= i; r++) wg_end(m, r, s.t, g);
            i = j;
        }
        /* Sum the other threads' gradients into m->grads in thread order,
         * each thread summing its own range of parameters. */
#pragma omp barrier
        const size_t p0 = m->nparams * (size_t)s.t / (size_t)s.nt;
        const size_t p1 = m->nparams * (size_t)(s.t + 1) / (size_t)s.nt;
        for (int t = 1; t < s.nt; t++) {
            const float *tg = m->tgrads + (size_t)(t - 1) * m->nparams;
            for (size_t j = p0; j < p1; j++) m->grads[j] += tg[j];
        }
    }
    return HCR_OK;
}

void model_layer_forward(hcr_model *m, int i, int n, hcr_rng *rng)
{
    layer *l = &m->layers[i];
    prepare_forward(m, i);
    if (l->kind == LAYER_DROPOUT && l->rate > 0) dropout_mask(l->mask, layer_out_size(l) * n, l->rate, rng);
    const int threads = pass_threads(m);
#pragma omp parallel num_threads(threads) if (n > 1 && threads > 1)
    {
        blas_one_thread();
        share s = my_share(n);
        if (l->kind == LAYER_BN) {
            bn_forward(m, i, n, 1);
        } else if (per_image(l)) {
            for (int b = s.b0; b < s.b0 + s.nb; b++) layer_forward(m, i, b, 1, 1);
        } else {
            layer_forward(m, i, s.b0, s.nb, 1);
        }
    }
}

hcr_status model_layer_backward(hcr_model *m, int i, int n)
{
    const int threads = pass_threads(m);
    hcr_status st = reserve_thread_grads(m, threads);
    if (st) return st;
    prepare_backward(m, i);
    const layer *l = &m->layers[i];
#pragma omp parallel num_threads(threads) if (n > 1 && threads > 1)
    {
        blas_one_thread();
        share s = my_share(n);
        float *g = s.t == 0 ? m->grads : m->tgrads + (size_t)(s.t - 1) * m->nparams;
        if (l->kind == LAYER_BN) {
            bn_backward(m, i, n, g);
        } else if (per_image(l)) {
            zero_param_grads(m, i, g);
            wg_begin(m, i, s.t);
            for (int b = s.b0; b < s.b0 + s.nb; b++) layer_backward(m, i, b, 1, s.t, g, 0);
            wg_end(m, i, s.t, g);
        } else {
            layer_backward(m, i, s.b0, s.nb, s.t, g, 1);
        }
        /* This layer's parameter gradients, summed in thread order. */
#pragma omp barrier
        if (s.t == 0 && (l->w || l->b)) {
            const size_t p0 = (size_t)((l->w ? l->w : l->b) - m->params);
            const size_t p1 = p0 + l->w_count + l->b_count;
            for (int t = 1; t < s.nt; t++) {
                const float *tg = m->tgrads + (size_t)(t - 1) * m->nparams;
                for (size_t j = p0; j < p1; j++) m->grads[j] += tg[j];
            }
        }
    }
    return HCR_OK;
}

/* ---------------------------------------------------------------- predict */

#define PREDICT_CHUNK 256

/* A model whose weights are finite but huge (a crafted or corrupt file) can
 * overflow float and answer NaN: refuse the answer rather than return it. */
hcr_status model_output_check(const hcr_model *v, int n, int first)
{
    const size_t k = (size_t)n * v->num_classes;
    for (size_t i = 0; i < k; i++)
        if (!isfinite(v->probs[i]))
            return hcr__fail(HCR_EFORMAT, "the model's output for image %d is %s: its weights overflow float",
                            first + (int)(i / v->num_classes), isnan(v->probs[i]) ? "NaN" : "infinite");
    return HCR_OK;
}

hcr_status hcr_model_predict(hcr_model *m, const uint8_t *pixels, int n, float *probs)
{
    if (!m || (!pixels && n > 0) || (!probs && n > 0) || n < 0)
        return hcr__fail(HCR_EINVAL, "hcr_model_predict: bad arguments");
    if (n == 0) return HCR_OK;
    hcr_model *v;
    hcr_status s = model_view_acquire(m, &v);
    if (s) return s;
    const int chunk = n < PREDICT_CHUNK ? n : PREDICT_CHUNK;
    const size_t sz = (size_t)m->rows * m->cols;
    s = model_reserve(v, chunk);
    for (int start = 0; !s && start < n; start += chunk) {
        int k = n - start < chunk ? n - start : chunk;
        model_load_input(v, pixels + (size_t)start * sz, NULL, k);
        model_forward(v, k, 0, NULL);
        if ((s = model_output_check(v, k, start))) break;
        memcpy(probs + (size_t)start * m->num_classes, v->probs, (size_t)k * m->num_classes * sizeof(float));
    }
    model_view_release(m, v);
    return s;
}

/* -------------------------------------------------------------- accessors */

const char *hcr_model_spec(const hcr_model *m) { return m->spec; }
int hcr_model_num_classes(const hcr_model *m) { return m->num_classes; }
int hcr_model_input_rows(const hcr_model *m) { return m->rows; }
int hcr_model_input_cols(const hcr_model *m) { return m->cols; }
size_t hcr_model_param_count(const hcr_model *m) { return m->nparams; }

static const char *kind_name(layer_kind k)
{
    switch (k) {
    case LAYER_CONV: return "Conv2D";
    case LAYER_POOL: return "MaxPooling2D";
    case LAYER_FLATTEN: return "Flatten";
    case LAYER_DENSE: return "Dense";
    case LAYER_DROPOUT: return "Dropout";
    case LAYER_BN: return "BatchNormalization";
    }
    return "?";
}

static void thousands(char *buf, size_t n, size_t v)
{
    char tmp[32];
    int len = snprintf(tmp, sizeof tmp, "%zu", v);
    size_t j = 0;
    for (int i = 0; i < len && j + 1 < n; i++) {
        if (i > 0 && (len - i) % 3 == 0 && j + 1 < n) buf[j++] = ',';
        if (j + 1 < n) buf[j++] = tmp[i];
    }
    buf[j] = '\0';
}

void hcr_model_summary(const hcr_model *m, FILE *f)
{
    /* the name column fits "batch_normalization_1 (BatchNormalization)" */
    const int width = m->bn_max_c ? 44 : 34, rlen = width + 40;
    char rule[128], dbl[128];
    memset(rule, '_', (size_t)rlen);
    memset(dbl, '=', (size_t)rlen);
    rule[rlen] = dbl[rlen] = '\0';
    fprintf(f, "Model: \"%s\"\n%s\n", m->spec, rule);
    fprintf(f, " %-*s %-25s %-10s\n%s\n", width, "Layer (type)", "Output Shape", "Param #", dbl);
    int flat = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const layer *l = &m->layers[i];
        char name[80], shape[48], params[32];
        snprintf(name, sizeof name, "%s (%s)", l->name, kind_name(l->kind));
        flat |= l->kind == LAYER_FLATTEN || l->kind == LAYER_DENSE;
        if (flat)
            snprintf(shape, sizeof shape, "(None, %d)", l->out_c);
        else
            snprintf(shape, sizeof shape, "(None, %d, %d, %d)", l->out_h, l->out_w, l->out_c);
        thousands(params, sizeof params, l->w_count + l->b_count + (l->kind == LAYER_BN ? 2 * (size_t)l->out_c : 0));
        fprintf(f, " %-*s %-25s %-10s\n", width, name, shape, params);
        fprintf(f, "%s\n", i + 1 < m->nlayers ? "" : dbl);
    }
    char total[32], trainable[32], fixed[32];
    thousands(total, sizeof total, m->nparams + m->nstate);
    thousands(trainable, sizeof trainable, m->nparams);
    thousands(fixed, sizeof fixed, m->nstate);
    fprintf(f, "Total params: %s\nTrainable params: %s\nNon-trainable params: %s\n%s\n", total,
            trainable, fixed, rule);
}

/* --------------------------------------------------------------- metadata */

static void free_names(char **names, int n)
{
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names);
}

static void free_class_names(hcr_model *m)
{
    free_names(m->class_names, m->num_classes);
    m->class_names = NULL;
}

/* The "class_names" metadata: a JSON array of num_classes strings, each
 * non-empty and at most 255 bytes. Anything else is refused (a model whose
 * classes are misnamed would print wrong answers). */
static hcr_status parse_class_names(hcr_model *m, const char *json, char ***out)
{
    *out = NULL;
    cJSON *arr = cJSON_Parse(json);
    hcr_status s = HCR_OK;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != m->num_classes)
        s = hcr__fail(HCR_EINVAL, "class_names must be a JSON array of %d strings (one per class)",
                     m->num_classes);
    char **names = s ? NULL : calloc((size_t)m->num_classes, sizeof *names);
    if (!s && !names) s = hcr__fail(HCR_ENOMEM, "out of memory");
    for (int i = 0; !s && i < m->num_classes; i++) {
        const char *v = cJSON_GetStringValue(cJSON_GetArrayItem(arr, i));
        if (!v || !*v || strlen(v) > 255)
            s = hcr__fail(HCR_EINVAL, "class_names[%d] is not a string of 1 to 255 bytes", i);
        else if (!(names[i] = hcr__strdup(v)))
            s = hcr__fail(HCR_ENOMEM, "out of memory");
    }
    cJSON_Delete(arr);
    if (s) {
        free_names(names, m->num_classes);
        names = NULL;
    }
    *out = names;
    return s;
}

hcr_status hcr_model_set_meta(hcr_model *m, const char *key, const char *value)
{
    if (!m || !key || !*key) return hcr__fail(HCR_EINVAL, "metadata key must be a non-empty string");
    char **names = NULL;
    const int is_names = strcmp(key, "class_names") == 0;
    if (is_names && value) {
        hcr_status s = parse_class_names(m, value, &names);
        if (s) return s;
    }
    int i;
    for (i = 0; i < m->nmeta; i++)
        if (strcmp(m->meta_keys[i], key) == 0) break;
    if (!value) {
        if (i < m->nmeta) {
            free(m->meta_keys[i]);
            free(m->meta_vals[i]);
            memmove(m->meta_keys + i, m->meta_keys + i + 1, sizeof(char *) * (size_t)(m->nmeta - i - 1));
            memmove(m->meta_vals + i, m->meta_vals + i + 1, sizeof(char *) * (size_t)(m->nmeta - i - 1));
            m->nmeta--;
        }
    } else {
        char *v = hcr__strdup(value);
        if (!v) {
            free_names(names, m->num_classes);
            return hcr__fail(HCR_ENOMEM, "out of memory");
        }
        if (i < m->nmeta) {
            free(m->meta_vals[i]);
            m->meta_vals[i] = v;
        } else {
            char *k = hcr__strdup(key);
            char **nk = realloc(m->meta_keys, sizeof(char *) * (size_t)(m->nmeta + 1));
            if (nk) m->meta_keys = nk;
            char **nv = realloc(m->meta_vals, sizeof(char *) * (size_t)(m->nmeta + 1));
            if (nv) m->meta_vals = nv;
            if (!k || !nk || !nv) {
                free(k);
                free(v);
                free_names(names, m->num_classes);
                return hcr__fail(HCR_ENOMEM, "out of memory");
            }
            m->meta_keys[m->nmeta] = k;
            m->meta_vals[m->nmeta] = v;
            m->nmeta++;
        }
    }
    if (is_names) {
        free_class_names(m);
        m->class_names = names;
    }
    return HCR_OK;
}

const char *hcr_model_get_meta(const hcr_model *m, const char *key)
{
    for (int i = 0; i < m->nmeta; i++)
        if (strcmp(m->meta_keys[i], key) == 0) return m->meta_vals[i];
    return NULL;
}

int hcr_model_meta_count(const hcr_model *m) { return m->nmeta; }

const char *hcr_model_meta_key(const hcr_model *m, int i)
{
    return i >= 0 && i < m->nmeta ? m->meta_keys[i] : NULL;
}

const char *hcr_model_class_name(const hcr_model *m, int i)
{
    if (i < 0 || i >= m->num_classes) return "?";
    if (m->class_names) return m->class_names[i];
    return m->index_names[i];
}
