/*
 * fixture_letters.c - the test fixtures of glyphs.c as a program, for the
 * shell tests:
 *
 *   fixture_letters DIR [PER_CLASS_TRAIN [PER_CLASS_TEST]]
 *       a letters dataset in EMNIST's layout in DIR (default 120 and 20
 *       images per letter)
 *   fixture_letters --word TEXT FILE
 *       a word of capital letters drawn dark on white (PNG or JPEG)
 */
#include "glyphs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fontconfig keeps its caches until the process ends, by design; under
 * LeakSanitizer (make sanitize) they are not our leaks. report.c says the
 * same for the library's own programs. */
const char *__lsan_default_suppressions(void) __attribute__((used));
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig.so\n"; }

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--word")) return glyphs_write_word(argv[2], argv[3]);
    if (argc < 2 || argc > 4 || argv[1][0] == '-') {
        fprintf(stderr, "usage: fixture_letters DIR [PER_CLASS_TRAIN [PER_CLASS_TEST]]\n"
                        "       fixture_letters --word TEXT FILE\n");
        return 2;
    }
    int train = argc > 2 ? atoi(argv[2]) : 120, test = argc > 3 ? atoi(argv[3]) : 20;
    if (train < 1 || test < 1) return 2;
    if (glyphs_write_emnist_letters(argv[1], train, test)) {
        fprintf(stderr, "fixture_letters: cannot write the dataset into %s\n", argv[1]);
        return 1;
    }
    return 0;
}
