"""Cold ingest, refit, restart and disk use of `clustimage serve`, with peers alongside.

Two parts, each run by default (`--only cold,scale` picks one):

cold   For each real folder under --data (photos/, neardup/): the daemon started on an
       empty data folder, timed from process start
         - until the scan has listed the folder ("scan finished"),
         - until every file is ingested (read, hashed, decoded, described, stored; the
           first refit starts only when nothing is left to ingest, so this is the
           "refit started" line),
         - until the first model is fitted and its index saved ("refit finished");
       against, on the same folder,
         - `czkawka_cli image` (similar images by perceptual hash) with an empty cache
           (HOME and XDG_CACHE_HOME point at a fresh temporary folder), then again with
           the cache it just filled;
         - the Python package clustimage 1.7.1, `fit_transform` with grayscale=True (our
           preprocessing), in a fresh process with a cold thumbnail cache.
       Our daemon is then restarted once on its filled data folder (until "no refit
       needed", see below), which is what czkawka's second, cached run is set against.
       Reported: wall time, peak RSS, average cores busy (CPU time / wall time), and the
       ratios peer / ours.

scale  Synthetic libraries of N image-like PNGs (--scale, default 10000,100000), made by a
       seeded generator: a few hundred smooth "prototypes" (Gaussian blobs plus a
       gradient) and, per image, one prototype shifted by a few pixels, with its own
       brightness, contrast and noise, so that there are clusters to find. For every N
       and every thumbnail side in --dims (default 128,32; 128 is the built-in default,
       other sides are given with `--dim N`, which is the same as `dim = "N"` in the
       `[cluster]` table of a --config file), the
       daemon is measured on an empty data folder:
         - cold ingest: the three times above, plus the refit's own `duration_s` (which
           the daemon logs) and the wall time from "refit started" to "refit finished"
           (which also covers building and saving the HNSW index);
         - restart: stopped with SIGTERM, started again on the same data folder, timed
           from process start until "saved model loaded", "scan finished", and the line
           that says the saved model matches the library ("no refit needed"): from then
           on queries are answered by the saved model. --restarts times; the median and
           the slowest are reported. The OS page cache is warm (the files were just
           written); a cold-cache restart would be slower;
         - disk: the data folder's allocated size (as `du`), split into the sled store,
           the model and the index, divided by N;
         - peak RSS (VmHWM from /proc) of the daemon during ingest, during ingest plus
           refit, and during a restart.
       `czkawka_cli image` runs on each synthetic library too (--no-scale-peers to skip).
       The Python package is not run at these sizes: at 5,000 20x20 PNGs it already needs
       about 10 GB and 4 minutes (BENCHMARKS.md).

The daemon runs with the defaults except `--quiet-ms 100` (files are copied or generated
just before it starts, and a file modified less than quiet-ms ago is put back in the
queue) and `--refit-after-changes 1000000` (so that the model timed is the first one
fitted on everything, not one of several fitted while files keep coming). `--workers`
is left at its default, one per core. It logs at debug level (`-v`), and every time is
taken when its log line reaches this script, so times include process start-up and are
what a user would see.

Reproduce (from the repository root; see benches/README.md for the environment):
  cargo build --release
  .venv/bin/python benches/ingest.py --out benches/ingest-results.md
  .venv/bin/python benches/ingest.py --only scale --scale 10000 --dims 128,32
"""

import argparse
import json
import os
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (process measurement and the Python runner)

COLD_FOLDERS = ["photos", "neardup"]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp")
FILES_PER_FOLDER = 1000  # synthetic libraries are split into folders of this many files


# ---------------------------------------------------------------- arguments

