/*
 * dispatch.c - which kernels run: the kernel set, chosen once per process
 * from the CPU (kernels_select), and each convolution's algorithm, chosen
 * once per layer from its shape when the model is built (conv_plan_make),
 * then run through the plan (conv_plan_*). The model never asks which
 * instruction set it runs on: the choices are all here.
 */
#include "kernels/kernels.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#ifdef HCR_HAVE_AVX2_KERNELS
/* AVX2 needs the OS to save the YMM registers (OSXSAVE + XCR0), which
 * __builtin_cpu_supports checks along with the CPUID bits. */
static int cpu_has_avx2_fma(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

static const hcr_kernels *chosen;

static void choose(void)
{
    const hcr_kernels *k = &kernels_generic;
    const char *force = getenv("HCR_KERNELS");
#ifdef HCR_HAVE_AVX2_KERNELS
    if (!(force && strcmp(force, "generic") == 0) && cpu_has_avx2_fma()) k = &kernels_avx2;
#else
    (void)force;
#endif
    chosen = k;
}

/* Chosen once per process, before any thread can read the choice. */
const hcr_kernels *kernels_select(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, choose);
    return chosen;
}

/* ------------------------------------------------- convolution plans */

static int fused_pool_ok(const hcr_kernels *k, const conv_shape *s)
{
    return s->first && s->pool && k->conv1_pool_ok &&
           k->conv1_pool_ok(s->H, s->W, s->C, s->K, s->F, s->pool);
}

static int winograd_ok(const hcr_kernels *k, const conv_shape *s)
{
    return k->winograd_ok && k->winograd_ok(s->H, s->W, s->C, s->K, s->F);
}

static int winograd_backward_ok(const hcr_kernels *k, const conv_shape *s)
{
    return winograd_ok(k, s) && k->winograd_backward_ok(s->H, s->W, s->C, s->K, s->F);
}

conv_plan conv_plan_make(const hcr_kernels *k, const conv_shape *s)
{
    conv_plan p = {.kern = k, .s = *s, .forward = CONV_DIRECT, .backward = CONV_DIRECT};
    /* The fused kernel stores neither the convolution's output nor its
     * gradient, and a first layer needs no input gradient: nothing else
     * to prepare. */
    if (fused_pool_ok(k, s)) {
        p.forward = p.backward = CONV_FUSED_POOL;
        return p;
    }
    if (winograd_ok(k, s)) {
        p.forward = CONV_WINOGRAD;
        p.fwd_floats = CONV_WINOGRAD_FWD_FLOATS(s->C, s->F);
    }
    if (winograd_backward_ok(k, s)) {
        p.backward = CONV_WINOGRAD;
        p.bwd_floats = p.du_floats = CONV_WINOGRAD_FLOATS(s->C, s->F);
    } else if (!s->first) {
        p.bwd_floats = (size_t)s->K * s->K * s->C * s->F; /* conv_pack_wt's copy */
    }
    return p;
}

void conv_plan_prepare_forward(const conv_plan *p, float *wfwd, const float *w)
{
    if (p->forward == CONV_WINOGRAD) p->kern->winograd_prepare(wfwd, w, p->s.C, p->s.F);
}

void conv_plan_prepare_backward(const conv_plan *p, float *wbwd, const float *w)
{
    if (p->backward == CONV_WINOGRAD)
        p->kern->winograd_prepare_dgrad(wbwd, w, p->s.C, p->s.F);
    else if (p->bwd_floats)
        conv_pack_wt(wbwd, w, p->s.K, p->s.C, p->s.F);
}

void conv_plan_forward(const conv_plan *p, float *out, const float *in, const float *w,
                       const float *wfwd, const float *b)
{
    const conv_shape *s = &p->s;
    if (p->forward == CONV_WINOGRAD)
        p->kern->winograd_forward(out, in, wfwd, b, s->H, s->W, s->C, s->F, s->relu);
    else
        p->kern->conv_forward(out, in, w, b, s->H, s->W, s->C, s->K, s->F, s->relu);
}

void conv_plan_forward_pool(const conv_plan *p, float *pooled, float *route, const float *in,
                            const float *w, const float *b)
{
    const conv_shape *s = &p->s;
    p->kern->conv1_pool_forward(pooled, route, in, w, b, s->H, s->W, s->F, s->relu);
}

void conv_plan_backward(const conv_plan *p, float *din, float *dw, float *db, float *du,
                        const float *in, const float *dout, const float *wbwd)
{
    const conv_shape *s = &p->s;
    if (p->backward == CONV_WINOGRAD) {
        p->kern->winograd_backward(din, du, db, in, dout, wbwd, s->H, s->W, s->C, s->F);
        return;
    }
    p->kern->conv_wgrad(dw, db, in, dout, s->H, s->W, s->C, s->K, s->F);
    if (din) { /* conv_dgrad adds */
        memset(din, 0, sizeof(float) * (size_t)s->H * s->W * s->C);
        p->kern->conv_dgrad(din, dout, wbwd, s->H, s->W, s->C, s->K, s->F);
    }
}

void conv_plan_wgrad_finish(const conv_plan *p, float *dw, const float *du)
{
    if (p->backward == CONV_WINOGRAD) p->kern->winograd_wgrad_finish(dw, du, p->s.C, p->s.F);
}

void conv_plan_backward_pool(const conv_plan *p, float *dw, float *db, const float *in,
                             const float *route, const float *dpool)
{
    p->kern->conv1_pool_wgrad(dw, db, in, route, dpool, p->s.H, p->s.W, p->s.F);
}
