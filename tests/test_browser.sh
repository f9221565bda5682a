#!/usr/bin/env bash
# test_browser.sh - the report as a user gets it: hcr train writes the
# report folder (and --no-report does not), hcr report rebuilds it, hcr show
# draws digits in the terminal, and Debian's chromium, headless, with no
# network, opens report.html from the file system and loads every picture
# (an inline script marks <body data-images-ok="N/M">, which --dump-dom
# shows). The screenshot stays next to the binary as a CI artifact
# (build/report-screenshot.png). Prints "<n> passed, <m> failed".
set -u
. "$(dirname "$0")/lib.sh"
SHOT="$(dirname "$HCR")/report-screenshot.png"

FILES="accuracy.png loss.png samples.png confusion.png misclassified.png report.html"

# hcr train leaves the report folder next to the model and prints its path.
expect 0 "Report written to $TMP/m_report/report.html" -- \
    "$HCR" train --data "$DATA" --limit 3000 --epochs 2 --out "$TMP/m.safetensors" -q
missing=""
for f in $FILES; do [ -s "$TMP/m_report/$f" ] || missing="$missing $f"; done
[ -z "$missing" ] && ok || bad "train: report files missing:$missing"
ls -A "$TMP/m_report" | grep -q tmp && bad "temporary files left: $(ls -A "$TMP/m_report")" || ok

# --no-report skips it.
expect 0 "Model saved" -- "$HCR" train --data "$DATA" --limit 1000 --epochs 1 --no-report \
    --out "$TMP/n.safetensors" -q
[ ! -e "$TMP/n_report" ] && ok || bad "--no-report still wrote $TMP/n_report"

# hcr report rebuilds it for a saved model, by default next to the model.
expect 0 "usage: hcr report" -- "$HCR" report --help
expect 2 "which model?" -- "$HCR" report
expect 1 "loading the model" -- "$HCR" report "$TMP/missing.safetensors" --data "$DATA"
expect 0 "Report written to $TMP/n_report/report.html" -- "$HCR" report "$TMP/n.safetensors" --data "$DATA"
expect 0 "Report written to $TMP/other/dir/report.html" -- \
    "$HCR" report "$TMP/m.safetensors" --data "$DATA" --out "$TMP/other/dir"
missing=""
for f in $FILES; do [ -s "$TMP/other/dir/$f" ] || missing="$missing $f"; done
[ -z "$missing" ] && ok || bad "report --out: files missing:$missing"

# hcr show: labels and shaded digits.
expect 0 "usage: hcr show" -- "$HCR" show --help
expect 0 "#0  label 7" -- "$HCR" show --data "$DATA" -n 3
expect 0 "█" -- "$HCR" show --data "$DATA" -n 1
expect 0 "#5  label 2" -- "$HCR" show --data "$DATA" --split train --start 5 -n 1
lines=$("$HCR" show --data "$DATA" -n 1 2>/dev/null | wc -l)
[ "$lines" -eq 15 ] && ok || bad "show -n 1: $lines lines, expected a label and 14 rows"
expect 2 "neither train nor test" -- "$HCR" show --data "$DATA" --split validation
expect 2 "past the last image" -- "$HCR" show --data "$DATA" --start 10000

# The page is self-contained: no address to fetch anything from.
if grep -Eq 'https?://|<link|<script src|url\(' "$TMP/m_report/report.html"; then
    bad "report.html refers to something outside itself"
else
    ok
fi

# A real browser, offline, from the file system.
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
chromium_run() {
    timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --host-resolver-rules="MAP * ~NOTFOUND" --hide-scrollbars \
        --user-data-dir="$(mktemp -d -p "$TMP")" "$@" 2>>"$TMP/chromium.log"
}
if [ -z "$CHROMIUM" ]; then
    bad "chromium is not installed (Debian: apt-get install chromium; scripts/setup.sh installs it)"
else
    dom=$(chromium_run --dump-dom "file://$TMP/m_report/report.html")
    if grep -q 'data-images-ok="5/5"' <<<"$dom"; then
        ok
    else
        bad "chromium did not load every picture: $(grep -o '<body[^>]*>' <<<"$dom" || echo 'no <body>'); $(tail -5 "$TMP/chromium.log")"
    fi
    # The check itself: a page with one broken picture must say 4/5.
    sed '0,/base64,iVBOR/s//base64,AAAAA/' "$TMP/m_report/report.html" >"$TMP/broken.html"
    dom=$(chromium_run --dump-dom "file://$TMP/broken.html")
    grep -q 'data-images-ok="4/5"' <<<"$dom" && ok || bad "a broken picture was not noticed: $(grep -o '<body[^>]*>' <<<"$dom")"
    rm -f "$SHOT"
    chromium_run --screenshot="$SHOT" --window-size=1280,6400 "file://$TMP/m_report/report.html" >/dev/null
    [ -s "$SHOT" ] && ok || bad "no screenshot at $SHOT: $(tail -5 "$TMP/chromium.log")"
fi

finish test_browser.sh
