// train_tiny.c - train a small network for one epoch on the first 3000
// MNIST training images, test it on the 10,000 test images, save it.
//   usage: train_tiny MNIST_DIR MODEL.safetensors
// MNIST_DIR holds train-images-idx3-ubyte[.gz] and the three others.
#include <hcr.h>
#include <hcr_data.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    hcr_dataset *all = NULL, *train = NULL, *test = NULL;
    hcr_model *model = NULL;
    hcr_train_config cfg;
    hcr_eval ev;
    hcr_status st;

    if (argc != 3) {
        fprintf(stderr, "usage: train_tiny MNIST_DIR MODEL.safetensors\n");
        return 2;
    }
    hcr_train_config_default(&cfg);
    cfg.epochs = 1;
    cfg.batch_size = 32;
    if ((st = hcr_dataset_load_dir(argv[1], "train", &all)) == HCR_OK &&
        (st = hcr_dataset_load_dir(argv[1], "t10k", &test)) == HCR_OK &&
        (st = hcr_dataset_slice(all, 0, 3000, &train)) == HCR_OK &&
        (st = hcr_model_create("conv16-pool-dense64", train->rows, train->cols,
                               all->num_classes, 42, &model)) == HCR_OK &&
        (st = hcr_train(model, train, NULL, &cfg, NULL, NULL, NULL)) == HCR_OK &&
        (st = hcr_evaluate(model, test, 0, &ev)) == HCR_OK) {
        printf("test accuracy: %.4f (%d images)\n", ev.accuracy, ev.count);
        hcr_eval_free(&ev);
        if ((st = hcr_model_save(model, argv[2])) == HCR_OK)
            printf("model saved to %s\n", argv[2]);
    }
    if (st != HCR_OK)
        fprintf(stderr, "train_tiny: %s\n", hcr_last_error());
    hcr_model_free(model);
    hcr_dataset_free(train);
    hcr_dataset_free(test);
    hcr_dataset_free(all);
    return st == HCR_OK ? 0 : 1;
}
