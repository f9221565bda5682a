/*
 * stb_impl.c - stb_image compiled into the fuzz build, with the same
 * sanitizers and coverage as the harnesses, so that decoding bugs are
 * found and the fuzzer sees the decoder's branches. The normal build links
 * Debian's libstb instead; these definitions take precedence over it.
 */
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
