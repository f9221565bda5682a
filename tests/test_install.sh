#!/usr/bin/env bash
# test_install.sh - the install story: make install into a temporary prefix
# and into a staging root (DESTDIR), the installed files, the shared
# libraries' exported symbols and sonames, the programs of examples/ built
# with nothing but pkg-config (shared and static) and run (an
# inference-only program needs only libhcr: no curl, OpenSSL, zlib or
# cairo), the installed
# hcr, man page and bash completion, and make uninstall leaving nothing.
# The build to install is $HCR_BUILD (default build), made with
# $HCR_TEST_CC/CFLAGS/LDFLAGS (make test passes its own).
# Prints "<n> passed, <m> failed".
set -u
. "$(dirname "$0")/lib.sh"

BUILD=${HCR_BUILD:-build}
CC=${HCR_TEST_CC:-cc}
CFLAGS=${HCR_TEST_CFLAGS:-}
LDFLAGS=${HCR_TEST_LDFLAGS:-}
# make as if run here by hand, not as a part of the make running this test
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
mk() { make -s BUILD="$BUILD" CC="$CC" CFLAGS="$CFLAGS" LDFLAGS="$LDFLAGS" "$@"; }
VERSION=$(sed -n 's/^#define HCR_VERSION "\(.*\)"/\1/p' include/hcr.h)
SOVER=${VERSION%%.*}

# the files an install holds, relative to its prefix
want_files() {
    {
        printf '%s\n' bin/hcr include/hcr.h include/hcr_data.h include/hcr_report.h \
            share/bash-completion/completions/hcr share/man/man1/hcr.1
        for l in hcr hcr-data hcr-report; do
            printf '%s\n' "lib/lib$l.a" "lib/lib$l.so" "lib/lib$l.so.$SOVER" "lib/lib$l.so.$VERSION" "lib/pkgconfig/$l.pc"
        done
    } | sort
}
# the static link flags of pkg-config module $1, with the archives named
# (-l:libhcr.a: -lhcr would pick the shared library)
static_libs() {
    pkg-config --static --cflags --libs "$1" | sed -E 's/-l(hcr(-data|-report)?)( |$)/-l:lib\1.a\3/g'
}
# the functions a public header declares
declared() { grep -oE '\bhcr_[a-z0-9_]+\(' "$1" | tr -d '(' | sort -u; }
files_under() { (cd "$1" && find . \( -type f -o -type l \) | sed 's|^\./||' | sort); }
same() { # same WHAT EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then ok; else bad "$1: expected:"$'\n'"$2"$'\n'"got:"$'\n'"$3"; fi
}

