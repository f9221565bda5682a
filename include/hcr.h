/*
 * hcr.h - libhcr, a handwritten character recognizer: build a
 * convolutional network from a short spec string, train it with Adam on
 * images in memory, evaluate it, save and load it as safetensors, read
 * images and lines of handwriting.
 *
 * Three headers, three libraries (pkg-config names in brackets), so that a
 * program links only what it uses:
 *   hcr.h         libhcr (hcr): models, training, prediction, images and
 *                 lines. Needs BLAS, cJSON, OpenMP, libm (stb_image is
 *                 built in).
 *   hcr_data.h    libhcr-data (hcr-data): IDX files, datasets by name,
 *                 downloading and verifying them. Adds zlib, libcurl and
 *                 OpenSSL's libcrypto.
 *   hcr_report.h  libhcr-report (hcr-report): report pictures and page.
 *                 Adds cairo.
 *
 * Conventions
 *   - Every public name starts with hcr_ / HCR_.
 *   - Functions that can fail return an hcr_status; on failure
 *     hcr_last_error() returns a message naming what failed (the file, the
 *     offset, what was expected). The message is per thread.
 *   - Objects are opaque and freed by their own _free function, which
 *     accepts NULL.
 *   - Images are row-major, one byte per pixel, MNIST polarity (light ink on
 *     a dark background, 0 = background). The network sees pixel/255.
 *
 * Threads and ownership
 *   - Reading is safe from any number of threads at once: every function
 *     taking a const pointer, and hcr_model_predict, hcr_evaluate and
 *     hcr_read_line, which only read the model (each call works in a
 *     workspace of its own; the answers are the same bits as on one
 *     thread). A loaded model can serve a whole program's threads.
 *   - Changing an object needs it to itself: hcr_train, hcr_model_set_meta
 *     and the _free functions must not run while another thread uses the
 *     same object. Different objects are independent.
 *   - The library changes no process-wide state: thread counts apply to the
 *     call that names them (hcr_train_config.threads, hcr_evaluate's
 *     threads); hcr_set_threads only sets the default of calls that name
 *     none. The error message (hcr_last_error) is per thread.
 *   - Returned strings and arrays belong to the object they came from and
 *     live as long as it does, unchanged until it is changed (a
 *     hcr_model_get_meta string until that key is set again). Objects
 *     returned through an `out` pointer belong to the caller, who frees
 *     them with their _free function.
 *
 * A complete program, examples/classify.c verbatim (tests/test_install.sh
 * checks that they match, then builds it against an installed libhcr with
 * `cc classify.c $(pkg-config --cflags --libs hcr)` and runs it; the other
 * examples/ read a line of handwriting and train a model):
 *
 *   // classify.c - recognise the handwritten character in an image file (PNG,
 *   // JPEG, BMP, GIF, PGM...; dark ink on paper or light ink on black) with a
 *   // saved model, and print the most probable class and its probability.
 *   //   usage: classify MODEL.safetensors IMAGE
 *   #include <hcr.h>
 *   #include <stdio.h>
 *   #include <stdlib.h>
 *
 *   int main(int argc, char **argv)
 *   {
 *       hcr_model *model = NULL;
 *       hcr_image *img = NULL;
 *       uint8_t input[28 * 28];
 *       float *probs = NULL;
 *       hcr_status st;
 *
 *       if (argc != 3) {
 *           fprintf(stderr, "usage: classify MODEL.safetensors IMAGE\n");
 *           return 2;
 *       }
 *       if ((st = hcr_model_load(argv[1], &model)) == HCR_OK &&
 *           (st = hcr_image_load(argv[2], &img)) == HCR_OK &&
 *           // grey, ink found, cropped, scaled and centred in 28x28 as MNIST was
 *           (st = hcr_image_to_mnist(img, input, NULL)) == HCR_OK) {
 *           int n = hcr_model_num_classes(model), best = 0;
 *           if (hcr_model_input_rows(model) != 28 || hcr_model_input_cols(model) != 28) {
 *               fprintf(stderr, "classify: %s does not take 28x28 images\n", argv[1]);
 *               st = HCR_EINVAL;
 *           } else if (!(probs = malloc(sizeof *probs * (size_t)n))) {
 *               fprintf(stderr, "classify: out of memory\n");
 *               st = HCR_ENOMEM;
 *           } else if ((st = hcr_model_predict(model, input, 1, probs)) == HCR_OK) {
 *               for (int i = 1; i < n; i++)
 *                   if (probs[i] > probs[best])
 *                       best = i;
 *               printf("%s: %s (%.3f)\n", argv[2], hcr_model_class_name(model, best), probs[best]);
 *           } else {
 *               fprintf(stderr, "classify: %s\n", hcr_last_error());
 *           }
 *       } else {
 *           fprintf(stderr, "classify: %s\n", hcr_last_error());
 *       }
 *       free(probs);
 *       hcr_image_free(img);
 *       hcr_model_free(model);
 *       return st == HCR_OK ? 0 : 1;
 *   }
 */
