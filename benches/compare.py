"""Compare the Rust `clustimage` CLI with the Python package clustimage 1.7.1.

What it measures, per input: wall time around each tool's process (Python's
import time included), peak resident memory of that process, the number of
clusters found, and the adjusted Rand index (ARI) against the ground-truth
labels (for the unlabelled photos: the ARI between the two tools' labelings).
Both tools run with their defaults (Python's PCA seeded with random_state=0;
on the digits folder Python gets grayscale=True unless --python-colour, see
Bench.digits_folder); on the digits array a few non-default settings of our
CLI are added as extra rows.

Inputs (under --data, default ../shared/data from the repository root):
  digits-array   digits/*.png stacked into a (5000, 400) uint8 .npy, labels.csv row order
  digits-folder  the digits/ folder itself
  photos         the photos/ folder (no labels)
  fashion        Fashion-MNIST train+test, 70,000 x 784, as an array; our tool only
                 unless --fashion-python (not in the default set)

Reproduce (from the repository root):
  cargo build --release
  .venv/bin/python benches/compare.py --out benches/results.md
  .venv/bin/python benches/compare.py --only fashion

The Python interpreter given by --python (default: the running one) must have
clustimage installed; the running one needs numpy, Pillow and scikit-learn.
"""

import argparse
import csv
import gzip
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

DEFAULT_INPUTS = ["digits-array", "digits-folder", "photos"]
ALL_INPUTS = DEFAULT_INPUTS + ["fashion"]
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
GNU_TIME = "/usr/bin/time"

# Non-default settings of our CLI tried on the digits array.
EXTRA_SETTINGS = [
    ["--k", "10"],
    ["--evaluate", "dbindex"],
    ["--evaluate", "derivative"],
    ["--linkage", "average"],
    ["--linkage", "complete"],
    ["--cluster", "kmeans", "--k", "10"],
    ["--cluster", "hdbscan"],
    ["--pca-components", "40"],
    ["--pca-components", "40", "--k", "10"],
    ["--method", "pixels", "--k", "10"],
    ["--method", "hog"],
    ["--method", "hog", "--hog-cell", "4", "--k", "10"],
    ["--method", "pca-hog", "--hog-cell", "4", "--k", "10"],
    ["--embedding", "tsne", "--cluster-space", "low"],
]


# ---------------------------------------------------------------- arguments

