/*
 * test_threads.c - one loaded model shared by many threads: 8 threads
 * predict MNIST test images on it at once (4,383 in all, in batches of 1
 * to 63 and again one by one), evaluate the 10,000, and read composed
 * numbers, and every
 * answer must equal the single-threaded answer bit for bit. Built and run
 * under ThreadSanitizer too (make tsan).
 */
#include "harness.h"
#include "hcr.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 8
#define BATCHES 152 /* start_of(152) = 4,383 images, as batches and one by one */
#define LINES 6     /* composed numbers each thread reads */

typedef struct shared {
    hcr_model *m;
    const hcr_dataset *test;
    const float *serial;        /* probabilities, image by image, alone */
    const float *batched;       /* ... in the batches of start_of, alone  */
    double serial_loss;         /* hcr_evaluate alone                   */
    hcr_image *lines[LINES];
    char *serial_text[LINES];
} shared;

typedef struct job {
    const shared *sh;
    int id;
    int mismatches, errors;
} job;

/* The test set cut into batches of 1, 2, ..., 63, 1, 2, ... images: batch
 * j starts at image start_of(j). (A batch and the same images one by one
 * may differ in the last bit: the dense layers then take a matrix-matrix
 * instead of a matrix-vector product. The same call gives the same bits.) */
static int start_of(int j) { return (j / 63) * 2016 + (j % 63) * (j % 63 + 1) / 2; }

/* Predict batches [j0, j1) and compare them with the serial answers, then
 * the same images one by one. */
static void predict_batches(job *j, int j0, int j1)
{
    const shared *sh = j->sh;
    const int k = hcr_model_num_classes(sh->m);
    float *probs = malloc(sizeof(float) * (size_t)k * 64);
    for (int b = j0; b < j1; b++) {
        const int at = start_of(b), n = start_of(b + 1) - at;
        if (hcr_model_predict(sh->m, sh->test->pixels + (size_t)at * 784, n, probs) != HCR_OK) j->errors++;
        else if (memcmp(probs, sh->batched + (size_t)at * k, sizeof(float) * (size_t)k * n) != 0) j->mismatches++;
        for (int i = at; i < at + n; i++) {
            if (hcr_model_predict(sh->m, sh->test->pixels + (size_t)i * 784, 1, probs) != HCR_OK) j->errors++;
            else if (memcmp(probs, sh->serial + (size_t)i * k, sizeof(float) * (size_t)k) != 0) j->mismatches++;
        }
    }
    free(probs);
}

static void *worker(void *arg)
{
    job *j = arg;
    const shared *sh = j->sh;
    const int j0 = j->id * BATCHES / THREADS; /* 1/8 of the set each */
    predict_batches(j, j0, j0 + BATCHES / THREADS);
    hcr_eval ev;
    if (hcr_evaluate(sh->m, sh->test, 1, &ev) != HCR_OK)
        j->errors++;
    else if (ev.loss != sh->serial_loss)
        j->mismatches++;
    hcr_eval_free(&ev);
    for (int i = 0; i < LINES; i++) {
        hcr_line line;
        if (hcr_read_line(sh->m, sh->lines[(i + j->id) % LINES], &line) != HCR_OK) {
            j->errors++;
            continue;
        }
        if (strcmp(line.text, sh->serial_text[(i + j->id) % LINES]) != 0) j->mismatches++;
        hcr_line_free(&line);
    }
    return NULL;
}

/* A model trained a little, so that its answers differ from image to image
 * and the reader sees real digits. */
static hcr_model *trained_model(const hcr_dataset *train)
{
    hcr_model *m = NULL;
    if (hcr_model_create(HCR_DEFAULT_SPEC, 28, 28, 10, 1, &m) != HCR_OK) return NULL;
    hcr_dataset *part = NULL;
    hcr_train_config cfg;
    hcr_train_config_default(&cfg);
    cfg.epochs = 1;
    cfg.threads = 2;
    if (hcr_dataset_slice(train, 0, 3000, &part) != HCR_OK ||
        hcr_train(m, part, NULL, &cfg, NULL, NULL, NULL) != HCR_OK) {
        hcr_model_free(m);
        m = NULL;
    }
    hcr_dataset_free(part);
    return m;
}