#ifndef HCR_H
#define HCR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* libhcr.so is built with -fvisibility=hidden: what is declared here, and
 * nothing else, is exported (GCC and Clang honour this pragma). */
#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(default)
#endif

#define HCR_VERSION "0.1.0"

/* ------------------------------------------------------------------ errors */

typedef enum hcr_status {
    HCR_OK = 0,
    HCR_EINVAL,       /* a bad argument or option value                   */
    HCR_ENOMEM,       /* an allocation failed or a size would overflow     */
    HCR_EIO,          /* a file could not be opened, read or written       */
    HCR_EFORMAT,      /* a file is not what it claims to be                */
    HCR_ECHECKSUM,    /* a file's SHA-256 differs from the expected one    */
    HCR_ENETWORK,     /* a download failed from every source               */
    HCR_EINTERRUPTED  /* a callback asked to stop (for example on Ctrl-C)  */
} hcr_status;

/* The message for the last failure on this thread ("" if none). */
const char *hcr_last_error(void);
/* A short name for a status code, e.g. "format error". */
const char *hcr_status_name(hcr_status s);

/* -------------------------------------------------------------------- data */

/* A labelled image set held in memory. Fields are read-only for users. */
typedef struct hcr_dataset {
    int count;            /* number of images                                */
    int rows, cols;       /* image size in pixels                            */
    uint8_t *pixels;      /* count * rows * cols bytes                       */
    uint8_t *labels;      /* count bytes, class index 0..num_classes-1       */
    int num_classes;      /* 1 + largest label seen (at least 1)             */
    char images_sha256[65]; /* SHA-256 of the uncompressed images file ("" if unknown) */
    char labels_sha256[65];
    char **class_names;   /* num_classes UTF-8 names, or NULL: the label numbers */
} hcr_dataset;

/* Copy images [start, start+count) into a new dataset. */
hcr_status hcr_dataset_slice(const hcr_dataset *ds, int start, int count, hcr_dataset **out);

void hcr_dataset_free(hcr_dataset *ds);

/* Name of class i: class_names[i], else the number i ("?" out of range). */
const char *hcr_dataset_class_name(const hcr_dataset *ds, int i);

/* Give the dataset n class names (copied). n must cover every label; it
 * becomes num_classes. Names must be non-empty, at most 63 bytes, without
 * control characters, and distinct. */
hcr_status hcr_dataset_set_class_names(hcr_dataset *ds, int n, const char *const *names);

/* ------------------------------------------------------------------- model */

/* The reference architecture: Conv 3x3x32 ReLU, MaxPool 2, Conv 3x3x64 ReLU,
 * MaxPool 2, Flatten, Dense 128 ReLU, Dropout 0.5, Dense classes, softmax. */
#define HCR_DEFAULT_SPEC "conv32-pool-conv64-pool-dense128-drop0.5"

/* A wider network that does better on letters and clothes: two 3x3
 * convolutions before each pooling, dropout after each pooling. */
#define HCR_WIDE_SPEC "conv32-conv32-pool-drop0.25-conv64-conv64-pool-drop0.25-dense256-drop0.5"

/* The wide network with batch normalization after every convolution and
 * the dense layer (Conv -> BatchNormalization -> ReLU). */
#define HCR_WIDE_BN_SPEC \
    "conv32-bn-conv32-bn-pool-drop0.25-conv64-bn-conv64-bn-pool-drop0.25-dense256-bn-drop0.5"

/* The spec of a named architecture ("default", "wide", "wide-bn"), or NULL. */
const char *hcr_arch_preset(const char *name);

typedef struct hcr_model hcr_model;

/* Build a model from a spec string. Tokens separated by '-':
 *   conv<F>[x<K>]  K x K convolution (default 3), F filters, valid padding, ReLU
 *   pool[<S>]      S x S max pooling, stride S (default 2)
 *   dense<N>       fully connected, N units, ReLU (a Flatten is implied)
 *   drop<R>        dropout with rate R in [0,1)
 *   bn             batch normalization of the conv or dense layer before it
 *                  (whose ReLU then comes after the normalization); it
 *                  learns a scale and shift per channel and keeps moving
 *                  averages of the mean and variance for inference
 * A final Dense(num_classes) with softmax is always appended. Weights are
 * Glorot-uniform from `seed`, biases zero. */
