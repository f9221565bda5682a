/*
 * test_model.c - models built from spec strings (model.c) and trained
 * (train.c, metrics.c):
 *   - the reference architecture: parameter count, tensor names and shapes,
 *     the summary table, Glorot-uniform initialisation, seeding,
 *   - spec parsing errors and their messages, alternative architectures
 *     with hand-counted parameters,
 *   - whole-model gradients against central finite differences of the loss,
 *   - training: bit-identical results for the same seed, learning a
 *     synthetic task, progress callbacks, and argument errors.
 */
#include "harness.h"
#include "nn/layer_kinds.h"
#include "nn/model.h"

#include <stdint.h>
#include <stdlib.h>

/* ------------------------------------------------------------- helpers */

static size_t shape_count(const tensor_ref *t)
{
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

static const tensor_ref *find_tensor(const hcr_model *m, const char *name)
{
    for (int i = 0; i < m->ntensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

/* The model's summary as a string (caller frees). */
static char *summary_text(const hcr_model *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) abort();
    hcr_model_summary(m, f);
    fclose(f);
    return buf;
}

static int create(const char *spec, int rows, int cols, int classes, uint64_t seed, hcr_model **m)
{
    hcr_status s = hcr_model_create(spec, rows, cols, classes, seed, m);
    CHECK_MSG(s == HCR_OK, "hcr_model_create(\"%s\"): %s", spec, hcr_last_error());
    return s == HCR_OK;
}

/* ------------------------------------------------------ the default model */

static void test_default_model_shape(void)
{
    hcr_model *m = NULL;
    if (!create(HCR_DEFAULT_SPEC, 28, 28, 10, 42, &m)) return;
    /*   conv2d    3*3*1*32 + 32    =     320
     *   conv2d_1  3*3*32*64 + 64   =  18,496
     *   (28 -> 26 -> 13 -> 11 -> 5: flatten 5*5*64 = 1600)
     *   dense     1600*128 + 128   = 204,928
     *   dense_1   128*10 + 10      =   1,290
     *   total                        225,034 */
    CHECK(hcr_model_param_count(m) == 225034);
    CHECK(strcmp(hcr_model_spec(m), HCR_DEFAULT_SPEC) == 0);
    CHECK(hcr_model_num_classes(m) == 10);
    CHECK(hcr_model_input_rows(m) == 28);
    CHECK(hcr_model_input_cols(m) == 28);

    static const struct {
        const char *name;
        int ndim;
        int64_t shape[4];
    } want[] = {
        {"conv2d.kernel", 4, {3, 3, 1, 32}},   {"conv2d.bias", 1, {32}},
        {"conv2d_1.kernel", 4, {3, 3, 32, 64}}, {"conv2d_1.bias", 1, {64}},
        {"dense.kernel", 2, {1600, 128}},      {"dense.bias", 1, {128}},
        {"dense_1.kernel", 2, {128, 10}},      {"dense_1.bias", 1, {10}},
    };
    CHECK(m->ntensors == 8);
    size_t total = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const tensor_ref *t = find_tensor(m, want[i].name);
        CHECK_MSG(t != NULL, "no tensor %s", want[i].name);
        if (!t) continue;
        CHECK_MSG(t == &m->tensors[i], "%s is not tensor %zu", want[i].name, i);
        CHECK(t->ndim == want[i].ndim);
        for (int d = 0; d < want[i].ndim && d < t->ndim; d++)
            CHECK_MSG(t->shape[d] == want[i].shape[d], "%s dim %d: %lld, expected %lld",
                      want[i].name, d, (long long)t->shape[d], (long long)want[i].shape[d]);
        CHECK(t->count == shape_count(t));
        /* The tensors tile params in order, without gaps or overlaps. */
        CHECK(t->data == m->params + total);
        total += t->count;
    }
    CHECK(total == m->nparams);

    /* Layers, Keras-named, with their output shapes. */
    static const struct {
        const char *name;
        layer_kind kind;
        int h, w, c;
    } layers[] = {
        {"conv2d", LAYER_CONV, 26, 26, 32},          {"max_pooling2d", LAYER_POOL, 13, 13, 32},
        {"conv2d_1", LAYER_CONV, 11, 11, 64},        {"max_pooling2d_1", LAYER_POOL, 5, 5, 64},
        {"flatten", LAYER_FLATTEN, 1, 1, 1600},      {"dense", LAYER_DENSE, 1, 1, 128},
        {"dropout", LAYER_DROPOUT, 1, 1, 128},       {"dense_1", LAYER_DENSE, 1, 1, 10},
    };
    CHECK(m->nlayers == 8);
    for (int i = 0; i < 8 && i < m->nlayers; i++) {
        const layer *l = &m->layers[i];
        CHECK_MSG(strcmp(l->name, layers[i].name) == 0, "layer %d is %s", i, l->name);
        CHECK(l->kind == layers[i].kind);
        CHECK_MSG(l->out_h == layers[i].h && l->out_w == layers[i].w && l->out_c == layers[i].c,
                  "%s: %dx%dx%d", l->name, l->out_h, l->out_w, l->out_c);
    }
    CHECK(m->layers[5].relu == 1);
    CHECK(m->layers[7].relu == 0); /* the classifier feeds softmax */
    CHECK_NEAR(m->layers[6].rate, 0.5, 0);

    char *s = summary_text(m);
    CHECK_CONTAINS(s, "Total params: 225,034");
    CHECK_CONTAINS(s, "Trainable params: 225,034");
    CHECK_CONTAINS(s, "(None, 5, 5, 64)");
    CHECK_CONTAINS(s, "(None, 26, 26, 32)");
    CHECK_CONTAINS(s, "(None, 1600)");
    CHECK_CONTAINS(s, "conv2d_1 (Conv2D)");
    CHECK_CONTAINS(s, "max_pooling2d_1 (MaxPooling2D)");
    CHECK_CONTAINS(s, "dropout (Dropout)");
    CHECK_CONTAINS(s, "dense_1 (Dense)");
    CHECK_CONTAINS(s, "18,496");
    CHECK_CONTAINS(s, "204,928");
    CHECK_CONTAINS(s, "1,290");
    free(s);
    hcr_model_free(m);
}

static void test_glorot_init(void)
{
    hcr_model *m = NULL, *m2 = NULL, *m3 = NULL;
    if (!create(HCR_DEFAULT_SPEC, 28, 28, 10, 7, &m)) return;
    /*
     * Glorot-uniform: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)),
     * with Keras's fans for a conv kernel: fan_in = K*K*Cin, fan_out = K*K*F.
     *   conv2d    fan 9 + 288     limit sqrt(6/297)  = 0.142134
     *   conv2d_1  fan 288 + 576   limit sqrt(6/864)  = 0.083333
     *   dense     fan 1600 + 128  limit sqrt(6/1728) = 0.058926
     *   dense_1   fan 128 + 10    limit sqrt(6/138)  = 0.208514
     * The variance of U(-a, a) is a^2/3. The sample variance of n values has
     * a relative standard error of sqrt(Var(x^2)) / (n^(1/2) a^2/3) =
     * sqrt(4/45) * 3 / sqrt(n) = 0.894 / sqrt(n): 5.3% for n = 288, 0.66%
     * for 18,432, 0.20% for 204,800, 2.5% for 1,280. The tolerances below
     * (30%, 5%, 3%, 15%) are all more than 5 standard errors.
     */
    static const struct {
        const char *kernel, *bias;
        double fan_in, fan_out, var_tol;
    } k[] = {
        {"conv2d.kernel", "conv2d.bias", 9, 288, 0.30},
        {"conv2d_1.kernel", "conv2d_1.bias", 288, 576, 0.05},
        {"dense.kernel", "dense.bias", 1600, 128, 0.03},
        {"dense_1.kernel", "dense_1.bias", 128, 10, 0.15},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        const tensor_ref *t = find_tensor(m, k[i].kernel), *b = find_tensor(m, k[i].bias);
        if (!t || !b) {
            CHECK(t && b);
            continue;
        }
        const double limit = sqrt(6.0 / (k[i].fan_in + k[i].fan_out));
        size_t outside = 0;
        double sum = 0, sum2 = 0, maxabs = 0;
        for (size_t j = 0; j < t->count; j++) {
            double v = t->data[j];
            /* The float limit may round up by half an ulp. */
            outside += fabs(v) > limit * (1 + 1e-6);
            sum += v;
            sum2 += v * v;
            maxabs = fmax(maxabs, fabs(v));
        }
        const double n = (double)t->count, mean = sum / n, var = sum2 / n - mean * mean;
        CHECK_MSG(outside == 0, "%s: %zu values outside +-%g", k[i].kernel, outside, limit);
        CHECK_MSG(fabs(var / (limit * limit / 3) - 1) <= k[i].var_tol,
                  "%s: variance %g, expected %g", k[i].kernel, var, limit * limit / 3);
        /* The mean's standard error is limit / sqrt(3n); allow 6 of them. */
        CHECK_MSG(fabs(mean) <= 6 * limit / sqrt(3 * n), "%s: mean %g", k[i].kernel, mean);
        /* The range is used: P(max |v| < 0.95 limit) = 0.95^n < 4e-7 for n >= 288. */
        CHECK_MSG(maxabs >= 0.95 * limit, "%s: largest |value| %g of %g", k[i].kernel, maxabs,
                  limit);
        size_t nonzero = 0;
        for (size_t j = 0; j < b->count; j++) nonzero += b->data[j] != 0.0f;
        CHECK_MSG(nonzero == 0, "%s: %zu nonzero biases", k[i].bias, nonzero);
    }

    /* Same seed: identical; another seed: different (almost every value). */
    if (create(HCR_DEFAULT_SPEC, 28, 28, 10, 7, &m2)) {
        CHECK(m2->nparams == m->nparams);
        CHECK(memcmp(m->params, m2->params, m->nparams * sizeof(float)) == 0);
    }
    if (create(HCR_DEFAULT_SPEC, 28, 28, 10, 8, &m3)) {
        size_t same = 0;
        for (size_t j = 0; j < m->nparams; j++) same += m->params[j] == m3->params[j];
        /* Only the 234 zero biases (32+64+128+10) and rare coincidences agree. */
        CHECK_MSG(same < 234 + 1000, "%zu of %zu parameters equal across seeds", same, m->nparams);
    }
    hcr_model_free(m);
    hcr_model_free(m2);
    hcr_model_free(m3);
}

/* ---------------------------------------------------------------- specs */

/* The table of layer kinds (layer_kinds.c): every row can be used the
 * way spec.c and model.c use it. */
static void test_layer_table(void)
{
    for (int k = 0; k < LAYER_KINDS; k++) {
        const layer_ops *o = &layer_kinds[k];
        CHECK_MSG(o->keras_class && o->keras_name && o->shape, "row %d is incomplete", k);
        CHECK_MSG(!o->token == !o->parse && !o->token == !o->syntax, "row %d: token, parse, syntax", k);
        CHECK_MSG(!o->tensors == !o->count && !o->tensors == !o->init, "row %d: parameters", k);
        CHECK_MSG((o->flags & LK_ALIAS) || o->forward, "row %d: no forward", k);
        CHECK_MSG(o->run != RUN_IMAGE || (o->forward && o->backward), "row %d: per image", k);
        for (int j = 0; j < k; j++) {
            const layer_ops *p = &layer_kinds[j];
            CHECK(strcmp(o->keras_name, p->keras_name) != 0);
            /* No token may start another: the first match is the only one. */
            if (o->token && p->token)
                CHECK_MSG(strncmp(o->token, p->token, strlen(p->token)) != 0 &&
                              strncmp(p->token, o->token, strlen(o->token)) != 0,
                          "tokens '%s' and '%s'", o->token, p->token);
        }
    }
}

static void test_spec_errors(void)
{
    static const struct {
        const char *spec, *msg;
    } bad[] = {
        {"", "empty architecture spec"},
        {"conv", "cannot read 'conv'"},
        {"conv32-", "ends with '-'"},
        {"banana", "cannot read 'banana' (expected conv<F>[x<K>], pool[<S>], dense<N>, bn or "
                   "drop<R>, separated by '-')"},
        {"conv8-bnx", "cannot read 'bnx'"},
        {"pool-bn", "'bn' must follow a conv or dense layer"},
        {"drop1.5", "'drop1.5': dropout rate must be a number in [0, 1)"},
        {"drop", "dropout rate must be a number in [0, 1)"},
        {"drop-0.5", "dropout rate must be a number in [0, 1)"},
        {"conv0", "cannot read 'conv0'"},
        {"conv16x0", "cannot read 'conv16x0'"},
        {"conv16x16", "cannot read 'conv16x16'"},
        {"conv16x3y", "cannot read 'conv16x3y'"},
        {"pool0", "cannot read 'pool0'"},
        {"dense", "cannot read 'dense'"},
        {"conv32--pool", "empty token"},
        /* 28 -> conv 26 -> pool 13 -> conv 11 -> pool 5 -> conv 3 -> pool 1:
         * the fourth conv has a 1x1x32 input. */
        {"conv32-pool-conv32-pool-conv32-pool-conv32-pool-conv32-pool",
         "'conv32' does not fit a 1x1x32 input"},
        {"conv8x15-conv8x15", "'conv8x15' does not fit a 14x14x8 input"},
        {"pool16-pool2", "'pool2' does not fit a 1x1x1 input"},
        {"dense32-conv8", "'conv8' comes after a dense layer"},
        {"dense32-pool", "'pool' comes after a dense layer"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hcr_model *m = (hcr_model *)&m; /* must be reset to NULL */
        hcr_status s = hcr_model_create(bad[i].spec, 28, 28, 10, 1, &m);
        CHECK_MSG(s == HCR_EINVAL, "spec \"%s\" gave status %d", bad[i].spec, (int)s);
        CHECK(m == NULL);
        CHECK_CONTAINS(hcr_last_error(), bad[i].msg);
        if (s == HCR_OK) hcr_model_free(m);
    }
    hcr_model *m = NULL;
    CHECK(hcr_model_create(NULL, 28, 28, 10, 1, &m) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "no architecture spec");
    CHECK(hcr_model_create("dense8", 0, 28, 10, 1, &m) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "input size 0x28");
    CHECK(hcr_model_create("dense8", 28, 28, 1, 1, &m) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "1 classes");
    CHECK(m == NULL);
}

static void test_spec_alternatives(void)
{
    static const struct {
        const char *spec;
        size_t params;
        const char *summary;
    } ok[] = {
        /* conv 5*5*1*16 + 16 = 416 (28 -> 24), pool3 (24 -> 8): 8*8*16 = 1024,
         * dense 1024*64 + 64 = 65,600, dense_1 64*10 + 10 = 650:
         * 416 + 65,600 + 650 = 66,666 */
        {"conv16x5-pool3-dense64", 66666, "(None, 8, 8, 16)"},
        /* dense 784*32 + 32 = 25,120, dense_1 32*10 + 10 = 330: 25,450 */
        {"dense32", 25450, "(None, 784)"},
        /* conv 3*3*1*8 + 8 = 80, conv_1 3*3*8*8 + 8 = 584 (28 -> 26 -> 24),
         * pool (-> 12): 12*12*8 = 1152, dense 1152*10 + 10 = 11,530:
         * 80 + 584 + 11,530 = 12,194 (no hidden dense: the classifier is "dense") */
        {"conv8-conv8-pool", 12194, "conv2d_1 (Conv2D)"},
        /* dropout on the image (28x28x1), then dense 784*16 + 16 = 12,560 and
         * dense_1 16*10 + 10 = 170: 12,730 */
        {"drop0.25-dense16-drop0", 12730, "(None, 28, 28, 1)"},
        /* pool7 (28 -> 4): 4*4*1 = 16, dense 16*10 + 10 = 170 */
        {"pool7", 170, "Total params: 170"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        hcr_model *m = NULL;
        if (!create(ok[i].spec, 28, 28, 10, 3, &m)) continue;
        CHECK_MSG(hcr_model_param_count(m) == ok[i].params, "%s: %zu parameters, expected %zu",
                  ok[i].spec, hcr_model_param_count(m), ok[i].params);
        char *s = summary_text(m);
        CHECK_CONTAINS(s, ok[i].summary);
        free(s);
        /* The last layer is always the classifier with num_classes units. */
        const layer *last = &m->layers[m->nlayers - 1];
        CHECK(last->kind == LAYER_DENSE && last->out_c == 10 && !last->relu);
        hcr_model_free(m);
    }
    /* A 3-class model on non-square 5x7 images. */
    hcr_model *m = NULL;
    if (create("dense4", 5, 7, 3, 3, &m)) {
        /* dense 35*4 + 4 = 144, dense_1 4*3 + 3 = 15: 159 */
        CHECK(hcr_model_param_count(m) == 159);
        CHECK(find_tensor(m, "dense.kernel") && find_tensor(m, "dense.kernel")->shape[0] == 35);
        hcr_model_free(m);
    }
}

/* ------------------------------------------------- whole-model gradients */

typedef struct grad_case {
    hcr_model *m;
    int n;
    const uint8_t *labels;
    const float *input; /* n images, copied into m->input before each pass */
} grad_case;

static double model_case_loss(grad_case *g)
{
    hcr_rng rng;
    hcr_rng_seed(&rng, 99); /* the same dropout masks on every pass */
    memcpy(g->m->input, g->input, (size_t)g->n * g->m->rows * g->m->cols * sizeof(float));
    model_forward(g->m, g->n, 1, &rng);
    return model_loss(g->m, g->n, g->labels, NULL);
}

/* The model's discrete choices at the current point: which units of each
 * ReLU layer are positive and which element of each pooling window is the
 * (first) maximum, one byte each. Between two points with the same pattern
 * the loss is smooth (linear layers and softmax), unless a choice flips and
 * flips back within the step, which a step of 1e-3 makes very unlikely. */
static size_t pattern_size(const hcr_model *m, int n)
{
    size_t k = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const layer *l = &m->layers[i];
        if (l->relu || l->kind == LAYER_POOL) k += (size_t)n * l->out_h * l->out_w * l->out_c;
    }
    return k;
}

static void pattern(const hcr_model *m, int n, unsigned char *pat)
{
    for (int i = 0; i < m->nlayers; i++) {
        const layer *l = &m->layers[i];
        const size_t osz = (size_t)l->out_h * l->out_w * l->out_c;
        if (model_layer_fused(m, i)) {
            /* A first layer fused with its pooling keeps, instead of its
             * output, the route of each pooled value (which pixel won, or
             * none where the ReLU is off): that is its pattern, and the
             * pooling's. */
            const size_t psz = layer_out_size(&m->layers[i + 1]);
            for (int b = 0; b < n; b++)
                for (size_t j = 0; j < osz; j++) *pat++ = j < psz ? (unsigned char)l->out[b * osz + j] : 0;
            const size_t pool = (size_t)n * psz;
            memset(pat, 0, pool);
            pat += pool;
            i++;
            continue;
        }
        if (l->relu) {
            for (size_t j = 0; j < (size_t)n * osz; j++) *pat++ = l->out[j] > 0;
        } else if (l->kind == LAYER_POOL) {
            const float *in = i ? m->layers[i - 1].out : m->input;
            const int H = l->in_h, W = l->in_w, C = l->in_c, S = l->k;
            for (int b = 0; b < n; b++)
                for (int oy = 0; oy < l->out_h; oy++)
                    for (int ox = 0; ox < l->out_w; ox++)
                        for (int c = 0; c < C; c++) {
                            float mx = l->out[(((size_t)b * l->out_h + oy) * l->out_w + ox) * C + c];
                            unsigned char which = 255;
                            for (int d = 0; d < S * S && which == 255; d++) {
                                int y = oy * S + d / S, x = ox * S + d % S;
                                if (in[(((size_t)b * H + y) * W + x) * C + c] == mx)
                                    which = (unsigned char)d;
                            }
                            *pat++ = which;
                        }
        }
    }
}

/*
 * Compare m->grads with central differences of the mean loss for every
 * parameter of tensors with at most 60 values and 30 sampled ones of larger
 * tensors. eps = 1e-3 on parameters of size ~0.1..0.5.
 * Tolerance: |analytic - central| <= 5e-4 + 2e-2 |analytic|. Error budget:
 * the loss is a double sum of float probabilities; each pass has float
 * rounding noise of ~1e-7 relative in the loss (~1), which over h = 2e-3 is
 * up to ~1e-4 (measured: below 5e-5); the truncation error of the smooth
 * loss, O(eps^2) times its third derivative, is below 1e-5. Components
 * whose perturbation changes a ReLU or max-pooling choice (see pattern) are
 * skipped: the central difference straddles a kink there. At most half of
 * a tensor's and a tenth of the model's checked components may be skipped.
 */
static void model_gradcheck(const char *spec, int rows, int cols, int classes, int n, uint64_t seed)
{
    hcr_model *m = NULL;
    if (!create(spec, rows, cols, classes, seed, &m)) return;
    CHECK(model_reserve(m, n) == HCR_OK);
    hcr_rng rng;
    hcr_rng_seed(&rng, seed + 1000);
    const size_t in_n = (size_t)n * rows * cols;
    float *input = malloc(in_n * sizeof(float));
    uint8_t *labels = malloc((size_t)n);
    if (!input || !labels) abort();
    for (size_t i = 0; i < in_n; i++) input[i] = hcr_rng_uniform(&rng);
    for (int i = 0; i < n; i++) labels[i] = (uint8_t)(i % classes);
    /* Small random biases, so that the bias values are not all zero. */
    for (int t = 0; t < m->ntensors; t++)
        if (strstr(m->tensors[t].name, ".bias"))
            for (size_t j = 0; j < m->tensors[t].count; j++)
                m->tensors[t].data[j] = 0.1f * (hcr_rng_uniform(&rng) - 0.5f);

    grad_case g = {m, n, labels, input};
    model_case_loss(&g);
    CHECK(model_backward(m, n, labels) == HCR_OK);
    float *analytic = malloc(m->nparams * sizeof(float));
    if (!analytic) abort();
    memcpy(analytic, m->grads, m->nparams * sizeof(float));
    /* Gradients are written, not accumulated: a second pass gives the same. */
    model_case_loss(&g);
    CHECK(model_backward(m, n, labels) == HCR_OK);
    CHECK_MSG(memcmp(analytic, m->grads, m->nparams * sizeof(float)) == 0,
              "%s: a second backward pass changed the gradients", spec);

    const float eps = 1e-3f;
    const double abs_tol = 5e-4, rel_tol = 2e-2;
    const size_t npat = pattern_size(m, n);
    unsigned char *pat0 = malloc(npat + 1), *pat1 = malloc(npat + 1);
    if (!pat0 || !pat1) abort();
    int total_checked = 0, total_skipped = 0;
    for (int t = 0; t < m->ntensors; t++) {
        tensor_ref *tr = &m->tensors[t];
        if (!tr->trainable) continue; /* batch norm's moving statistics */
        const size_t off = (size_t)(tr->data - m->params);
        const size_t count = tr->count <= 60 ? tr->count : 30;
        int bad = 0, skipped = 0;
        double worst = 0, largest = 0;
        for (size_t s = 0; s < count; s++) {
            size_t j = tr->count <= 60 ? s : hcr_rng_below(&rng, (uint32_t)tr->count);
            float *p = &tr->data[j];
            const float x = *p, xp = x + eps, xm = x - eps;
            model_case_loss(&g);
            pattern(m, n, pat0);
            *p = xp;
            const double lp = model_case_loss(&g);
            pattern(m, n, pat1);
            int kink = memcmp(pat0, pat1, npat) != 0;
            *p = xm;
            const double lm = model_case_loss(&g);
            pattern(m, n, pat1);
            kink |= memcmp(pat0, pat1, npat) != 0;
            *p = x;
            /* A choice flipped: the loss has a kink in [x-eps, x+eps]. Its
             * jump in slope shows as a gap between the one-sided
             * differences, and the central difference is off by at most
             * about half that gap; skip when it could exceed the tolerance. */
            if (kink) {
                const double l0 = model_case_loss(&g);
                const double gap = (lp - l0) / ((double)xp - x) - (l0 - lm) / ((double)x - xm);
                if (fabs(gap) > abs_tol) {
                    skipped++;
                    continue;
                }
            }
            const double num = (lp - lm) / ((double)xp - xm), a = analytic[off + j];
            largest = fmax(largest, fabs(a));
            const double tol = abs_tol + rel_tol * fabs(a);
            worst = fmax(worst, fabs(a - num) / tol);
            if (!(fabs(a - num) <= tol)) {
                if (bad < 5)
                    fprintf(stderr, "  %s %s[%zu]: analytic %.7g, numeric %.7g\n", spec, tr->name,
                            j, a, num);
                bad++;
            }
        }
        if (getenv("HCR_TEST_VERBOSE"))
            fprintf(stderr, "  %s %s: worst error/tolerance %.3f, %d of %zu skipped\n", spec,
                    tr->name, worst, skipped, count);
        CHECK_MSG(bad == 0, "%s %s: %d gradient components differ", spec, tr->name, bad);
        /* A check of zeros against zeros would prove nothing (dead units).
         * Except for a bias that batch normalization follows: the
         * normalization subtracts it again, so its gradient is zero. */
        int before_bn = 0;
        for (int i = 0; i + 1 < m->nlayers; i++)
            if (m->layers[i + 1].kind == LAYER_BN && strncmp(tr->name, m->layers[i].name, strlen(m->layers[i].name)) == 0 &&
                tr->name[strlen(m->layers[i].name)] == '.' && strstr(tr->name, ".bias"))
                before_bn = 1;
        if (before_bn)
            CHECK_MSG(largest < 1e-5, "%s %s: a bias under batch norm has gradient %g", spec, tr->name, largest);
        else
            CHECK_MSG(largest > 1e-3, "%s %s: largest checked gradient %g", spec, tr->name, largest);
        CHECK_MSG(skipped * 2 <= (int)count, "%s %s: %d of %zu components skipped as kinks", spec,
                  tr->name, skipped, count);
        total_checked += (int)count;
        total_skipped += skipped;
    }
    CHECK_MSG(total_skipped * 10 <= total_checked, "%s: %d of %d components skipped as kinks",
              spec, total_skipped, total_checked);
    free(pat0);
    free(pat1);
    free(analytic);
    free(input);
    free(labels);
    hcr_model_free(m);
}

static void test_model_gradients(void)
{
    /* Three threads, so the batch is split and the per-thread gradient
     * buffers are summed (hcr_threads() would otherwise be the core count). */
    hcr_set_threads(3);
    /* conv 3*3*1*2+2 = 20 (8 -> 6), pool (-> 3): 18, dense 18*5+5 = 95,
     * dense_1 5*3+3 = 18: 133 parameters. */
    model_gradcheck("conv2-pool-dense5", 8, 8, 3, 4, 1);
    /* Two convolutions (the second gets a din), an odd pooling (5 -> 2,
     * a dropped row and column) and dropout with a fixed mask. */
    model_gradcheck("conv2-conv3x2-pool-dense4-drop0.25", 8, 8, 3, 4, 2);
    /* Dense straight on the pixels, dropout before the classifier, pool 3. */
    model_gradcheck("pool3-dense6-drop0.5", 9, 7, 4, 5, 3);
    /* Eight channels: the shapes the vectorised (AVX2) kernels take, where
     * the CPU has them. conv 3*3*1*8+8 = 80, conv_1 2*2*8*8+8 = 264
     * (8 -> 6 -> 5), pool (-> 2): 32, dense 32*4+4 = 132, dense_1 15. */
    model_gradcheck("conv8-conv8x2-pool-dense4", 8, 8, 3, 3, 6);
    /* Batch normalization after a convolution and after a dense layer:
     * statistics over the whole batch, split across the threads. */
    model_gradcheck("conv3-bn-pool-dense5-bn", 8, 8, 3, 5, 7);
    model_gradcheck("conv8-bn-conv8x2-bn-pool-dense4", 8, 8, 3, 4, 8);
    /* 16 filters on an even input: where the CPU has AVX2, the first layer
     * runs fused with its pooling and the second 3x3 convolution through
     * Winograd, forward and backward. conv 160 (12 -> 10), pool (-> 5),
     * conv_1 3*3*16*16+16 = 2320 (-> 3), dense 144*3+3 = 435. */
    model_gradcheck("conv16-pool-conv16-dense3", 12, 12, 3, 4, 9);
    /* A Winograd layer whose ReLU is not fused into a pooling's backward,
     * before batch normalization (as in the wide-bn architecture). */
    model_gradcheck("conv16-conv16-bn-pool-dense3", 8, 8, 3, 4, 10);
    hcr_set_threads(1);
    model_gradcheck("conv3-bn-pool-dense5-bn", 8, 8, 3, 5, 7);
    model_gradcheck("conv2-pool-dense5", 8, 8, 3, 4, 1);
    hcr_set_threads(0);
}

/* The batch is split across threads with per-thread gradient buffers summed
 * in thread order: any thread count gives the same gradients up to float
 * summation order, and the same thread count gives the same bits. */
static void test_backward_threads(void)
{
    hcr_model *m = NULL;
    if (!create("conv4-pool-conv3x2-pool-dense8-drop0.3", 12, 12, 5, 9, &m)) return;
    const int n = 7; /* uneven shares: 7 = 2 + 2 + 3 over 3 threads */
    CHECK(model_reserve(m, n) == HCR_OK);
    hcr_rng rng;
    hcr_rng_seed(&rng, 4);
    float *input = malloc((size_t)n * 144 * sizeof(float));
    float *g1 = malloc(m->nparams * sizeof(float)), *p1 = malloc((size_t)n * 5 * sizeof(float));
    if (!input || !g1 || !p1) abort();
    for (int i = 0; i < n * 144; i++) input[i] = hcr_rng_uniform(&rng);
    uint8_t labels[7] = {0, 1, 2, 3, 4, 0, 1};
    grad_case g = {m, n, labels, input};
    const int threads[] = {1, 2, 3, 3};
    for (int k = 0; k < 4; k++) {
        hcr_set_threads(threads[k]);
        model_case_loss(&g);
        CHECK(model_backward(m, n, labels) == HCR_OK);
        if (k == 0) {
            memcpy(g1, m->grads, m->nparams * sizeof(float));
            memcpy(p1, m->probs, (size_t)n * 5 * sizeof(float));
            continue;
        }
        /* Relative 1e-5 of the largest gradient: the per-thread sums of at
         * most 7 images' contributions are added in another order (float,
         * ~1e-7 relative per addition). */
        double scale = 0, worst = 0;
        for (size_t j = 0; j < m->nparams; j++) scale = fmax(scale, fabs(g1[j]));
        for (size_t j = 0; j < m->nparams; j++) worst = fmax(worst, fabs(g1[j] - m->grads[j]));
        CHECK_MSG(worst <= 1e-5 * scale, "%d threads: gradients differ by %g (scale %g)",
                  threads[k], worst, scale);
        double pw = 0;
        for (int j = 0; j < n * 5; j++) pw = fmax(pw, fabs(p1[j] - m->probs[j]));
        CHECK_MSG(pw <= 1e-6, "%d threads: probabilities differ by %g", threads[k], pw);
        if (k == 3) { /* the same thread count again: the same bits */
            float *g3 = malloc(m->nparams * sizeof(float));
            if (!g3) abort();
            memcpy(g3, m->grads, m->nparams * sizeof(float));
            model_case_loss(&g);
            CHECK(model_backward(m, n, labels) == HCR_OK);
            CHECK(memcmp(g3, m->grads, m->nparams * sizeof(float)) == 0);
            free(g3);
        }
    }
    double norm = 0;
    for (size_t j = 0; j < m->nparams; j++) norm += (double)g1[j] * g1[j];
    CHECK(norm > 1e-6);
    hcr_set_threads(0);
    free(input), free(g1), free(p1);
    hcr_model_free(m);
}

/* ---------------------------------------------------------------- training */

/* n images of 8x8 in 3 classes: a horizontal bar, a vertical bar, or a
 * diagonal, at a random position, bright on a noisy dark background. */
static hcr_dataset make_bars(int n, uint64_t seed)
{
    hcr_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.count = n;
    ds.rows = ds.cols = 8;
    ds.num_classes = 3;
    ds.pixels = malloc((size_t)n * 64);
    ds.labels = malloc((size_t)n);
    if (!ds.pixels || !ds.labels) abort();
    hcr_rng rng;
    hcr_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) {
        uint8_t *img = ds.pixels + (size_t)i * 64;
        int cls = i % 3, pos = 1 + (int)hcr_rng_below(&rng, 6);
        ds.labels[i] = (uint8_t)cls;
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 8; x++) {
                int on = cls == 0 ? y == pos : cls == 1 ? x == pos : (x - y == pos - 3);
                img[y * 8 + x] = (uint8_t)(on ? 180 + hcr_rng_below(&rng, 76)
                                              : hcr_rng_below(&rng, 60));
            }
    }
    return ds;
}

