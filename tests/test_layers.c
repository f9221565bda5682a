/*
 * test_layers.c - every layer's arithmetic (layers.c) and Adam (optimizer.c):
 *   - analytic gradients against central finite differences,
 *   - the fast (im2col + BLAS) paths against the plain-loop references,
 *   - hand-computed known answers (convolution, pooling ties, softmax of
 *     huge logits, the cross-entropy clamp),
 *   - one and two Adam steps against the Keras formula worked by hand.
 *
 * Gradient checks use L = sum(out * R) for a fixed random R, so the
 * gradient flowing into the layer is dout = R, and compare every analytic
 * component with (L(x+e) - L(x-e)) / h, where h is the step actually taken
 * in float arithmetic ((float)(x+e) - (float)(x-e)) and L is summed in
 * double.
 */
#include "harness.h"
#include "nn/layers.h"
#include "nn/optimizer.h"

#include <stdint.h>
#include <stdlib.h>

/* ------------------------------------------------------------- helpers */

static float *falloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) abort();
    return p;
}

static float *fdup(const float *a, size_t n)
{
    float *p = falloc(n);
    memcpy(p, a, n * sizeof(float));
    return p;
}

static void fill(float *a, size_t n, hcr_rng *r, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) a[i] = lo + (hi - lo) * hcr_rng_uniform(r);
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static float min_abs(const float *a, size_t n)
{
    float m = INFINITY;
    for (size_t i = 0; i < n; i++) m = fabsf(a[i]) < m ? fabsf(a[i]) : m;
    return m;
}

static double max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

/* Finite-difference step on float inputs. */
#define FD_EPS 1e-3f

/*
 * Tolerance of a gradient check: |analytic - numeric| <= GRAD_ABS +
 * GRAD_REL * max(|analytic|, |numeric|).
 * Error budget of the numeric value (all checked layers are linear in the
 * perturbed value between kinks, so the truncation error is zero; for
 * softmax it is O(e^2) ~ 1e-6): each affected output (at most K*K*F = 36
 * here) is rounded to float, |out| <= ~5, so L moves by rounding noise of
 * about sqrt(36) * 5 * 6e-8 ~ 2e-6, which over h = 2e-3 is ~1e-3 in the
 * worst case and ~1e-4 typically. A real bug (a wrong index, a missing
 * mask, a factor of B) gives errors of order |gradient| ~ 0.1..10.
 */
#define GRAD_ABS 2e-3
#define GRAD_REL 1e-2

typedef double (*loss_fn)(void *ctx);

/* Compare analytic[i] with the central difference of loss() in param[i],
 * for every i < n. Returns the number of mismatches (and reports the first
 * few). */
static int check_grad(const char *what, float *param, size_t n, const float *analytic,
                      loss_fn loss, void *ctx, double abs_tol, double rel_tol)
{
    int bad = 0;
    double worst = 0; /* largest |error| / tolerance, shown with HCR_TEST_VERBOSE */
    for (size_t i = 0; i < n; i++) {
        const float x = param[i];
        const float xp = x + FD_EPS, xm = x - FD_EPS;
        param[i] = xp;
        double lp = loss(ctx);
        param[i] = xm;
        double lm = loss(ctx);
        param[i] = x;
        double num = (lp - lm) / ((double)xp - (double)xm);
        double a = analytic[i];
        double tol = abs_tol + rel_tol * fmax(fabs(a), fabs(num));
        worst = fmax(worst, fabs(a - num) / tol);
        if (!(fabs(a - num) <= tol)) {
            if (bad < 5)
                fprintf(stderr, "  %s[%zu]: analytic %.7g, numeric %.7g (tol %.3g)\n", what, i, a,
                        num, tol);
            bad++;
        }
    }
    if (getenv("HCR_TEST_VERBOSE")) fprintf(stderr, "  %s: worst error/tolerance %.3f\n", what, worst);
    CHECK_MSG(bad == 0, "%s: %d of %zu gradient components differ", what, bad, n);
    return bad;
}

/* |a[i] - b[i]| <= rel * max(1, max|b|) for every i: a relative error of
 * `rel` measured against the array's scale (a norm-wise relative error, so
 * components that cancel to near zero do not demand impossible precision). */
static int check_close_arrays(const char *what, const float *a, const float *b, size_t n,
                              double rel)
{
    double scale = fmax(1.0, max_abs(b, n));
    double tol = rel * scale, worst = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)a[i] - b[i]) / tol);
        if (!(fabs((double)a[i] - b[i]) <= tol)) {
            if (bad < 5)
                fprintf(stderr, "  %s[%zu]: %.8g vs %.8g (tol %.3g)\n", what, i, a[i], b[i], tol);
            bad++;
        }
    }
    if (getenv("HCR_TEST_VERBOSE")) fprintf(stderr, "  %s: worst error/tolerance %.3f\n", what, worst);
    CHECK_MSG(bad == 0, "%s: %d of %zu values differ", what, bad, n);
    return bad;
}

/* ------------------------------------------------- convolution gradients */

typedef struct conv_case {
    int B, H, W, C, K, F, relu;
    float *in, *w, *b, *R, *out, *col;
} conv_case;

static size_t conv_out_n(const conv_case *c)
{
    return (size_t)c->B * (c->H - c->K + 1) * (c->W - c->K + 1) * c->F;
}

static double conv_loss(void *ctx)
{
    conv_case *c = ctx;
    conv2d_forward(c->out, c->col, c->in, c->w, c->b, c->B, c->H, c->W, c->C, c->K, c->F, c->relu);
    return dot(c->out, c->R, conv_out_n(c));
}