hcr_status hcr_model_create(const char *spec, int rows, int cols, int num_classes,
                            uint64_t seed, hcr_model **out);
void hcr_model_free(hcr_model *m);

/* Check a spec for an input size and class count without building it;
 * nparams (may be NULL) gets the parameter count. */
hcr_status hcr_spec_check(const char *spec, int rows, int cols, int num_classes, size_t *nparams);

const char *hcr_model_spec(const hcr_model *m);
int hcr_model_num_classes(const hcr_model *m);
int hcr_model_input_rows(const hcr_model *m);
int hcr_model_input_cols(const hcr_model *m);
size_t hcr_model_param_count(const hcr_model *m);

/* Print a Keras-like summary table (layer, output shape, params, totals). */
void hcr_model_summary(const hcr_model *m, FILE *f);

/* Free-form string metadata saved with the model (recipe, dataset checksums,
 * class names...). Setting a key twice replaces it; value NULL removes it.
 * "class_names" must be a JSON array of num_classes non-empty strings.
 * Setting needs the model to itself; a string got lives until its key is
 * set again or the model is freed. */
hcr_status hcr_model_set_meta(hcr_model *m, const char *key, const char *value);
const char *hcr_model_get_meta(const hcr_model *m, const char *key); /* NULL if absent */
int hcr_model_meta_count(const hcr_model *m);
const char *hcr_model_meta_key(const hcr_model *m, int i);

/* Name of class i ("0".."9" unless the model's "class_names" metadata, a
 * JSON array of strings, says otherwise). */
const char *hcr_model_class_name(const hcr_model *m, int i);

/* Class probabilities for n images of rows*cols bytes (MNIST polarity):
 * probs gets n * num_classes floats. Thread-safe on a shared model: each
 * call runs in a workspace of its own, taken from the model's pool (made on
 * first need and kept until hcr_model_free); a call's answer does not
 * depend on other threads. Uses hcr_set_threads' count of threads. */
hcr_status hcr_model_predict(hcr_model *m, const uint8_t *pixels, int n, float *probs);

/* Save as safetensors (atomically: a temporary file, then rename). */
hcr_status hcr_model_save(const hcr_model *m, const char *path);
/* Output files (models, checkpoints, histories) are written atomically: to
 * a temporary file in the target's folder, fsync'ed, then renamed over the
 * target, so a crash or a full disk leaves the old file whole. A symbolic
 * link is written through to its target; a FIFO, device or directory at
 * the path is refused, never replaced. hcr_output_check tells whether
 * `path` can be written so (its folder exists and takes a new file) before
 * any long work; hcr_output_check_dir whether folder `dir` exists or can be
 * created. Both fail with a message naming the path. */
hcr_status hcr_output_check(const char *path);
hcr_status hcr_output_check_dir(const char *dir);
/* Load and validate a safetensors file written by hcr_model_save. */
hcr_status hcr_model_load(const char *path, hcr_model **out);

/* ---------------------------------------------------------------- training */

typedef struct hcr_train_config {
    int epochs;          /* 10                                              */
    int batch_size;      /* 128                                             */
    float lr;            /* Adam learning rate, 0.001                       */
    float beta1, beta2;  /* 0.9, 0.999                                      */
    float epsilon;       /* 1e-7                                            */
    uint64_t seed;       /* shuffling, dropout and augmentation             */
    int threads;         /* 0: all cores                                    */
    /* Augmentation (off by default): each training image is, every time it
     * is used, moved by a random whole number of pixels in -shift..shift
     * on each axis (blank fill), and with `flip` mirrored left to right
     * half of the time (for pictures such as clothes; never for characters,
     * whose mirror images are other characters or none). */
    int shift;           /* 0                                               */
    int flip;            /* 0                                               */
    /* The learning rate over the run: HCR_LR_CONSTANT (Keras's default),
     * or HCR_LR_COSINE, which lowers it step by step along half a cosine
     * from lr at the first step to 0 after the last. */
    int lr_schedule;     /* HCR_LR_CONSTANT                                 */
    /* Checkpoints (off when NULL): the whole state of the run (weights,
     * Adam moments and step count, the random streams, the position in the
     * epoch, the history) is written to this file, atomically, after every
     * epoch and when the callback stops training. hcr_train leaves the
     * file in place: remove it once the final model is saved. */
    const char *checkpoint; /* NULL                                         */
    /* Continue the run saved in `checkpoint` instead of starting one: the
     * model must be the one hcr_checkpoint_load returned, the data the
     * same, and the config the one it returned (epochs may be raised).
     * With the same thread count the weights at the end are bit-identical
     * to those of a run that was never stopped. */
    int resume;             /* 0                                            */
} hcr_train_config;

