/*
 * model.h - the model's insides, shared by model.c (build, forward,
 * backward), train.c, metrics.c and modelfile.c. Not part of the public API.
 *
 * Memory layout
 *   Activations are NHWC: image b, row y, column x, channel c is at
 *   ((b * H + y) * W + x) * C + c. A convolution kernel is HWIO
 *   ([kh][kw][cin][cout]) and a dense kernel is [in][out], as in Keras, so
 *   a convolution is one matrix product of the im2col patches (rows =
 *   output pixels, columns = kh*kw*cin) with the kernel.
 *   All parameters live in one allocation (params), their gradients in
 *   another of the same shape (grads); layers point into both.
 *   Per-batch buffers (activations, their gradients, dropout masks) live
 *   in one workspace sized for `capacity` images and are reallocated only
 *   when a larger batch arrives.
 *
 * Execution
 *   Each pass is one parallel region: every thread takes a fixed share of
 *   the batch and runs it through all layers. Runs of convolution and
 *   pooling layers go image by image (kernels.h), so one image's
 *   activations stay in cache from layer to layer; dense layers are BLAS
 *   products over the thread's share. Weight gradients are summed per
 *   thread and then across threads in thread order: the same thread count
 *   gives bit-identical results.
 */
#ifndef HCR_MODEL_H
#define HCR_MODEL_H

#include "core/internal.h"
#include "kernels/kernels.h"

/* The kinds of layer. Everything about each (its spec token, Keras names,
 * shape, parameters, workspace, forward and backward) is its row in the
 * table of layer_kinds.c; nothing else names a kind. */
typedef enum layer_kind {
    LAYER_CONV,
    LAYER_POOL,
    LAYER_FLATTEN,
    LAYER_DENSE,
    LAYER_BN,               /* batch normalization of the layer before, then ReLU */
    LAYER_DROPOUT,
    LAYER_KINDS             /* how many */
} layer_kind;

typedef struct layer {
    layer_kind kind;
    char name[32];          /* Keras-style: conv2d, conv2d_1, dense, ...    */
    int in_h, in_w, in_c;   /* per-image input shape                        */
    int out_h, out_w, out_c;/* per-image output shape                       */
    int k;                  /* conv kernel size, pool size                  */
    int relu;               /* ReLU fused after conv/dense                  */
    float rate;             /* dropout rate                                 */

    /* How it runs, chosen once when the model is built (layer_plan)       */
    conv_plan plan;         /* conv: its algorithms (kernels.h); all zero
                               for other kinds                              */
    int fused_into_prev;    /* pool: computed by the convolution before it
                               (CONV_FUSED_POOL): does nothing itself       */
    int relu_by_pool;       /* conv: its ReLU's gradient is applied by the
                               pooling's backward after it (one pass less)  */
    int pool_relu;          /* pool: applies that gradient                  */

    float *w, *b;           /* parameters (into model->params), or NULL;
                               batch normalization: gamma and beta          */
    float *dw, *db;         /* their gradients (into model->grads)          */
    size_t w_count, b_count;
    size_t s_count;         /* floats of non-trainable state (model->state) */

    /* workspace (into model->ws) */
    float *out;             /* capacity * out size: this layer's output     */
    float *dout;            /* gradient of the loss w.r.t. out              */
    float *wfwd;            /* conv: the kernel prepared for the forward
                               (Winograd's transform), or NULL              */
    float *wbwd;            /* conv: the kernel prepared for the backward
                               (Winograd's transform, or packed for the
                               direct input gradient), or NULL              */
    size_t du_off;          /* conv with a Winograd backward: where its
                               transformed kernel gradient sits in a
                               thread's part of tdu                         */
    float *mask;            /* dropout: 0 or 1/(1-rate) per unit            */
    float *bstat;           /* batch norm: the batch's mean and 1/std (2C)  */
    float *bsum;            /* batch norm: sums of dy and dy*xhat (2C)      */

    /* batch normalization's moving statistics (into model->state)         */
    float *mmean, *mvar;
} layer;