static void conv_gradcheck(int B, int H, int W, int C, int K, int F, int relu, uint64_t seed)
{
    const int OH = H - K + 1, OW = W - K + 1;
    const size_t nin = (size_t)B * H * W * C, nw = (size_t)K * K * C * F;
    const size_t nout = (size_t)B * OH * OW * F, ncol = (size_t)B * OH * OW * K * K * C;
    conv_case c = {B, H, W, C, K, F, relu, falloc(nin), falloc(nw), falloc((size_t)F),
                   falloc(nout), falloc(nout), falloc(ncol)};
    hcr_rng rng;
    hcr_rng_seed(&rng, seed);
    /* Draw until no pre-activation is within 1e-2 of zero: a perturbation
     * of 1e-3 in one input, weight or bias (all |.| <= 1) moves a
     * pre-activation by at most 1e-3, so no ReLU flips during the check. */
    int ok = 0;
    for (int tries = 0; tries < 1000 && !ok; tries++) {
        fill(c.in, nin, &rng, -1, 1);
        fill(c.w, nw, &rng, -1, 1);
        fill(c.b, (size_t)F, &rng, -0.5f, 0.5f);
        fill(c.R, nout, &rng, -1, 1);
        conv2d_forward(c.out, c.col, c.in, c.w, c.b, B, H, W, C, K, F, 0);
        ok = min_abs(c.out, nout) >= 1e-2f;
    }
    CHECK(ok);

    float *din = falloc(nin), *dw = falloc(nw), *db = falloc((size_t)F);
    conv_loss(&c); /* out and col for this point */
    if (relu) {
        /* The check means something only if some units are cut off. */
        size_t zeros = 0;
        for (size_t i = 0; i < nout; i++) zeros += c.out[i] == 0.0f;
        CHECK(zeros > 0 && zeros < nout);
    }
    float *dout = fdup(c.R, nout);
    conv2d_backward(din, dw, db, dout, c.out, c.col, c.w, B, H, W, C, K, F, relu);

    char pre[64], what[96];
    snprintf(pre, sizeof pre, "conv B%d H%d W%d C%d K%d F%d relu%d", B, H, W, C, K, F, relu);
    snprintf(what, sizeof what, "%s din", pre);
    check_grad(what, c.in, nin, din, conv_loss, &c, GRAD_ABS, GRAD_REL);
    snprintf(what, sizeof what, "%s dw", pre);
    check_grad(what, c.w, nw, dw, conv_loss, &c, GRAD_ABS, GRAD_REL);
    snprintf(what, sizeof what, "%s db", pre);
    check_grad(what, c.b, (size_t)F, db, conv_loss, &c, GRAD_ABS, GRAD_REL);

    /* The reference backward must agree with finite differences too. */
    conv_loss(&c);
    float *rdin = falloc(nin), *rdw = falloc(nw), *rdb = falloc((size_t)F);
    conv2d_backward_ref(rdin, rdw, rdb, c.R, c.out, c.in, c.w, B, H, W, C, K, F, relu);
    snprintf(what, sizeof what, "%s din (ref)", pre);
    check_grad(what, c.in, nin, rdin, conv_loss, &c, GRAD_ABS, GRAD_REL);
    snprintf(what, sizeof what, "%s dw (ref)", pre);
    check_grad(what, c.w, nw, rdw, conv_loss, &c, GRAD_ABS, GRAD_REL);
    snprintf(what, sizeof what, "%s db (ref)", pre);
    check_grad(what, c.b, (size_t)F, rdb, conv_loss, &c, GRAD_ABS, GRAD_REL);

    /* din may be NULL (first layer): dw and db are unchanged by that. */
    conv_loss(&c);
    float *dw2 = falloc(nw), *db2 = falloc((size_t)F);
    memcpy(dout, c.R, nout * sizeof(float));
    conv2d_backward(NULL, dw2, db2, dout, c.out, c.col, c.w, B, H, W, C, K, F, relu);
    CHECK(memcmp(dw2, dw, nw * sizeof(float)) == 0);
    CHECK(memcmp(db2, db, (size_t)F * sizeof(float)) == 0);

    free(c.in), free(c.w), free(c.b), free(c.R), free(c.out), free(c.col);
    free(din), free(dw), free(db), free(dout), free(rdin), free(rdw), free(rdb);
    free(dw2), free(db2);
}

static void test_conv_gradients(void)
{
    for (int relu = 0; relu <= 1; relu++) {
        conv_gradcheck(2, 6, 5, 3, 3, 4, relu, 11 + relu);
        conv_gradcheck(2, 6, 5, 3, 1, 4, relu, 21 + relu);
        conv_gradcheck(2, 5, 7, 2, 2, 3, relu, 31 + relu);
        conv_gradcheck(1, 7, 7, 1, 5, 2, relu, 41 + relu);
    }
}

/* ------------------------------------------------------ pooling gradients */

typedef struct pool_case {
    int B, H, W, C, S;
    float *in, *R, *out;
    int32_t *argmax;
} pool_case;

static double pool_loss(void *ctx)
{
    pool_case *p = ctx;
    maxpool_forward(p->out, p->argmax, p->in, p->B, p->H, p->W, p->C, p->S);
    return dot(p->out, p->R, (size_t)p->B * (p->H / p->S) * (p->W / p->S) * p->C);
}