static void free_ds(hcr_dataset *ds)
{
    free(ds->pixels);
    free(ds->labels);
}

static hcr_train_config small_config(uint64_t seed)
{
    hcr_train_config cfg;
    hcr_train_config_default(&cfg);
    cfg.epochs = 6;
    cfg.batch_size = 16;
    cfg.lr = 0.01f;
    cfg.seed = seed;
    cfg.threads = 2;
    return cfg;
}

static void test_train_config_default(void)
{
    hcr_train_config cfg;
    memset(&cfg, 0xff, sizeof cfg);
    hcr_train_config_default(&cfg);
    CHECK(cfg.epochs == 10);
    CHECK(cfg.batch_size == 128);
    CHECK_NEAR(cfg.lr, 0.001, 1e-9);
    CHECK_NEAR(cfg.beta1, 0.9, 1e-7);
    CHECK_NEAR(cfg.beta2, 0.999, 1e-7);
    CHECK_NEAR(cfg.epsilon, 1e-7, 1e-13);
    CHECK(cfg.threads == 0);
}

static void test_train_deterministic_and_learns(void)
{
    const char *spec = "conv4-pool-dense16";
    hcr_dataset train = make_bars(240, 1), test = make_bars(120, 2);
    hcr_model *a = NULL, *b = NULL, *c = NULL;
    if (!create(spec, 8, 8, 3, 5, &a) || !create(spec, 8, 8, 3, 5, &b) ||
        !create(spec, 8, 8, 3, 5, &c))
        goto done;
    hcr_train_config cfg = small_config(11);
    hcr_history ha, hb, hc;
    hcr_eval before, after;
    CHECK(hcr_evaluate(a, &test, 2, &before) == HCR_OK);
    CHECK(hcr_train(a, &train, &test, &cfg, NULL, NULL, &ha) == HCR_OK);
    CHECK(hcr_train(b, &train, &test, &cfg, NULL, NULL, &hb) == HCR_OK);
    /* Same seed, same threads: bit-identical parameters and history. */
    CHECK(memcmp(a->params, b->params, a->nparams * sizeof(float)) == 0);
    CHECK(ha.epochs == 6 && hb.epochs == 6);
    for (int e = 0; e < ha.epochs && e < hb.epochs; e++) {
        CHECK(ha.rows[e].loss == hb.rows[e].loss);
        CHECK(ha.rows[e].val_loss == hb.rows[e].val_loss);
    }
    /* Another seed (shuffle order): different parameters. */
    hcr_train_config cfg2 = small_config(12);
    CHECK(hcr_train(c, &train, NULL, &cfg2, NULL, NULL, &hc) == HCR_OK);
    CHECK(memcmp(a->params, c->params, a->nparams * sizeof(float)) != 0);
    if (hc.epochs > 0) /* no validation set: zeros */
        CHECK(hc.rows[0].val_loss == 0 && hc.rows[0].val_accuracy == 0);

    /* It learns: the loss falls and the held-out accuracy is high. Chance is
     * 1/3 and a first-epoch loss is near ln 3 = 1.0986. */
    if (ha.epochs == 6) {
        CHECK_MSG(ha.rows[5].loss < 0.5 * ha.rows[0].loss, "loss %g -> %g", ha.rows[0].loss,
                  ha.rows[5].loss);
        CHECK_MSG(ha.rows[5].accuracy > 0.9, "training accuracy %g", ha.rows[5].accuracy);
        CHECK_MSG(ha.rows[5].val_accuracy > 0.9, "val accuracy %g", ha.rows[5].val_accuracy);
    }
    CHECK(hcr_evaluate(a, &test, 2, &after) == HCR_OK);
    CHECK_MSG(after.accuracy > 0.9, "test accuracy %g (before training %g)", after.accuracy,
              before.accuracy);
    CHECK(after.loss < before.loss);
    /* hcr_evaluate agrees with the validation of the last epoch. They run
     * in different batch sizes (16 and 120), so BLAS may round differently:
     * the loss within 1e-6 (float probabilities), the accuracy within one
     * image (1/120) in case a near-tie flips. */
    if (ha.epochs == 6) {
        CHECK_NEAR(after.accuracy, ha.rows[5].val_accuracy, 1.0 / 120 + 1e-12);
        CHECK_NEAR(after.loss, ha.rows[5].val_loss, 1e-6);
    }
    CHECK(after.count == 120 && after.num_classes == 3);
    int diag = 0, total = 0;
    for (int i = 0; i < 9; i++) total += after.confusion[i];
    for (int i = 0; i < 3; i++) diag += after.confusion[i * 3 + i];
    CHECK(total == 120);
    CHECK_NEAR((double)diag / total, after.accuracy, 1e-12);
    for (int i = 0; i < 3; i++) CHECK(after.support[i] == 40);
    hcr_eval_free(&before);
    hcr_eval_free(&after);
    hcr_history_free(&ha);
    hcr_history_free(&hb);
    hcr_history_free(&hc);
    CHECK(ha.rows == NULL && ha.epochs == 0);
done:
    hcr_model_free(a);
    hcr_model_free(b);
    hcr_model_free(c);
    free_ds(&train);
    free_ds(&test);
}