/* A named parameter tensor, as saved in the model file. */
typedef struct tensor_ref {
    char name[48];          /* e.g. "conv2d.kernel", "dense_1.bias"         */
    int ndim;
    int64_t shape[4];
    float *data;            /* points into model->params, or model->state   */
    size_t count;
    int trainable;          /* 0: batch norm's moving mean and variance     */
} tensor_ref;

/* A spec has at most MODEL_MAX_LAYERS layers (the classifier included) and
 * a layer at most 4 tensors (batch normalization: gamma, beta, moving mean
 * and variance), so the tensor table can never overflow. */
#define MODEL_MAX_LAYERS 64
#define MODEL_MAX_TENSORS (4 * MODEL_MAX_LAYERS)
/* The longest spec token ("conv32x3", "drop0.25") and the longest spec. */
#define MODEL_MAX_TOKEN 63
#define MODEL_MAX_SPEC 1024

struct hcr_model {
    char *spec;
    int rows, cols, num_classes;

    int nlayers;
    layer *layers;

    float *params, *grads;
    size_t nparams;
    float *state;           /* non-trainable: batch norm's moving statistics */
    size_t nstate;
    double *bn_partial;     /* batch norm: per-thread partial sums          */
    int bn_max_c;           /* the widest layer that runs on the whole batch
                               (RUN_BATCH: batch norm), 0 for none          */

    int ntensors;
    tensor_ref tensors[MODEL_MAX_TENSORS];

    int nmeta;
    char **meta_keys, **meta_vals;
    char **class_names;     /* parsed from "class_names" metadata, or NULL  */
    char index_names[1000][8]; /* "0".."999": names when there is no metadata */

    /* per-batch workspace */
    int capacity;
    void *ws;
    float *input;           /* capacity * rows * cols, scaled to [0,1]      */
    float *probs;           /* capacity * num_classes softmax output        */
    float *dlogits;
    float *tgrads;          /* per-thread gradients of per-image layers     */
    int tgrads_threads;
    int kernels_ready;      /* the forward's transformed kernels (wg) match
                               the weights: set by a predicting pass; left
                               clear by a training pass (the optimizer
                               changes the weights next), new weights and a
                               new workspace                                */
    float *tdu;             /* per-thread Winograd kernel gradients         */
    size_t du_floats;       /* floats of tdu per thread                     */
    int tdu_threads;

    int threads;            /* threads of this model's passes; 0: the
                               library's default (hcr_set_threads)          */
    unsigned long version;  /* changes whenever the weights may have       */
    struct view_pool *pool; /* views for predictions, or NULL (a view)      */
};

/* Predictions never use the model's own workspace, which belongs to
 * training: each runs on a view, a copy of the model's header and layer
 * table that shares its weights read-only and has a workspace of its own
 * (activations, transformed kernels). Views are kept in the model's pool
 * and reused, so many threads can predict with one model at once, each
 * answer the same bits as alone; they go with the model. Training (and
 * anything else that changes the weights) must not run at the same time
 * as predictions, and calls model_weights_changed, after which each view
 * prepares its kernels again. */
hcr_status model_view_acquire(hcr_model *m, hcr_model **view);
void model_view_release(hcr_model *m, hcr_model *view);
void model_weights_changed(hcr_model *m);

/* Parse and check a spec into layers[0..*nl) (room for MODEL_MAX_LAYERS),
 * each with its shape, its parameter counts and its plan (how it runs),
 * and count the parameters (spec.c). */
hcr_status model_plan(const char *spec, int rows, int cols, int num_classes, layer *layers,
                      int *nl, size_t *nparams);

/* Build the layers and allocate parameters (all zero) for a spec; weights
 * are not initialised. Used by hcr_model_create and the loader. A spec
 * needing more than MODEL_MAX_PARAMS parameters is refused. */
#define MODEL_MAX_PARAMS ((size_t)1 << 28)
hcr_status model_build(const char *spec, int rows, int cols, int num_classes, hcr_model **out);
/* The parameter count of a spec, without allocating anything. */
hcr_status model_spec_params(const char *spec, int rows, int cols, int num_classes, size_t *nparams);
/* Glorot-uniform kernels, zero biases. */
void model_init_weights(hcr_model *m, uint64_t seed);
/* Make sure the workspace holds at least n images. */
hcr_status model_reserve(hcr_model *m, int n);

