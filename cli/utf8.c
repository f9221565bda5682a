/*
 * utf8.c - the one place the program measures a UTF-8 sequence (escaping
 * text for terminals and JSON, making file names from class names). In a
 * file of its own: inlined into cli_text, gcc 12's -O2 ASan build warned
 * falsely (-Warray-bounds) about its static buffers.
 */
#include "cli.h"

size_t cli_utf8_len(const unsigned char *p)
{
    size_t seq = *p < 0x80                           ? 1
                 : (*p & 0xe0) == 0xc0 && *p >= 0xc2 ? 2
                 : (*p & 0xf0) == 0xe0               ? 3
                 : (*p & 0xf8) == 0xf0 && *p <= 0xf4 ? 4
                                                     : 0;
    for (size_t i = 1; i < seq; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    return seq;
}
