/*
 * test_kernels.c - every per-image kernel (kernels.h), in every instruction
 * set this CPU runs, against the plain-loop reference layers (layers.h) on
 * random shapes including odd ones. Tolerance: 1e-4 relative to the
 * largest magnitude of the reference output (float sums in another order).
 */
#include "harness.h"

#include "kernels/kernels.h"
#include "nn/layers.h"

#include <stdlib.h>

static hcr_rng rng;

static float *randv(size_t n)
{
    float *v = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) v[i] = 2.0f * hcr_rng_uniform(&rng) - 1.0f;
    return v;
}

static float *copyv(const float *src, size_t n)
{
    float *v = malloc(sizeof(float) * (n ? n : 1));
    memcpy(v, src, sizeof(float) * n);
    return v;
}

/* max |a-b| <= 1e-4 * max(1, max |b|) */
static int close_all(const float *a, const float *b, size_t n, const char *what, const char *kern)
{
    double scale = 1, worst = 0;
    for (size_t i = 0; i < n; i++) scale = fabs(b[i]) > scale ? fabs(b[i]) : scale;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (e > worst || e != e) {
            worst = e != e ? INFINITY : e;
            at = i;
        }
    }
    if (worst > 1e-4 * scale) {
        fprintf(stderr, "  %s (%s): element %zu is %g, reference %g\n", what, kern, at, a[at], b[at]);
        return 0;
    }
    return 1;
}

static const hcr_kernels *kernel_sets[2];
static int nsets;

static void find_kernel_sets(void)
{
    nsets = 0;
    kernel_sets[nsets++] = &kernels_generic;
#ifdef HCR_HAVE_AVX2_KERNELS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        kernel_sets[nsets++] = &kernels_avx2;
    else
        fprintf(stderr, "  (this CPU has no AVX2+FMA: only the generic kernels are tested)\n");
#endif
}

static void check_conv(const hcr_kernels *kern, int H, int W, int C, int K, int F, int relu)
{
    const int OH = H - K + 1, OW = W - K + 1;
    const size_t nin = (size_t)H * W * C, nout = (size_t)OH * OW * F, nw = (size_t)K * K * C * F;
    float *in = randv(nin), *w = randv(nw), *b = randv((size_t)F), *dout = randv(nout);
    float *out = randv(nout), *ref = randv(nout);
    char what[128];
    snprintf(what, sizeof what, "conv H%d W%d C%d K%d F%d relu%d", H, W, C, K, F, relu);

    kern->conv_forward(out, in, w, b, H, W, C, K, F, relu);
    conv2d_forward_ref(ref, in, w, b, 1, H, W, C, K, F, relu);
    CHECK_MSG(close_all(out, ref, nout, what, kern->name), "forward");

    /* Reference gradients (ReLU mask applied from the reference output). */
    float *rdin = randv(nin), *rdw = randv(nw), *rdb = randv((size_t)F);
    conv2d_backward_ref(rdin, rdw, rdb, dout, ref, in, w, 1, H, W, C, K, F, relu);
    float *masked = copyv(dout, nout);
    if (relu) relu_mask(masked, ref, (long)nout);

    /* wgrad accumulates: start from a random dw0 and expect dw0 + ref. */
    float *dw0 = randv(nw), *db0 = randv((size_t)F);
    float *dw = copyv(dw0, nw), *db = copyv(db0, (size_t)F);
    kern->conv_wgrad(dw, db, in, masked, H, W, C, K, F);
    for (size_t i = 0; i < nw; i++) rdw[i] += dw0[i];
    for (int i = 0; i < F; i++) rdb[i] += db0[i];
    CHECK_MSG(close_all(dw, rdw, nw, what, kern->name), "wgrad kernel");
    CHECK_MSG(close_all(db, rdb, (size_t)F, what, kern->name), "wgrad bias");

    /* dgrad accumulates too. */
    float *wt = randv(nw), *din0 = randv(nin);
    float *din = copyv(din0, nin);
    conv_pack_wt(wt, w, K, C, F);
    kern->conv_dgrad(din, masked, wt, H, W, C, K, F);
    for (size_t i = 0; i < nin; i++) rdin[i] += din0[i];
    CHECK_MSG(close_all(din, rdin, nin, what, kern->name), "dgrad");

    free(in); free(w); free(b); free(dout); free(out); free(ref); free(rdin); free(rdw);
    free(rdb); free(masked); free(dw0); free(db0); free(dw); free(db); free(wt); free(din0);
    free(din);
}

