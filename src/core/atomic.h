/*
 * atomic.h - writing output files so that nothing is ever half-written or
 * lost (atomic.c). Not part of the public API.
 *
 * An output path is first resolved: a symbolic link is followed to the
 * file it names (the usual convention: the link keeps pointing at the new
 * content); a FIFO, device, socket or directory at the path is refused,
 * never replaced. The content is written to a temporary file in the
 * target's own folder, flushed and fsync'ed, then renamed over the target,
 * and the folder is fsync'ed: a crash at any instant leaves either the old
 * file or the new one under the name, never a torn one. The temporary
 * file ("<target>.tmp-<pid>-XXXXXX") of a process killed mid-write is
 * removed by the next write of the same target.
 */
#ifndef HCR_ATOMIC_H
#define HCR_ATOMIC_H

#include "core/internal.h"

#include <stdio.h>

typedef struct hcr_atomic {
    FILE *f;         /* write the content here                     */
    char *target;    /* the resolved path the content will replace */
    char *tmp;       /* the temporary file beside it               */
    const char *path;/* the name the caller gave, for messages     */
    int err;         /* the caller's first write error (an errno
                        value), or 0: commit then fails with it    */
} hcr_atomic;

/* Resolve `path` (following symbolic links) into a malloc'ed string and
 * check that it may be written: nothing there, or a regular file, in a
 * folder that exists. On failure returns an error naming `path`. */
hcr_status hcr_output_resolve(const char *path, char **resolved);

/* hcr_output_check and hcr_output_check_dir are in hcr.h. */

/* Start writing `path` (mode 0644, or the mode of the file it replaces). */
hcr_status hcr_atomic_open(hcr_atomic *a, const char *path);
/* Flush, fsync, close and rename into place; on any failure the old file
 * stays as it was, the temporary file is removed and the error names
 * the path. Always releases `a`. */
hcr_status hcr_atomic_commit(hcr_atomic *a);
/* Give up: remove the temporary file and release `a`. */
void hcr_atomic_abort(hcr_atomic *a);

#endif
