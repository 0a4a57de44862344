"""Pairwise precision and recall of duplicate detection, per transformation, for
`clustimage dups` and its peers (imagededup's hash methods, czkawka_cli), in one run.

Data: the `neardup/` folder of the shared data (--data; its README describes it): every
photo plus six altered copies (half, q35, crop90, bright125, gray, png), with
`groups.csv` (file,group,transform,source) as the ground truth. neardup has no mirrored
or turned copies, and its only crop is 5 % per side, so this script makes more itself
from each original with Pillow: `crop80` (10 % cut from each side), `mirror` (left-right), `rot90`, `rot180`, `rot270` (pixels turned, JPEG quality 90) and
`exif-rot` (pixels turned a quarter with an EXIF orientation tag that turns them back,
so that it displays as the original). A generated crop that leaves a blank picture (one
wallpaper is a white disc on black, whose centre is all white) is left out.

Scoring. A pair of files is positive when they belong to one group. Some photos are
related by their authors (the same scene at several sizes, dark and light variants):
pairs across groups of one family (the name without its number, resolution and
-d/-l/-dark suffix) are allowed either way and left out of every count. So are pairs
across groups whose originals are the same bytes: three of the source wallpapers are
transparent PNGs that flattened to the same all-white JPEG, which every detector must
(and should) match. Each tool's
groups are taken as they are used: every pair inside a reported group is predicted
(so a chain A-B-C predicts A-C too). Per transformation T, recall is the share of
(original, T copy) pairs predicted; precision is over all predicted pairs.

Operating points. Every tool has a threshold (a Hamming distance, or czkawka's
--max-difference). For each tool the script sweeps it on this data and reports:
  - the loosest threshold whose overall precision is at least --precision (0.99): the
    same rule for every tool, tuned on the same data (so optimistic for all alike);
  - the tool's default threshold.
Our detector is run once at the widest radius with `--json`; its pairs carry their
distance, so each threshold t is applied here (links at distance <= t, joined by
union-find, exactly what `dups --duplicate-max-distance t` does; checked once at the
default). imagededup is encoded once per method and asked with scores at its widest
threshold, then thresholded the same way. czkawka_cli (12.x) is run once per
--max-difference, without and with its --geometric-invariance mirror-flip-rotate90.

Reproduce (from the repository root):
  cargo build --release
  python3 -m venv /tmp/dedup-venv && /tmp/dedup-venv/bin/pip install imagededup Pillow
  cargo install czkawka_cli --root /tmp/czk
  /tmp/dedup-venv/bin/python benches/dedup_quality.py --czkawka /tmp/czk/bin/czkawka_cli \
      --out benches/dedup-results.md
"""

import argparse
import csv
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

GENERATED = ["crop80", "mirror", "rot90", "rot180", "rot270", "exif-rot"]
CZKAWKA_DIFFERENCES = [0, 2, 5, 8, 10, 15, 20, 30, 40]  # --max-difference, 0-40; default 5
CZKAWKA_MODES = ["off", "mirror-flip-rotate90"]  # --geometric-invariance; default off
IMAGEDEDUP_METHODS = ["PHash", "DHash", "AHash", "WHash"]


def parse_args(argv):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.normpath(os.path.join(root, "..", "shared", "data", "neardup")),
                   help="the neardup folder (default: ../shared/data/neardup from the repository root)")
    p.add_argument("--binary", default=os.path.join(root, "target", "release", "clustimage"))
    p.add_argument("--czkawka", default=shutil.which("czkawka_cli") or "czkawka_cli")
    p.add_argument("--precision", type=float, default=0.99)
    p.add_argument("--no-imagededup", action="store_true")
    p.add_argument("--no-czkawka", action="store_true")
    p.add_argument("--out", help="write the Markdown tables here too")
    return p.parse_args(argv)


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the data

def family(name):
    """The author's picture family: 053_Flow-5120x2880-dark.jpg -> Flow."""
    stem = os.path.splitext(name)[0]
    stem = re.sub(r"^\d+_", "", stem)
    stem = re.sub(r"_(half|q35|crop90|crop80|bright125|gray|png|mirror|rot90|rot180|rot270|exif-rot)$", "", stem)
    stem = re.sub(r"-dark$", "", stem)
    stem = re.sub(r"[-_]\d+x\d+$", "", stem)
    stem = re.sub(r"-[dl]$", "", stem)
    return stem