# ------------------------------------------------ install into a prefix
P=$TMP/prefix
if mk install PREFIX="$P" >"$TMP/install.log" 2>&1; then ok; else bad "make install: $(cat "$TMP/install.log")"; fi
same "installed files" "$(want_files)" "$(files_under "$P")"
for l in hcr hcr-data hcr-report; do
    [ "$(readlink "$P/lib/lib$l.so")" = "lib$l.so.$VERSION" ] && ok || bad "lib$l.so -> $(readlink "$P/lib/lib$l.so")"
    [ "$(readlink "$P/lib/lib$l.so.$SOVER")" = "lib$l.so.$VERSION" ] && ok || bad "lib$l.so.$SOVER link"
    soname=$(readelf -d "$P/lib/lib$l.so.$VERSION" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
    same "soname of lib$l" "lib$l.so.$SOVER" "$soname"
    # only hcr_* names, in the shared and in the static library
    same "symbols of lib$l.so that are not hcr_*" "" "$(nm -D --defined-only "$P/lib/lib$l.so" | grep -v ' hcr_')"
    same "global symbols of lib$l.a that are not hcr_*" "" \
        "$(nm -g --defined-only "$P/lib/lib$l.a" | awk 'NF == 3 && $3 !~ /^hcr_/')"
done
# each exports the functions of its header; libhcr also lends its siblings
# the hcr__* functions that src/ marks HCR_LEND, and nothing else
exports() { nm -D --defined-only "$P/lib/$1" | awk '{print $3}' | sort -u; }
same "libhcr.so's exports against hcr.h's functions and HCR_LEND" \
    "$( (declared include/hcr.h; grep -rhoE 'HCR_LEND [^(]*\bhcr__[a-z0-9_]+\(' src | grep -oE 'hcr__[a-z0-9_]+') | sort -u)" \
    "$(exports libhcr.so)"
same "libhcr-data.so's exports against hcr_data.h's functions" "$(declared include/hcr_data.h)" "$(exports libhcr-data.so)"
same "libhcr-report.so's exports against hcr_report.h's functions" "$(declared include/hcr_report.h)" "$(exports libhcr-report.so)"
# the inference library needs neither downloads nor drawing
same "libraries libhcr.so needs that an inference program should not" "" \
    "$(readelf -d "$P/lib/libhcr.so" | grep NEEDED | grep -E 'libcurl|libcrypto|libssl|libz\.|libcairo')"

# pkg-config
export PKG_CONFIG_PATH=$P/lib/pkgconfig
same "pkg-config --modversion hcr" "$VERSION" "$(pkg-config --modversion hcr 2>&1)"
libs=$(pkg-config --libs hcr)
[[ " $libs " == *" -L$P/lib -lhcr "* ]] && ok || bad "pkg-config --libs hcr: $libs"
libs=$(pkg-config --libs hcr-data)
[[ " $libs " == *" -lhcr-data "* && " $libs " == *" -lhcr "* ]] && ok || bad "pkg-config --libs hcr-data: $libs"
slibs=$(pkg-config --static --libs hcr)
for l in -lopenblas -lcjson -lm; do
    [[ " $slibs " == *" $l "* ]] && ok || bad "pkg-config --static --libs hcr lacks $l: $slibs"
done
for l in -lcurl -lcrypto -lz -lcairo; do
    [[ " $slibs " != *" $l "* ]] && ok || bad "pkg-config --static --libs hcr names $l: $slibs"
done
slibs=$(pkg-config --static --libs hcr-data)
for l in -lcurl -lcrypto -lz -lopenblas; do
    [[ " $slibs " == *" $l "* ]] && ok || bad "pkg-config --static --libs hcr-data lacks $l: $slibs"
done
slibs=$(pkg-config --static --libs hcr-report)
[[ " $slibs " == *" -lcairo "* ]] && ok || bad "pkg-config --static --libs hcr-report lacks -lcairo: $slibs"

# the header's complete program is examples/classify.c, verbatim
sed -n '/^ \* A complete program/,/^ \*\//p' include/hcr.h | sed '1,/^ \*$/d;$d' |
    sed -e 's/^ \*   //' -e 's/^ \*$//' >"$TMP/header_example.c"
if cmp -s "$TMP/header_example.c" examples/classify.c; then ok; else
    bad "the program in hcr.h's comment differs from examples/classify.c: $(diff "$TMP/header_example.c" examples/classify.c)"
fi

# the examples, built with nothing but pkg-config: shared (libhcr.so) and
# static (the .a files, with pkg-config --static). classify and read_line
# are inference only: the hcr module; train_tiny reads IDX files: hcr-data.
WARN="-std=c11 -Wall -Wextra -pedantic -Werror"
for ex in classify:hcr train_tiny:hcr-data read_line:hcr; do
    mod=${ex#*:} ex=${ex%:*}
    # shellcheck disable=SC2046,SC2086 # pkg-config's output is words
    if $CC $WARN $CFLAGS -o "$TMP/$ex-shared" "examples/$ex.c" $(pkg-config --cflags --libs "$mod") \
        $LDFLAGS 2>"$TMP/cc.log"; then ok; else bad "$ex (shared) does not build: $(cat "$TMP/cc.log")"; fi
    # shellcheck disable=SC2046,SC2086
    if $CC $WARN $CFLAGS -o "$TMP/$ex-static" "examples/$ex.c" $(static_libs "$mod") \
        $LDFLAGS 2>"$TMP/cc.log"; then ok; else bad "$ex (static) does not build: $(cat "$TMP/cc.log")"; fi
    readelf -d "$TMP/$ex-shared" 2>/dev/null | grep -q "NEEDED.*\[libhcr.so.$SOVER\]" && ok ||
        bad "$ex-shared does not need libhcr.so.$SOVER"
    readelf -d "$TMP/$ex-static" 2>/dev/null | grep -q "NEEDED.*libhcr" && bad "$ex-static needs libhcr.so" || ok
done
# the inference programs load neither downloads nor drawing, shared or static
for ex in classify-shared classify-static read_line-shared read_line-static; do
    same "libraries $ex loads that it should not" "" \
        "$(LD_LIBRARY_PATH=$P/lib ldd "$TMP/$ex" | grep -E 'libcurl|libcrypto|libssl|libz\.|libcairo|libhcr-')"
done
LD_LIBRARY_PATH=$P/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ldd "$TMP/classify-shared" |
    grep -q "libhcr.so.$SOVER => $P/lib/libhcr.so.$SOVER" && ok || bad "classify-shared does not load the installed libhcr"

# ... and run: train a tiny model, classify an image and read a number with it
export LD_LIBRARY_PATH=$P/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for kind in shared static; do
    out=$("$TMP/train_tiny-$kind" "$DATA" "$TMP/tiny-$kind.safetensors" 2>&1)
    rc=$?
    acc=$(sed -n 's/^test accuracy: \([0-9.]*\) (10000 images)$/\1/p' <<<"$out")
    [ "$rc" -eq 0 ] && grep -qx "model saved to $TMP/tiny-$kind.safetensors" <<<"$out" &&
        awk -v a="${acc:-0}" 'BEGIN { exit !(a > 0.8) }' && ok ||
        bad "train_tiny-$kind: exit $rc (expected 0, a test accuracy over 0.8): $out"
done
cp "$TMP/tiny-static.safetensors" "$TMP/tiny.safetensors"
expect 2 "usage: train_tiny" -- "$TMP/train_tiny-shared"
expect 1 "train_tiny: " -- "$TMP/train_tiny-shared" "$TMP/nowhere" "$TMP/x.safetensors"
for kind in shared static; do
    # the same answer as hcr predict and hcr read with the same model
    want=$("$HCR" predict "$TMP/tiny.safetensors" docs/images/digit.pgm --min-confidence 0 2>&1)
    same "classify-$kind" "$want" "$("$TMP/classify-$kind" "$TMP/tiny.safetensors" docs/images/digit.pgm 2>&1)"
    want=$("$HCR" read "$TMP/tiny.safetensors" docs/images/number.png --min-confidence 0 2>&1)
    out=$("$TMP/read_line-$kind" "$TMP/tiny.safetensors" docs/images/number.png 2>&1)
    rc=$?
    [ "$rc" -eq 0 ] && [ "$(head -n 1 <<<"$out")" = "$want" ] && [ "$(wc -l <<<"$out")" -gt 1 ] && ok ||
        bad "read_line-$kind: exit $rc, '$out', hcr read says '$want'"
    expect 1 "classify: " -- "$TMP/classify-$kind" "$TMP/tiny.safetensors" "$TMP/missing.png"
    expect 1 "read_line: " -- "$TMP/read_line-$kind" "$TMP/missing.safetensors" docs/images/number.png
done

# the installed program, man page and completion
same "installed hcr --version" "hcr $VERSION" "$("$P/bin/hcr" --version 2>&1)"
out=$(LC_ALL=C groff -man -Tutf8 -ww -z "$P/share/man/man1/hcr.1" 2>&1)
same "groff warnings on hcr.1" "" "$out"
grep -q "^\.TH HCR 1 .*\"hcr $VERSION\"" "$P/share/man/man1/hcr.1" && ok || bad "hcr.1's .TH does not say hcr $VERSION"
if command -v man >/dev/null; then
    MANWIDTH=80 man -l "$P/share/man/man1/hcr.1" 2>&1 | grep -q "hcr predict model image" && ok || bad "man -l hcr.1"
fi
for c in train eval summary data report show predict read serve; do
    grep -q "^\.SS \"hcr $c" docs/hcr.1 && ok || bad "hcr.1 has no section for hcr $c"
done

# the completion's lists are the commands and options --help shows
# shellcheck source=scripts/hcr-completion.bash
. "$P/share/bash-completion/completions/hcr"
same "completion's commands" \
    "$("$HCR" --help | sed -n '/^commands:/,/^$/s/^  \([a-z]*\) .*/\1/p' | sort) help" \
    "$(tr ' ' '\n' <<<"${_hcr_commands% help}" | sort) help"
for c in train eval summary data report show predict read serve; do
    same "completion's options of hcr $c" \
        "$("$HCR" "$c" --help | grep -oE '^ +(-[a-zA-Z0-9], )?--?[a-z][a-z-]*' | tr ',' ' ' | tr -s ' ' '\n' | grep . | sort -u)" \
        "$(_hcr_options "$c" | tr -s ' \n' '\n' | grep . | sort -u)"
    man_opts=$("$HCR" "$c" --help | grep -oE '^ +--[a-z][a-z-]*' | tr -d ' ' | grep -v -- --help)
    for o in $man_opts; do
        grep -qF -- "$(sed 's/-/\\-/g' <<<"$o")" docs/hcr.1 && ok || bad "hcr.1 does not mention hcr $c $o"
    done
done
COMP_WORDS=(hcr train --dataset f)
COMP_CWORD=3
_hcr
same "completing hcr train --dataset f" "fashion-mnist" "${COMPREPLY[*]}"

# ---------------------------------------------------------- uninstall
if mk uninstall PREFIX="$P" >"$TMP/uninstall.log" 2>&1; then ok; else bad "make uninstall: $(cat "$TMP/uninstall.log")"; fi
same "files left by make uninstall" "" "$(files_under "$P")"

# ------------------------- a staging root: DESTDIR, built from pkg-config there
S=$TMP/stage
if mk install DESTDIR="$S" PREFIX=/usr/local >"$TMP/install.log" 2>&1; then ok; else bad "make install DESTDIR: $(cat "$TMP/install.log")"; fi
same "files staged in DESTDIR" "$(want_files)" "$(files_under "$S/usr/local")"
same "files outside the prefix in DESTDIR" "" "$(files_under "$S" | grep -v '^usr/local/')"
grep -qx "prefix=/usr/local" "$S/usr/local/lib/pkgconfig/hcr.pc" && ok || bad "staged hcr.pc's prefix: $(grep prefix= "$S/usr/local/lib/pkgconfig/hcr.pc")"
# shellcheck disable=SC2046,SC2086
if PKG_CONFIG_PATH=$S/usr/local/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$S \
    $CC $WARN $CFLAGS -o "$TMP/classify-staged" examples/classify.c \
    $(PKG_CONFIG_PATH=$S/usr/local/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$S pkg-config --cflags --libs hcr) \
    $LDFLAGS 2>"$TMP/cc.log"; then ok; else bad "classify against the staging root: $(cat "$TMP/cc.log")"; fi
LD_LIBRARY_PATH=$S/usr/local/lib expect 0 "docs/images/digit.pgm: " -- \
    "$TMP/classify-staged" "$TMP/tiny.safetensors" docs/images/digit.pgm
if mk uninstall DESTDIR="$S" PREFIX=/usr/local >"$TMP/uninstall.log" 2>&1; then ok; else bad "make uninstall DESTDIR: $(cat "$TMP/uninstall.log")"; fi
same "files left in DESTDIR by make uninstall" "" "$(files_under "$S")"

finish test_install