static void test_conv_kernels_match_reference(void)
{
    find_kernel_sets();
    hcr_rng_seed(&rng, 11);
    /* The shapes of the default model, then odd ones. */
    static const int shapes[][5] = {
        {28, 28, 1, 3, 32}, {13, 13, 32, 3, 64}, {5, 7, 3, 3, 8}, {6, 6, 8, 1, 16},
        {9, 4, 16, 2, 24},  {11, 13, 8, 5, 40},  {3, 3, 2, 3, 5}, {7, 9, 5, 3, 17},
        {8, 8, 24, 3, 8},   {4, 5, 16, 4, 72},   {10, 3, 1, 3, 1}, {12, 12, 40, 3, 16},
    };
    for (int s = 0; s < nsets; s++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            for (int relu = 0; relu < 2; relu++)
                check_conv(kernel_sets[s], shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3],
                           shapes[i][4], relu);
}

static void check_pool(const hcr_kernels *kern, int H, int W, int C, int S, int ties)
{
    const int OH = H / S, OW = W / S;
    const size_t nin = (size_t)H * W * C, nout = (size_t)OH * OW * C;
    float *in = randv(nin), *dout = randv(nout), *out = randv(nout), *ref = randv(nout);
    if (ties) /* few distinct values: windows with several equal maxima */
        for (size_t i = 0; i < nin; i++) in[i] = (float)(int)(in[i] * 2.0f);
    int32_t *argmax = malloc(sizeof(int32_t) * (nout ? nout : 1));
    char what[96];
    snprintf(what, sizeof what, "pool H%d W%d C%d S%d ties%d", H, W, C, S, ties);
    kern->pool_forward(out, in, H, W, C, S);
    maxpool_forward(ref, argmax, in, 1, H, W, C, S);
    CHECK_MSG(close_all(out, ref, nout, what, kern->name), "pool forward");
    float *din = randv(nin), *rdin = randv(nin);
    for (int relu = 0; relu < 2; relu++) {
        kern->pool_backward(din, dout, in, out, H, W, C, S, relu);
        maxpool_backward(rdin, dout, argmax, 1, H, W, C, S);
        if (relu) relu_mask(rdin, in, (long)nin);
        /* Exact: routing copies values, and ties must go to the same element. */
        CHECK_MSG(memcmp(din, rdin, sizeof(float) * nin) == 0, "%s relu%d (%s): pool backward differs",
                  what, relu, kern->name);
    }
    free(in); free(dout); free(out); free(ref); free(argmax); free(din); free(rdin);
}

static void test_pool_kernels_match_reference(void)
{
    find_kernel_sets();
    hcr_rng_seed(&rng, 12);
    static const int shapes[][4] = {
        {26, 26, 32, 2}, {11, 11, 64, 2}, {7, 5, 8, 2}, {9, 9, 3, 3}, {6, 6, 16, 3}, {4, 7, 1, 2},
    };
    for (int s = 0; s < nsets; s++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            for (int ties = 0; ties < 2; ties++)
                check_pool(kernel_sets[s], shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], ties);
}

#ifdef HCR_HAVE_AVX2_KERNELS
/* max |a-b| / max(1, max |b|) */
static double rel_error(const float *a, const float *b, size_t n)
{
    double scale = 1, worst = 0;
    for (size_t i = 0; i < n; i++) {
        scale = fabs(b[i]) > scale ? fabs(b[i]) : scale;
        double e = fabs((double)a[i] - b[i]);
        worst = e > worst || e != e ? (e != e ? INFINITY : e) : worst;
    }
    return worst / scale;
}

/* Winograd F(2x2,3x3) (conv_winograd_*): called directly, so these shapes
 * are known to take it; odd and even output sizes, one 2x2 tile, the
 * largest channel count it takes. Outputs past OH x OW must not be
 * written (sentinels after the buffer). */