typedef struct progress_log {
    int calls, ends, stop_at_call;
    int last_epoch, last_step, steps;
    int bad_order;
} progress_log;

static int on_progress(void *user, const hcr_progress *p)
{
    progress_log *log = user;
    log->calls++;
    if (p->end_of_epoch) {
        log->ends++;
        if (p->step != p->steps) log->bad_order++;
    } else {
        /* Steps count up within an epoch, 1-based. */
        int expect = p->epoch == log->last_epoch ? log->last_step + 1 : 1;
        if (p->step != expect || p->epoch < log->last_epoch) log->bad_order++;
        log->last_epoch = p->epoch;
        log->last_step = p->step;
    }
    log->steps = p->steps;
    if (!(p->loss > 0) || p->accuracy < 0 || p->accuracy > 1) log->bad_order++;
    return log->stop_at_call && log->calls == log->stop_at_call;
}

static void test_train_progress_and_stop(void)
{
    hcr_dataset train = make_bars(50, 3);
    hcr_model *m = NULL;
    if (!create("conv2-pool-dense4", 8, 8, 3, 1, &m)) goto done;
    hcr_train_config cfg = small_config(1);
    cfg.epochs = 2;
    cfg.batch_size = 16; /* 50 images: 4 steps, the last with 2 images */
    progress_log log = {0};
    hcr_history h;
    CHECK(hcr_train(m, &train, NULL, &cfg, on_progress, &log, &h) == HCR_OK);
    CHECK(log.steps == 4);
    CHECK(log.calls == 2 * (4 + 1));
    CHECK(log.ends == 2);
    CHECK(log.bad_order == 0);
    CHECK(h.epochs == 2);
    hcr_history_free(&h);

    /* Returning nonzero from the callback stops training. */
    progress_log stop = {0};
    stop.stop_at_call = 3;
    float *snapshot = malloc(m->nparams * sizeof(float));
    if (!snapshot) abort();
    CHECK(hcr_train(m, &train, NULL, &cfg, on_progress, &stop, &h) == HCR_EINTERRUPTED);
    CHECK_CONTAINS(hcr_last_error(), "epoch 1, step 3");
    CHECK(stop.calls == 3);
    CHECK(h.epochs == 0);
    hcr_history_free(&h);
    /* Stopping at the end-of-epoch call: that epoch is recorded. */
    progress_log stop2 = {0};
    stop2.stop_at_call = 5;
    memcpy(snapshot, m->params, m->nparams * sizeof(float));
    CHECK(hcr_train(m, &train, NULL, &cfg, on_progress, &stop2, &h) == HCR_EINTERRUPTED);
    CHECK_CONTAINS(hcr_last_error(), "after epoch 1");
    CHECK(h.epochs == 1);
    CHECK(memcmp(snapshot, m->params, m->nparams * sizeof(float)) != 0); /* it did train */
    hcr_history_free(&h);
    free(snapshot);
done:
    hcr_model_free(m);
    free_ds(&train);
}