static void pool_gradcheck(int B, int H, int W, int C, int S, uint64_t seed)
{
    const size_t nin = (size_t)B * H * W * C, nout = (size_t)B * (H / S) * (W / S) * C;
    pool_case p = {B, H, W, C, S, falloc(nin), falloc(nout), falloc(nout),
                   calloc(nout, sizeof(int32_t))};
    if (!p.argmax) abort();
    hcr_rng rng;
    hcr_rng_seed(&rng, seed);
    /* Distinct values 0.01 apart (a shuffled ramp): no ties, and a
     * perturbation of 1e-3 never changes which element is the maximum. */
    for (size_t i = 0; i < nin; i++) p.in[i] = (float)i * 0.01f - 1.0f;
    for (size_t i = nin - 1; i > 0; i--) {
        size_t j = hcr_rng_below(&rng, (uint32_t)i + 1);
        float t = p.in[i];
        p.in[i] = p.in[j];
        p.in[j] = t;
    }
    fill(p.R, nout, &rng, -1, 1);

    pool_loss(&p);
    /* Every output is the maximum of its window (checked by brute force). */
    int bad = 0;
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < H / S; oy++)
            for (int ox = 0; ox < W / S; ox++)
                for (int c = 0; c < C; c++) {
                    float m = -INFINITY;
                    for (int dy = 0; dy < S; dy++)
                        for (int dx = 0; dx < S; dx++)
                            m = fmaxf(m, p.in[(((size_t)b * H + oy * S + dy) * W + ox * S + dx) * C + c]);
                    size_t o = (((size_t)b * (H / S) + oy) * (W / S) + ox) * C + c;
                    bad += p.out[o] != m || p.in[p.argmax[o]] != m;
                }
    CHECK_MSG(bad == 0, "pool B%d H%d W%d C%d S%d: %d outputs are not their window's max", B, H,
              W, C, S, bad);

    float *din = falloc(nin);
    for (size_t i = 0; i < nin; i++) din[i] = 123.0f; /* must be overwritten */
    maxpool_backward(din, p.R, p.argmax, B, H, W, C, S);
    char what[64];
    snprintf(what, sizeof what, "maxpool B%d H%d W%d C%d S%d din", B, H, W, C, S);
    /* Pooling only routes values: the numeric gradient is exact up to one
     * float rounding of L's terms, so a tighter absolute tolerance (1e-4)
     * is safe (noise ~ |R| * 6e-8 / 2e-3 ~ 3e-5). */
    check_grad(what, p.in, nin, din, pool_loss, &p, 1e-4, 1e-3);
    free(p.in), free(p.R), free(p.out), free(p.argmax), free(din);
}

static void test_pool_gradients(void)
{
    pool_gradcheck(2, 6, 6, 3, 2, 1); /* divisible */
    pool_gradcheck(2, 7, 5, 3, 2, 2); /* trailing row and column dropped */
    pool_gradcheck(1, 9, 9, 2, 3, 3); /* S = 3, divisible */
    pool_gradcheck(3, 8, 7, 1, 3, 4); /* S = 3, two trailing rows, one column */
}

/* -------------------------------------------------------- dense gradients */

typedef struct dense_case {
    int B, NI, NO, relu;
    float *in, *w, *b, *R, *out;
} dense_case;

static double dense_loss(void *ctx)
{
    dense_case *d = ctx;
    dense_forward(d->out, d->in, d->w, d->b, d->B, d->NI, d->NO, d->relu);
    return dot(d->out, d->R, (size_t)d->B * d->NO);
}

static void dense_gradcheck(int B, int NI, int NO, int relu, uint64_t seed)
{
    const size_t nin = (size_t)B * NI, nw = (size_t)NI * NO, nout = (size_t)B * NO;
    dense_case d = {B, NI, NO, relu, falloc(nin), falloc(nw), falloc((size_t)NO), falloc(nout),
                    falloc(nout)};
    hcr_rng rng;
    hcr_rng_seed(&rng, seed);
    int ok = 0;
    /* As for convolutions: pre-activations at least 1e-2 from zero. */
    for (int tries = 0; tries < 1000 && !ok; tries++) {
        fill(d.in, nin, &rng, -1, 1);
        fill(d.w, nw, &rng, -1, 1);
        fill(d.b, (size_t)NO, &rng, -0.5f, 0.5f);
        fill(d.R, nout, &rng, -1, 1);
        dense_forward(d.out, d.in, d.w, d.b, B, NI, NO, 0);
        ok = min_abs(d.out, nout) >= 1e-2f;
    }
    CHECK(ok);
    dense_loss(&d);
    if (relu) {
        size_t zeros = 0;
        for (size_t i = 0; i < nout; i++) zeros += d.out[i] == 0.0f;
        CHECK(zeros > 0 && zeros < nout);
    }
    float *din = falloc(nin), *dw = falloc(nw), *db = falloc((size_t)NO), *dout = fdup(d.R, nout);
    dense_backward(din, dw, db, dout, d.out, d.in, d.w, B, NI, NO, relu);
    char what[64];
    snprintf(what, sizeof what, "dense B%d NI%d NO%d relu%d din", B, NI, NO, relu);
    check_grad(what, d.in, nin, din, dense_loss, &d, GRAD_ABS, GRAD_REL);
    snprintf(what, sizeof what, "dense B%d NI%d NO%d relu%d dw", B, NI, NO, relu);
    check_grad(what, d.w, nw, dw, dense_loss, &d, GRAD_ABS, GRAD_REL);
    snprintf(what, sizeof what, "dense B%d NI%d NO%d relu%d db", B, NI, NO, relu);
    check_grad(what, d.b, (size_t)NO, db, dense_loss, &d, GRAD_ABS, GRAD_REL);

    dense_loss(&d);
    float *rdin = falloc(nin), *rdw = falloc(nw), *rdb = falloc((size_t)NO);
    dense_backward_ref(rdin, rdw, rdb, d.R, d.out, d.in, d.w, B, NI, NO, relu);
    snprintf(what, sizeof what, "dense B%d NI%d NO%d relu%d din (ref)", B, NI, NO, relu);
    check_grad(what, d.in, nin, rdin, dense_loss, &d, GRAD_ABS, GRAD_REL);
    snprintf(what, sizeof what, "dense B%d NI%d NO%d relu%d dw (ref)", B, NI, NO, relu);
    check_grad(what, d.w, nw, rdw, dense_loss, &d, GRAD_ABS, GRAD_REL);
    snprintf(what, sizeof what, "dense B%d NI%d NO%d relu%d db (ref)", B, NI, NO, relu);
    check_grad(what, d.b, (size_t)NO, rdb, dense_loss, &d, GRAD_ABS, GRAD_REL);

    free(d.in), free(d.w), free(d.b), free(d.R), free(d.out);
    free(din), free(dw), free(db), free(dout), free(rdin), free(rdw), free(rdb);
}

