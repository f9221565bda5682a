/*
 * spec.c - an architecture spec ("conv32-pool-conv64-pool-dense128-drop0.5")
 * read into a table of layers: tokens split at '-', each read by the row of
 * its kind in layer_kinds.c, shapes carried from layer to layer, the
 * implied Flatten and the classifier added, parameters counted.
 */
#include "nn/layer_kinds.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int spec_int(const char **p, long *out)
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

hcr_status spec_unreadable(const spec_token *t)
{
    /* The tokens the table knows, in its order: "a, b, c or d". */
    char expected[256] = "";
    int total = 0, listed = 0;
    for (int k = 0; k < LAYER_KINDS; k++) total += layer_kinds[k].syntax != NULL;
    for (int k = 0; k < LAYER_KINDS; k++) {
        const char *syntax = layer_kinds[k].syntax;
        if (!syntax) continue;
        const char *sep = listed == 0 ? "" : listed == total - 1 ? " or " : ", ";
        size_t used = strlen(expected);
        snprintf(expected + used, sizeof expected - used, "%s%s", sep, syntax);
        listed++;
    }
    return hcr__fail(HCR_EINVAL, "spec '%s': cannot read '%s' (expected %s, separated by '-')",
                     t->spec, t->token, expected);
}

/* The layers read so far, and the shape the next one takes. */
typedef struct spec_parser {
    const char *spec;
    layer *layers;                /* room for MODEL_MAX_LAYERS           */
    int n;
    int h, w, c;                  /* the next layer's input              */
    int flat;                     /* a dense layer came: no spatial layer
                                     may follow                          */
    int named[LAYER_KINDS];       /* layers of each kind so far          */
} spec_parser;

/* Keras's names: conv2d, conv2d_1, conv2d_2, ... per kind. */
static void name_layer(layer *l, int *counter, const char *base)
{
    if (*counter == 0)
        snprintf(l->name, sizeof l->name, "%s", base);
    else
        snprintf(l->name, sizeof l->name, "%s_%d", base, *counter);
    (*counter)++;
}

/* Append l (its own fields set) to the table, on the current shape; token
 * names it in the error when it does not fit. */
static hcr_status add_layer(spec_parser *p, layer l, const char *token)
{
    /* Two places are kept for the classifier and its Flatten. */
    if (p->n >= MODEL_MAX_LAYERS - 2)
        return hcr__fail(HCR_EINVAL, "spec '%s': too many layers (at most %d)", p->spec,
                         MODEL_MAX_LAYERS - 2);
    const layer_ops *o = layer_ops_of(&l);
    l.in_h = p->h;
    l.in_w = p->w;
    l.in_c = p->c;
    name_layer(&l, &p->named[l.kind], o->keras_name);
    if (!o->shape(&l))
        return hcr__fail(HCR_EINVAL,
                         "spec '%s': '%s' does not fit a %dx%dx%d input (the image is too small "
                         "for this many layers)",
                         p->spec, token, p->h, p->w, p->c);
    p->layers[p->n++] = l;
    p->h = l.out_h;
    p->w = l.out_w;
    p->c = l.out_c;
    p->flat |= (o->flags & LK_FLAT_OUT) != 0;
    return HCR_OK;
}

/* The row whose token starts this one, or NULL. */
static const layer_ops *row_of_token(const char *token, layer_kind *kind)
{
    for (int k = 0; k < LAYER_KINDS; k++) {
        const char *prefix = layer_kinds[k].token;
        if (prefix && strncmp(token, prefix, strlen(prefix)) == 0) {
            *kind = (layer_kind)k;
            return &layer_kinds[k];
        }
    }
    return NULL;
}

static hcr_status parse_token(spec_parser *p, const char *token)
{
    const spec_token t = {p->spec, token};
    layer_kind kind;
    const layer_ops *o = row_of_token(token, &kind);
    if (!o) return spec_unreadable(&t);
    if ((o->flags & LK_SPATIAL) && p->flat)
        return hcr__fail(HCR_EINVAL, "spec '%s': '%s' comes after a dense layer", p->spec, token);
    layer l = {.kind = kind};
    layer *prev = p->n > 0 ? &p->layers[p->n - 1] : NULL;
    hcr_status s = o->parse(&l, token + strlen(o->token), prev, &t);
    if (s) return s;
    if ((o->flags & LK_FLAT_IN) && !p->flat && (s = add_layer(p, layer_implied_flatten(), token)))
        return s;
    return add_layer(p, l, token);
}