static void test_shared_model(void)
{
    hcr_dataset *train = NULL, *test = NULL;
    if (hcr_dataset_load_dir(harness_data_dir, "train", &train) != HCR_OK ||
        hcr_dataset_load_dir(harness_data_dir, "t10k", &test) != HCR_OK) {
        CHECK_MSG(0, "MNIST: %s", hcr_last_error());
        goto done;
    }
    shared sh = {.test = test};
    sh.m = trained_model(train);
    CHECK(sh.m != NULL);
    if (!sh.m) goto done;
    /* The serial answers: image by image, on one thread. */
    const int k = 10;
    float *serial = malloc(sizeof(float) * (size_t)k * test->count);
    float *batched = malloc(sizeof(float) * (size_t)k * test->count);
    for (int i = 0; i < test->count; i++)
        CHECK(hcr_model_predict(sh.m, test->pixels + (size_t)i * 784, 1, serial + (size_t)i * k) == HCR_OK);
    for (int b = 0; b < BATCHES; b++)
        CHECK(hcr_model_predict(sh.m, test->pixels + (size_t)start_of(b) * 784, start_of(b + 1) - start_of(b),
                                batched + (size_t)start_of(b) * k) == HCR_OK);
    sh.serial = serial;
    sh.batched = batched;
    hcr_eval ev;
    CHECK(hcr_evaluate(sh.m, test, 1, &ev) == HCR_OK);
    sh.serial_loss = ev.loss;
    hcr_eval_free(&ev);
    for (int i = 0; i < LINES; i++) {
        char text[16];
        hcr_line line;
        CHECK(hcr_compose_number(test, 4, i % 2, 100 + (uint64_t)i, &sh.lines[i], text, sizeof text) == HCR_OK);
        CHECK(sh.lines[i] && hcr_read_line(sh.m, sh.lines[i], &line) == HCR_OK);
        sh.serial_text[i] = strdup(line.text ? line.text : "");
        hcr_line_free(&line);
    }

    pthread_t th[THREADS];
    job jobs[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (job){.sh = &sh, .id = t};
        CHECK(pthread_create(&th[t], NULL, worker, &jobs[t]) == 0);
    }
    int mismatches = 0, errors = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        mismatches += jobs[t].mismatches;
        errors += jobs[t].errors;
    }
    CHECK_MSG(mismatches == 0 && errors == 0, "%d answers differ from the serial ones, %d calls failed",
              mismatches, errors);
    printf("%d threads x (%d images in batches and one by one, an evaluation of %d, %d lines): %d differ\n",
           THREADS, start_of(BATCHES) / THREADS, test->count, LINES, mismatches);
    for (int i = 0; i < LINES; i++) {
        hcr_image_free(sh.lines[i]);
        free(sh.serial_text[i]);
    }
    free(serial);
    free(batched);
    hcr_model_free(sh.m);
done:
    hcr_dataset_free(train);
    hcr_dataset_free(test);
}

/* New weights reach every thread's workspace: after a training run, the
 * predictions (from the same views) follow the new weights. */
static void test_views_follow_weights(void)
{
    hcr_dataset *test = NULL;
    if (hcr_dataset_load_dir(harness_data_dir, "t10k", &test) != HCR_OK) return;
    hcr_model *m = NULL, *fresh = NULL;
    CHECK(hcr_model_create(HCR_DEFAULT_SPEC, 28, 28, 10, 3, &m) == HCR_OK);
    float a[10], b[10];
    CHECK(hcr_model_predict(m, test->pixels, 1, a) == HCR_OK);
    hcr_dataset *part = NULL;
    hcr_train_config cfg;
    hcr_train_config_default(&cfg);
    cfg.epochs = 1;
    CHECK(hcr_dataset_slice(test, 0, 256, &part) == HCR_OK);
    CHECK(hcr_train(m, part, NULL, &cfg, NULL, NULL, NULL) == HCR_OK);
    CHECK(hcr_model_predict(m, test->pixels, 1, b) == HCR_OK);
    CHECK(memcmp(a, b, sizeof a) != 0);
    /* ... and equal those of the same weights loaded afresh. */
    const char *p = harness_tmp_path("views.safetensors");
    CHECK(hcr_model_save(m, p) == HCR_OK);
    CHECK(hcr_model_load(p, &fresh) == HCR_OK);
    if (fresh) CHECK(hcr_model_predict(fresh, test->pixels, 1, a) == HCR_OK);
    CHECK(memcmp(a, b, sizeof a) == 0);
    hcr_model_free(fresh);
    hcr_model_free(m);
    hcr_dataset_free(part);
    hcr_dataset_free(test);
}

TEST_MAIN(TEST(test_shared_model), TEST(test_views_follow_weights))