static void test_dense_gradients(void)
{
    for (int relu = 0; relu <= 1; relu++) {
        dense_gradcheck(3, 7, 5, relu, 100 + relu);
        dense_gradcheck(1, 4, 9, relu, 200 + relu);
        dense_gradcheck(5, 11, 1, relu, 300 + relu);
    }
}

/* ---------------------------------------------------------------- dropout */

typedef struct drop_case {
    size_t n;
    float rate;
    uint64_t seed;
    float *in, *R, *out, *mask;
} drop_case;

static double drop_loss(void *ctx)
{
    drop_case *d = ctx;
    hcr_rng rng;
    hcr_rng_seed(&rng, d->seed); /* the same mask every time */
    dropout_forward(d->out, d->mask, d->in, d->n, d->rate, &rng);
    return dot(d->out, d->R, d->n);
}

static void test_dropout(void)
{
    const size_t n = 20000;
    const float rate = 0.4f, scale = 1.0f / (1.0f - rate);
    float *in = falloc(n), *out = falloc(n), *mask = falloc(n), *dout = falloc(n), *din = falloc(n);
    hcr_rng rng;
    hcr_rng_seed(&rng, 5);
    fill(in, n, &rng, -2, 2);
    fill(dout, n, &rng, -1, 1);
    hcr_rng_seed(&rng, 77);
    dropout_forward(out, mask, in, n, rate, &rng);
    size_t kept = 0, bad_mask = 0, bad_out = 0, bad_din = 0;
    dropout_backward(din, dout, mask, n);
    for (size_t i = 0; i < n; i++) {
        kept += mask[i] != 0.0f;
        bad_mask += !(mask[i] == 0.0f || mask[i] == scale);
        bad_out += out[i] != in[i] * mask[i];
        bad_din += din[i] != dout[i] * mask[i];
    }
    CHECK(bad_mask == 0);
    CHECK(bad_out == 0);
    CHECK(bad_din == 0);
    /* Kept fraction ~ Binomial(20000, 0.6)/20000: sd = sqrt(.24/20000) =
     * 0.0035; 0.6 +- 0.02 is more than 5 sd. */
    CHECK_NEAR((double)kept / n, 0.6, 0.02);
    /* The expected value of a unit is preserved: mean(out)/mean(in) over the
     * kept units is exactly the scale, and E[mask] = 1 within 5 sd. */
    double msum = 0;
    for (size_t i = 0; i < n; i++) msum += mask[i];
    CHECK_NEAR(msum / n, 1.0, 0.03);

    /* Same seed: same mask. */
    float *mask2 = falloc(n), *out2 = falloc(n);
    hcr_rng_seed(&rng, 77);
    dropout_forward(out2, mask2, in, n, rate, &rng);
    CHECK(memcmp(mask, mask2, n * sizeof(float)) == 0);
    /* Rate 0: every unit is kept unscaled. */
    hcr_rng_seed(&rng, 78);
    dropout_forward(out2, mask2, in, n, 0.0f, &rng);
    size_t not_one = 0;
    for (size_t i = 0; i < n; i++) not_one += mask2[i] != 1.0f || out2[i] != in[i];
    CHECK(not_one == 0);

    /* Finite differences with the mask held fixed (same seed each call). */
    drop_case d = {60, 0.5f, 9, falloc(60), falloc(60), falloc(60), falloc(60)};
    fill(d.in, d.n, &rng, -1, 1);
    fill(d.R, d.n, &rng, -1, 1);
    drop_loss(&d);
    float *ddin = falloc(d.n);
    dropout_backward(ddin, d.R, d.mask, d.n);
    /* out = in * {0, 2}: exact up to one rounding, noise ~ 2 * 6e-8 / 2e-3. */
    check_grad("dropout din", d.in, d.n, ddin, drop_loss, &d, 1e-4, 1e-3);

    free(in), free(out), free(mask), free(dout), free(din), free(mask2), free(out2);
    free(d.in), free(d.R), free(d.out), free(d.mask), free(ddin);
}

/* ----------------------------------------------------- softmax + CE grads */

typedef struct sce_case {
    int B, N;
    float *logits, *probs;
    uint8_t *labels;
} sce_case;

static double sce_loss(void *ctx)
{
    sce_case *s = ctx;
    softmax_forward(s->probs, s->logits, s->B, s->N);
    return cross_entropy(s->probs, s->labels, s->B, s->N, NULL);
}

static void test_softmax_cross_entropy_gradient(void)
{
    enum { B = 4, N = 5 };
    float logits[B * N], probs[B * N], grad[B * N];
    uint8_t labels[B] = {0, 3, 4, 3};
    hcr_rng rng;
    hcr_rng_seed(&rng, 3);
    fill(logits, B * N, &rng, -3, 3);
    sce_case s = {B, N, logits, probs, labels};
    sce_loss(&s);
    for (int b = 0; b < B; b++) {
        double sum = 0;
        for (int i = 0; i < N; i++) sum += probs[b * N + i];
        CHECK_NEAR(sum, 1.0, 1e-6); /* N float roundings of values <= 1 */
    }
    softmax_cross_entropy_backward(grad, probs, labels, B, N, B);
    /* Loss is smooth: truncation O(e^2 * L''') ~ 1e-6; rounding of the
     * probabilities (6e-8 relative) over h = 2e-3 gives ~3e-5 / B. The
     * gradient components are ~0.01..0.25, a factor-of-B bug is 4x. */
    check_grad("softmax+cross_entropy dlogits", logits, B * N, grad, sce_loss, &s, 1e-4, 1e-2);
    /* Each row of (p - onehot)/B sums to zero. */
    for (int b = 0; b < B; b++) {
        double sum = 0;
        for (int i = 0; i < N; i++) sum += grad[b * N + i];
        CHECK_NEAR(sum, 0.0, 1e-7);
    }
}

/* --------------------------------------------------- fast vs reference */

