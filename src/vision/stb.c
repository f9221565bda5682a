/*
 * stb.c - the image codecs libhcr builds in: stb_image (decoding PNG, JPEG,
 * BMP, GIF, PGM/PPM, TGA, PSD, HDR) and stb_image_write (PNG and JPEG),
 * from third_party/stb/ (its README says which versions and why they are
 * built in rather than linked). Like every library object, their symbols
 * are hidden: no program sees libhcr's stbi_* functions, and one that
 * links another stb_image of its own gets no clash.
 *
 * Compiled with -w (the Makefile): the code is stb's, its warnings are not
 * ours to fix; hcr's own use of it is in image.c.
 */
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image.h>
#include <stb_image_write.h>