static void test_winograd_matches_reference_avx2(void)
{
    find_kernel_sets();
    if (nsets < 2) return;
    hcr_rng_seed(&rng, 14);
    static const int shapes[][4] = {
        {13, 13, 32, 64}, {12, 12, 8, 16}, {6, 9, 16, 32}, {3, 3, 8, 16},
        {4, 4, 8, 16},    {5, 8, 24, 48},  {9, 4, 64, 16},  {28, 28, 8, 32},
        {3, 3, 8, 32},    {10, 10, 64, 64},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int H = shapes[s][0], W = shapes[s][1], C = shapes[s][2], F = shapes[s][3];
        const int OH = H - 2, OW = W - 2;
        const size_t nin = (size_t)H * W * C, nout = (size_t)OH * OW * F, nw = (size_t)9 * C * F;
        CHECK_MSG(conv_winograd_ok(H, W, C, 3, F), "H%d W%d C%d F%d should take Winograd", H, W, C, F);
        float *in = randv(nin), *w = randv(nw), *b = randv((size_t)F), *ref = randv(nout);
        float *wp = randv(CONV_WINOGRAD_FWD_FLOATS(C, F)), *out = randv(nout + 64), *direct = randv(nout);
        for (int i = 0; i < 64; i++) out[nout + i] = 12345.0f;
        conv_winograd_prepare(wp, w, C, F);
        for (int relu = 0; relu < 2; relu++) {
            char what[96];
            snprintf(what, sizeof what, "winograd H%d W%d C%d F%d relu%d", H, W, C, F, relu);
            conv2d_forward_ref(ref, in, w, b, 1, H, W, C, 3, F, relu);
            conv_winograd_forward(out, in, wp, b, H, W, C, F, relu);
            CHECK_MSG(close_all(out, ref, nout, what, "avx2-winograd"), "forward");
            int intact = 1;
            for (int i = 0; i < 64; i++) intact &= out[nout + i] == 12345.0f;
            CHECK_MSG(intact, "%s: wrote past the output", what);
            if (s == 0) {
                kernels_avx2.conv_forward(direct, in, w, b, H, W, C, 3, F, relu);
                printf("  %s: max |err| / max |ref|: winograd %.2e, direct %.2e\n", what,
                       rel_error(out, ref, nout), rel_error(direct, ref, nout));
            }
        }
        free(in); free(w); free(b); free(ref); free(wp); free(out); free(direct);
    }
    /* Shapes that keep the direct kernel. */
    CHECK(!conv_winograd_ok(28, 28, 1, 3, 32));  /* C % 8 */
    CHECK(!conv_winograd_ok(13, 13, 32, 5, 64)); /* K != 3 */
    CHECK(!conv_winograd_ok(13, 13, 32, 3, 24)); /* F % 16 */
    CHECK(!conv_winograd_ok(13, 13, 72, 3, 64)); /* C > 64 */
    CHECK(!conv_winograd_ok(2, 13, 32, 3, 64));  /* no output */
}

/* The Winograd backward (conv_winograd_backward + _finish) against the
 * reference gradients, summed over two images as the model sums a thread's
 * share: dw and db accumulate onto random starting values, din is written
 * in full (it starts as garbage), and a NULL din skips the input gradient.
 * Shapes: the reference model's second layer, odd and even outputs, one
 * tile, channel counts that need the 4- and 2-row kernel-gradient blocks. */