static void conv_vs_ref(int B, int H, int W, int C, int K, int F, uint64_t seed)
{
    const int OH = H - K + 1, OW = W - K + 1;
    const size_t nin = (size_t)B * H * W * C, nw = (size_t)K * K * C * F;
    const size_t nout = (size_t)B * OH * OW * F, ncol = (size_t)B * OH * OW * K * K * C;
    float *in = falloc(nin), *w = falloc(nw), *b = falloc((size_t)F);
    float *out = falloc(nout), *rout = falloc(nout), *col = falloc(ncol), *dout = falloc(nout);
    float *din = falloc(nin), *dw = falloc(nw), *db = falloc((size_t)F);
    float *rdin = falloc(nin), *rdw = falloc(nw), *rdb = falloc((size_t)F);
    hcr_rng rng;
    hcr_rng_seed(&rng, seed);
    fill(in, nin, &rng, 0, 1);
    fill(w, nw, &rng, -1, 1);
    fill(b, (size_t)F, &rng, -0.5f, 0.5f);
    fill(dout, nout, &rng, -1, 1);
    char what[96];
    for (int relu = 0; relu <= 1; relu++) {
        /* Tolerance: relative 1e-4 of the array's scale. The reference sums
         * in double, the fast path in float over K*K*C <= 125 terms of size
         * <= 1: worst-case error 125 * 6e-8 * 125 ~ 1e-3 absolute against
         * outputs of scale ~10, typically ~1e-6 relative. Backward sums
         * over B*OH*OW <= 847 terms, both paths in float. */
        snprintf(what, sizeof what, "conv B%d H%d W%d C%d K%d F%d relu%d", B, H, W, C, K, F, relu);
        conv2d_forward(out, col, in, w, b, B, H, W, C, K, F, relu);
        conv2d_forward_ref(rout, in, w, b, B, H, W, C, K, F, relu);
        check_close_arrays(what, out, rout, nout, 1e-4);

        float *dcopy = fdup(dout, nout);
        conv2d_backward(din, dw, db, dcopy, out, col, w, B, H, W, C, K, F, relu);
        conv2d_backward_ref(rdin, rdw, rdb, dout, out, in, w, B, H, W, C, K, F, relu);
        free(dcopy);
        snprintf(what, sizeof what, "conv B%d H%d W%d C%d K%d F%d relu%d din", B, H, W, C, K, F, relu);
        check_close_arrays(what, din, rdin, nin, 1e-4);
        snprintf(what, sizeof what, "conv B%d H%d W%d C%d K%d F%d relu%d dw", B, H, W, C, K, F, relu);
        check_close_arrays(what, dw, rdw, nw, 1e-4);
        snprintf(what, sizeof what, "conv B%d H%d W%d C%d K%d F%d relu%d db", B, H, W, C, K, F, relu);
        check_close_arrays(what, db, rdb, (size_t)F, 1e-4);
    }
    free(in), free(w), free(b), free(out), free(rout), free(col), free(dout);
    free(din), free(dw), free(db), free(rdin), free(rdw), free(rdb);
}

static void test_conv_fast_vs_ref(void)
{
    static const int shapes[][6] = {
        /* B  H   W   C  K  F */
        {1, 3, 3, 1, 1, 1},   {1, 3, 3, 1, 3, 1},   {3, 5, 7, 2, 3, 17}, {7, 13, 11, 5, 5, 3},
        {1, 4, 9, 5, 2, 1},   {3, 13, 13, 1, 3, 3}, {7, 6, 3, 2, 2, 17}, {1, 3, 13, 1, 3, 17},
        {3, 12, 8, 5, 1, 3},  {7, 9, 10, 1, 5, 17}, {1, 13, 5, 2, 5, 1}, {3, 11, 4, 5, 3, 3},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int *s = shapes[i];
        conv_vs_ref(s[0], s[1], s[2], s[3], s[4], s[5], 1000 + i);
    }
}

static void dense_vs_ref(int B, int NI, int NO, uint64_t seed)
{
    const size_t nin = (size_t)B * NI, nw = (size_t)NI * NO, nout = (size_t)B * NO;
    float *in = falloc(nin), *w = falloc(nw), *b = falloc((size_t)NO), *out = falloc(nout);
    float *rout = falloc(nout), *dout = falloc(nout), *din = falloc(nin), *dw = falloc(nw);
    float *db = falloc((size_t)NO), *rdin = falloc(nin), *rdw = falloc(nw), *rdb = falloc((size_t)NO);
    hcr_rng rng;
    hcr_rng_seed(&rng, seed);
    fill(in, nin, &rng, -1, 1);
    fill(w, nw, &rng, -1, 1);
    fill(b, (size_t)NO, &rng, -0.5f, 0.5f);
    fill(dout, nout, &rng, -1, 1);
    char what[64];
    for (int relu = 0; relu <= 1; relu++) {
        /* Relative 1e-4 of the array's scale, as for convolutions. */
        snprintf(what, sizeof what, "dense B%d NI%d NO%d relu%d", B, NI, NO, relu);
        dense_forward(out, in, w, b, B, NI, NO, relu);
        dense_forward_ref(rout, in, w, b, B, NI, NO, relu);
        check_close_arrays(what, out, rout, nout, 1e-4);
        float *dcopy = fdup(dout, nout);
        dense_backward(din, dw, db, dcopy, out, in, w, B, NI, NO, relu);
        dense_backward_ref(rdin, rdw, rdb, dout, out, in, w, B, NI, NO, relu);
        free(dcopy);
        snprintf(what, sizeof what, "dense B%d NI%d NO%d relu%d din", B, NI, NO, relu);
        check_close_arrays(what, din, rdin, nin, 1e-4);
        snprintf(what, sizeof what, "dense B%d NI%d NO%d relu%d dw", B, NI, NO, relu);
        check_close_arrays(what, dw, rdw, nw, 1e-4);
        snprintf(what, sizeof what, "dense B%d NI%d NO%d relu%d db", B, NI, NO, relu);
        check_close_arrays(what, db, rdb, (size_t)NO, 1e-4);
    }
    free(in), free(w), free(b), free(out), free(rout), free(dout), free(din), free(dw);
    free(db), free(rdin), free(rdw), free(rdb);
}

