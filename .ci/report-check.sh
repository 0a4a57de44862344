#!/usr/bin/env bash
# Checks a report folder written by `clustimage cluster --report DIR` (or `find --report`):
# every link and image source of its pages names a file inside the folder, and headless
# Chromium opens index.html from disk, logs no console message or network error, and
# draws a page with content. Needs Chromium on the PATH (Debian: apt-get install -y
# chromium) or named by CHROMIUM=PATH.
#
# usage: .ci/report-check.sh OUTDIR [SCREENSHOT.png]
# The screenshot goes to a temporary folder unless a path is given.
set -euo pipefail

die() { echo "report-check: $*" >&2; exit 1; }

[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 OUTDIR [SCREENSHOT.png]"
outdir=$(cd "$1" 2>/dev/null && pwd) || die "$1 is not a folder"
[[ -f "$outdir/index.html" ]] || die "$outdir/index.html does not exist"
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
[[ -n "$browser" ]] || die "chromium not found (apt-get install -y chromium)"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
screenshot=${2:-$scratch/index.png}

# 1. Links: relative, inside the folder, and to files that exist.
n_links=0
for page in "$outdir"/*.html; do
    while IFS= read -r target; do
        case "$target" in
            '#'*) continue ;;
            *://* | /* | *..*) die "$(basename "$page"): $target leaves the report folder" ;;
        esac
        file=${target//%20/ }
        [[ -f "$outdir/$file" ]] || die "$(basename "$page"): $target does not exist"
        n_links=$((n_links + 1))
    done < <(grep -oE '(href|src)="[^"]*"' "$page" | sed -E 's/^(href|src)="(.*)"$/\2/')
done
[[ $n_links -gt 0 ]] || die "index.html links to nothing"

# 2. The page in a browser, from disk, without network.
flags=(--headless --disable-gpu --no-first-run --user-data-dir="$scratch/profile"
       --enable-logging=stderr --v=0 --window-size=1280,900 --screenshot="$screenshot")
[[ $(id -u) -eq 0 ]] && flags+=(--no-sandbox)
status=0
timeout 120 "$browser" "${flags[@]}" "file://$outdir/index.html" >"$scratch/log" 2>&1 || status=$?
[[ $status -eq 0 ]] || { cat "$scratch/log" >&2; die "chromium exited with status $status"; }
if grep -E 'CONSOLE|net::ERR_' "$scratch/log" >&2; then
    die "the page logged errors (above)"
fi
[[ -s "$screenshot" ]] || die "chromium wrote no screenshot"
size=$(stat -c %s "$screenshot")
# A blank 1280x900 page compresses to a few kilobytes; figures make it far larger.
[[ $size -gt 20000 ]] || die "the screenshot is nearly empty ($size bytes)"
echo "report-check: $outdir: $n_links links resolve; screenshot $screenshot ($size bytes)"