def parse_args(argv):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.normpath(os.path.join(root, "..", "shared", "data")))
    p.add_argument("--binary", default=os.path.join(root, "target", "release", "clustimage"))
    p.add_argument("--python", default=sys.executable, help="interpreter with clustimage installed")
    p.add_argument("--only", default=",".join(DEFAULT_INPUTS), help="comma list of " + ",".join(ALL_INPUTS))
    p.add_argument("--out", help="also write the Markdown report to this file")
    p.add_argument("--repeat", type=int, default=1, help="runs per tool and input; the median time is reported")
    p.add_argument("--no-extras", action="store_true", help="skip the non-default settings on the digits array")
    p.add_argument("--python-colour", action="store_true",
                   help="also run Python's colour default on the digits folder (~12 min on 2 cores)")
    p.add_argument("--fashion-dir", default=FASHION_DIR)
    p.add_argument("--fashion-python", action="store_true", help="also run the Python package on Fashion-MNIST")
    p.add_argument("--python-timeout", type=float, default=1800, help="seconds before a Python run is killed")
    p.add_argument("--python-mem-gb", type=float, default=None,
                   help="address-space limit of the Python child on Fashion-MNIST (default: 80%% of RAM)")
    p.add_argument("--py-child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(ALL_INPUTS)
    if unknown:
        p.error("unknown input(s): " + ", ".join(sorted(unknown)))
    return args


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- Python child

def py_child(spec_path):
    """Run clustimage once as described by the spec file; write labels and timings as JSON."""
    t0 = time.perf_counter()
    import matplotlib
    matplotlib.use("Agg")
    import numpy as np
    from clustimage import Clustimage
    import_s = time.perf_counter() - t0
    with open(spec_path) as f:
        spec = json.load(f)
    cl = Clustimage(verbose="silent", dirpath=spec["tempdir"], tempdir=spec["tempdir"], **spec["init"])
    stages = time_stages(cl, ["import_data", "extract_feat", "embedding", "cluster", "unique"])
    X = np.load(spec["input"]) if spec["kind"] == "array" else spec["input"]
    t1 = time.perf_counter()
    results = cl.fit_transform(X, **spec["fit"])
    fit_s = time.perf_counter() - t1
    out = {
        "import_s": import_s,
        "fit_s": fit_s,
        "stages_s": stages,
        "labels": [int(v) for v in results["labels"]],
        "pathnames": [str(v) for v in results["pathnames"]],
    }
    with open(spec["out"], "w") as f:
        json.dump(out, f)
    json.dump({k: out[k] for k in ("import_s", "fit_s", "stages_s")}, sys.stdout)


def time_stages(obj, names):
    """Wrap the named methods of obj so that their cumulative time lands in the returned dict."""
    stages = {}

    def wrap(name, fn):
        def timed(*a, **k):
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                stages[name] = stages.get(name, 0.0) + time.perf_counter() - start
        return timed

    for name in names:
        setattr(obj, name, wrap(name, getattr(obj, name)))
    return stages


# ---------------------------------------------------------------- process measurement

def gnu_time_works():
    if not os.access(GNU_TIME, os.X_OK):
        return False
    r = subprocess.run([GNU_TIME, "-v", "true"], capture_output=True, text=True)
    return r.returncode == 0 and "Maximum resident set size" in r.stderr


def run_measured(cmd, workdir, env=None, timeout=None, mem_limit_bytes=None):
    """Run cmd; return wall seconds, peak RSS (MB), exit code, stdout, stderr, timed_out."""
    out_path, err_path = os.path.join(workdir, "stdout.txt"), os.path.join(workdir, "stderr.txt")
    time_path = os.path.join(workdir, "time.txt")
    use_gnu = gnu_time_works()
    if os.path.exists(time_path):
        os.remove(time_path)
    full = [GNU_TIME, "-v", "-o", time_path] + cmd if use_gnu else cmd

    def limit():
        if mem_limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (mem_limit_bytes, mem_limit_bytes))

    with open(out_path, "w") as fo, open(err_path, "w") as fe:
        start = time.perf_counter()
        proc = subprocess.Popen(full, stdout=fo, stderr=fe, env=env, start_new_session=True, preexec_fn=limit)
        rc, rusage, timed_out = wait_child(proc.pid, timeout)
        wall = time.perf_counter() - start
    rss_kb = None if timed_out else rusage.ru_maxrss  # unreaped children are not counted
    if use_gnu and os.path.exists(time_path):  # absent when the group was killed on timeout
        rss_kb = parse_gnu_time(time_path)
        rc = proc_exit_from_gnu_time(time_path, rc)
    return {"wall": wall, "rss_mb": rss_kb / 1024 if rss_kb else None, "rc": rc, "timed_out": timed_out,
            "stdout": read_text(out_path), "stderr": read_text(err_path)}


def wait_child(pid, timeout):
    """Wait for pid (killing its process group after timeout); return exit code, rusage, timed_out."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wpid, status, rusage = os.wait4(pid, os.WNOHANG if deadline else 0)
        if wpid == pid:
            return os.waitstatus_to_exitcode(status), rusage, False
        if deadline and time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            _, status, rusage = os.wait4(pid, 0)
            return os.waitstatus_to_exitcode(status), rusage, True
        time.sleep(0.2)


def parse_gnu_time(path):
    for line in read_text(path).splitlines():
        if "Maximum resident set size" in line:
            return int(line.rsplit(":", 1)[1])
    return None


def proc_exit_from_gnu_time(path, rc):
    """GNU time exits with the child's status; a signal shows up as 'Command terminated by signal'."""
    for line in read_text(path).splitlines():
        if line.startswith("Command terminated by signal"):
            return -int(line.rsplit(" ", 1)[1])
    return rc


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


# ---------------------------------------------------------------- tools

def run_ours(binary, target, kind, workdir, repeat, extra_args=()):
    """Run our CLI on a folder or .npy; return measurements and labels keyed like the ground truth."""
    result_path = os.path.join(workdir, "ours.json")
    cmd = [binary, "cluster"] + (["--array", target] if kind == "array" else [target])
    cmd += ["--out", result_path] + list(extra_args)
    if os.path.exists(result_path):
        os.remove(result_path)
    runs = [run_measured(cmd, workdir) for _ in range(repeat)]
    m = summarize(runs, cmd)
    if m["rc"] == 0:
        with open(result_path) as f:
            res = json.load(f)
        m["labels"] = {key_of(img["path"], target, kind): img["cluster"] for img in res["images"]}
    return m