static void test_winograd_backward_matches_reference_avx2(void)
{
    find_kernel_sets();
    if (nsets < 2) return;
    hcr_rng_seed(&rng, 15);
    static const int shapes[][4] = {
        {13, 13, 32, 64}, {12, 12, 16, 16}, {6, 9, 16, 32}, {3, 3, 16, 16},
        {4, 4, 64, 16},   {5, 8, 48, 48},   {10, 10, 64, 64}, {26, 26, 32, 32},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int H = shapes[s][0], W = shapes[s][1], C = shapes[s][2], F = shapes[s][3];
        const int OH = H - 2, OW = W - 2;
        const size_t nin = (size_t)H * W * C, nout = (size_t)OH * OW * F, nw = (size_t)9 * C * F;
        const size_t nu = CONV_WINOGRAD_FLOATS(C, F);
        char what[96];
        snprintf(what, sizeof what, "winograd backward H%d W%d C%d F%d", H, W, C, F);
        CHECK_MSG(conv_winograd_backward_ok(H, W, C, 3, F), "%s should take Winograd", what);
        float *in = randv(2 * nin), *w = randv(nw), *dout = randv(2 * nout), *fwd = randv(nout);
        float *rdin = randv(2 * nin), *rdw = randv(nw), *rdb = randv((size_t)F);
        float *rdw2 = randv(nw), *rdb2 = randv((size_t)F);
        float *wpt = randv(nu), *du = calloc(nu, sizeof(float)), *din = randv(2 * nin + 64);
        float *dw0 = randv(nw), *db0 = randv((size_t)F);
        float *dw = copyv(dw0, nw), *db = copyv(db0, (size_t)F);
        for (int i = 0; i < 64; i++) din[2 * nin + i] = 12345.0f;
        for (int b = 0; b < 2; b++) /* reference, no ReLU: fwd is unused */
            conv2d_backward_ref(rdin + b * nin, b ? rdw2 : rdw, b ? rdb2 : rdb, dout + b * nout,
                                fwd, in + b * nin, w, 1, H, W, C, 3, F, 0);
        for (size_t i = 0; i < nw; i++) rdw[i] += rdw2[i] + dw0[i];
        for (int i = 0; i < F; i++) rdb[i] += rdb2[i] + db0[i];
        conv_winograd_prepare_dgrad(wpt, w, C, F);
        for (int b = 0; b < 2; b++)
            conv_winograd_backward(din + b * nin, du, db, in + b * nin, dout + b * nout, wpt, H, W,
                                   C, F);
        conv_winograd_wgrad_finish(dw, du, C, F);
        CHECK_MSG(close_all(dw, rdw, nw, what, "avx2-winograd"), "kernel gradient");
        CHECK_MSG(close_all(db, rdb, (size_t)F, what, "avx2-winograd"), "bias gradient");
        CHECK_MSG(close_all(din, rdin, 2 * nin, what, "avx2-winograd"), "input gradient");
        int intact = 1;
        for (int i = 0; i < 64; i++) intact &= din[2 * nin + i] == 12345.0f;
        CHECK_MSG(intact, "%s: wrote past the input gradient", what);
        if (s == 0) {
            float *dwd = copyv(dw0, nw), *dbd = copyv(db0, (size_t)F);
            for (int b = 0; b < 2; b++)
                kernels_avx2.conv_wgrad(dwd, dbd, in + b * nin, dout + b * nout, H, W, C, 3, F);
            printf("  %s: kernel gradient max |err| / max |ref|: winograd %.2e, direct %.2e\n",
                   what, rel_error(dw, rdw, nw), rel_error(dwd, rdw, nw));
            printf("  %s: input gradient max |err| / max |ref|: winograd %.2e\n", what,
                   rel_error(din, rdin, 2 * nin));
            free(dwd); free(dbd);
        }
        /* Without din: the same kernel gradient, nothing else touched. */
        memset(du, 0, sizeof(float) * nu);
        memcpy(dw, dw0, sizeof(float) * nw);
        memcpy(db, db0, sizeof(float) * (size_t)F);
        for (int b = 0; b < 2; b++)
            conv_winograd_backward(NULL, du, db, in + b * nin, dout + b * nout, wpt, H, W, C, F);
        conv_winograd_wgrad_finish(dw, du, C, F);
        CHECK_MSG(close_all(dw, rdw, nw, what, "avx2-winograd, no din"), "kernel gradient");
        free(in); free(w); free(dout); free(fwd); free(rdin); free(rdw); free(rdb); free(rdw2);
        free(rdb2); free(wpt); free(du); free(din); free(dw0); free(db0); free(dw); free(db);
    }
    CHECK(!conv_winograd_backward_ok(13, 13, 8, 3, 16));   /* C % 16 */
    CHECK(!conv_winograd_backward_ok(13, 13, 32, 3, 128)); /* F > 64 */
    CHECK(!conv_winograd_backward_ok(13, 13, 32, 5, 64));  /* K != 3 */
}
#endif

/* The fused first layer (conv1_pool_*) against the generic convolution,
 * pooling and their backward kernels run one after the other. The input's
 * top half is constant, so many windows hold exactly equal positive
 * maxima: the gradient must go to the first of them, as pool_backward's. */