/* A model whose first layer is dense (a Flatten over the image, which has
 * no gradient) trains on several threads: each thread's share once got a
 * bogus input-gradient pointer (NULL plus its offset) and crashed. */
static void test_dense_first(void)
{
    hcr_dataset train = make_bars(64, 9);
    hcr_model *m = NULL;
    if (!create("dense8", 8, 8, 3, 2, &m)) goto done;
    hcr_train_config cfg = small_config(5);
    cfg.epochs = 2;
    hcr_history h;
    CHECK_MSG(hcr_train(m, &train, NULL, &cfg, NULL, NULL, &h) == HCR_OK, "%s", hcr_last_error());
    CHECK(h.epochs == 2 && h.rows[1].loss < h.rows[0].loss);
    hcr_history_free(&h);
done:
    hcr_model_free(m);
    free_ds(&train);
}

/* ----------------------------------------------------------- checkpoints */

typedef struct stop_after {
    int calls, at;
} stop_after;

static int stop_at(void *user, const hcr_progress *p)
{
    (void)p;
    stop_after *s = user;
    return ++s->calls == s->at;
}

/* Both models hold the same bits: weights and batch-norm statistics. */
static int same_bits(const hcr_model *a, const hcr_model *b)
{
    return a->nparams == b->nparams && a->nstate == b->nstate &&
           memcmp(a->params, b->params, a->nparams * sizeof(float)) == 0 &&
           memcmp(a->state, b->state, a->nstate * sizeof(float)) == 0;
}

