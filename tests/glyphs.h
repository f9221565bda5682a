/*
 * glyphs.h - test fixtures drawn with cairo and the DejaVu fonts: letters
 * as MNIST-style images, a letters dataset in EMNIST's layout, and words
 * as photos would show them (dark ink on white).
 */
#ifndef HCR_TEST_GLYPHS_H
#define HCR_TEST_GLYPHS_H

#include "hcr.h"

#include <stdint.h>

/* Draw `text` dark on white into a w x h grey buffer, centred, scaled to
 * `size` px, rotated by `angle` radians, shifted by (dx, dy). */
void glyphs_draw(uint8_t *grey, int w, int h, const char *text, double size, double angle, double dx,
                 double dy, int bold, int slant, int serif);

/* One rendering of a capital letter as a 28x28 MNIST-style image (light
 * ink on black, through hcr_image_to_mnist): random size, weight, slant,
 * font, rotation and position, or upright and plain with `plain`. */
int glyphs_letter(char letter, uint8_t out[784], int plain);

/* A letters dataset in EMNIST's layout in dir: emnist-letters-{train,test}-
 * {images-idx3,labels-idx1}-ubyte.gz with the images transposed and the
 * labels 1..26 (class i is letter 'A' + i, interleaved), and
 * emnist-letters-mapping.txt ("1 65 97" ...). Returns nonzero on failure. */
int glyphs_write_emnist_letters(const char *dir, int per_class_train, int per_class_test);

/* A word of capital letters drawn dark on white, 90 px apart, as an image
 * file (PNG or JPEG by extension). */
int glyphs_write_word(const char *text, const char *path);

#endif
