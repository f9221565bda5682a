/*
 * model.c - a network built from a spec string: its parameters, per-batch
 * workspace, forward and backward passes, summary table and metadata. The
 * spec is read in spec.c; what each kind of layer is and does is its row
 * in layer_kinds.c (its passes in layer_passes.c); the arithmetic is in
 * layers.c and kernels/.
 */
#include "nn/model.h"

#include "nn/layer_kinds.h"
#include "nn/layers.h"

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

static void free_class_names(hcr_model *m);
struct view_pool;
static struct view_pool *pool_new(void);
static void pool_free(struct view_pool *p);

/* --------------------------------------------------------------- building */

static void add_tensor(hcr_model *m, const layer *l, const layer_tensor *lt)
{
    /* Cannot fail: model_plan keeps nlayers <= MODEL_MAX_LAYERS, and a layer
     * has at most LAYER_MAX_TENSORS (see MODEL_MAX_TENSORS). */
    if (m->ntensors >= MODEL_MAX_TENSORS) abort();
    tensor_ref *t = &m->tensors[m->ntensors++];
    t->trainable = lt->data >= m->params && lt->data < m->params + m->nparams;
    snprintf(t->name, sizeof t->name, "%s.%s", l->name, lt->what);
    t->ndim = lt->ndim;
    for (int i = 0; i < lt->ndim; i++) t->shape[i] = lt->shape[i];
    t->data = lt->data;
    t->count = lt->count;
}

/* A model holding the spec and its planned layers; no parameters yet. */
static hcr_status model_new(const char *spec, const layer *layers, int nl, int rows, int cols,
                            int num_classes, hcr_model **out)
{
    hcr_model *m = calloc(1, sizeof *m);
    if (!m) return hcr__fail(HCR_ENOMEM, "out of memory");
    m->spec = hcr__strdup(spec);
    m->layers = malloc(sizeof(layer) * (size_t)nl);
    m->pool = m->spec && m->layers ? pool_new() : NULL;
    if (!m->pool) {
        hcr_model_free(m);
        return hcr__fail(HCR_ENOMEM, "out of memory");
    }
    memcpy(m->layers, layers, sizeof(layer) * (size_t)nl);
    m->nlayers = nl;
    m->rows = rows;
    m->cols = cols;
    m->num_classes = num_classes;
    for (int i = 0; i < num_classes; i++)
        snprintf(m->index_names[i], sizeof m->index_names[i], "%d", i % 1000);
    *out = m;
    return HCR_OK;
}

/* One allocation each for the parameters, their gradients and the state
 * (and batch normalization's per-thread sums), sized from the layers'
 * counts. */
static hcr_status alloc_params(hcr_model *m)
{
    size_t total = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const layer *l = &m->layers[i];
        total += l->w_count + l->b_count;
        m->nstate += l->s_count;
        if (layer_ops_of(l)->run == RUN_BATCH && l->out_c > m->bn_max_c) m->bn_max_c = l->out_c;
    }
    m->nparams = total;
    m->params = calloc(total ? total : 1, sizeof(float));
    m->grads = calloc(total ? total : 1, sizeof(float));
    m->state = calloc(m->nstate ? m->nstate : 1, sizeof(float));
    if (m->bn_max_c)
        m->bn_partial = calloc((size_t)BN_MAX_THREADS * 2 * (size_t)m->bn_max_c, sizeof(double));
    if (!m->params || !m->grads || !m->state || (m->bn_max_c && !m->bn_partial))
        return hcr__fail(HCR_ENOMEM, "out of memory for %zu parameters", total);
    return HCR_OK;
}

/* Point each layer into the parameters, gradients and state, in layer
 * order, and list the tensors it owns. */
static void place_params(hcr_model *m)
{
    size_t off = 0, soff = 0;
    for (int i = 0; i < m->nlayers; i++) {
        layer *l = &m->layers[i];
        const layer_ops *o = layer_ops_of(l);
        if (!l->w_count) continue;
        l->w = m->params + off;
        l->dw = m->grads + off;
        off += l->w_count;
        l->b = m->params + off;
        l->db = m->grads + off;
        off += l->b_count;
        if (l->s_count) {
            o->bind_state(l, m->state + soff);
            soff += l->s_count;
        }
        layer_tensor t[LAYER_MAX_TENSORS];
        const int nt = o->tensors(l, t);
        for (int j = 0; j < nt; j++) add_tensor(m, l, &t[j]);
    }
}