/* A run stopped anywhere (mid-epoch, at an epoch's end, on the last step)
 * and resumed from its checkpoint ends bit-identical to a run never
 * stopped, with dropout, batch normalization and augmentation drawing from
 * all three random streams. */
static void test_checkpoint_resume(void)
{
    const char *spec = "conv4-bn-pool-dense16-drop0.3";
    const char *ck = harness_tmp_path("resume.ckpt");
    hcr_dataset train = make_bars(100, 5), val = make_bars(30, 6);
    hcr_train_config cfg = small_config(21);
    cfg.epochs = 3;
    cfg.shift = 1;
    hcr_model *ref = NULL;
    hcr_history href;
    if (!create(spec, 8, 8, 3, 4, &ref)) goto done;
    CHECK(hcr_train(ref, &train, &val, &cfg, NULL, NULL, &href) == HCR_OK);
    /* 100 images in batches of 16: 7 steps and one end-of-epoch call each. */
    static const int stops[] = {1, 4, 7, 8, 9, 15, 23, 24};
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
        hcr_model *m = NULL, *r = NULL;
        if (!create(spec, 8, 8, 3, 4, &m)) break;
        hcr_train_config c = cfg, rc;
        c.checkpoint = ck;
        stop_after sa = {0, stops[i]};
        hcr_history h1, h2;
        CHECK(hcr_train(m, &train, &val, &c, stop_at, &sa, &h1) == HCR_EINTERRUPTED);
        CHECK_MSG(hcr_checkpoint_load(ck, &r, &rc) == HCR_OK, "%s", hcr_last_error());
        if (r) {
            CHECK(rc.resume == 1 && rc.checkpoint == ck && rc.batch_size == 16 && rc.seed == 21 &&
                  rc.shift == 1 && rc.epochs == 3 && rc.lr == cfg.lr);
            CHECK(hcr_model_get_meta(r, "checkpoint") == NULL);
            CHECK_MSG(hcr_train(r, &train, &val, &rc, NULL, NULL, &h2) == HCR_OK, "%s", hcr_last_error());
            CHECK_MSG(same_bits(r, ref), "stopped at call %d: the resumed run differs", stops[i]);
            CHECK(h2.epochs == 3);
            for (int e = 0; e < 3 && e < h2.epochs; e++)
                CHECK(h2.rows[e].loss == href.rows[e].loss && h2.rows[e].val_loss == href.rows[e].val_loss);
            hcr_history_free(&h2);
        }
        hcr_history_free(&h1);
        hcr_model_free(m);
        hcr_model_free(r);
    }
    /* A finished run's last checkpoint: nothing is left to do, or more
     * epochs on top. */
    hcr_model *m = NULL;
    hcr_train_config c = cfg, rc;
    c.checkpoint = ck;
    if (create(spec, 8, 8, 3, 4, &m)) {
        CHECK(hcr_train(m, &train, &val, &c, NULL, NULL, NULL) == HCR_OK);
        CHECK(same_bits(m, ref));
        hcr_model_free(m);
        m = NULL;
        CHECK(hcr_checkpoint_load(ck, &m, &rc) == HCR_OK);
        rc.epochs = 4;
        if (m) CHECK(hcr_train(m, &train, &val, &rc, NULL, NULL, NULL) == HCR_OK);
        if (m) CHECK(!same_bits(m, ref));
    }
    hcr_model_free(m);
    hcr_history_free(&href);