static void test_conv1_pool_matches_reference_avx2(void)
{
    find_kernel_sets();
    if (nsets < 2) return;
    hcr_rng_seed(&rng, 16);
    static const int shapes[][3] = {{28, 28, 32}, {4, 4, 16}, {10, 6, 48}, {8, 12, 16}};
    const hcr_kernels *g = &kernels_generic;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int relu = 0; relu < 2; relu++) {
            const int H = shapes[s][0], W = shapes[s][1], F = shapes[s][2];
            const int OH = H - 2, OW = W - 2, PH = OH / 2, PW = OW / 2;
            const size_t nin = (size_t)H * W, nconv = (size_t)OH * OW * F, npool = (size_t)PH * PW * F;
            char what[96];
            snprintf(what, sizeof what, "conv1+pool H%d W%d F%d relu%d", H, W, F, relu);
            CHECK_MSG(conv1_pool_ok(H, W, 1, 3, F, 2), "%s should take the fused kernels", what);
            float *in = randv(nin), *w = randv((size_t)9 * F), *b = randv((size_t)F);
            for (size_t i = 0; i < nin / 2; i++) in[i] = 0.5f;
            float *route = randv(npool), *pool = randv(npool), *rconv = randv(nconv), *rpool = randv(npool);
            float *pool2 = randv(npool), *dpool = randv(npool), *dconv = randv(nconv);
            g->conv_forward(rconv, in, w, b, H, W, 1, 3, F, relu);
            g->pool_forward(rpool, rconv, OH, OW, F, 2);
            conv1_pool_forward(pool, route, in, w, b, H, W, F, relu);
            conv1_pool_forward(pool2, NULL, in, w, b, H, W, F, relu);
            CHECK_MSG(close_all(pool, rpool, npool, what, "avx2-fused"), "pooled output");
            CHECK_MSG(memcmp(pool, pool2, sizeof(float) * npool) == 0, "%s: pooled output depends on route", what);
            int ties = 0;
            for (size_t i = 0; i < npool; i++) {
                const size_t py = i / F / PW, px = i / F % PW, f = i % F;
                const float a = rconv[((2 * py) * OW + 2 * px) * F + f], c = rconv[((2 * py) * OW + 2 * px + 1) * F + f];
                ties += a > 0 && a == c;
            }
            if (s == 0) CHECK_MSG(ties > 0, "%s: the input should give tied maxima", what);
            /* Backward: reference = pool_backward into dconv, then conv_wgrad,
             * both onto random starting gradients. */
            float *dw0 = randv((size_t)9 * F), *db0 = randv((size_t)F);
            float *rdw = copyv(dw0, (size_t)9 * F), *rdb = copyv(db0, (size_t)F);
            float *dw = copyv(dw0, (size_t)9 * F), *db = copyv(db0, (size_t)F);
            g->pool_backward(dconv, dpool, rconv, rpool, OH, OW, F, 2, relu);
            g->conv_wgrad(rdw, rdb, in, dconv, H, W, 1, 3, F);
            conv1_pool_wgrad(dw, db, in, route, dpool, H, W, F);
            CHECK_MSG(close_all(dw, rdw, (size_t)9 * F, what, "avx2-fused"), "kernel gradient");
            CHECK_MSG(close_all(db, rdb, (size_t)F, what, "avx2-fused"), "bias gradient");
            /* The route itself: where pool_backward sent each gradient. */
            int routed = 1;
            for (size_t i = 0; i < npool && routed; i++) {
                const size_t py = i / F / PW, px = i / F % PW, f = i % F;
                int to = 4;
                for (int q = 0; q < 4 && to == 4; q++)
                    if (dconv[((2 * py + q / 2) * OW + 2 * px + q % 2) * F + f] != 0) to = q;
                routed = dpool[i] == 0 || route[i] == (float)to;
                if (!routed)
                    fprintf(stderr, "  %s: pooled value %zu routed to %g, pool_backward sent it to %d\n",
                            what, i, route[i], to);
            }
            CHECK_MSG(routed, "%s: route", what);
            free(in); free(w); free(b); free(route); free(pool); free(rconv); free(rpool); free(pool2);
            free(dpool); free(dconv); free(dw0); free(db0); free(rdw); free(rdb); free(dw); free(db);
        }
    CHECK(!conv1_pool_ok(28, 28, 8, 3, 32, 2));   /* C != 1 */
    CHECK(!conv1_pool_ok(27, 27, 1, 3, 32, 2));   /* the pooling would drop a row */
    CHECK(!conv1_pool_ok(28, 28, 1, 3, 32, 3));   /* S != 2 */
    CHECK(!conv1_pool_ok(28, 28, 1, 5, 32, 2));   /* K != 3 */
    CHECK(!conv1_pool_ok(28, 28, 1, 3, 24, 2));   /* F % 16 */
    CHECK(!conv1_pool_ok(28, 1000, 1, 3, 32, 2)); /* wider than the routing buffer */
}

static void test_winograd_matches_reference(void)
{
#ifdef HCR_HAVE_AVX2_KERNELS
    test_winograd_matches_reference_avx2();
    test_winograd_backward_matches_reference_avx2();
    test_conv1_pool_matches_reference_avx2();
#endif
}

/* conv_plan_make's choices, on the reference model's layers and the
 * shapes at the edges of each algorithm. */