def build_folder(data, work):
    """Copies neardup's files into `work` and adds the generated copies; returns
    {file: (group, transform)}."""
    from PIL import Image, ImageOps
    truth = {}
    with open(os.path.join(data, "groups.csv"), newline="") as handle:
        for row in csv.DictReader(handle):
            truth[row["file"]] = (int(row["group"]), row["transform"])
            # Copied, not linked: `clustimage dups` does not follow symbolic links.
            shutil.copy(os.path.join(data, row["file"]), os.path.join(work, row["file"]))
    originals = [(f, g) for f, (g, t) in truth.items() if t == "original"]
    for name, group in sorted(originals):
        with Image.open(os.path.join(data, name)) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
        stem = os.path.splitext(name)[0]
        width, height = image.size
        cut_x, cut_y = round(width * 0.1), round(height * 0.1)
        copies = {
            "crop80": image.crop((cut_x, cut_y, width - cut_x, height - cut_y)),
            "mirror": image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            "rot90": image.transpose(Image.Transpose.ROTATE_270),  # 90 degrees clockwise
            "rot180": image.transpose(Image.Transpose.ROTATE_180),
            "rot270": image.transpose(Image.Transpose.ROTATE_90),
        }
        for transform, copy in copies.items():
            if transform.startswith("crop") and copy.convert("L").getextrema()[1] - copy.convert("L").getextrema()[0] < 8:
                continue  # the crop left a blank picture: nothing could match it to its source
            target = "%s_%s.jpg" % (stem, transform)
            copy.save(os.path.join(work, target), quality=90)
            truth[target] = (group, transform)
        # Pixels turned a quarter counter-clockwise; orientation 6 ("turn 90 clockwise to
        # display") brings them back.
        exif = Image.Exif()
        exif[0x0112] = 6
        target = "%s_exif-rot.jpg" % stem
        image.transpose(Image.Transpose.ROTATE_90).save(os.path.join(work, target), quality=90, exif=exif)
        truth[target] = (group, "exif-rot")
    return truth


# ---------------------------------------------------------------- scoring

class Scorer:
    def __init__(self, truth, work):
        self.truth = truth
        self.files = sorted(truth)
        self.transforms = sorted({t for _, t in truth.values() if t != "original"})
        self.original_of = {g: f for f, (g, t) in truth.items() if t == "original"}
        self.bytes_of = {}
        for group, name in self.original_of.items():
            with open(os.path.join(work, name), "rb") as handle:
                self.bytes_of[group] = hashlib.sha256(handle.read()).hexdigest()

    def status(self, a, b):
        """'pos', 'neg' or 'allowed' for a pair of files."""
        (ga, _), (gb, _) = self.truth[a], self.truth[b]
        if ga == gb:
            return "pos"
        if family(self.original_of[ga]) == family(self.original_of[gb]):
            return "allowed"
        if self.bytes_of[ga] == self.bytes_of[gb]:
            return "allowed"
        return "neg"

    def score(self, groups):
        """groups: lists of file names. Returns overall precision, recall and recall per
        transformation."""
        label = {}
        for idx, group in enumerate(groups):
            for name in group:
                label[name] = idx
        tp = fp = 0
        for group in groups:
            for a, b in itertools.combinations(sorted(set(group)), 2):
                s = self.status(a, b)
                tp += s == "pos"
                fp += s == "neg"
        n_pos = 0
        found_pos = 0
        per = {t: [0, 0] for t in self.transforms}
        for name, (group, transform) in self.truth.items():
            if transform == "original":
                continue
            original = self.original_of[group]
            hit = name in label and label.get(original) == label[name]
            per[transform][0] += hit
            per[transform][1] += 1
        for members in self.groups_of_truth():
            for a, b in itertools.combinations(members, 2):
                n_pos += 1
                found_pos += a in label and label.get(b) == label[a]
        precision = tp / (tp + fp) if tp + fp else 1.0
        return {
            "precision": precision,
            "recall": found_pos / n_pos if n_pos else 1.0,
            "per": {t: h / n for t, (h, n) in per.items()},
            "fp": fp,
        }

    def groups_of_truth(self):
        by_group = {}
        for name, (group, _) in self.truth.items():
            by_group.setdefault(group, []).append(name)
        return list(by_group.values())