/* Forward pass over n images already in m->input (n <= capacity). Fills
 * m->probs. training: apply dropout with masks drawn from rng. */
void model_forward(hcr_model *m, int n, int training, hcr_rng *rng);
/* HCR_EFORMAT when any of the n probabilities from model_forward is NaN or
 * infinite (image numbers in the message count from first). */
hcr_status model_output_check(const hcr_model *v, int n, int first);
/* Mean cross-entropy of m->probs against labels; counts correct argmaxes. */
double model_loss(const hcr_model *m, int n, const uint8_t *labels, int *correct);
/* Backward pass after model_forward(training=1): gradients of the mean loss
 * are written (not accumulated) into m->grads. Fails only if the
 * per-thread gradient buffers cannot be allocated. */
hcr_status model_backward(hcr_model *m, int n, const uint8_t *labels);
/* Whether layer i runs fused with the pooling after it (a first layer with
 * one input channel, on the AVX2 kernels: its plan is CONV_FUSED_POOL):
 * its out buffer then holds, per image, the route of each pooled gradient
 * (which pixel of the window won: 0-3, or 4 for none) instead of the
 * convolution's output, and its dout is not used. */
int model_layer_fused(const hcr_model *m, int i);
/* Per-image floats of layer l's input and output. */
static inline size_t layer_in_size(const layer *l) { return (size_t)l->in_h * l->in_w * l->in_c; }
static inline size_t layer_out_size(const layer *l) { return (size_t)l->out_h * l->out_w * l->out_c; }
/* Layer i's input: the previous layer's output, or the images. */
static inline const float *model_layer_input(const hcr_model *m, int i)
{
    return i ? m->layers[i - 1].out : m->input;
}
/* Thread t's transformed kernel gradient of a layer with a Winograd
 * backward (conv_plan's du_floats). */
static inline float *model_thread_du(const hcr_model *m, const layer *l, int t)
{
    return m->tdu + (size_t)t * m->du_floats + l->du_off;
}
/* The share of a batch of n that the calling thread of a pass works on:
 * fixed, so that results do not depend on scheduling. */
typedef struct share {
    int t, nt;  /* this thread, of how many     */
    int b0, nb; /* first image, number of images */
} share;
share model_share(int n);
/* One layer on its own, for per-layer timing (bench/): layer i's forward
 * (training mode; dropout draws its mask from rng) or backward over n
 * images, run exactly as the passes run it: the same kernels, the same
 * split of the batch across threads, kernels prepared as each pass
 * prepares them. The backward reads the layer's dout and writes its
 * parameter gradients into m->grads (summed over the threads) and the
 * previous layer's dout. Call model_forward and model_backward once first. */
void model_layer_forward(hcr_model *m, int i, int n, hcr_rng *rng);
hcr_status model_layer_backward(hcr_model *m, int i, int n);
/* Scale bytes to [0,1] floats into m->input for images idx[0..n) of pixels
 * (idx NULL: consecutive images). */
void model_load_input(hcr_model *m, const uint8_t *pixels, const int *idx, int n);

/* Tensors saved beside a model's own in the same file (a training
 * checkpoint's optimizer state): one-dimensional, 4-byte values. */
typedef struct model_extra {
    const char *name;       /* e.g. "optimizer.m"; no model tensor's name  */
    const char *dtype;      /* "F32" or "I32"                              */
    void *data;             /* save: the values; load: malloc'ed here      */
    size_t count;           /* values; load: set from the file             */
} model_extra;

/* hcr_model_save and hcr_model_load with extra tensors: the loader then
 * requires exactly these beside the model's and allocates their data (the
 * caller frees it; all NULL on failure). */
hcr_status modelfile_save(const hcr_model *m, const char *path, const model_extra *x, int nx);
hcr_status modelfile_load(const char *path, hcr_model **out, model_extra *x, int nx);

/* The output of the last layer before softmax has num_classes units. */

#endif