static void test_dense_fast_vs_ref(void)
{
    static const int shapes[][3] = {
        {1, 1, 1}, {3, 17, 5}, {7, 100, 3}, {1, 5, 17}, {7, 13, 1}, {3, 64, 17}, {1, 300, 10},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        dense_vs_ref(shapes[i][0], shapes[i][1], shapes[i][2], 2000 + i);
}

/* ------------------------------------------------------------ known answers */

static void test_conv_known_answer(void)
{
    /* Input 4x4, one channel, values 1..16 row-major:
     *    1  2  3  4
     *    5  6  7  8
     *    9 10 11 12
     *   13 14 15 16
     * Kernel (cross-correlation, as Keras):
     *    1  2  0
     *    0  1 -1
     *    3  0  1
     * out(0,0) = 1*1 + 2*2 + 0*3 + 0*5 + 1*6 - 1*7 + 3*9 + 0*10 + 1*11 = 42
     * out(0,1) = 1*2 + 2*3 + 0*4 + 0*6 + 1*7 - 1*8 + 3*10 + 0*11 + 1*12 = 49
     * out(1,0) = 1*5 + 2*6 + 0*7 + 0*9 + 1*10 - 1*11 + 3*13 + 0*14 + 1*15 = 70
     * out(1,1) = 1*6 + 2*7 + 0*8 + 0*10 + 1*11 - 1*12 + 3*14 + 0*15 + 1*16 = 77
     * (kernel sum 7: one step right adds 7, one step down adds 4*7 = 28).
     * With bias 0.5: 42.5 49.5 70.5 77.5.
     * With bias -50 and ReLU: max(0,-8) max(0,-1) 20 27 = 0 0 20 27.
     * All exact in float. */
    float in[16], w[9] = {1, 2, 0, 0, 1, -1, 3, 0, 1}, out[4], col[4 * 9];
    for (int i = 0; i < 16; i++) in[i] = (float)(i + 1);
    float b = 0.5f;
    const float want[4] = {42.5f, 49.5f, 70.5f, 77.5f};
    conv2d_forward(out, col, in, w, &b, 1, 4, 4, 1, 3, 1, 0);
    for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], want[i], 0);
    conv2d_forward_ref(out, in, w, &b, 1, 4, 4, 1, 3, 1, 1);
    for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], want[i], 0);
    b = -50.0f;
    const float want_relu[4] = {0, 0, 20, 27};
    conv2d_forward(out, col, in, w, &b, 1, 4, 4, 1, 3, 1, 1);
    for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], want_relu[i], 0);
    conv2d_forward_ref(out, in, w, &b, 1, 4, 4, 1, 3, 1, 1);
    for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], want_relu[i], 0);

    /* Backward of that ReLU case with dout = 1 everywhere: only outputs
     * (1,0) and (1,1) pass. db = 2. dw[ky][kx] = in(1+ky, kx) + in(1+ky, 1+kx):
     *   row ky=0: 5+6=11, 6+7=13, 7+8=15; ky=1: 9+10=19, 21, 23;
     *   ky=2: 13+14=27, 29, 31. */
    float dout[4] = {1, 1, 1, 1}, din[16], dw[9], db;
    const float want_dw[9] = {11, 13, 15, 19, 21, 23, 27, 29, 31};
    conv2d_forward(out, col, in, w, &b, 1, 4, 4, 1, 3, 1, 1);
    conv2d_backward(din, dw, &db, dout, out, col, w, 1, 4, 4, 1, 3, 1, 1);
    CHECK_NEAR(db, 2.0, 0);
    for (int i = 0; i < 9; i++) CHECK_NEAR(dw[i], want_dw[i], 0);
    /* din: the kernel placed at (1,0) plus at (1,1); row 0 gets nothing.
     *   row 1: 1, 2+1=3, 0+2=2, 0
     *   row 2: 0, 1+0=1, -1+1=0, -1
     *   row 3: 3, 0+3=3, 1+0=1, 1 */
    const float want_din[16] = {0, 0, 0, 0, 1, 3, 2, 0, 0, 1, 0, -1, 3, 3, 1, 1};
    for (int i = 0; i < 16; i++) CHECK_NEAR(din[i], want_din[i], 0);

    /* HWIO layout with channels and filters: a 1x1 kernel over one pixel
     * with channels (1, 2); w[c][f] = {{1, 10}, {100, 1000}}, b = (0.25, -0.25):
     *   f0 = 1*1 + 2*100 + 0.25 = 201.25, f1 = 1*10 + 2*1000 - 0.25 = 2009.75 */
    float in2[2] = {1, 2}, w2[4] = {1, 10, 100, 1000}, b2[2] = {0.25f, -0.25f}, out2[2], col2[2];
    conv2d_forward(out2, col2, in2, w2, b2, 1, 1, 1, 2, 1, 2, 0);
    CHECK_NEAR(out2[0], 201.25, 0);
    CHECK_NEAR(out2[1], 2009.75, 0);
    conv2d_forward_ref(out2, in2, w2, b2, 1, 1, 1, 2, 1, 2, 0);
    CHECK_NEAR(out2[0], 201.25, 0);
    CHECK_NEAR(out2[1], 2009.75, 0);
    /* Dense has the same [in][out] layout. */
    dense_forward(out2, in2, w2, b2, 1, 2, 2, 0);
    CHECK_NEAR(out2[0], 201.25, 0);
    CHECK_NEAR(out2[1], 2009.75, 0);
}