hcr_status model_build(const char *spec, int rows, int cols, int num_classes, hcr_model **out)
{
    *out = NULL;
    layer tmp[MODEL_MAX_LAYERS];
    int nl = 0;
    size_t planned = 0;
    hcr_status s = model_plan(spec, rows, cols, num_classes, tmp, &nl, &planned);
    if (s) return s;
    hcr_model *m = NULL;
    if ((s = model_new(spec, tmp, nl, rows, cols, num_classes, &m))) return s;
    if ((s = alloc_params(m))) {
        hcr_model_free(m);
        return s;
    }
    place_params(m);
    *out = m;
    return HCR_OK;
}

int model_layer_fused(const hcr_model *m, int i) { return m->layers[i].plan.forward == CONV_FUSED_POOL; }

void model_init_weights(hcr_model *m, uint64_t seed)
{
    model_weights_changed(m);
    hcr_rng rng;
    hcr_rng_seed(&rng, seed);
    for (int i = 0; i < m->nlayers; i++) {
        layer *l = &m->layers[i];
        const layer_ops *o = layer_ops_of(l);
        if (l->w_count && o->init) o->init(l, &rng);
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

/* Layer i's buffers for a batch of n, from c: its output and output
 * gradient (an LK_ALIAS layer's are its input's), then what its kind
 * takes. */
static void layout_layer(const hcr_model *m, int i, layer *l, int n, ws_cursor *c)
{
    const layer_ops *o = layer_ops_of(l);
    l->wfwd = l->wbwd = NULL;
    l->mask = NULL;
    l->bstat = l->bsum = NULL;
    if (o->flags & LK_ALIAS) {
        l->out = i ? m->layers[i - 1].out : m->input;
        l->dout = i ? m->layers[i - 1].dout : NULL;
        return;
    }
    l->out = ws_take(c, layer_out_size(l) * n);
    l->dout = ws_take(c, layer_out_size(l) * n);
    if (o->reserve) o->reserve(l, n, c);
}

/* Lay the workspace for n images out from base and return its floats.
 * With base NULL it only counts, on copies of the layers: a failed
 * allocation then leaves the model as it was. */
static size_t layout_workspace(hcr_model *m, int n, float *base)
{
    ws_cursor c = {base, 0};
    float *input = ws_take(&c, (size_t)m->rows * m->cols * n);
    float *probs = ws_take(&c, (size_t)m->num_classes * n);
    float *dlogits = ws_take(&c, (size_t)m->num_classes * n);
    if (base) {
        m->input = input;
        m->probs = probs;
        m->dlogits = dlogits;
    }
    for (int i = 0; i < m->nlayers; i++) {
        layer copy = m->layers[i];
        layout_layer(m, i, base ? &m->layers[i] : &copy, n, &c);
    }
    return c.used;
}

hcr_status model_reserve(hcr_model *m, int n)
{
    if (n <= m->capacity) return HCR_OK;
    if (n > 1 << 20) return hcr__fail(HCR_EINVAL, "batch of %d images is too large", n);
    const size_t need = layout_workspace(m, n, NULL);
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
    layout_workspace(m, n, ws);
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
        if (!l->plan.du_floats) continue;
        l->du_off = du;
        du += ws_round_up(l->plan.du_floats);
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

/* Thread t's gradient array: m->grads for thread 0, its copy for others. */
static float *thread_grads(hcr_model *m, int t)
{
    return t == 0 ? m->grads : m->tgrads + (size_t)(t - 1) * m->nparams;
}

/* Parameters [p0, p1) of the other nt - 1 threads' gradients, added into
 * m->grads in thread order. */
static void add_thread_grads(hcr_model *m, int nt, size_t p0, size_t p1)
{
    for (int t = 1; t < nt; t++) {
        const float *tg = thread_grads(m, t);
        for (size_t j = p0; j < p1; j++) m->grads[j] += tg[j];
    }
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

share model_share(int n)
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

static const layer_ops *ops(const hcr_model *m, int i) { return layer_ops_of(&m->layers[i]); }

/* The end of the run of per-image layers that starts at i (i itself when
 * layer i is not one). */
static int image_run_end(const hcr_model *m, int i)
{
    while (i < m->nlayers && ops(m, i)->run == RUN_IMAGE) i++;
    return i;
}

/* This thread's part of layer i's forward, for a layer that does not run
 * image by image: a RUN_BATCH layer gets the whole batch and splits it
 * itself. */
static void forward_share(hcr_model *m, int i, int n, share s, int training)
{
    const layer_ops *o = ops(m, i);
    if (!o->forward) return; /* a Flatten: its output is its input */
    if (o->run == RUN_BATCH)
        o->forward(m, i, 0, n, training);
    else
        o->forward(m, i, s.b0, s.nb, training);
}

/* The forward's copies of the kernels in the layouts they read. */
static void prepare_forward(hcr_model *m, int i)
{
    const layer_ops *o = ops(m, i);
    if (o->prepare_forward) o->prepare_forward(&m->layers[i]);
}

/* Every layer, then softmax, for this thread's share of n images. */
static void forward_layers(hcr_model *m, int n, int training)
{
    const share s = model_share(n);
    for (int i = 0; i < m->nlayers;) {
        /* A run of convolution and pooling layers goes image by image,
         * so each image's activations stay in cache between layers. */
        const int j = image_run_end(m, i);
        if (j == i) {
            forward_share(m, i++, n, s, training);
            continue;
        }
        for (int b = s.b0; b < s.b0 + s.nb; b++)
            for (int r = i; r < j; r++) ops(m, r)->forward(m, r, b, 1, training);
        i = j;
    }
    softmax_forward(m->probs + (size_t)s.b0 * m->num_classes,
                    m->layers[m->nlayers - 1].out + (size_t)s.b0 * m->num_classes, s.nb,
                    m->num_classes);
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
        for (int i = 0; i < m->nlayers; i++)
            if (ops(m, i)->draw) ops(m, i)->draw(&m->layers[i], n, rng);
    const int threads = pass_threads(m);
#pragma omp parallel num_threads(threads) if (n > 1 && threads > 1)
    {
        blas_one_thread();
        forward_layers(m, n, training);
    }
}

double model_loss(const hcr_model *m, int n, const uint8_t *labels, int *correct)
{
    return cross_entropy(m->probs, labels, n, m->num_classes, correct);
}

/* This thread's part of layer i's backward, for a layer that does not run
 * image by image (see forward_share). */
static void backward_share(hcr_model *m, int i, int n, share s, float *g)
{
    const layer_ops *o = ops(m, i);
    if (!o->backward) return; /* a Flatten: its dout is its input's */
    if (o->run == RUN_BATCH)
        o->backward(m, i, 0, n, s.t, g);
    else
        o->backward(m, i, s.b0, s.nb, s.t, g);
}

/* A per-image layer adds each image's parameter gradients into g: clear
 * them (and its kind's own sums) before this thread's images... */
static void backward_images_begin(hcr_model *m, int i, int t, float *g)
{
    const layer *l = &m->layers[i];
    if (l->w) memset(g + (l->w - m->params), 0, sizeof(float) * l->w_count);
    if (l->b) memset(g + (l->b - m->params), 0, sizeof(float) * l->b_count);
    if (ops(m, i)->backward_begin) ops(m, i)->backward_begin(m, i, t);
}

/* ... and finish them after. */
static void backward_images_end(hcr_model *m, int i, int t, float *g)
{
    if (ops(m, i)->backward_end) ops(m, i)->backward_end(m, i, t, g);
}

/* The backward's copies of layer i's kernels in the layouts they read. */
static void prepare_backward(hcr_model *m, int i)
{
    const layer_ops *o = ops(m, i);
    if (o->prepare_backward) o->prepare_backward(&m->layers[i]);
}

/* Every layer from the last, for this thread's share, gradients into g. */
static void backward_layers(hcr_model *m, int n, share s, float *g)
{
    for (int i = m->nlayers - 1; i >= 0;) {
        int j = i;
        while (j >= 0 && ops(m, j)->run == RUN_IMAGE) j--;
        if (j == i) {
            backward_share(m, i--, n, s, g);
            continue;
        }
        for (int r = j + 1; r <= i; r++) backward_images_begin(m, r, s.t, g);
        for (int b = s.b0; b < s.b0 + s.nb; b++)
            for (int r = i; r > j; r--) ops(m, r)->backward(m, r, b, 1, s.t, g);
        for (int r = j + 1; r <= i; r++) backward_images_end(m, r, s.t, g);
        i = j;
    }
}

hcr_status model_backward(hcr_model *m, int n, const uint8_t *labels)
{
    const int threads = pass_threads(m);
    hcr_status st = reserve_thread_grads(m, threads);
    if (st) return st;
    for (int i = 1; i < m->nlayers; i++) prepare_backward(m, i); /* the first has no input gradient */
#pragma omp parallel num_threads(threads) if (n > 1 && threads > 1)
    {
        blas_one_thread();
        const share s = model_share(n);
        float *g = thread_grads(m, s.t);
        const int k = m->num_classes;
        softmax_cross_entropy_backward(m->layers[m->nlayers - 1].dout + (size_t)s.b0 * k,
                                       m->probs + (size_t)s.b0 * k, labels + s.b0, s.nb, k, n);
        backward_layers(m, n, s, g);
        /* Sum the other threads' gradients into m->grads in thread order,
         * each thread summing its own range of parameters. */
#pragma omp barrier
        add_thread_grads(m, s.nt, m->nparams * (size_t)s.t / (size_t)s.nt,
                         m->nparams * (size_t)(s.t + 1) / (size_t)s.nt);
    }
    return HCR_OK;
}

void model_layer_forward(hcr_model *m, int i, int n, hcr_rng *rng)
{
    layer *l = &m->layers[i];
    const layer_ops *o = layer_ops_of(l);
    prepare_forward(m, i);
    if (o->draw) o->draw(l, n, rng);
    const int threads = pass_threads(m);
#pragma omp parallel num_threads(threads) if (n > 1 && threads > 1)
    {
        blas_one_thread();
        const share s = model_share(n);
        if (o->run == RUN_IMAGE)
            for (int b = s.b0; b < s.b0 + s.nb; b++) o->forward(m, i, b, 1, 1);
        else
            forward_share(m, i, n, s, 1);
    }
}

hcr_status model_layer_backward(hcr_model *m, int i, int n)
{
    const int threads = pass_threads(m);
    hcr_status st = reserve_thread_grads(m, threads);
    if (st) return st;
    prepare_backward(m, i);
    const layer *l = &m->layers[i];
    const layer_ops *o = layer_ops_of(l);
#pragma omp parallel num_threads(threads) if (n > 1 && threads > 1)
    {
        blas_one_thread();
        const share s = model_share(n);
        float *g = thread_grads(m, s.t);
        if (o->run == RUN_IMAGE) {
            backward_images_begin(m, i, s.t, g);
            for (int b = s.b0; b < s.b0 + s.nb; b++) o->backward(m, i, b, 1, s.t, g);
            backward_images_end(m, i, s.t, g);
        } else {
            backward_share(m, i, n, s, g);
        }
        /* This layer's parameter gradients, summed in thread order. */
#pragma omp barrier
        if (s.t == 0 && (l->w || l->b)) {
            const size_t p0 = (size_t)((l->w ? l->w : l->b) - m->params);
            add_thread_grads(m, s.nt, p0, p0 + l->w_count + l->b_count);
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

/* The summary's name column: 34, or room for the longest name a layer of
 * the model's kinds can have ("batch_normalization_12 (BatchNormalization)")
 * and a space. */
static int name_width(const hcr_model *m)
{
    int width = 34;
    for (int i = 0; i < m->nlayers; i++) {
        const layer_ops *o = layer_ops_of(&m->layers[i]);
        const int need = (int)(strlen(o->keras_name) + strlen(o->keras_class)) + 7; /* "_NN (" ")" " " */
        if (need > width) width = need;
    }
    return width < 80 ? width : 80; /* the rules below hold 128 */
}

void hcr_model_summary(const hcr_model *m, FILE *f)
{
    const int width = name_width(m), rlen = width + 40;
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
        const layer_ops *o = layer_ops_of(l);
        snprintf(name, sizeof name, "%s (%s)", l->name, o->keras_class);
        flat |= (o->flags & LK_FLAT_OUT) != 0;
        if (flat)
            snprintf(shape, sizeof shape, "(None, %d)", l->out_c);
        else
            snprintf(shape, sizeof shape, "(None, %d, %d, %d)", l->out_h, l->out_w, l->out_c);
        thousands(params, sizeof params, l->w_count + l->b_count + l->s_count);
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