static conv_plan plan_for(const hcr_kernels *k, int H, int W, int C, int K, int F, int pool,
                          int first)
{
    const conv_shape s = {H, W, C, K, F, 1, pool, first};
    return conv_plan_make(k, &s);
}

static void test_conv_plan(void)
{
    /* The generic set has one algorithm: direct, with a packed kernel for
     * the input gradient except in the first layer. */
    conv_plan p = plan_for(&kernels_generic, 28, 28, 1, 3, 32, 2, 1);
    CHECK(p.kern == &kernels_generic && p.forward == CONV_DIRECT && p.backward == CONV_DIRECT);
    CHECK(p.fwd_floats == 0 && p.bwd_floats == 0 && p.du_floats == 0);
    p = plan_for(&kernels_generic, 13, 13, 32, 3, 64, 2, 0);
    CHECK(p.forward == CONV_DIRECT && p.backward == CONV_DIRECT);
    CHECK(p.fwd_floats == 0 && p.bwd_floats == (size_t)3 * 3 * 32 * 64 && p.du_floats == 0);
#ifdef HCR_HAVE_AVX2_KERNELS
    find_kernel_sets();
    if (nsets < 2) return;
    const hcr_kernels *k = &kernels_avx2;
    p = plan_for(k, 28, 28, 1, 3, 32, 2, 1); /* the reference model's first layer */
    CHECK(p.forward == CONV_FUSED_POOL && p.backward == CONV_FUSED_POOL);
    CHECK(p.fwd_floats == 0 && p.bwd_floats == 0 && p.du_floats == 0);
    CHECK(plan_for(k, 28, 28, 1, 3, 32, 0, 1).forward == CONV_DIRECT); /* no pooling after it */
    CHECK(plan_for(k, 28, 28, 1, 3, 32, 2, 0).forward == CONV_DIRECT); /* not the first layer */
    CHECK(plan_for(k, 28, 28, 1, 3, 32, 3, 1).forward == CONV_DIRECT); /* 3x3 pooling */
    p = plan_for(k, 13, 13, 32, 3, 64, 2, 0); /* its second layer */
    CHECK(p.forward == CONV_WINOGRAD && p.backward == CONV_WINOGRAD);
    CHECK(p.fwd_floats == CONV_WINOGRAD_FWD_FLOATS(32, 64));
    CHECK(p.bwd_floats == CONV_WINOGRAD_FLOATS(32, 64) && p.du_floats == p.bwd_floats);
    p = plan_for(k, 13, 13, 8, 3, 16, 0, 0); /* C % 16: Winograd forward only */
    CHECK(p.forward == CONV_WINOGRAD && p.backward == CONV_DIRECT);
    CHECK(p.bwd_floats == (size_t)3 * 3 * 8 * 16 && p.du_floats == 0);
    p = plan_for(k, 13, 13, 32, 3, 128, 0, 0); /* F > 64: the same */
    CHECK(p.forward == CONV_WINOGRAD && p.backward == CONV_DIRECT);
    p = plan_for(k, 13, 13, 32, 5, 64, 0, 0); /* 5x5: direct */
    CHECK(p.forward == CONV_DIRECT && p.backward == CONV_DIRECT && p.fwd_floats == 0);
    p = plan_for(k, 13, 13, 12, 3, 24, 0, 0); /* channels for neither */
    CHECK(p.forward == CONV_DIRECT && p.backward == CONV_DIRECT);
#endif
}

/* A kernel that gets a wrong answer must be caught: perturb one weight of
 * the reference and check that the comparison notices. */
static void test_comparison_detects_errors(void)
{
    hcr_rng_seed(&rng, 13);
    const int H = 6, W = 6, C = 8, K = 3, F = 16;
    float *in = randv((size_t)H * W * C), *w = randv((size_t)K * K * C * F), *b = randv(F);
    float *out = randv(16 * F), *ref = randv(16 * F);
    kernels_generic.conv_forward(out, in, w, b, H, W, C, K, F, 0);
    w[5] += 0.01f;
    conv2d_forward_ref(ref, in, w, b, 1, H, W, C, K, F, 0);
    CHECK(!close_all(out, ref, 16 * F, "deliberately wrong weight", "generic"));
    free(in); free(w); free(b); free(out); free(ref);
}

TEST_MAIN(TEST(test_conv_kernels_match_reference), TEST(test_pool_kernels_match_reference),
          TEST(test_winograd_matches_reference), TEST(test_conv_plan),
          TEST(test_comparison_detects_errors))