def run_python(python, target, kind, workdir, repeat, init=None, fit=None, timeout=None, mem_limit=None):
    """Run the Python package in a child process; return measurements, labels and its own timings."""
    # Seeded: on wide inputs (folders) the pca package refits with sklearn's randomized solver.
    init = {"method": "pca", "params_pca": {"random_state": 0}, **(init or {})}
    spec = {"input": target, "kind": kind, "init": init, "fit": fit or {},
            "out": os.path.join(workdir, "python.json"), "tempdir": os.path.join(workdir, "pytmp")}
    spec_path = os.path.join(workdir, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    env = dict(os.environ, MPLBACKEND="Agg", TMPDIR=workdir)
    cmd = [python, os.path.abspath(__file__), "--py-child", spec_path]
    runs = []
    for _ in range(repeat):
        shutil.rmtree(spec["tempdir"], ignore_errors=True)  # cold thumbnail cache every run
        os.makedirs(spec["tempdir"])
        runs.append(run_measured(cmd, workdir, env=env, timeout=timeout, mem_limit_bytes=mem_limit))
    m = summarize(runs, cmd)
    if m["rc"] == 0:
        with open(spec["out"]) as f:
            res = json.load(f)
        paths = res["pathnames"]
        if kind == "array":  # rows are written to uuid-named files in row order
            paths = ["%s[%d]" % (target, i) for i in range(len(paths))]
        m["labels"] = {key_of(p, target, kind): lab for p, lab in zip(paths, res["labels"])}
        m["py_times"] = {"import_s": res["import_s"], "fit_s": res["fit_s"], **res["stages_s"]}
    shutil.rmtree(spec["tempdir"], ignore_errors=True)
    return m


def summarize(runs, cmd):
    """Median wall time and peak RSS over the runs; the first failing run decides the status."""
    bad = next((r for r in runs if r["rc"] != 0), None)
    r0 = bad or runs[0]
    rss = [r["rss_mb"] for r in runs if r["rss_mb"] is not None]
    return {"cmd": cmd, "rc": r0["rc"], "timed_out": r0["timed_out"], "stderr": r0["stderr"],
            "wall": statistics.median(r["wall"] for r in runs), "rss_mb": max(rss) if rss else None}


def key_of(path, target, kind):
    """Row index for arrays ('FILE.npy[ROW]'), path relative to the input folder otherwise."""
    if kind == "array":
        return int(path.rsplit("[", 1)[1].rstrip("]"))
    return os.path.relpath(os.path.abspath(path), os.path.abspath(target))


# ---------------------------------------------------------------- data

def digits_labels(digits_dir):
    with open(os.path.join(digits_dir, "labels.csv")) as f:
        return [(row["file"], int(row["label"])) for row in csv.DictReader(f)]


def build_digits_npy(digits_dir, path):
    import numpy as np
    from PIL import Image
    rows = [np.asarray(Image.open(os.path.join(digits_dir, name)).convert("L")).ravel()
            for name, _ in digits_labels(digits_dir)]
    np.save(path, np.stack(rows).astype(np.uint8))


def idx_path(fashion_dir, stem):
    for name in (stem, stem + ".gz"):
        if os.path.exists(os.path.join(fashion_dir, name)):
            return os.path.join(fashion_dir, name)
    return None


def read_idx(path):
    import numpy as np
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


FASHION_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def build_fashion_npy(fashion_dir, path):
    """Write train+test images as (70000, 784) uint8; return the labels in the same order."""
    import numpy as np
    tr_x, tr_y, te_x, te_y = (read_idx(idx_path(fashion_dir, s)) for s in FASHION_FILES)
    X = np.concatenate([tr_x, te_x]).reshape(-1, 28 * 28)
    np.save(path, X)
    return [int(v) for v in np.concatenate([tr_y, te_y])]


def missing_data(name, args):
    """A message when the input's data is absent, else None."""
    digits = os.path.join(args.data, "digits")
    if name in ("digits-array", "digits-folder"):
        if not os.path.isfile(os.path.join(digits, "labels.csv")):
            return "no %s/labels.csv" % digits
    elif name == "photos":
        if not os.path.isdir(os.path.join(args.data, "photos")):
            return "no folder %s/photos" % args.data
    elif name == "fashion":
        absent = [s for s in FASHION_FILES if idx_path(args.fashion_dir, s) is None]
        if absent:
            return "missing in %s: %s (apt-get install dataset-fashion-mnist)" % (args.fashion_dir, ", ".join(absent))
    return None


# ---------------------------------------------------------------- scoring and report

def score(m, truth):
    """Clusters found, noise count and ARI against truth (a dict key -> label) for a run."""
    from sklearn.metrics import adjusted_rand_score
    labels = m.get("labels")
    if labels is None:
        return
    m["n"] = len(labels)
    m["clusters"] = len({v for v in labels.values() if v != -1})
    m["noise"] = sum(1 for v in labels.values() if v == -1)
    if truth is not None:
        keys = [k for k in truth if k in labels]
        m["ari"] = adjusted_rand_score([truth[k] for k in keys], [labels[k] for k in keys])
        m["ari_n"] = len(keys)


def fmt(v, spec="%.2f"):
    return "—" if v is None else spec % v


def table_row(inp, tool, m):
    if m["rc"] != 0:
        status = "timeout" if m["timed_out"] else "error (exit %s)" % m["rc"]
        return "| %s | %s | %s | %s | %s | %s | %s |" % (inp, "—", tool, fmt(m["wall"], "%.1f"),
                                                        fmt(m["rss_mb"], "%.0f"), status, "—")
    clusters = str(m["clusters"]) + (" (+%d noise)" % m["noise"] if m["noise"] else "")
    ari = fmt(m.get("ari"), "%.3f") + (" (vs ours)" if m.get("ari_vs_ours") else "")
    return "| %s | %d | %s | %.1f | %s | %s | %s |" % (inp, m["n"], tool, m["wall"], fmt(m["rss_mb"], "%.0f"),
                                                     clusters, ari)


def report(rows, ratios, breakdowns, failures, meta):
    lines = ["# clustimage: Rust CLI vs Python clustimage 1.7.1", "", meta, "",
             "| input | n images | tool | wall time (s) | peak RSS (MB) | clusters found | ARI |",
             "|---|---|---|---|---|---|---|"]
    lines += [table_row(inp, tool, m) for inp, tool, m in rows]
    if ratios:
        lines += ["", "Speed-up (python wall time / our default wall time):", ""]
        lines += ["- %s: %.1fx" % (inp, r) for inp, r in ratios]
    if breakdowns:
        lines += ["", "Python clustimage, time inside the child (s): import, fit_transform, and its stages "
                  "(`cluster` includes `unique`):", "",
                  "| input | import | fit_transform | import_data | extract_feat | embedding (t-SNE) | cluster | unique |",
                  "|---|---|---|---|---|---|---|---|"]
        for inp, t in breakdowns:
            cols = [t.get(k) for k in ("import_s", "fit_s", "import_data", "extract_feat", "embedding", "cluster", "unique")]
            lines.append("| %s | %s |" % (inp, " | ".join(fmt(c, "%.1f") for c in cols)))
    if failures:
        lines += ["", "Failures:", ""]
        for inp, tool, m in failures:
            lines += ["- %s, %s: `%s` exited %s%s; stderr (last lines):" % (
                inp, tool, " ".join(m["cmd"]), m["rc"], " after the timeout" if m["timed_out"] else ""), "",
                "  ```", *["  " + l for l in m["stderr"].strip().splitlines()[-8:]], "  ```"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- per-input runs

class Bench:
    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.rows, self.ratios, self.breakdowns, self.failures = [], [], [], []

    def workdir(self, *parts):
        d = os.path.join(self.tmp, *parts)
        os.makedirs(d, exist_ok=True)
        return d

    def record(self, inp, tool, m, truth):
        score(m, truth)
        self.rows.append((inp, tool, m))
        if m["rc"] != 0:
            self.failures.append((inp, tool, m))
        log("[%s] %s: %.1f s, exit %s%s" % (inp, tool, m["wall"], m["rc"],
                                           ", ARI %.3f" % m["ari"] if m.get("ari") is not None else ""))

    def pair(self, inp, target, kind, truth, python=True, py_timeout=None, py_mem=None):
        """Our CLI then the Python package on one input with default settings."""
        ours = run_ours(self.args.binary, target, kind, self.workdir(inp, "ours"), self.args.repeat)
        self.record(inp, "ours", ours, truth)
        if not python:
            return ours, None
        py = run_python(self.args.python, target, kind, self.workdir(inp, "python"), self.args.repeat,
                        timeout=py_timeout, mem_limit=py_mem)
        self.python_row(inp, "python", py, truth, ours)
        return ours, py

    def python_row(self, inp, tool, py, truth, ours):
        if truth is None and py.get("labels") is not None and ours.get("labels") is not None:
            py["ari_vs_ours"] = True
            truth = ours["labels"]
        self.record(inp, tool, py, truth)
        if ours["rc"] == 0 and py["rc"] == 0:
            self.ratios.append((inp if tool == "python" else "%s (%s)" % (inp, tool), py["wall"] / ours["wall"]))
        if "py_times" in py:
            self.breakdowns.append(("%s (%s)" % (inp, tool), py["py_times"]))

    def digits_array(self):
        digits = os.path.join(self.args.data, "digits")
        npy = os.path.join(self.workdir("data"), "digits.npy")
        build_digits_npy(digits, npy)
        truth = {i: lab for i, (_, lab) in enumerate(digits_labels(digits))}
        self.pair("digits-array", npy, "array", truth)
        if not self.args.no_extras:
            for extra in EXTRA_SETTINGS:
                m = run_ours(self.args.binary, npy, "array", self.workdir("digits-array", "extra"),
                             self.args.repeat, extra)
                self.record("digits-array", "ours " + " ".join(extra), m, truth)

    def digits_folder(self):
        """Python reads folders in colour by default: 3 equal channels here and 3x the PCA input
        (~12 min on 2 cores). The default run gives it grayscale=True, our preprocessing;
        --python-colour adds its true default."""
        digits = os.path.join(self.args.data, "digits")
        truth = dict(digits_labels(digits))
        ours, _ = self.pair("digits-folder", digits, "folder", truth, python=False)
        variants = [("python grayscale=True", {"grayscale": True})]
        if self.args.python_colour:
            variants.append(("python", {}))
        for tool, init in variants:
            py = run_python(self.args.python, digits, "folder", self.workdir("digits-folder", tool.replace(" ", "-")),
                            self.args.repeat, init=init)
            self.python_row("digits-folder", tool, py, truth, ours)

    def photos(self):
        photos = os.path.join(self.args.data, "photos")
        ours, _ = self.pair("photos", photos, "folder", None)
        # Python's default reads colour; ours reads gray. Same preprocessing for a fair agreement score:
        py = run_python(self.args.python, photos, "folder", self.workdir("photos", "python-gray"),
                        self.args.repeat, init={"grayscale": True})
        self.python_row("photos", "python grayscale=True", py, None, ours)

    def fashion(self):
        npy = os.path.join(self.workdir("data"), "fashion.npy")
        labels = build_fashion_npy(self.args.fashion_dir, npy)
        mem = self.args.python_mem_gb * 2 ** 30 if self.args.python_mem_gb else 0.8 * total_ram()
        self.pair("fashion", npy, "array", dict(enumerate(labels)), python=self.args.fashion_python,
                  py_timeout=self.args.python_timeout, py_mem=int(mem))


def total_ram():
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def main(argv):
    args = parse_args(argv)
    if args.py_child:
        return py_child(args.py_child)
    if not os.access(args.binary, os.X_OK):
        log("no executable %s: build it with `cargo build --release` or pass --binary" % args.binary)
        return 2
    todo = []
    for name in args.only:
        why = missing_data(name, args)
        if why:
            log("skipping %s: data missing (%s)" % (name, why))
        else:
            todo.append(name)
    if not todo:
        log("nothing to run: no input has its data")
        return 0
    started = time.perf_counter()
    built = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(args.binary)))
    with tempfile.TemporaryDirectory(prefix="clustimage-bench-") as tmp:
        # A private copy, so that a rebuild during the run cannot mix two versions in one table.
        source_binary, args.binary = args.binary, shutil.copy2(args.binary, os.path.join(tmp, "clustimage"))
        bench = Bench(args, tmp)
        for name in todo:
            getattr(bench, name.replace("-", "_"))()
    total = time.perf_counter() - started
    meta = ("%s; binary %s built %s; %d CPU(s); repeat %d (median wall time); peak RSS from %s; "
            "whole run %.0f s." % (time.strftime("%Y-%m-%d %H:%M"), source_binary, built, os.cpu_count(),
                                   args.repeat, "GNU time -v" if gnu_time_works() else "wait4 rusage", total))
    text = report(bench.rows, bench.ratios, bench.breakdowns, bench.failures, meta)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