enum { HCR_LR_CONSTANT = 0, HCR_LR_COSINE = 1 };

void hcr_train_config_default(hcr_train_config *cfg);

/* What a training callback is told. */
typedef struct hcr_progress {
    int epoch, epochs;         /* 1-based epoch                             */
    int step, steps;           /* 1-based step within the epoch             */
    double loss, accuracy;     /* running means over the epoch so far       */
    double val_loss, val_accuracy; /* set when end_of_epoch and val given   */
    double epoch_seconds;      /* wall time of the epoch so far             */
    int end_of_epoch;          /* 1 once per epoch, after validation        */
} hcr_progress;

/* Called after every step and once at the end of each epoch. Return nonzero
 * to stop training (hcr_train then returns HCR_EINTERRUPTED, leaving the
 * model with the weights of the last finished step). */
typedef int (*hcr_progress_fn)(void *user, const hcr_progress *p);

/* One row per finished epoch. */
typedef struct hcr_epoch_record {
    double loss, accuracy, val_loss, val_accuracy, seconds;
} hcr_epoch_record;

typedef struct hcr_history {
    int epochs;                 /* rows filled                             */
    hcr_epoch_record *rows;
} hcr_history;

/* Train in place. `val` may be NULL. `history` (may be NULL) receives one
 * record per finished epoch; free it with hcr_history_free. Needs the
 * model to itself (no prediction on it meanwhile); runs its passes on
 * cfg->threads threads. */
hcr_status hcr_train(hcr_model *m, const hcr_dataset *train, const hcr_dataset *val,
                     const hcr_train_config *cfg, hcr_progress_fn cb, void *user,
                     hcr_history *history);
void hcr_history_free(hcr_history *h);

/* Write the history as CSV: a header line "epoch,loss,accuracy,
 * val_loss,val_accuracy,seconds" (the validation columns only when
 * with_val), then one row per epoch; atomically, like hcr_model_save. */
hcr_status hcr_history_save(const hcr_history *h, int with_val, const char *path);

/* Open a checkpoint written by hcr_train: the model as it was then (with
 * its metadata) and the config of the run, with `checkpoint` set to path
 * and `resume` to 1, ready to pass to hcr_train. The caller frees the
 * model; cfg->checkpoint points at `path`, which must outlive the run. */
hcr_status hcr_checkpoint_load(const char *path, hcr_model **model, hcr_train_config *cfg);

/* -------------------------------------------------------------- evaluation */

typedef struct hcr_eval {
    int num_classes;
    int count;
    double loss, accuracy;
    int *confusion;          /* num_classes^2, [true * num_classes + predicted] */
    double *precision, *recall, *f1; /* per class; 0 where undefined        */
    int *support;            /* images per true class                       */
} hcr_eval;

/* Loss, accuracy, confusion matrix and per-class scores of m on ds, with
 * `threads` threads (0: hcr_set_threads' default). Thread-safe on a shared
 * model, like hcr_model_predict. out's arrays belong to the caller:
 * hcr_eval_free. */
hcr_status hcr_evaluate(hcr_model *m, const hcr_dataset *ds, int threads, hcr_eval *out);
void hcr_eval_free(hcr_eval *e);

/* The number of threads of the calls that name none (hcr_model_predict,
 * hcr_read_line, hcr_evaluate with 0, the report): 0 for all cores (the
 * default). Safe from any thread; it changes nothing else (OpenMP's own
 * settings are left alone). */
void hcr_set_threads(int threads);

/* ------------------------------------------------------------------ images */

/* Images given to hcr_image_load: PNG, JPEG, BMP, GIF (first frame), binary
 * PGM/PPM, TGA, PSD, HDR (through stb_image), any size up to
 * HCR_IMAGE_MAX_PIXELS pixels (refused from the header, before decoding) and
 * HCR_IMAGE_MAX_BYTES bytes of file. Decoding needs at most about 8 bytes
 * per pixel (16-bit PNG), so about 400 MB at the limit. */