def parse_args(argv):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.normpath(os.path.join(root, "..", "shared", "data")),
                   help="folder holding photos/ and neardup/ (default: ../shared/data from the repository root)")
    p.add_argument("--binary", default=os.path.join(root, "target", "release", "clustimage"))
    p.add_argument("--python", default=sys.executable, help="interpreter with clustimage 1.7.1 installed")
    p.add_argument("--czkawka", default=shutil.which("czkawka_cli") or "czkawka_cli",
                   help="czkawka_cli binary (default: the one on PATH)")
    p.add_argument("--only", default="cold,scale", help="comma list of: cold, scale")
    p.add_argument("--folders", default=",".join(COLD_FOLDERS), help="folders under --data for the cold part")
    p.add_argument("--repeat", type=int, default=1, help="runs per tool and folder in the cold part (median)")
    p.add_argument("--no-python", action="store_true", help="skip the Python package")
    p.add_argument("--no-czkawka", action="store_true", help="skip czkawka_cli everywhere")
    p.add_argument("--no-scale-peers", action="store_true", help="skip czkawka_cli on the synthetic libraries")
    p.add_argument("--scale", default="10000,100000", help="comma list of synthetic library sizes")
    p.add_argument("--dims", default="128,32", help="comma list of thumbnail sides for the scale part")
    p.add_argument("--skip", default="",
                   help="comma list of N@DIM pairs of the scale part not to run, e.g. 100000@128")
    p.add_argument("--side", type=int, default=64, help="side of the synthetic PNGs in pixels")
    p.add_argument("--prototypes", type=int, default=300, help="prototypes behind the synthetic images")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic images")
    p.add_argument("--restarts", type=int, default=3, help="restarts measured per library")
    p.add_argument("--work", help="folder for the synthetic libraries, kept and reused between runs "
                                  "(default: a temporary folder, removed at the end)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds before a step is abandoned")
    p.add_argument("--out", help="also write the Markdown report to this file")
    args = p.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    if set(args.only) - {"cold", "scale"}:
        p.error("--only takes cold and/or scale")
    args.folders = [s.strip() for s in args.folders.split(",") if s.strip()]
    args.scale = [int(s) for s in args.scale.split(",") if s.strip()]
    args.dims = [int(s) for s in args.dims.split(",") if s.strip()]
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    return args


log = compare.log


# ---------------------------------------------------------------- the daemon

