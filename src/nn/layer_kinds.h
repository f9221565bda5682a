/*
 * layer_kinds.h - the table of layer kinds (layer_kinds.c): one row per
 * kind says everything the rest of nn/ needs to know about it, so that
 * spec.c and model.c never name a kind. How to add one: the comment at the
 * top of layer_kinds.c.
 */
#ifndef HCR_LAYER_KINDS_H
#define HCR_LAYER_KINDS_H

#include "nn/model.h"

/* What a kind accepts and gives, for the spec parser and the summary. */
enum {
    LK_SPATIAL = 1,      /* takes an H x W x C input: refused after a dense layer  */
    LK_FLAT_IN = 2,      /* takes a flat input: a Flatten is implied before it      */
    LK_FLAT_OUT = 4,     /* its output is flat, and so is every layer's after it    */
    LK_NORMALIZABLE = 8, /* 'bn' may follow it                                      */
    LK_ALIAS = 16        /* its output is its input reshaped: no buffers, no work   */
};

/* How the passes run a kind over a batch. */
typedef enum layer_run {
    RUN_IMAGE, /* one image at a time, in one go with the per-image layers
                  around it, so that an image's activations stay in cache  */
    RUN_SHARE, /* on a thread's whole share of the batch at once (one BLAS
                  product for a dense layer)                               */
    RUN_BATCH  /* on the whole batch (batch normalization's statistics):
                  every thread of the pass calls it with the whole batch;
                  it splits the work and synchronizes the threads itself   */
} layer_run;

/* The token being parsed, for error messages. */
typedef struct spec_token {
    const char *spec;
    const char *token;
} spec_token;

typedef struct layer_counts {
    size_t w, b;  /* trainable: kernel (or gamma), bias (or beta)          */
    size_t state; /* non-trainable (batch normalization's moving statistics) */
} layer_counts;

/* A tensor a layer owns, as the model file names it (<layer>.<what>). */
#define LAYER_MAX_TENSORS 4
typedef struct layer_tensor {
    const char *what;
    float *data;
    size_t count;
    int ndim;
    int64_t shape[4];
} layer_tensor;

/* The model's workspace is one allocation, carved in order: ws_take hands
 * out the next `count` floats (64-byte aligned). With base NULL it only
 * counts (and returns NULL), so the same code sizes and then lays out. */
typedef struct ws_cursor {
    float *base;
    size_t used;
} ws_cursor;

#define WS_ALIGN_FLOATS 16 /* 64 bytes */
static inline size_t ws_round_up(size_t n)
{
    return (n + WS_ALIGN_FLOATS - 1) / WS_ALIGN_FLOATS * WS_ALIGN_FLOATS;
}
static inline float *ws_take(ws_cursor *c, size_t count)
{
    float *p = c->base ? c->base + c->used : NULL;
    c->used += ws_round_up(count);
    return p;
}

/*
 * One row of the table. Hooks a kind does not need are NULL.
 *
 * Describing the layer (layer_kinds.c):
 *   parse     fill l's own fields (k, out_c, relu, rate) from the token's
 *             text after the prefix; prev is the layer before (NULL for
 *             the first); fails with the spec's error message
 *   shape     l's output shape from its input shape; 0 if it does not fit
 *   count     its parameters and state
 *   tensors   the named tensors it owns (into t[LAYER_MAX_TENSORS]), once
 *             its parameters and state are placed; returns how many
 *   bind_state  point its state fields into the model's state array
 *   init      its weights from rng (Keras's initializers)
 *   plan      choose how it runs, once the whole model is parsed (layers[i]
 *             in layers[0..n))
 *   reserve   take its own workspace buffers for a batch of n (the model
 *             takes out and dout for every kind without LK_ALIAS)
 *   macs      multiply-adds per image of its forward (bench/)
 *
 * Running it (layer_passes.c), inside the pass's parallel region:
 *   draw      before a training pass, on one thread: draw what it needs
 *             from the run's random stream (dropout's mask), in layer
 *             order, so that nothing depends on the thread count
 *   prepare_forward, prepare_backward  before a pass, on one thread: the
 *             kernel copies that pass reads
 *   forward   images [b0, b0+nb) (see layer_run), training or not
 *   backward  the same images, by thread t, parameter gradients into g
 *             (m->grads or thread t's copy): RUN_SHARE and RUN_BATCH layers
 *             write them, RUN_IMAGE layers add to them (the model clears
 *             them first)
 *   backward_begin, backward_end  a RUN_IMAGE layer's work of thread t
 *             before and after its images (Winograd's per-thread sums)
 */
