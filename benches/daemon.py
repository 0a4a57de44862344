"""The daemon's costs against the Python package clustimage 1.7.1, which has no daemon.

For a folder of images this measures, in one run:

  cold     `clustimage serve` on an empty data folder: from start until the first model is
           fitted (scan, decode, features, store, PCA, clustering, index);
  restart  the daemon stopped with SIGTERM and started again on the same data folder: from
           start until it reports that the saved model still matches the library;
  add one  then one new image dropped into the watched folder: from the write until the
           daemon has indexed it and placed it in the model (no refit);
  python   the Python package's fit_transform on the same folder, which is what it costs
           to take any change into account there: it recomputes everything.

The daemon is observed through its log lines (`-v`), so the times include process start-up
and are what a user sees. Ratios are Python's time over ours.

Reproduce (from the repository root; see benches/README.md for the Python environment):
  cargo build --release
  .venv/bin/python benches/daemon.py --out benches/daemon-results.md
  .venv/bin/python benches/daemon.py --folder digits     # 5,000 small PNGs
"""

import argparse
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (reuses its Python runner and measurement helpers)


def parse_args(argv):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.normpath(os.path.join(root, "..", "shared", "data")))
    p.add_argument("--folder", default="photos", help="folder under --data to index (photos, digits)")
    p.add_argument("--binary", default=os.path.join(root, "target", "release", "clustimage"))
    p.add_argument("--python", default=sys.executable, help="interpreter with clustimage installed")
    p.add_argument("--no-python", action="store_true", help="measure the daemon only")
    p.add_argument("--timeout", type=float, default=1800, help="seconds before a step is abandoned")
    p.add_argument("--out", help="also write the Markdown report to this file")
    return p.parse_args(argv)


class Daemon:
    """A `clustimage serve` process whose log lines can be waited for."""

    def __init__(self, binary, root, data_dir):
        cmd = [binary, "-v", "serve", "--watch", root, "--data-dir", data_dir,
               "--quiet-ms", "100", "--refit-after-changes", "1000000", "--listen", "127.0.0.1:0"]
        env = dict(os.environ, RUST_LOG="clustimage=debug", NO_COLOR="1")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
        self.lines = queue.Queue()
        self.log = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, text, timeout):
        """Seconds since start when a log line containing `text` appeared."""
        deadline = time.perf_counter() + timeout
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError("no log line with %r; last lines:\n%s" % (text, "\n".join(self.log[-20:])))
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError("the daemon exited; last lines:\n%s" % "\n".join(self.log[-20:]))
            self.log.append(line)
            if text in line:
                return time.perf_counter()

    def stop(self, timeout):
        self.proc.send_signal(signal.SIGTERM)
        self.wait_for("store flushed", timeout)
        return self.proc.wait(timeout)


def measure_daemon(args, source, workdir):
    root = os.path.join(workdir, "library")
    shutil.copytree(source, root)
    data_dir = os.path.join(workdir, "data")
    n_files = sum(len(files) for _, _, files in os.walk(root))

    daemon = Daemon(args.binary, root, data_dir)
    cold = daemon.wait_for("refit finished", args.timeout) - daemon.started
    if daemon.stop(args.timeout) != 0:
        raise RuntimeError("the daemon did not exit cleanly")

    daemon = Daemon(args.binary, root, data_dir)
    restart = daemon.wait_for("no refit needed", args.timeout) - daemon.started
    time.sleep(0.5)
    extra = next(os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in sorted(fs))
    new_path = os.path.join(root, "new-" + os.path.basename(extra))
    with open(extra, "rb") as f:
        data = bytearray(f.read())
    data[-3] ^= 0x01  # new content: a copy would cost no decoding at all
    dropped = time.perf_counter()
    with open(new_path, "wb") as f:
        f.write(data)
    added = daemon.wait_for("indexed path=%s" % new_path, args.timeout) - dropped
    daemon.stop(args.timeout)
    store_mb = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(data_dir) for f in fs) / 2**20
    return {"files": n_files, "cold": cold, "add": added, "restart": restart, "store_mb": store_mb}


def main(argv):
    args = parse_args(argv)
    source = os.path.join(args.data, args.folder)
    if not os.path.isdir(source):
        compare.log("%s is missing: nothing to measure (see ../shared/data/README.md)" % source)
        return 0
    if not os.path.exists(args.binary):
        compare.log("%s is missing: run `cargo build --release` first" % args.binary)
        return 1
    with tempfile.TemporaryDirectory(prefix="clustimage-daemon-bench-") as workdir:
        compare.log("daemon on %s ..." % source)
        ours = measure_daemon(args, source, workdir)
        python = None
        if not args.no_python:
            compare.log("python clustimage on %s ..." % source)
            pydir = os.path.join(workdir, "py")
            os.makedirs(pydir)
            init = {"grayscale": True}
            m = compare.run_python(args.python, source, "folder", pydir, 1, init=init, timeout=args.timeout)
            python = m["wall"] if m["rc"] == 0 else None
            if python is None:
                compare.log("python failed: %s" % m["stderr"][-2000:])
    lines = [
        "# The daemon against a full recomputation",
        "",
        "Folder `%s`: %d files; data folder after the run: %.1f MB." % (args.folder, ours["files"], ours["store_mb"]),
        "",
        "| step | daemon | Python clustimage (full fit_transform, grayscale) | Python / daemon |",
        "|---|---|---|---|",
    ]
    for name, key in [("first start: index and fit everything", "cold"),
                      ("one image added", "add"),
                      ("restart, nothing changed", "restart")]:
        ratio = "%.1fx" % (python / ours[key]) if python else "-"
        py = "%.2f s" % python if python else "-"
        lines.append("| %s | %.2f s | %s | %s |" % (name, ours[key], py, ratio))
    lines += ["", "Python has no incremental path: every change costs it the full run."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