class Daemon:
    """A `clustimage serve` process: its log lines with their arrival times, and /proc samples."""

    def __init__(self, binary, root, data_dir, extra=()):
        self.cmd = [binary, "-v", "serve", "--watch", root, "--data-dir", data_dir,
                    "--quiet-ms", "100", "--refit-after-changes", "1000000",
                    "--listen", "127.0.0.1:0"] + list(extra)
        env = dict(os.environ, RUST_LOG="clustimage=debug", NO_COLOR="1")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.lines = queue.Queue()
        self.log = []  # (seconds since start, line)
        self.max_threads = 0
        self.exited = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._sample, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.put((time.perf_counter() - self.started, line.rstrip("\n")))
        self.lines.put(None)

    def _sample(self):
        while not self.exited.is_set():
            status = self.status()
            if status:
                self.max_threads = max(self.max_threads, status.get("Threads", 0))
            self.exited.wait(0.2)

    def status(self):
        """Fields of /proc/PID/status, sizes in kB as ints; {} once the process is gone."""
        fields = {}
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    key, _, value = line.partition(":")
                    parts = value.split()
                    if parts and parts[0].isdigit():
                        fields[key] = int(parts[0])
        except OSError:
            pass
        return fields

    def peak_rss_mb(self):
        hwm = self.status().get("VmHWM")
        return hwm / 1024 if hwm else None

    def cpu_s(self):
        """User plus system CPU seconds of the process (all its threads) so far."""
        try:
            with open("/proc/%d/stat" % self.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def wait_for(self, text, timeout):
        """Seconds since start when a log line containing `text` arrived, and the line."""
        deadline = time.perf_counter() + timeout
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError("no log line with %r after %.0f s; last lines:\n%s" % (text, timeout, self.tail()))
            try:
                item = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if item is None:
                raise RuntimeError("the daemon exited; last lines:\n%s" % self.tail())
            self.log.append(item)
            if "WARN" in item[1] or "ERROR" in item[1]:
                log("  daemon: " + item[1])
            if text in item[1]:
                return item

    def tail(self, n=20):
        return "\n".join(line for _, line in self.log[-n:])

    def last_before(self, text, before_s):
        """Arrival time of the last line containing `text` that came before `before_s`."""
        times = [t for t, line in self.log if text in line and t <= before_s]
        return times[-1] if times else None

    def stop(self, timeout):
        """SIGTERM, wait for the flush and the exit; seconds taken and peak RSS (wait4)."""
        sent = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        self.wait_for("store flushed", timeout)
        _, status, rusage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.exited.set()
        return {"stop_s": time.perf_counter() - sent, "rc": self.proc.returncode,
                "maxrss_mb": rusage.ru_maxrss / 1024}

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.exited.set()


def number_in(line, key):
    m = re.search(r"\b%s=\"?([0-9.]+)" % re.escape(key), line)
    return float(m.group(1)) if m else None


def cold_daemon(args, root, data_dir, extra, timeout):
    """Start on an empty data folder; times until scanned, ingested and fitted; then stop."""
    d = Daemon(args.binary, root, data_dir, extra)
    try:
        m = {"cmd": d.cmd}
        m["scan_s"], line = d.wait_for("scan finished", timeout)
        m["files"] = number_in(line, "files")
        m["ingested_s"], line = d.wait_for("refit started", timeout)
        m["images"] = number_in(line, "images")
        m["last_indexed_s"] = d.last_before("indexed path=", m["ingested_s"])
        m["ingest_rss_mb"] = d.peak_rss_mb()
        m["ingest_cpu_s"] = d.cpu_s()
        m["fitted_s"], line = d.wait_for("refit finished", timeout)
        m["fit_cpu_s"] = d.cpu_s()
        m["rss_mb"] = d.peak_rss_mb()
        m["refit_log_s"] = number_in(line, "duration_s")
        m["k"] = number_in(line, "k")
        m["refit_wall_s"] = m["fitted_s"] - m["ingested_s"]
        m["decoded"] = sum(1 for _, l in d.log if "indexed path=" in l and "decoded=true" in l)
        m["failed"] = sum(1 for _, l in d.log if "cannot index" in l)
        m["threads"] = d.max_threads
        m.update(d.stop(timeout))
        m["cores"] = m["fit_cpu_s"] / m["fitted_s"] if m["fit_cpu_s"] else None
        m["ingest_cores"] = m["ingest_cpu_s"] / m["ingested_s"] if m["ingest_cpu_s"] else None
        return m
    except BaseException:
        d.kill()
        raise


def restart_daemon(args, root, data_dir, extra, timeout):
    """Start on a filled data folder; times until the model is loaded and confirmed."""
    d = Daemon(args.binary, root, data_dir, extra)
    try:
        m = {}
        m["loaded_s"], _ = d.wait_for("saved model loaded", timeout)
        m["scan_s"], line = d.wait_for("scan finished", timeout)
        m["queued"] = number_in(line, "queued")
        m["ready_s"], _ = d.wait_for("no refit needed", timeout)
        m["rss_mb"] = d.peak_rss_mb()
        m["cpu_s"] = d.cpu_s()
        m.update(d.stop(timeout))
        return m
    except BaseException:
        d.kill()
        raise


def du_mb(path):
    """Allocated size of everything under path, in MiB (what `du` counts)."""
    if os.path.isfile(path):
        return os.lstat(path).st_blocks * 512 / 2 ** 20
    total = 0
    for dp, _, fs in os.walk(path):
        for f in fs:
            try:
                total += os.lstat(os.path.join(dp, f)).st_blocks * 512
            except OSError:
                pass
    return total / 2 ** 20


def dim_args(dim):
    """Serve arguments for a thumbnail side: none for the default (128), else `--dim`.
    (`[cluster] dim = "32"` in a --config file gives the same settings, `serve --check` shows.)"""
    return [] if dim == 128 else ["--dim", str(dim)]


# ---------------------------------------------------------------- peers

def czkawka_version(binary):
    try:
        r = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def run_czkawka(binary, folder, workdir, home=None, timeout=None):
    """`czkawka_cli image` on folder, with HOME/XDG dirs in `home` (fresh: an empty cache)."""
    home = home or os.path.join(workdir, "home")
    os.makedirs(home, exist_ok=True)
    env = dict(os.environ, HOME=home, XDG_CACHE_HOME=os.path.join(home, "cache"),
               XDG_CONFIG_HOME=os.path.join(home, "config"), XDG_DATA_HOME=os.path.join(home, "data"))
    out = os.path.join(workdir, "czkawka-result.txt")
    # Its defaults, except: every file size (the default skips files under 16 KB, which is
    # most small PNGs), an exit code of 0 when similar images are found, no listing on stdout.
    cmd = [binary, "image", "--directories", os.path.abspath(folder), "--file-to-save", out,
           "--minimal-file-size", "1", "--ignore-error-code-on-found", "--do-not-print-results"]
    m = compare.run_measured(cmd, workdir, env=env, timeout=timeout)
    m["wall"] = gnu_time_wall(workdir, m["wall"])
    m["cores"] = gnu_time_cores(workdir)
    m["cmd"] = cmd
    m["groups"], m["grouped"] = count_czkawka_groups(out)
    m["cache_mb"] = du_mb(home)
    return m


def count_czkawka_groups(path):
    """Groups of similar images in czkawka's text report, and the images in them (None, None
    when the report is missing)."""
    text = compare.read_text(path)
    if not text:
        return None, None
    sizes = [int(v) for v in re.findall(r"^Found (\d+) images which have similar friends", text, re.M)]
    return len(sizes), sum(sizes)


def gnu_time_wall(workdir, fallback):
    """Wall seconds from GNU time (centiseconds; compare.run_measured polls a child that has a
    timeout every 0.2 s, which would round the short runs here), else `fallback`."""
    for line in compare.read_text(os.path.join(workdir, "time.txt")).splitlines():
        if "Elapsed (wall clock) time" in line:
            parts = line.rsplit(": ", 1)[1].strip().split(":")
            try:
                return sum(float(p) * 60 ** i for i, p in enumerate(reversed(parts)))
            except ValueError:
                break
    return fallback


def gnu_time_cores(workdir):
    """Average cores busy, from GNU time's 'Percent of CPU this job got'."""
    for line in compare.read_text(os.path.join(workdir, "time.txt")).splitlines():
        if "Percent of CPU this job got" in line:
            value = line.rsplit(":", 1)[1].strip().rstrip("%")
            return int(value) / 100 if value.isdigit() else None
    return None


def run_python(args, folder, workdir):
    m = compare.run_python(args.python, folder, "folder", workdir, 1, init={"grayscale": True},
                           timeout=args.timeout)
    m["wall"] = gnu_time_wall(workdir, m["wall"])
    m["cores"] = gnu_time_cores(workdir)
    return m


# ---------------------------------------------------------------- synthetic libraries

def synth_path(work, n, args):
    return os.path.join(work, "synth-n%d-s%d-p%d-seed%d" % (n, args.side, args.prototypes, args.seed))


SHIFT = 3  # pixels an image may be shifted from its prototype, each way


def prototypes(count, side, seed):
    """`count` smooth gray fields in 0..1 (a few Gaussian blobs plus a linear gradient), each
    with a margin of SHIFT pixels around the side x side image cut from it."""
    import numpy as np
    rng = np.random.default_rng([seed, 0])
    full = side + 2 * SHIFT
    y, x = np.mgrid[0:full, 0:full] / (side - 1)
    out = np.empty((count, full, full))
    for i in range(count):
        field = rng.uniform(-0.6, 0.6) * (np.cos(a := rng.uniform(0, 2 * np.pi)) * x + np.sin(a) * y)
        for _ in range(rng.integers(3, 7)):
            cx, cy = rng.uniform(0, 1, 2)
            s = rng.uniform(0.06, 0.3)
            field += rng.uniform(-1, 1) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
        field -= field.min()
        out[i] = field / max(field.max(), 1e-9)
    return out


def synth_image(protos, i, seed):
    """Image i: its prototype, shifted up to 3 px, with its own contrast, brightness, noise."""
    import numpy as np
    rng = np.random.default_rng([seed, 1, i])
    p = rng.integers(len(protos))
    side = protos.shape[1] - 2 * SHIFT
    dy, dx = rng.integers(0, 2 * SHIFT + 1, 2)
    img = protos[p, dy:dy + side, dx:dx + side]
    img = 40 + 175 * img * rng.uniform(0.85, 1.15) + rng.uniform(-15, 15)
    img += rng.normal(0, 6, img.shape)
    return int(p), np.clip(img, 0, 255).astype(np.uint8)


def _write_chunk(job):
    from PIL import Image
    target, start, stop, count, side, seed = job
    protos = prototypes(count, side, seed)
    labels = []
    for i in range(start, stop):
        p, img = synth_image(protos, i, seed)
        rel = os.path.join("%03d" % (i // FILES_PER_FOLDER), "%06d.png" % i)
        os.makedirs(os.path.join(target, os.path.dirname(rel)), exist_ok=True)
        Image.fromarray(img, mode="L").save(os.path.join(target, rel), optimize=False, compress_level=6)
        labels.append((rel, p))
    return labels


def make_synthetic(path, n, args):
    """Write the library once; a marker file records what it holds so that it can be reused."""
    import multiprocessing
    marker = os.path.join(path, ".complete")
    spec = {"n": n, "side": args.side, "prototypes": args.prototypes, "seed": args.seed, "version": 1}
    if os.path.exists(marker):
        with open(marker) as f:
            if json.load(f) == spec:
                log("reusing %s" % path)
                return 0.0
    shutil.rmtree(path, ignore_errors=True)
    library = os.path.join(path, "library")
    os.makedirs(library)
    started = time.perf_counter()
    step = 2000
    jobs = [(library, s, min(s + step, n), args.prototypes, args.side, args.seed) for s in range(0, n, step)]
    with multiprocessing.Pool(os.cpu_count()) as pool:
        labels = [row for chunk in pool.map(_write_chunk, jobs) for row in chunk]
    with open(os.path.join(path, "labels.csv"), "w") as f:
        f.write("file,prototype\n")
        f.writelines("%s,%d\n" % row for row in labels)
    with open(marker, "w") as f:
        json.dump(spec, f)
    took = time.perf_counter() - started
    log("generated %d images in %.0f s" % (n, took))
    return took


# ---------------------------------------------------------------- the two parts

def count_images(folder):
    return sum(1 for _, _, fs in os.walk(folder) for f in fs if f.lower().endswith(IMAGE_EXTENSIONS))


def median_of(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def merge_runs(runs):
    """One row from repeated runs: the median of each time, the largest peak memory."""
    out = dict(runs[0])
    for key in runs[0]:
        if isinstance(runs[0][key], (int, float)) and not isinstance(runs[0][key], bool):
            out[key] = median_of(runs, key)
    for key in ("rss_mb", "ingest_rss_mb", "maxrss_mb"):
        if key in runs[0]:
            values = [r[key] for r in runs if r.get(key) is not None]
            out[key] = max(values) if values else None
    out["runs"] = len(runs)
    return out


def cold_part(args, tmp, results):
    have_czkawka = not args.no_czkawka and shutil.which(args.czkawka) is not None
    if not args.no_czkawka and not have_czkawka:
        log("czkawka_cli not found (%s): its rows are left out" % args.czkawka)
        results["notes"].append("czkawka_cli was not found (`%s`): its rows are missing." % args.czkawka)
    for name in args.folders:
        source = os.path.join(args.data, name)
        if not os.path.isdir(source):
            log("skipping %s: %s is missing (see ../shared/data/README.md)" % (name, source))
            results["notes"].append("`%s` skipped: the folder is missing under --data." % name)
            continue
        n = count_images(source)
        row = {"folder": name, "files": n}
        runs = []
        for r in range(args.repeat):
            work = os.path.join(tmp, "cold", name, "ours%d" % r)
            os.makedirs(work)
            library = os.path.join(work, "library")
            shutil.copytree(source, library)
            time.sleep(0.3)  # older than --quiet-ms
            log("[%s] daemon, run %d ..." % (name, r + 1))
            m = cold_daemon(args, library, os.path.join(work, "data"), [], args.timeout)
            m["data_mb"] = du_mb(os.path.join(work, "data"))
            again = restart_daemon(args, library, os.path.join(work, "data"), [], args.timeout)
            m["restart_s"], m["restart_rss_mb"] = again["ready_s"], again["rss_mb"]
            runs.append(m)
            log("[%s] daemon: scanned %.2f s, ingested %.2f s, fitted %.2f s, %.0f MB" % (
                name, m["scan_s"], m["ingested_s"], m["fitted_s"], m["rss_mb"] or 0))
            shutil.rmtree(work)
        row["ours"] = merge_runs(runs)
        if have_czkawka:
            cold, warm = [], []
            for r in range(args.repeat):
                work = os.path.join(tmp, "cold", name, "czkawka%d" % r)
                os.makedirs(work)
                log("[%s] czkawka_cli, run %d ..." % (name, r + 1))
                cold.append(run_czkawka(args.czkawka, source, work, timeout=args.timeout))
                warm.append(run_czkawka(args.czkawka, source, work, home=os.path.join(work, "home"),
                                        timeout=args.timeout))
                log("[%s] czkawka_cli: %.2f s cold, %.2f s warm, exit %s" % (
                    name, cold[-1]["wall"], warm[-1]["wall"], cold[-1]["rc"]))
            row["czkawka"] = merge_runs(cold)
            row["czkawka_warm"] = merge_runs(warm)
        if not args.no_python:
            runs = []
            for r in range(args.repeat):
                work = os.path.join(tmp, "cold", name, "python%d" % r)
                os.makedirs(work)
                log("[%s] python clustimage, run %d ..." % (name, r + 1))
                m = run_python(args, source, work)
                log("[%s] python: %.2f s, exit %s" % (name, m["wall"], m["rc"]))
                if m["rc"] != 0:
                    log(m["stderr"][-2000:])
                runs.append(m)
            row["python"] = merge_runs(runs)
        results["cold"].append(row)


def scale_part(args, tmp, results):
    work = args.work or os.path.join(tmp, "synthetic")
    os.makedirs(work, exist_ok=True)
    have_czkawka = not (args.no_czkawka or args.no_scale_peers) and shutil.which(args.czkawka) is not None
    for n in args.scale:
        path = synth_path(work, n, args)
        gen_s = make_synthetic(path, n, args)
        library = os.path.join(path, "library")
        results["generated"].append((n, gen_s))
        for dim in args.dims:
            if "%d@%d" % (n, dim) in args.skip:
                results["notes"].append("N = %d at dim %d was not run (`--skip`)." % (n, dim))
                continue
            run_dir = os.path.join(tmp, "scale-n%d-dim%d" % (n, dim))
            os.makedirs(run_dir)
            data_dir = os.path.join(run_dir, "data")
            extra = dim_args(dim)
            row = {"n": n, "dim": dim, "extra": extra}
            try:
                log("[N=%d dim=%d] cold ingest ..." % (n, dim))
                row["cold"] = cold_daemon(args, library, data_dir, extra, args.timeout)
                c = row["cold"]
                log("[N=%d dim=%d] scanned %.1f s, ingested %.1f s, fitted %.1f s (refit %.1f s wall, %s s logged), "
                    "peak %.0f MB" % (n, dim, c["scan_s"], c["ingested_s"], c["fitted_s"], c["refit_wall_s"],
                                      c["refit_log_s"], c["rss_mb"] or 0))
                row["disk"] = {"total_mb": du_mb(data_dir), "store_mb": du_mb(os.path.join(data_dir, "store")),
                               "model_mb": du_mb(os.path.join(data_dir, "model.bin")),
                               "index_mb": du_mb(os.path.join(data_dir, "index"))}
                row["restarts"] = []
                for r in range(args.restarts):
                    m = restart_daemon(args, library, data_dir, extra, args.timeout)
                    log("[N=%d dim=%d] restart %d: loaded %.2f s, scanned %.2f s, ready %.2f s, peak %.0f MB" % (
                        n, dim, r + 1, m["loaded_s"], m["scan_s"], m["ready_s"], m["rss_mb"] or 0))
                    row["restarts"].append(m)
            except (TimeoutError, RuntimeError) as error:
                log("[N=%d dim=%d] failed: %s" % (n, dim, error))
                row["error"] = str(error).splitlines()[0]
            shutil.rmtree(run_dir, ignore_errors=True)
            results["scale"].append(row)
        if have_czkawka:
            cz_dir = os.path.join(tmp, "czkawka-n%d" % n)
            os.makedirs(cz_dir)
            log("[N=%d] czkawka_cli ..." % n)
            m = run_czkawka(args.czkawka, library, cz_dir, timeout=args.timeout)
            log("[N=%d] czkawka_cli: %.1f s, exit %s" % (n, m["wall"], m["rc"]))
            results["scale_czkawka"].append((n, m))
            shutil.rmtree(cz_dir, ignore_errors=True)


# ---------------------------------------------------------------- report

def f(v, spec="%.2f"):
    return "—" if v is None else spec % v


def ratio(peer, ours):
    return "%.1fx" % (peer / ours) if peer and ours else "—"


def peer_status(m):
    if m["rc"] == 0:
        return None
    return "timeout" if m.get("timed_out") else "failed (exit %s)" % m["rc"]


def report(args, results, meta):
    L = ["# The daemon: cold ingest, refit, restart, disk", "", meta, ""]
    if results["cold"]:
        L += ["## Cold ingest of real folders", "",
              "Ours: `clustimage serve` from process start on an empty data folder. \"ingested\" is the "
              "moment the first refit starts (it waits until nothing is left to ingest); \"first model\" "
              "is \"refit finished\" (model fitted, HNSW index built, both saved). Peers run once from "
              "start to exit. Cores: CPU time / wall time. Ratio: peer / ours (wall against our first "
              "model, and for czkawka with its cache filled, against our restart; memory likewise). %s" % (
                  "Medians of %d runs; peak memory is the largest." % args.repeat if args.repeat > 1 else "One run each."),
              "",
              "| folder | files | tool | wall (s) | peak RSS (MB) | cores | wall ratio | memory ratio | notes |",
              "|---|---|---|---|---|---|---|---|---|"]
        for row in results["cold"]:
            o = row["ours"]
            L.append("| %s | %d | ours: scanned | %s | | | | | |" % (row["folder"], row["files"], f(o["scan_s"])))
            L.append("| | | ours: all files ingested | %s | %s | %s | | | %d decoded, %d failed |" % (
                f(o["ingested_s"]), f(o["ingest_rss_mb"], "%.0f"), f(o["ingest_cores"], "%.1f"),
                o["decoded"], o["failed"]))
            L.append("| | | **ours: first model** | **%s** | **%s** | %s | 1.0x | 1.0x | k = %s; refit %s s (logged %s s); up to %d threads; data folder %.1f MB |" % (
                f(o["fitted_s"]), f(o["rss_mb"], "%.0f"), f(o["cores"], "%.1f"), f(o["k"], "%.0f"),
                f(o["refit_wall_s"]), f(o["refit_log_s"]), o["threads"], o["data_mb"]))
            L.append("| | | ours: restart, nothing changed | %s | %s | | | | ready to query |" % (
                f(o["restart_s"]), f(o["restart_rss_mb"], "%.0f")))
            for key, label in (("czkawka", "czkawka_cli image, empty cache"),
                               ("czkawka_warm", "czkawka_cli image, its cache filled"),
                               ("python", "Python clustimage, grayscale=True")):
                m = row.get(key)
                if m is None:
                    continue
                status = peer_status(m)
                note = status or ""
                if key.startswith("czkawka") and m.get("groups") is not None:
                    note = "%d groups of similar images (%s images)" % (m["groups"], m.get("grouped"))
                if key == "czkawka" and m.get("cache_mb"):
                    note += "; cache %.0f KB" % (m["cache_mb"] * 1024)
                # A warm czkawka run is set against our restart, everything else against our first model.
                base_s, base_mb = ((o["restart_s"], o["restart_rss_mb"]) if key == "czkawka_warm"
                                   else (o["fitted_s"], o["rss_mb"]))
                L.append("| | | %s | %s | %s | %s | %s | %s | %s |" % (
                    label, f(m["wall"]), f(m["rss_mb"], "%.0f"), f(m.get("cores"), "%.1f"),
                    ratio(m["wall"], base_s) if not status else "—",
                    ratio(m["rss_mb"], base_mb) if not status else "—", note))
        L += [""]
    if results["scale"]:
        L += ["## Synthetic libraries", "",
              "%dx%d gray PNGs from %d prototypes (seed %d), in folders of %d. \"dim\" is the thumbnail "
              "side the features are computed at (128: the default, 16,384 pixels per image; others set "
              "with `--dim`, or `[cluster] dim = ...` in a `--config` file). Everything else at its default: "
              "method pca, agglomerative ward, silhouette over k = 3..25, HNSW index." % (
                  args.side, args.side, args.prototypes, args.seed, FILES_PER_FOLDER),
              "",
              "### Cold ingest and first refit", "",
              "| N | dim | scanned (s) | all ingested (s) | ingest rate (files/s) | first model (s) | refit wall (s) | refit logged `duration_s` | k | peak RSS ingest (MB) | peak RSS ingest+refit (MB) | cores | stop (s) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in results["scale"]:
            c = row.get("cold")
            if c is None:
                L.append("| %d | %d | failed: %s |" % (row["n"], row["dim"], row.get("error", "?")))
                continue
            rate = row["n"] / (c["ingested_s"] - c["scan_s"]) if c["ingested_s"] > c["scan_s"] else None
            L.append("| %d | %d | %s | %s | %s | **%s** | %s | %s | %s | %s | %s | %s | %s |" % (
                row["n"], row["dim"], f(c["scan_s"], "%.1f"), f(c["ingested_s"], "%.1f"), f(rate, "%.0f"),
                f(c["fitted_s"], "%.1f"), f(c["refit_wall_s"], "%.1f"), f(c["refit_log_s"], "%.1f"),
                f(c["k"], "%.0f"), f(c["ingest_rss_mb"], "%.0f"), f(c["rss_mb"], "%.0f"), f(c["cores"], "%.1f"),
                f(c["stop_s"], "%.1f")))
        L += ["", "### Restart and disk", "",
              "Restart: from process start, median of %d (slowest in brackets). Aim: ready in under 5 s "
              "at 100,000 images." % args.restarts, "",
              "| N | dim | model loaded (s) | scan done (s) | ready to query (s) | peak RSS restart (MB) | data folder (MB) | store / model / index (MB) | per image (KB) |",
              "|---|---|---|---|---|---|---|---|---|"]
        for row in results["scale"]:
            rs = row.get("restarts")
            if not rs:
                continue
            med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
            top = lambda k: max(r[k] for r in rs)  # noqa: E731
            d = row["disk"]
            L.append("| %d | %d | %.2f (%.2f) | %.2f (%.2f) | **%.2f** (%.2f) | %.0f | %.0f | %.0f / %.1f / %.1f | %.1f |" % (
                row["n"], row["dim"], med("loaded_s"), top("loaded_s"), med("scan_s"), top("scan_s"),
                med("ready_s"), top("ready_s"), max(r["rss_mb"] or 0 for r in rs), d["total_mb"],
                d["store_mb"], d["model_mb"], d["index_mb"], d["total_mb"] * 1024 / row["n"]))
        if results["scale_czkawka"]:
            L += ["", "### czkawka_cli image on the same libraries (empty cache)", "",
                  "| N | wall (s) | peak RSS (MB) | cores | groups of similar images | our first model, fastest dim (s) | ratio czkawka / ours |",
                  "|---|---|---|---|---|---|---|"]
            for n, m in results["scale_czkawka"]:
                ours = [r["cold"]["fitted_s"] for r in results["scale"] if r["n"] == n and r.get("cold")]
                best = min(ours) if ours else None
                status = peer_status(m)
                L.append("| %d | %s | %s | %s | %s | %s | %s |" % (
                    n, f(m["wall"], "%.1f") + (" (%s)" % status if status else ""), f(m["rss_mb"], "%.0f"),
                    f(m.get("cores"), "%.1f"),
                    "%s (%s images)" % (m["groups"], m.get("grouped")) if m.get("groups") is not None else "—",
                    f(best, "%.1f"),
                    ratio(m["wall"], best) if not status else "—"))
        if results["generated"]:
            L += ["", "Generating the libraries took: " + ", ".join(
                "N = %d: %s" % (n, "reused" if s == 0 else "%.0f s" % s) for n, s in results["generated"]) + "."]
        L += [""]
    if results["notes"]:
        L += ["## Not measured", ""] + ["- " + n for n in results["notes"]] + [""]
    return "\n".join(L)


def main(argv):
    args = parse_args(argv)
    if not os.access(args.binary, os.X_OK):
        log("no executable %s: build it with `cargo build --release` or pass --binary" % args.binary)
        return 2
    if not os.path.isdir(args.data):
        log("--data %s is missing: the cold part is skipped (see ../shared/data/README.md)" % args.data)
    started = time.perf_counter()
    built = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(args.binary)))
    results = {"cold": [], "scale": [], "scale_czkawka": [], "generated": [], "notes": []}
    with tempfile.TemporaryDirectory(prefix="clustimage-ingest-bench-") as tmp:
        # A private copy, so that a rebuild during the run cannot mix two versions.
        source_binary, args.binary = args.binary, shutil.copy2(args.binary, os.path.join(tmp, "clustimage"))
        if "cold" in args.only:
            cold_part(args, tmp, results)
        if "scale" in args.only:
            scale_part(args, tmp, results)
    cz = None if args.no_czkawka else czkawka_version(args.czkawka)
    meta = ("%s; binary `%s` built %s; %d CPU(s), %.0f GiB RAM; %s; Python clustimage via `%s`; peak RSS of "
            "peers from %s, of the daemon from /proc VmHWM; whole run %.0f s." % (
                time.strftime("%Y-%m-%d %H:%M"), os.path.basename(source_binary), built, os.cpu_count(),
                compare.total_ram() / 2 ** 30, cz or "no czkawka_cli", os.path.basename(args.python),
                "GNU time -v" if compare.gnu_time_works() else "wait4 rusage", time.perf_counter() - started))
    text = report(args, results, meta) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as fo:
            fo.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
