// read_line.c - read a line of handwritten characters (a number such as
// 2024, or a word with a letters model) from an image file with a saved
// model: print the text, then each character's box and probability.
//   usage: read_line MODEL.safetensors IMAGE
#include <hcr.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    hcr_model *model = NULL;
    hcr_image *img = NULL;
    hcr_line line = {0};
    hcr_status st;

    if (argc != 3) {
        fprintf(stderr, "usage: read_line MODEL.safetensors IMAGE\n");
        return 2;
    }
    if ((st = hcr_model_load(argv[1], &model)) == HCR_OK &&
        (st = hcr_image_load(argv[2], &img)) == HCR_OK &&
        (st = hcr_read_line(model, img, &line)) == HCR_OK) {
        printf("%s\n", line.text);
        for (int i = 0; i < line.count; i++) {
            const hcr_char *c = &line.chars[i];
            printf("  %-4s %.3f  at x=%d y=%d, %dx%d\n", hcr_model_class_name(model, c->cls),
                   c->confidence, c->x, c->y, c->w, c->h);
        }
    } else {
        fprintf(stderr, "read_line: %s\n", hcr_last_error());
    }
    hcr_line_free(&line);
    hcr_image_free(img);
    hcr_model_free(model);
    return st == HCR_OK ? 0 : 1;
}