done:
    hcr_model_free(ref);
    free_ds(&train);
    free_ds(&val);
}

/* Resuming with other settings, or from something that is not a sound
 * checkpoint, is refused by name. */
static void test_checkpoint_refused(void)
{
    const char *ck = harness_tmp_path("refused.ckpt"), *plain = harness_tmp_path("plain.safetensors");
    hcr_dataset train = make_bars(60, 7), other = make_bars(61, 7);
    hcr_train_config cfg = small_config(3), rc;
    cfg.epochs = 2;
    cfg.checkpoint = ck;
    hcr_model *m = NULL, *r = NULL;
    if (!create("conv2-pool-dense4", 8, 8, 3, 1, &m)) goto done;
    stop_after sa = {0, 2};
    CHECK(hcr_train(m, &train, NULL, &cfg, stop_at, &sa, NULL) == HCR_EINTERRUPTED);
    CHECK(hcr_checkpoint_load(ck, &r, &rc) == HCR_OK);
    if (!r) goto done;
    rc.batch_size = 8;
    CHECK(hcr_train(r, &train, NULL, &rc, NULL, NULL, NULL) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "used another batch size");
    rc.batch_size = 16;
    CHECK(hcr_train(r, &other, NULL, &rc, NULL, NULL, NULL) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "another number of training images");
    rc.epochs = 2;
    rc.resume = 0;
    rc.checkpoint = NULL;
    /* A model file is not a checkpoint. */
    CHECK(hcr_model_save(m, plain) == HCR_OK);
    hcr_model *x = (hcr_model *)&x;
    CHECK(hcr_checkpoint_load(plain, &x, &rc) == HCR_EFORMAT && x == NULL);
    CHECK_CONTAINS(hcr_last_error(), "not a checkpoint");
    /* A crafted order (an index past the data) is refused before use. */
    FILE *f = fopen(ck, "r+b");
    if (f) {
        const unsigned char big[4] = {0xff, 0xff, 0xff, 0x7f};
        fseek(f, -4, SEEK_END);
        fwrite(big, 1, 4, f);
        fclose(f);
    }
    rc.checkpoint = ck;
    rc.resume = 1;
    CHECK(hcr_train(r, &train, NULL, &rc, NULL, NULL, NULL) == HCR_EFORMAT);
    CHECK_CONTAINS(hcr_last_error(), "train.order is not an order");
    /* The model file saved while a checkpoint is written carries no trace. */
    hcr_model *p = NULL;
    CHECK(hcr_model_load(plain, &p) == HCR_OK);
    if (p) CHECK(hcr_model_get_meta(p, "checkpoint") == NULL);
    hcr_model_free(p);
done:
    hcr_model_free(m);
    hcr_model_free(r);
    free_ds(&train);
    free_ds(&other);
}

