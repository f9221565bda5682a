/* harness.c - runs the tests listed by TEST_MAIN and prints the tally. */
#include "harness.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Fontconfig (under cairo's toy text API, used by the report) keeps its
 * configuration for the life of the process, and stores pointers as
 * encoded offsets, so LeakSanitizer reports those blocks as lost at exit.
 * This hook, read only by sanitizer builds, tells it so; leaks anywhere
 * else are still reported. It belongs to the program, not the library. */
const char *__lsan_default_suppressions(void) __attribute__((used));
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig.so\n"; }
const char *__lsan_default_options(void) __attribute__((used));
const char *__lsan_default_options(void) { return "print_suppressions=0"; }

int harness_failed_checks;
const char *harness_data_dir;

static char tmpdir[256];

const char *harness_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/hcr-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return tmpdir;
}

const char *harness_tmp_path(const char *name)
{
    static char buf[8][600];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", harness_tmpdir(), name);
    return p;
}

void harness_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void remove_tmpdir(void)
{
    if (tmpdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    }
}

int harness_main(int argc, char **argv, const harness_test *tests, int n)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    harness_data_dir = getenv("HCR_TEST_DATA");
    if (!harness_data_dir || !*harness_data_dir) harness_data_dir = "../shared/data/mnist";
    int passed = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        if (only && !strstr(tests[i].name, only)) continue;
        int before = harness_failed_checks;
        fprintf(stderr, "%s ...\n", tests[i].name);
        tests[i].fn();
        if (harness_failed_checks == before) {
            passed++;
        } else {
            failed++;
            fprintf(stderr, "FAIL %s\n", tests[i].name);
        }
    }
    remove_tmpdir();
    printf("%s: %d passed, %d failed\n", argv[0], passed, failed);
    return failed ? 1 : 0;
}