def union_groups(pairs):
    parent = {}

    def root(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups = {}
    for x in parent:
        groups.setdefault(root(x), []).append(x)
    return [g for g in groups.values() if len(g) > 1]


# ---------------------------------------------------------------- the tools

def run_ours(binary, work, max_distance, kind="duplicate"):
    cmd = [binary, "dups", work, "--json", "--kind", kind,
           "--duplicate-max-distance", str(max_distance), "--similar-max-distance", str(max_distance)]
    started = time.time()
    result = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - started
    if result.returncode != 0:
        raise SystemExit("clustimage dups failed: %s" % result.stderr.strip())
    return json.loads(result.stdout), wall


def ours_pairs(output):
    pairs = []
    for group in output["groups"]:
        for pair in group["pairs"]:
            pairs.append((os.path.basename(pair["a"]), os.path.basename(pair["b"]), pair["distance"]))
    return pairs


def ours_groups(output):
    return [[os.path.basename(p) for p in g["paths"]] for g in output["groups"]]


def imagededup_pairs(method_name, work):
    from imagededup import methods
    method = getattr(methods, method_name)(verbose=False)
    encodings = method.encode_images(image_dir=work)
    found = method.find_duplicates(encoding_map=encodings, max_distance_threshold=24, scores=True)
    pairs = []
    for a, hits in found.items():
        for b, distance in hits:
            if a < b:
                pairs.append((a, b, int(distance)))
    return pairs


def czkawka_groups(binary, work, difference, mode, tmp):
    name = "czkawka-%s-%d" % (mode, difference)
    out = os.path.join(tmp, name + ".json")
    home = os.path.join(tmp, name + "-home")
    os.makedirs(home, exist_ok=True)
    env = dict(os.environ, HOME=home, XDG_CACHE_HOME=os.path.join(home, "cache"),
               XDG_CONFIG_HOME=os.path.join(home, "config"))
    cmd = [binary, "image", "--directories", os.path.abspath(work),
           "--max-difference", str(difference), "--geometric-invariance", mode,
           "--minimal-file-size", "1", "--compact-file-to-save", out, "--disable-cache",
           "--ignore-error-code-on-found", "--do-not-print-results", "--do-not-print-messages"]
    started = time.time()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.time() - started
    if not os.path.exists(out):
        raise RuntimeError("czkawka_cli %s wrote nothing: %s" % (name, (result.stderr or result.stdout)[-500:]))
    with open(out) as handle:
        data = json.load(handle)
    groups = []
    for group in data:
        groups.append([os.path.basename(entry["path"]) for entry in group])
    return groups, wall


# ---------------------------------------------------------------- the report

def sweep(scorer, pairs, thresholds):
    points = []
    for t in thresholds:
        groups = union_groups((a, b) for a, b, d in pairs if d <= t)
        points.append((t, scorer.score(groups)))
    return points


def operating_point(points, min_precision):
    ok = [(t, s) for t, s in points if s["precision"] >= min_precision]
    if not ok:
        return None
    return max(ok, key=lambda ts: (ts[1]["recall"], -ts[0]))


def main(argv):
    args = parse_args(argv)
    if not os.path.isfile(os.path.join(args.data, "groups.csv")):
        raise SystemExit("the data folder %s is missing (or has no groups.csv): give the neardup "
                         "folder of the shared data with --data" % args.data)
    if not os.path.isfile(args.binary):
        raise SystemExit("no clustimage binary at %s: run `cargo build --release` or give --binary" % args.binary)
    tmp = tempfile.mkdtemp(prefix="dedup-quality-")
    work = os.path.join(tmp, "images")
    os.makedirs(work)
    log("building the test folder in %s" % work)
    truth = build_folder(args.data, work)
    scorer = Scorer(truth, work)
    rows = []  # (tool, threshold label, score)
    notes = []

    log("clustimage dups")
    wide, wall = run_ours(args.binary, work, 24)
    pairs = ours_pairs(wide)
    version = subprocess.run([args.binary, "--version"], capture_output=True, text=True).stdout.strip()
    points = sweep(scorer, pairs, range(0, 25))
    best = operating_point(points, args.precision)
    default, default_wall = run_ours(args.binary, work, 10)
    default_score = scorer.score(ours_groups(default))
    swept_default = dict(points)[10]
    if abs(default_score["recall"] - swept_default["recall"]) > 1e-9:
        notes.append("warning: the sweep at distance 10 differs from a run at the default")
    rows.append(("clustimage dups", "default (10)", default_score))
    if best:
        rows.append(("clustimage dups", "P>=%.2f (%d)" % (args.precision, best[0]), best[1]))
    notes.append("clustimage dups (%s): %d images in %.1f s at the default (%.1f s at radius 24)"
                 % (version, default["n_images"], default_wall, wall))

    if not args.no_imagededup:
        try:
            import imagededup  # noqa: F401
            have = True
        except ImportError:
            have = False
            notes.append("imagededup is not installed in this Python: its rows are missing")
        if have:
            for method in IMAGEDEDUP_METHODS:
                log("imagededup %s" % method)
                started = time.time()
                pairs = imagededup_pairs(method, work)
                elapsed = time.time() - started
                points = sweep(scorer, pairs, range(0, 25))
                rows.append(("imagededup %s" % method, "default (10)", dict(points)[10]))
                best = operating_point(points, args.precision)
                if best:
                    rows.append(("imagededup %s" % method, "P>=%.2f (%d)" % (args.precision, best[0]), best[1]))
                notes.append("imagededup %s: %.1f s" % (method, elapsed))

    if not args.no_czkawka:
        if shutil.which(args.czkawka) is None and not os.path.isfile(args.czkawka):
            notes.append("czkawka_cli was not found (%s): its rows are missing" % args.czkawka)
        else:
            version = subprocess.run([args.czkawka, "--version"], capture_output=True, text=True).stdout.strip()
            for mode in CZKAWKA_MODES:
                points = []
                walls = []
                for difference in CZKAWKA_DIFFERENCES:
                    log("czkawka %s %d" % (mode, difference))
                    try:
                        groups, wall = czkawka_groups(args.czkawka, work, difference, mode, tmp)
                    except RuntimeError as error:
                        notes.append(str(error))
                        continue
                    points.append((difference, scorer.score(groups)))
                    walls.append(wall)
                tool = "czkawka_cli" if mode == "off" else "czkawka_cli %s" % mode
                for difference, score in points:
                    if difference == 5:
                        rows.append((tool, "default (5)", score))
                best = operating_point(points, args.precision)
                if best:
                    rows.append((tool, "P>=%.2f (%d)" % (args.precision, best[0]), best[1]))
                if walls:
                    notes.append("%s: %.1f-%.1f s a run" % (tool, min(walls), max(walls)))
            notes.append("czkawka_cli: %s, --max-difference %s" % (
                version.splitlines()[0], ", ".join(map(str, CZKAWKA_DIFFERENCES))))

    transforms = scorer.transforms
    header = "| tool | threshold | precision | recall | " + " | ".join(transforms) + " |"
    lines = [header, "|" + "---|" * (4 + len(transforms))]
    for tool, label, s in rows:
        cells = ["%.3f" % s["per"][t] for t in transforms]
        lines.append("| %s | %s | %.3f | %.3f | %s |" % (tool, label, s["precision"], s["recall"], " | ".join(cells)))
    if not any(tool.startswith("imagededup") for tool, _, _ in rows) or \
            not any(tool.startswith("czkawka") for tool, _, _ in rows):
        notes.append("a peer is missing from this run: its rows are not comparable across runs")
    n_files = len(truth)
    text = ("Pairwise scores on %d files (%d pictures, %d transformations; %s generated here). "
            "Recall per transformation is over (original, copy) pairs; precision and recall "
            "over all pairs, pairs of related pictures left out.\n\n" % (
                n_files, len(scorer.original_of), len(transforms), ", ".join(GENERATED)))
    text += "\n".join(lines) + "\n\n" + "\n".join("- " + n for n in notes) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write("# Duplicate detection quality\n\nWritten by `benches/dedup_quality.py`.\n\n" + text)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