#define HCR_IMAGE_MAX_PIXELS 50000000L          /* 50 megapixels */
#define HCR_IMAGE_MAX_BYTES (256L * 1024 * 1024) /* 256 MiB */

/* A grey image as loaded: width*height bytes, row-major, 0 = black,
 * 255 = white (photo polarity, not MNIST's). Colour is converted with
 * Rec. 601 luma; transparent pixels are composited over a background that
 * contrasts with the opaque ones (white behind dark strokes, black behind
 * light ones). */
typedef struct hcr_image {
    int width, height;
    uint8_t *pixels;
} hcr_image;

/* Load an image file; "-" reads standard input. A missing, empty,
 * truncated, corrupt or oversized file fails with a message naming it. */
hcr_status hcr_image_load(const char *path, hcr_image **out);
/* The same from bytes in memory; `name` is used in messages. */
hcr_status hcr_image_load_memory(const void *data, size_t len, const char *name, hcr_image **out);
/* A copy of width*height grey bytes as an image. */
hcr_status hcr_image_from_grey(int width, int height, const uint8_t *pixels, hcr_image **out);
void hcr_image_free(hcr_image *img);
/* Write grey bytes as a PNG or JPEG (chosen by the extension, .jpg/.jpeg,
 * quality 95; anything else is PNG). */
hcr_status hcr_image_write(const char *path, int width, int height, const uint8_t *pixels);

/* What preprocessing found (any pointer argument taking one may be NULL). */
typedef struct hcr_ink_info {
    int inverted;        /* 1: the input had dark ink on light paper         */
    int threshold;       /* Otsu threshold on the ink image (0..255)          */
    int x, y, w, h;      /* the ink's bounding box in the input image         */
} hcr_ink_info;

/* One character of any size to the network's input the way MNIST was
 * made: grey, ink polarity decided from the image (the ink is the side of
 * the median grey with the longer tail), uneven paper flattened (a local
 * background estimate is subtracted), ink found with Otsu's threshold while
 * grey levels are kept for anti-aliasing, specks smaller than 3% of the
 * largest piece of ink dropped, cropped to the ink, scaled with a tent
 * filter so the longer side is 20 px, and placed in 28x28 with the centre
 * of mass at (14, 14). out gets 784 bytes, MNIST polarity. A blank image
 * fails with HCR_EFORMAT ("no ink"). */
hcr_status hcr_image_to_mnist(const hcr_image *img, uint8_t out[28 * 28], hcr_ink_info *info);

/* One recognised character of a line. */
typedef struct hcr_char {
    int x, y, w, h;          /* bounding box in the input image             */
    int cls;                 /* the most probable class                     */
    float confidence;        /* its probability                             */
    float *probs;            /* num_classes probabilities                   */
    uint8_t pixels[28 * 28]; /* what the network saw                        */
} hcr_char;

typedef struct hcr_line {
    int count;
    hcr_char *chars;         /* left to right                               */
    char *text;              /* the class names joined                      */
} hcr_line;

/* Read a line of handwritten characters (a number such as "2024", or a word
 * with a letters model): the ink is split into connected components,
 * pieces that lie over each other (a broken 5, the dot of an i) are merged,
 * components much wider than a character may be cut in two along the
 * cheapest path through the ink (it bends through the gap between two
 * touching characters) when a score of the piece's shape, the ink crossed
 * and the classifier's confidence in the halves and the whole says so
 * (docs/reading.md gives the formula), and each character goes through the
 * same preprocessing as hcr_image_to_mnist. The model must take 28x28
 * inputs. Thread-safe on a shared model, like hcr_model_predict; `out` is
 * the caller's (hcr_line_free). */
hcr_status hcr_read_line(hcr_model *m, const hcr_image *img, hcr_line *out);
void hcr_line_free(hcr_line *line);

/* Compose a test image of a number from images of `digits` (which must be
 * the MNIST *test* set for a fair evaluation): `ndigits` random digits with
 * random spacing, slight overlap of the boxes, scale (0.85-1.15) and
 * baseline (+-3 px) jitter, written as dark ink on white. With `touching`,
 * one random neighbouring pair is pushed together until the ink touches;
 * otherwise the ink of neighbours never touches. The class names of the
 * images (hcr_dataset_class_name: "2024", or a word from letters) are
 * written to `text` (size n), joined. The same seed gives the same image. */
hcr_status hcr_compose_number(const hcr_dataset *digits, int ndigits, int touching,
                              uint64_t seed, hcr_image **out, char *text, size_t n);

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* HCR_H */