static void test_pool_known_answer(void)
{
    /* One 4x5 image, one channel, S = 2 (the last column is dropped):
     *   1 7 | 3 3 | 9
     *   7 2 | 3 3 | 9
     *   ----+-----+
     *   0 0 | 5 4 | 9
     *  -1 0 | 6 5 | 9
     * Window (0,0): max 7 at (0,1) and (1,0): the first in row-major
     * order is (0,1) = index 1. Window (0,1): all four equal 3: the first,
     * (0,2) = index 2. Window (1,0): 0 at (2,0), (2,1), (3,1): index 10.
     * Window (1,1): 6 at (3,2) = index 17. The 9s are never looked at. */
    const float in[20] = {1, 7, 3, 3, 9, 7, 2, 3, 3, 9, 0, 0, 5, 4, 9, -1, 0, 6, 5, 9};
    float out[4], din[20], dout[4] = {0.5f, -2.0f, 4.0f, 8.0f};
    int32_t argmax[4];
    maxpool_forward(out, argmax, in, 1, 4, 5, 1, 2);
    const float want[4] = {7, 3, 0, 6};
    const int32_t want_idx[4] = {1, 2, 10, 17};
    for (int i = 0; i < 4; i++) {
        CHECK_NEAR(out[i], want[i], 0);
        CHECK(argmax[i] == want_idx[i]);
    }
    maxpool_backward(din, dout, argmax, 1, 4, 5, 1, 2);
    for (int i = 0; i < 20; i++) {
        float expect = 0;
        for (int j = 0; j < 4; j++)
            if (want_idx[j] == i) expect = dout[j];
        CHECK_NEAR(din[i], expect, 0);
    }

    /* Two channels interleaved (NHWC), 2x2, S = 2: channel 0 = (1,4,3,2),
     * channel 1 = (8,-1,8,0) -> max 4 at index 2 (pixel 1, channel 0),
     * max 8 at index 1 (pixel 0, channel 1; the tie at pixel 2 loses). */
    const float in2[8] = {1, 8, 4, -1, 3, 8, 2, 0};
    float out2[2];
    int32_t am2[2];
    maxpool_forward(out2, am2, in2, 1, 2, 2, 2, 2);
    CHECK_NEAR(out2[0], 4, 0);
    CHECK_NEAR(out2[1], 8, 0);
    CHECK(am2[0] == 2);
    CHECK(am2[1] == 1);

    /* argmax indexes the whole batch: image 1's maximum is past image 0. */
    const float in3[8] = {1, 2, 3, 4, 8, 7, 6, 5};
    int32_t am3[2];
    maxpool_forward(out2, am3, in3, 2, 2, 2, 1, 2);
    CHECK(am3[0] == 3);
    CHECK(am3[1] == 4);
    CHECK_NEAR(out2[0], 4, 0);
    CHECK_NEAR(out2[1], 8, 0);
}

static void test_softmax_known_answer(void)
{
    /* [1000, 1001, 1002] = 1002 + [-2, -1, 0]:
     *   e^-2 / (1 + e^-1 + e^-2) = 0.1353352832 / 1.5032147244 = 0.0900305732
     *   e^-1 / 1.5032147244 = 0.2447284711,  1 / 1.5032147244 = 0.6652409558
     * [-1000, 0, 1000]: e^-2000 and e^-1000 underflow to 0 -> [0, 0, 1].
     * Tolerance 1e-6: a few float roundings of values <= 1. */
    const float logits[9] = {1000, 1001, 1002, -1000, 0, 1000, 7, 7, 7};
    float p[9];
    softmax_forward(p, logits, 3, 3);
    for (int i = 0; i < 9; i++) CHECK(isfinite(p[i]));
    CHECK_NEAR(p[0], 0.0900305732, 1e-6);
    CHECK_NEAR(p[1], 0.2447284711, 1e-6);
    CHECK_NEAR(p[2], 0.6652409558, 1e-6);
    CHECK_NEAR(p[3], 0.0, 1e-30);
    CHECK_NEAR(p[4], 0.0, 1e-30);
    CHECK_NEAR(p[5], 1.0, 1e-7);
    for (int i = 6; i < 9; i++) CHECK_NEAR(p[i], 1.0 / 3.0, 1e-7);

    /* Cross-entropy: row 1 with label 0 has p = 0, clamped at 1e-7:
     * -log(1e-7) = 7 ln 10 = 16.11809565. Row 1 with label 2: -log(1) = 0.
     * Row 0 with label 2: -log(0.6652409558) = 0.4076059644. */
    uint8_t lab_zero[1] = {0}, lab_two[1] = {2};
    int correct = -1;
    CHECK_NEAR(cross_entropy(p + 3, lab_zero, 1, 3, &correct), 16.11809565095832, 1e-9);
    CHECK(correct == 0);
    CHECK_NEAR(cross_entropy(p + 3, lab_two, 1, 3, &correct), 0.0, 1e-7);
    CHECK(correct == 1);
    CHECK_NEAR(cross_entropy(p, lab_two, 1, 3, NULL), 0.4076059644, 2e-6);
    /* A tiny but nonzero probability (1e-9 < 1e-7) is clamped too. */
    const float tiny[2] = {1e-9f, 1.0f};
    CHECK_NEAR(cross_entropy(tiny, lab_zero, 1, 2, NULL), 16.11809565095832, 1e-9);
    /* The batch mean: rows (p=0.5 -> ln 2) and (p=0.25 -> ln 4): mean
     * 1.5 ln 2 = 1.0397207708; both rows' argmax is class 1 / class 0. */
    const float two[4] = {0.5f, 0.5f, 0.75f, 0.25f};
    uint8_t lab2[2] = {1, 1};
    CHECK_NEAR(cross_entropy(two, lab2, 2, 2, &correct), 1.0397207708399179, 1e-9);
    /* Row 0 is a tie (argmax 0, the first), row 1's argmax is 0: none right. */
    CHECK(correct == 0);

    /* The gradient at those huge logits is finite: p - onehot over B = 1. */
    float g[3];
    softmax_cross_entropy_backward(g, p + 3, lab_zero, 1, 3, 1);
    CHECK_NEAR(g[0], -1.0, 0);
    CHECK_NEAR(g[1], 0.0, 0);
    CHECK_NEAR(g[2], 1.0, 1e-7);
}

/* ------------------------------------------------------------------- Adam */

