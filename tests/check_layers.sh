#!/usr/bin/env bash
# check_layers.sh - the library's layers depend one way only
# (docs/architecture.md). Every #include "folder/file.h" in src/ must name
# the file's own folder or one below it in this table, the public headers
# must not reach into src/, each layer includes only the public header of
# its library, cli/ uses only the public headers (and serve/serve.h, the
# program's own library), and no headers include
# each other in a circle. Then the same rule on the objects: no function
# of a layer calls into a layer above it (nm). Prints "<n> passed, <m> failed".
set -u
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

# The folders each layer may use, besides its own.
declare -A below=(
    [core]=""
    [kernels]="core"
    [data]="core"
    [nn]="core kernels"
    [vision]="core nn"
    [report]="core nn"
    [serve]="core nn vision"
)
# The public header each layer's library may include (hcr.h always).
declare -A public=([data]="hcr_data.h" [report]="hcr_report.h")

# An include of a folder that is not a layer, or a layer not in the table,
# is an error too: a new folder must be placed in the table first.
for dir in src/*/; do
    layer=$(basename "$dir")
    if [ -z "${below[$layer]+x}" ]; then
        bad "src/$layer/ is not in check_layers.sh's table of layers"
        continue
    fi
    for f in "$dir"*.c "$dir"*.h; do
        [ -e "$f" ] || continue
        while IFS= read -r inc; do
            case "$inc" in
            */*)
                to=${inc%%/*}
                if [ "$to" = "$layer" ] || [[ " ${below[$layer]} " == *" $to "* ]]; then ok
                else bad "$f includes $inc: $layer/ may use only ${below[$layer]:-nothing} below it"; fi ;;
            hcr.h) ok ;;
            hcr_*.h)
                if [ "$inc" = "${public[$layer]:-}" ]; then ok
                else bad "$f includes $inc: only src/${inc#hcr_}-layer code may (${inc%.h}'s library)"; fi ;;
            *) bad "$f includes \"$inc\": name the folder (\"$layer/$inc\")" ;;
            esac
        done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
    done
done

# Public headers include only each other; cli/ only them, its own, and
# serve/serve.h (hcr serve's handler, a library of the program's own).
for f in include/*.h cli/*.c cli/*.h; do
    while IFS= read -r inc; do
        case "$inc" in
        hcr.h | hcr_data.h | hcr_report.h | cli.h) ok ;;
        serve/serve.h) [[ $f == cli/*.c ]] && ok || bad "$f includes \"$inc\": only cli/ may" ;;
        *) bad "$f includes \"$inc\": only the public headers (include/) may be used here" ;;
        esac
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
done

# No circle among the headers: tsort fails on a loop.
edges=$(for f in src/*/*.h include/*.h; do
    name=${f#src/}; name=${name#include/}
    sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" | while read -r inc; do
        echo "$name $inc"
    done
done)
if out=$(tsort <<<"$edges" 2>&1 >/dev/null) && [ -z "$out" ]; then ok; else bad "headers include each other in a circle: $out"; fi

# The objects: what each layer's objects call must be defined in its own
# layer or one below (catches a call through a declaration written by hand).
B=${HCR_BUILD:-build}
if [ -d "$B/src/core" ]; then
    declare -A owner=()
    for o in "$B"/src/*/*.o; do
        layer=$(basename "$(dirname "$o")")
        while read -r sym; do owner[$sym]=$layer; done < <(nm --defined-only "$o" | awk '$2 ~ /[TDBR]/ {print $3}')
    done
    for o in "$B"/src/*/*.o; do
        layer=$(basename "$(dirname "$o")")
        while read -r sym; do
            to=${owner[$sym]:-}
            [ -z "$to" ] || [ "$to" = "$layer" ] || [[ " ${below[$layer]} " == *" $to "* ]] ||
                bad "${o#"$B"/} calls $sym of $to/: $layer/ may use only ${below[$layer]:-nothing}"
        done < <(nm -u "$o" | awk '{print $2}')
    done
    ok
else
    bad "no objects in $B/src: build first (make)"
fi

finish check_layers.sh