/* Every step updates the weights, the last one of an epoch included: with
 * a batch larger than the set there is exactly one step, and it moves every
 * kernel. */
static void test_train_single_step(void)
{
    hcr_dataset train = make_bars(30, 8);
    hcr_model *m = NULL;
    if (!create("conv2-pool-dense4", 8, 8, 3, 1, &m)) goto done;
    float *before = malloc(m->nparams * sizeof(float));
    if (!before) abort();
    memcpy(before, m->params, m->nparams * sizeof(float));
    hcr_train_config cfg = small_config(1);
    cfg.epochs = 1;
    cfg.batch_size = 64;
    progress_log log = {0};
    hcr_history h;
    CHECK(hcr_train(m, &train, NULL, &cfg, on_progress, &log, &h) == HCR_OK);
    CHECK(log.steps == 1 && log.calls == 2);
    CHECK(h.epochs == 1);
    for (int t = 0; t < m->ntensors; t++) {
        const tensor_ref *tr = &m->tensors[t];
        size_t moved = 0;
        for (size_t j = 0; j < tr->count; j++)
            moved += tr->data[j] != before[(size_t)(tr->data - m->params) + j];
        /* Adam's first step moves every weight with a nonzero gradient by
         * about lr = 0.01; a few may have an exactly zero gradient. */
        CHECK_MSG(moved * 2 > tr->count, "%s: %zu of %zu values moved", tr->name, moved, tr->count);
    }
    hcr_history_free(&h);
    free(before);
done:
    hcr_model_free(m);
    free_ds(&train);
}

static void test_train_errors(void)
{
    hcr_dataset train = make_bars(30, 4);
    hcr_model *m = NULL;
    if (!create("conv2-pool-dense4", 8, 8, 3, 1, &m)) goto done;
    float *before = malloc(m->nparams * sizeof(float));
    if (!before) abort();
    memcpy(before, m->params, m->nparams * sizeof(float));
    hcr_history h;

    hcr_train_config cfg = small_config(1);
    cfg.batch_size = 0;
    CHECK(hcr_train(m, &train, NULL, &cfg, NULL, NULL, &h) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "batch size");
    CHECK_CONTAINS(hcr_last_error(), "got 0");
    CHECK(h.epochs == 0 && h.rows == NULL);

    cfg = small_config(1);
    cfg.epochs = 0;
    CHECK(hcr_train(m, &train, NULL, &cfg, NULL, NULL, &h) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "epochs");
    CHECK_CONTAINS(hcr_last_error(), "got 0");

    cfg = small_config(1);
    hcr_dataset wrong = train;
    wrong.cols = 7;
    wrong.count = 20; /* 20 * 8 * 7 bytes: within the real buffer */
    CHECK(hcr_train(m, &wrong, NULL, &cfg, NULL, NULL, &h) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "training images are 8x7 but the model takes 8x8");
    /* The same problem in the validation set is named as such. */
    CHECK(hcr_train(m, &train, &wrong, &cfg, NULL, NULL, &h) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "validation images are 8x7");

    hcr_dataset badlabel = make_bars(30, 4);
    badlabel.labels[17] = 3;
    CHECK(hcr_train(m, &badlabel, NULL, &cfg, NULL, NULL, &h) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "label 3 (image 17)");
    CHECK_CONTAINS(hcr_last_error(), "3 classes");
    free_ds(&badlabel);

    hcr_dataset empty = train;
    empty.count = 0;
    CHECK(hcr_train(m, &empty, NULL, &cfg, NULL, NULL, &h) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "training set is empty");
    CHECK(hcr_train(m, NULL, NULL, &cfg, NULL, NULL, &h) == HCR_EINVAL);

    CHECK(hcr_train(NULL, &train, NULL, &cfg, NULL, NULL, &h) == HCR_EINVAL);
    CHECK(hcr_train(m, &train, NULL, NULL, NULL, NULL, &h) == HCR_EINVAL);

    cfg = small_config(1);
    cfg.lr = 0;
    CHECK(hcr_train(m, &train, NULL, &cfg, NULL, NULL, &h) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "lr");

    /* None of the failures touched the model. */
    CHECK(memcmp(before, m->params, m->nparams * sizeof(float)) == 0);

    /* hcr_evaluate checks the set the same way. */
    hcr_eval e;
    CHECK(hcr_evaluate(m, &wrong, 1, &e) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "evaluation images are 8x7");
    free(before);
done:
    hcr_model_free(m);
    free_ds(&train);
}

/* ---------------------------------------------------------------- predict */

static void test_predict(void)
{
    hcr_dataset ds = make_bars(300, 6);
    hcr_model *m = NULL;
    float *all = malloc(300 * 3 * sizeof(float)), one[3];
    if (!all) abort();
    if (!create("conv3-pool-dense8", 8, 8, 3, 4, &m)) goto done;
    /* 300 images: more than one internal chunk (256). */
    CHECK(hcr_model_predict(m, ds.pixels, 300, all) == HCR_OK);
    int bad_sum = 0, bad_one = 0;
    for (int i = 0; i < 300; i++) {
        double s = all[i * 3] + all[i * 3 + 1] + all[i * 3 + 2];
        bad_sum += fabs(s - 1) > 1e-6; /* three float roundings */
    }
    CHECK(bad_sum == 0);
    /* Image by image gives the same probabilities (BLAS may block the
     * products differently for other batch sizes: 1e-6 on values <= 1). */
    for (int i = 0; i < 300; i += 37) {
        CHECK(hcr_model_predict(m, ds.pixels + (size_t)i * 64, 1, one) == HCR_OK);
        for (int k = 0; k < 3; k++) bad_one += fabs(one[k] - all[i * 3 + k]) > 1e-6;
    }
    CHECK(bad_one == 0);
    /* The argmax of predict is what hcr_evaluate counts as correct. */
    hcr_eval e;
    CHECK(hcr_evaluate(m, &ds, 1, &e) == HCR_OK);
    int right = 0;
    for (int i = 0; i < 300; i++) {
        int best = 0;
        for (int k = 1; k < 3; k++)
            if (all[i * 3 + k] > all[i * 3 + best]) best = k;
        right += best == ds.labels[i];
    }
    CHECK_NEAR(e.accuracy, right / 300.0, 1e-12);
    /* The confusion matrix, [true * 3 + predicted], rebuilt from predict
     * (both run in chunks of 256 images, so they see the same numbers). The
     * untrained model's predictions are lopsided, so a transposed matrix
     * would not match. */
    int conf[9] = {0}, support[3] = {0};
    for (int i = 0; i < 300; i++) {
        int best = 0;
        for (int k = 1; k < 3; k++)
            if (all[i * 3 + k] > all[i * 3 + best]) best = k;
        conf[ds.labels[i] * 3 + best]++;
        support[ds.labels[i]]++;
    }
    CHECK(memcmp(conf, e.confusion, sizeof conf) == 0);
    for (int k = 0; k < 3; k++) {
        CHECK(e.support[k] == support[k]);
        int predicted = conf[k] + conf[3 + k] + conf[6 + k];
        double p = predicted ? (double)conf[k * 3 + k] / predicted : 0.0;
        double r = (double)conf[k * 3 + k] / support[k];
        CHECK_NEAR(e.precision[k], p, 1e-12);
        CHECK_NEAR(e.recall[k], r, 1e-12);
        CHECK_NEAR(e.f1[k], p + r > 0 ? 2 * p * r / (p + r) : 0.0, 1e-12);
    }
    hcr_eval_free(&e);
    CHECK(hcr_model_predict(m, ds.pixels, -1, all) == HCR_EINVAL);
    CHECK(hcr_model_predict(m, ds.pixels, 0, all) == HCR_OK);
done:
    free(all);
    hcr_model_free(m);
    free_ds(&ds);
}