static void test_adam_steps(void)
{
    /*
     * lr = 0.1, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-7 (Keras defaults
     * but lr); w0 = (1, -0.5, 0.25); g1 = (0.5, -2, 0); g2 = (-1, -2, 0).
     *
     * Step 1: lr_1 = 0.1 * sqrt(1 - 0.999) / (1 - 0.9) = 0.1 * 0.0316227766 / 0.1
     *              = 0.0316227766
     *   m = 0.1 g1 = (0.05, -0.2, 0)
     *   v = 0.001 g1^2 = (0.00025, 0.004, 0), sqrt v = (0.0158113883, 0.0632455532, 0)
     *   w0: 1 - 0.0316227766 * 0.05 / (0.0158113883 + 1e-7) = 1 - 0.0999993675
     *       = 0.9000006325
     *   w1: -0.5 + 0.0316227766 * 0.2 / (0.0632455532 + 1e-7) = -0.5 + 0.0999998419
     *       = -0.4000001581
     *   w2: m = v = 0: 0 / (0 + 1e-7) = 0, stays 0.25
     * Step 2: lr_2 = 0.1 * sqrt(1 - 0.999^2) / (1 - 0.9^2) = 0.1 * sqrt(0.001999) / 0.19
     *              = 0.1 * 0.0447101778 / 0.19 = 0.0235316725
     *   m = 0.9 m + 0.1 g2 = (0.045 - 0.1, -0.18 - 0.2, 0) = (-0.055, -0.38, 0)
     *   v = 0.999 v + 0.001 g2^2 = (0.00024975 + 0.001, 0.003996 + 0.004, 0)
     *     = (0.00124975, 0.007996, 0), sqrt v = (0.0353518033, 0.0894203556, 0)
     *   w0: 0.9000006325 + 0.0235316725 * 0.055 / 0.0353519033 = 0.9000006325 + 0.0366102491
     *       = 0.9366108816
     *   w1: -0.4000001581 + 0.0235316725 * 0.38 / 0.0894204556 = -0.4000001581 + 0.0999998882
     *       = -0.3000002699
     * (Computing with the float values of 0.1, 0.9, 0.999 changes these by
     * < 1e-9.) Tolerance 1e-6: a few float roundings of values ~1 (ulp
     * 1.2e-7). Getting epsilon inside the sqrt would move w0 after step 1
     * by 2e-5; dropping the bias correction moves it by ~0.07.
     */
    adam a;
    CHECK(adam_init(&a, 3, 0.1f, 0.9f, 0.999f, 1e-7f) == HCR_OK);
    float w[3] = {1.0f, -0.5f, 0.25f};
    const float g1[3] = {0.5f, -2.0f, 0.0f}, g2[3] = {-1.0f, -2.0f, 0.0f};
    adam_step(&a, w, g1);
    CHECK(a.step == 1);
    /* The moments in float: 1 - 0.9f = 0.100000024 and 1 - 0.999f =
     * 0.00099998713 (1.3e-5 relative away from 0.001), so m is within 1e-7
     * of the decimal value and v within 2e-5 relative. */
    CHECK_NEAR(a.m[0], 0.05, 1e-7);
    CHECK_NEAR(a.m[1], -0.2, 2e-7);
    CHECK_NEAR(a.v[0], 0.00025, 2e-5 * 0.00025);
    CHECK_NEAR(a.v[1], 0.004, 2e-5 * 0.004);
    CHECK_NEAR(w[0], 0.9000006325, 1e-6);
    CHECK_NEAR(w[1], -0.4000001581, 1e-6);
    CHECK_NEAR(w[2], 0.25, 0);
    adam_step(&a, w, g2);
    CHECK(a.step == 2);
    CHECK_NEAR(a.m[0], -0.055, 1e-7);
    CHECK_NEAR(a.m[1], -0.38, 2e-7);
    CHECK_NEAR(a.v[0], 0.00124975, 2e-5 * 0.00124975);
    CHECK_NEAR(a.v[1], 0.007996, 2e-5 * 0.007996);
    CHECK_NEAR(w[0], 0.9366108816, 1e-6);
    CHECK_NEAR(w[1], -0.3000002699, 1e-6);
    CHECK_NEAR(w[2], 0.25, 0);
    adam_free(&a);
    CHECK(a.m == NULL && a.v == NULL);

    /* A large epsilon shows where it goes (outside the square root):
     * eps = 0.01, g = 0.5, w = 0: lr_1 = 0.0316227766 as above,
     * step = 0.0316227766 * 0.05 / (0.0158113883 + 0.01) = 0.00158113883 / 0.0258113883
     *      = 0.0612574113, so w = -0.0612574113. (Inside the root it would be
     * 0.00158113883 / sqrt(0.00025 + 0.01) = 0.0156174, far off.) */
    CHECK(adam_init(&a, 1, 0.1f, 0.9f, 0.999f, 0.01f) == HCR_OK);
    float w1 = 0.0f;
    const float g = 0.5f;
    adam_step(&a, &w1, &g);
    CHECK_NEAR(w1, -0.0612574113, 1e-6);
    adam_free(&a);

    /* Bad hyper-parameters are refused with a message. */
    CHECK(adam_init(&a, 3, 0.0f, 0.9f, 0.999f, 1e-7f) == HCR_EINVAL);
    CHECK_CONTAINS(hcr_last_error(), "lr");
    CHECK(adam_init(&a, 3, 0.1f, 1.0f, 0.999f, 1e-7f) == HCR_EINVAL);
    CHECK(adam_init(&a, 3, 0.1f, 0.9f, 0.999f, 0.0f) == HCR_EINVAL);
}

TEST_MAIN(TEST(test_conv_gradients), TEST(test_pool_gradients), TEST(test_dense_gradients),
          TEST(test_dropout), TEST(test_softmax_cross_entropy_gradient),
          TEST(test_conv_fast_vs_ref), TEST(test_dense_fast_vs_ref), TEST(test_conv_known_answer),
          TEST(test_pool_known_answer), TEST(test_softmax_known_answer), TEST(test_adam_steps))
