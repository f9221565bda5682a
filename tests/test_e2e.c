/*
 * test_e2e.c - end to end on real MNIST (../shared/data/mnist or
 * $HCR_TEST_DATA): train a few hundred steps on part of the training set,
 * then the model must score at least 95% on 1,000 test images, and the
 * same accuracy after a save/load round trip.
 */
#include "harness.h"

#include "hcr.h"

#include <stdlib.h>

static void test_train_part_of_mnist(void)
{
    hcr_dataset *train = NULL, *test = NULL, *part = NULL, *test_part = NULL;
    hcr_model *m = NULL, *loaded = NULL;
    hcr_status s = hcr_dataset_load_dir(harness_data_dir, "train", &train);
    CHECK_MSG(s == HCR_OK, "%s", hcr_last_error());
    s = hcr_dataset_load_dir(harness_data_dir, "t10k", &test);
    CHECK_MSG(s == HCR_OK, "%s", hcr_last_error());
    if (!train || !test) goto out;
    CHECK(hcr_dataset_slice(train, 0, 19200, &part) == HCR_OK);
    CHECK(hcr_dataset_slice(test, 0, 1000, &test_part) == HCR_OK);
    if (!part || !test_part) goto out;

    CHECK(hcr_model_create(HCR_DEFAULT_SPEC, 28, 28, 10, 7, &m) == HCR_OK);
    hcr_train_config cfg;
    hcr_train_config_default(&cfg);
    cfg.epochs = 1;
    cfg.batch_size = 64; /* 300 steps */
    cfg.seed = 7;
    hcr_history h;
    s = hcr_train(m, part, NULL, &cfg, NULL, NULL, &h);
    CHECK_MSG(s == HCR_OK, "%s", hcr_last_error());
    CHECK(h.epochs == 1);
    if (h.epochs == 1) CHECK_MSG(h.rows[0].loss < 0.5, "training loss %g", h.rows[0].loss);
    hcr_history_free(&h);

    hcr_eval ev;
    CHECK(hcr_evaluate(m, test_part, 0, &ev) == HCR_OK);
    fprintf(stderr, "  accuracy on 1,000 test images after 300 steps: %.4f\n", ev.accuracy);
    CHECK_MSG(ev.accuracy >= 0.95, "accuracy %.4f", ev.accuracy);
    CHECK(ev.count == 1000);
    long total = 0;
    for (int i = 0; i < 100; i++) total += ev.confusion[i];
    CHECK(total == 1000);

    char path[512];
    snprintf(path, sizeof path, "%s/e2e.safetensors", harness_tmpdir());
    CHECK(hcr_model_save(m, path) == HCR_OK);
    s = hcr_model_load(path, &loaded);
    CHECK_MSG(s == HCR_OK, "%s", hcr_last_error());
    if (loaded) {
        hcr_eval ev2;
        CHECK(hcr_evaluate(loaded, test_part, 0, &ev2) == HCR_OK);
        CHECK(ev2.accuracy == ev.accuracy);
        CHECK(ev2.loss == ev.loss);
        hcr_eval_free(&ev2);
    }
    hcr_eval_free(&ev);
out:
    hcr_model_free(m);
    hcr_model_free(loaded);
    hcr_dataset_free(train);
    hcr_dataset_free(test);
    hcr_dataset_free(part);
    hcr_dataset_free(test_part);
}

TEST_MAIN(TEST(test_train_part_of_mnist))
