// classify.c - recognise the handwritten character in an image file (PNG,
// JPEG, BMP, GIF, PGM...; dark ink on paper or light ink on black) with a
// saved model, and print the most probable class and its probability.
//   usage: classify MODEL.safetensors IMAGE
#include <hcr.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    hcr_model *model = NULL;
    hcr_image *img = NULL;
    uint8_t input[28 * 28];
    float *probs = NULL;
    hcr_status st;

    if (argc != 3) {
        fprintf(stderr, "usage: classify MODEL.safetensors IMAGE\n");
        return 2;
    }
    if ((st = hcr_model_load(argv[1], &model)) == HCR_OK &&
        (st = hcr_image_load(argv[2], &img)) == HCR_OK &&
        // grey, ink found, cropped, scaled and centred in 28x28 as MNIST was
        (st = hcr_image_to_mnist(img, input, NULL)) == HCR_OK) {
        int n = hcr_model_num_classes(model), best = 0;
        if (hcr_model_input_rows(model) != 28 || hcr_model_input_cols(model) != 28) {
            fprintf(stderr, "classify: %s does not take 28x28 images\n", argv[1]);
            st = HCR_EINVAL;
        } else if (!(probs = malloc(sizeof *probs * (size_t)n))) {
            fprintf(stderr, "classify: out of memory\n");
            st = HCR_ENOMEM;
        } else if ((st = hcr_model_predict(model, input, 1, probs)) == HCR_OK) {
            for (int i = 1; i < n; i++)
                if (probs[i] > probs[best])
                    best = i;
            printf("%s: %s (%.3f)\n", argv[2], hcr_model_class_name(model, best), probs[best]);
        } else {
            fprintf(stderr, "classify: %s\n", hcr_last_error());
        }
    } else {
        fprintf(stderr, "classify: %s\n", hcr_last_error());
    }
    free(probs);
    hcr_image_free(img);
    hcr_model_free(model);
    return st == HCR_OK ? 0 : 1;
}