/* Predicting reuses the transformed kernels between calls: after a
 * training step it must see the new weights, exactly as a model loaded
 * from them does (the spec takes the fused and Winograd kernels where the
 * CPU has AVX2). */
static void test_predict_after_training(void)
{
    hcr_dataset ds = make_bars(64, 12); /* 8x8 */
    hcr_model *m = NULL, *back = NULL;
    float p1[30], p2[30], p3[30];
    if (!create("conv16-pool-conv16-dense3", 8, 8, 3, 5, &m)) goto done;
    CHECK(hcr_model_predict(m, ds.pixels, 10, p1) == HCR_OK);
    CHECK(hcr_model_predict(m, ds.pixels, 10, p2) == HCR_OK);
    CHECK(memcmp(p1, p2, sizeof p1) == 0);
    hcr_train_config cfg = small_config(1);
    cfg.epochs = 1;
    cfg.batch_size = 64;
    hcr_history h;
    CHECK_MSG(hcr_train(m, &ds, NULL, &cfg, NULL, NULL, &h) == HCR_OK, "%s", hcr_last_error());
    hcr_history_free(&h);
    CHECK(hcr_model_predict(m, ds.pixels, 10, p2) == HCR_OK);
    CHECK(memcmp(p1, p2, sizeof p1) != 0);
    const char *path = harness_tmp_path("after-step.safetensors");
    CHECK(hcr_model_save(m, path) == HCR_OK);
    CHECK(hcr_model_load(path, &back) == HCR_OK);
    if (back) {
        CHECK(hcr_model_predict(back, ds.pixels, 10, p3) == HCR_OK);
        double worst = 0;
        for (int i = 0; i < 30; i++) worst = fmax(worst, fabs(p3[i] - p2[i]));
        CHECK_MSG(worst < 1e-6, "predictions after a training step differ from the saved model's by %g", worst);
    }
done:
    hcr_model_free(back);
    hcr_model_free(m);
    free_ds(&ds);
}

/* ---------------------------------------------------- batch normalization */

static void test_batchnorm(void)
{
    /* where it may stand */
    hcr_model *m = NULL;
    CHECK(hcr_model_create("bn-conv8", 28, 28, 10, 1, &m) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "'bn' must follow a conv or dense layer");
    CHECK(hcr_model_create("conv8-pool-bn", 28, 28, 10, 1, &m) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "'bn' must follow a conv or dense layer");

    /* the summary: 4 values per channel, half of them not trained */
    if (!create("conv4-bn-pool-dense6-bn", 8, 8, 3, 2, &m)) return;
    char *sum = summary_text(m);
    CHECK_CONTAINS(sum, "batch_normalization (BatchNormalization)     (None, 6, 6, 4)");
    CHECK_CONTAINS(sum, "batch_normalization_1 (BatchNormalization)   (None, 6) ");
    CHECK_CONTAINS(sum, "Non-trainable params: 20");
    free(sum);
    /* the ReLU moved behind the normalization */
    CHECK(m->layers[0].relu == 0 && m->layers[1].kind == LAYER_BN && m->layers[1].relu == 1);
    CHECK(m->layers[1].w[0] == 1.0f && m->layers[1].b[0] == 0.0f);
    CHECK(m->layers[1].mmean[3] == 0.0f && m->layers[1].mvar[3] == 1.0f);

    /* training: the batch's statistics, and the moving ones take 10% of them */
    const int n = 6;
    CHECK(model_reserve(m, n) == HCR_OK);
    hcr_rng rng;
    hcr_rng_seed(&rng, 5);
    for (int i = 0; i < n * 64; i++) m->input[i] = hcr_rng_uniform(&rng);
    hcr_set_threads(2);
    model_forward(m, n, 1, &rng);
    const layer *conv = &m->layers[0], *bn = &m->layers[1];
    for (int c = 0; c < 4; c++) {
        double s1 = 0, s2 = 0;
        for (int k = 0; k < n * 36; k++) s1 += conv->out[k * 4 + c];
        const double mu = s1 / (n * 36);
        for (int k = 0; k < n * 36; k++) s2 += (conv->out[k * 4 + c] - mu) * (conv->out[k * 4 + c] - mu);
        const double var = s2 / (n * 36);
        CHECK_NEAR(bn->mmean[c], 0.1 * mu, 1e-6);
        CHECK_NEAR(bn->mvar[c], 0.9 + 0.1 * var, 1e-6);
        /* the output has mean 0 and variance 1 before the ReLU: after it,
         * the positive half is what is left */
        for (int k = 0; k < n * 36; k++) {
            const double want = (conv->out[k * 4 + c] - mu) / sqrt(var + 1e-3);
            CHECK_NEAR(bn->out[k * 4 + c], want > 0 ? want : 0, 1e-4);
        }
    }
    /* inference: the moving statistics, not the batch's */
    for (int c = 0; c < 4; c++) {
        bn->mmean[c] = 0.25f;
        bn->mvar[c] = 4.0f;
        bn->w[c] = 2.0f;
        bn->b[c] = 0.5f;
    }
    model_forward(m, n, 0, NULL);
    for (int k = 0; k < n * 36 * 4; k++) {
        const double want = 2.0 * (conv->out[k] - 0.25) / sqrt(4.0 + 1e-3) + 0.5;
        CHECK_NEAR(bn->out[k], want > 0 ? want : 0, 1e-5);
    }
    /* the moving statistics are saved and loaded with the model */
    float before[3], after[3];
    uint8_t px[64];
    for (int i = 0; i < 64; i++) px[i] = (uint8_t)(i * 4);
    CHECK(hcr_model_predict(m, px, 1, before) == HCR_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/bn.safetensors", harness_tmpdir());
    CHECK(hcr_model_save(m, path) == HCR_OK);
    hcr_model *back = NULL;
    CHECK(hcr_model_load(path, &back) == HCR_OK);
    if (back) {
        CHECK(back->nstate == 20 && memcmp(back->state, m->state, 20 * sizeof(float)) == 0);
        CHECK(hcr_model_predict(back, px, 1, after) == HCR_OK);
        CHECK(memcmp(before, after, sizeof before) == 0);
    }
    hcr_model_free(back);
    hcr_set_threads(0);
    hcr_model_free(m);
}

/* Finite weights near FLT_MAX overflow the logits: predict and evaluate
 * refuse the NaN answer with a message instead of returning it. */
static void test_huge_weights(void)
{
    hcr_dataset ds = make_bars(20, 6);
    hcr_model *m = NULL;
    float p[3 * 20];
    if (!create("dense8", 8, 8, 3, 4, &m)) goto done;
    for (size_t i = 0; i < m->nparams; i++) m->params[i] = (i % 2 ? -3e37f : 3e37f);
    model_weights_changed(m);
    CHECK(hcr_model_predict(m, ds.pixels, 20, p) == HCR_EFORMAT);
    CHECK_CONTAINS(hcr_last_error(), "the model's output for image 0 is NaN: its weights overflow float");
    hcr_eval ev;
    CHECK(hcr_evaluate(m, &ds, 1, &ev) == HCR_EFORMAT);
    CHECK_CONTAINS(hcr_last_error(), "overflow float");
done:
    hcr_model_free(m);
    free_ds(&ds);
}

TEST_MAIN(TEST(test_default_model_shape), TEST(test_batchnorm), TEST(test_glorot_init), TEST(test_layer_table),
          TEST(test_spec_errors),
          TEST(test_spec_alternatives), TEST(test_model_gradients), TEST(test_backward_threads),
          TEST(test_train_config_default), TEST(test_train_deterministic_and_learns),
          TEST(test_train_progress_and_stop), TEST(test_checkpoint_resume), TEST(test_checkpoint_refused), TEST(test_dense_first), TEST(test_train_single_step), TEST(test_train_errors), TEST(test_predict), TEST(test_huge_weights),
          TEST(test_predict_after_training))