/* Split the spec at '-' and read each token. */
static hcr_status parse_tokens(spec_parser *p)
{
    const char *spec = p->spec;
    if (!*spec) return hcr__fail(HCR_EINVAL, "empty architecture spec");
    if (strlen(spec) > MODEL_MAX_SPEC)
        return hcr__fail(HCR_EINVAL, "architecture spec of %zu characters: at most %d allowed",
                         strlen(spec), MODEL_MAX_SPEC);
    for (const char *q = spec; *q;) {
        const size_t len = strcspn(q, "-");
        if (len > MODEL_MAX_TOKEN)
            return hcr__fail(HCR_EINVAL, "spec '%s': token '%.20s...' is %zu characters long (at most %d)",
                             spec, q, len, MODEL_MAX_TOKEN);
        char token[MODEL_MAX_TOKEN + 1];
        snprintf(token, sizeof token, "%.*s", (int)len, q);
        q += len;
        if (*q == '-' && !*++q) return hcr__fail(HCR_EINVAL, "spec '%s': ends with '-'", spec);
        if (len == 0) return hcr__fail(HCR_EINVAL, "spec '%s': empty token", spec);
        hcr_status s = parse_token(p, token);
        if (s) return s;
    }
    return HCR_OK;
}

/* The spec's layers, then the classifier: a Flatten if needed, then
 * Dense(num_classes), which softmax follows. */
static hcr_status parse_spec(const char *spec, int rows, int cols, int num_classes, layer *layers,
                             int *nlayers)
{
    spec_parser p = {.spec = spec, .layers = layers, .h = rows, .w = cols, .c = 1};
    hcr_status s = parse_tokens(&p);
    if (!s && !p.flat) s = add_layer(&p, layer_implied_flatten(), "flatten");
    if (!s) s = add_layer(&p, layer_classifier(num_classes), "dense");
    *nlayers = p.n;
    return s;
}

/* Each layer's parameter and state counts; the total of parameters, or a
 * failure past MODEL_MAX_PARAMS. */
static hcr_status count_params(const char *spec, layer *layers, int nl, size_t *nparams)
{
    size_t needed = 0;
    for (int i = 0; i < nl; i++) {
        layer *l = &layers[i];
        const layer_ops *o = layer_ops_of(l);
        const layer_counts c = o->count ? o->count(l) : (layer_counts){0, 0, 0};
        l->w_count = c.w;
        l->b_count = c.b;
        l->s_count = c.state;
        needed += c.w + c.b;
        if (needed > MODEL_MAX_PARAMS)
            return hcr__fail(HCR_EINVAL, "spec '%s' needs more than %zu parameters", spec,
                             MODEL_MAX_PARAMS);
    }
    *nparams = needed;
    return HCR_OK;
}

hcr_status model_plan(const char *spec, int rows, int cols, int num_classes, layer *layers,
                      int *nl, size_t *nparams)
{
    if (!spec) return hcr__fail(HCR_EINVAL, "no architecture spec");
    if (rows < 1 || cols < 1 || rows > 4096 || cols > 4096)
        return hcr__fail(HCR_EINVAL, "input size %dx%d out of range (1..4096)", rows, cols);
    if (num_classes < 2 || num_classes > 1000)
        return hcr__fail(HCR_EINVAL, "%d classes: need between 2 and 1000", num_classes);
    hcr_status s = parse_spec(spec, rows, cols, num_classes, layers, nl);
    if (!s) s = count_params(spec, layers, *nl, nparams);
    if (s) return s;
    for (int i = 0; i < *nl; i++) {
        const layer_ops *o = layer_ops_of(&layers[i]);
        if (o->plan) o->plan(layers, *nl, i);
    }
    return HCR_OK;
}

hcr_status model_spec_params(const char *spec, int rows, int cols, int num_classes, size_t *nparams)
{
    layer tmp[MODEL_MAX_LAYERS];
    int nl = 0;
    return model_plan(spec, rows, cols, num_classes, tmp, &nl, nparams);
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