typedef struct layer_ops {
    const char *token;       /* the spec token's prefix ("conv"), or NULL:
                                never written (Flatten: implied)           */
    const char *syntax;      /* the token for the error message, "conv<F>[x<K>]" */
    const char *keras_class; /* "Conv2D": summaries, Keras's files          */
    const char *keras_name;  /* base of its layers' names: conv2d, conv2d_1 */
    unsigned flags;          /* LK_*                                         */
    layer_run run;

    hcr_status (*parse)(layer *l, const char *args, layer *prev, const spec_token *t);
    int (*shape)(layer *l);
    layer_counts (*count)(const layer *l);
    int (*tensors)(const layer *l, layer_tensor *t);
    void (*bind_state)(layer *l, float *state);
    void (*init)(layer *l, hcr_rng *rng);
    void (*plan)(layer *layers, int n, int i);
    void (*reserve)(layer *l, int n, ws_cursor *c);
    double (*macs)(const layer *l);

    void (*draw)(layer *l, int n, hcr_rng *rng);
    void (*prepare_forward)(layer *l);
    void (*prepare_backward)(layer *l);
    void (*forward)(hcr_model *m, int i, int b0, int nb, int training);
    void (*backward_begin)(hcr_model *m, int i, int t);
    void (*backward)(hcr_model *m, int i, int b0, int nb, int t, float *g);
    void (*backward_end)(hcr_model *m, int i, int t, float *g);
} layer_ops;

extern const layer_ops layer_kinds[LAYER_KINDS];

static inline const layer_ops *layer_ops_of(const layer *l) { return &layer_kinds[l->kind]; }

/* The layers a spec never names: the Flatten implied before the first
 * LK_FLAT_IN layer, and the classifier that ends every model
 * (Dense(num_classes) without ReLU: softmax follows). */
layer layer_implied_flatten(void);
layer layer_classifier(int num_classes);

/* "spec '...': cannot read '<token>' (expected conv<F>[x<K>], ...)". */
hcr_status spec_unreadable(const spec_token *t);
/* A positive integer (at most 100000) at *p; advances *p. */
int spec_int(const char **p, long *out);

/* Each kind's passes (layer_passes.c), named by the table. */
void conv_layer_prepare_forward(layer *l);
void conv_layer_prepare_backward(layer *l);
void conv_layer_forward(hcr_model *m, int i, int b0, int nb, int training);
void conv_layer_backward_begin(hcr_model *m, int i, int t);
void conv_layer_backward(hcr_model *m, int i, int b0, int nb, int t, float *g);
void conv_layer_backward_end(hcr_model *m, int i, int t, float *g);
void pool_layer_forward(hcr_model *m, int i, int b0, int nb, int training);
void pool_layer_backward(hcr_model *m, int i, int b0, int nb, int t, float *g);
void dense_layer_forward(hcr_model *m, int i, int b0, int nb, int training);
void dense_layer_backward(hcr_model *m, int i, int b0, int nb, int t, float *g);
void bn_layer_forward(hcr_model *m, int i, int b0, int nb, int training);
void bn_layer_backward(hcr_model *m, int i, int b0, int nb, int t, float *g);
void dropout_layer_draw(layer *l, int n, hcr_rng *rng);
void dropout_layer_forward(hcr_model *m, int i, int b0, int nb, int training);
void dropout_layer_backward(hcr_model *m, int i, int b0, int nb, int t, float *g);

#endif
