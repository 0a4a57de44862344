#!/usr/bin/env python3
"""A small Python client of the clustimage daemon's gRPC API (`clustimage.v1.Clustimage`).

It checks the daemon's health, asks for its status and for the representative image of
every cluster, and looks for the images most like one image: once by its path, and once by
uploading the image's bytes. It prints a short summary of each answer.

Setup (Python 3.11; the versions are the ones `.ci/run` installs):

    python3 -m venv .venv
    .venv/bin/pip install grpcio==1.85.1 grpcio-tools==1.85.1 grpcio-health-checking==1.85.1

Run, from the repository's root, against a daemon started there with
`cargo run --release -- serve --watch tests/fixtures/photos --data-dir target/quickstart-data`:

    .venv/bin/python examples/python_client.py --addr 127.0.0.1:50551 \
        --query "$PWD/tests/fixtures/photos/030_Garden_half.jpg"

Options:

    --addr HOST:PORT     the daemon (default 127.0.0.1:50551)
    --token-file FILE    the bearer token, when the daemon has one (first line of the file)
    --query PATH         the image to find similar images to: an absolute path on the
                         daemon's machine, under a watched folder. Its bytes are also read
                         here and uploaded, so give a file this machine can read too.
                         Default: the representative of the first cluster.
    -k N                 hits per query (default 5)
    --proto-root DIR     where `clustimage/v1/clustimage.proto` is (default: the repository's
                         `proto/`, found from this file's place)
    --generated DIR      use Python stubs generated beforehand into DIR instead of
                         generating them now (then grpcio-tools is not needed):
                         python -m grpc_tools.protoc -I proto --python_out DIR \
                             --grpc_python_out DIR proto/clustimage/v1/clustimage.proto
                         (empty `__init__.py` files are added to its package folders)
    --wait SECONDS       wait up to this long for a model and nothing pending (default 0)
    --check              check every answer; see below, with --expect-images N,
                         --expect-root DIR and --expect-nearest PATH

The stubs (`clustimage_pb2.py`, `clustimage_pb2_grpc.py`) are generated from the proto file
into a temporary folder at each run; nothing generated is kept.

`--check` turns the client into a test of the daemon, as CI runs it: every answer is also
checked, and the first thing that is wrong stops the run with a message saying what, and
exit status 1. The checks:

- the health service answers SERVING, for the server and for `clustimage.v1.Clustimage`,
  without a token;
- with `--token-file`: a call without the token, and one with a wrong token, are refused
  with UNAUTHENTICATED;
- the status has a model, nothing pending or failed, and `--expect-images N` images when
  given; with `--expect-root DIR`, the watched folders are exactly DIR;
- there is one representative per cluster, and each one's paths are under a watched folder;
- finding by path: the query's own image is not among the hits, the hits are sorted by
  distance (and so by p-value) and well-formed, and with `--expect-nearest PATH` the
  nearest hit holds PATH;
- uploading the query's bytes gives the same query id, finds the query's own image first
  at distance ~0, then the same hits as by path;
- for a JPEG query, so does a byte-different copy with the same pixels (a JPEG comment
  added), under another query id.

Exit status: 0 when everything went well, 1 when a call failed or a check did not hold,
2 for bad arguments.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.resources
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVICE_NAME = "clustimage.v1.Clustimage"
PROTO_FILE = "clustimage/v1/clustimage.proto"
DEFAULT_PROTO_ROOT = Path(__file__).resolve().parent.parent / "proto"
# Seconds to wait for the connection, and for a single call, before giving up.
CONNECT_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 30.0
# Distance below which two images count as the same picture: the same pixels give the same
# features, so distance 0 up to rounding (two versions of one photo are farther apart).
SAME_PICTURE_DISTANCE = 1e-4


class CheckFailed(Exception):
    """A `--check` assertion that did not hold; the message says what was expected."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# --- Stubs ---------------------------------------------------------------------------------


def generate_stubs(proto_root: Path, out_dir: Path) -> None:
    """Runs grpcio-tools' protoc on the API's proto file, writing the stubs to `out_dir`."""
    from grpc_tools import protoc  # imported here: not needed with --generated

    if not (proto_root / PROTO_FILE).is_file():
        sys.exit(f"error: {proto_root / PROTO_FILE} does not exist (see --proto-root)")
    # The well-known types (google/protobuf/*.proto) ship with grpcio-tools.
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{proto_root}",
            f"-I{well_known}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(proto_root / PROTO_FILE),
        ]
    )
    if status != 0:
        sys.exit(f"error: protoc failed on {proto_root / PROTO_FILE} (exit status {status})")


def import_stubs(stubs_dir: Path):
    """Imports `clustimage.v1.clustimage_pb2` and `_pb2_grpc` from `stubs_dir`."""
    # Regular packages (with __init__.py) placed first on the path, so that these stubs win
    # over the Python `clustimage` package from PyPI, should it be installed too.
    for package in (stubs_dir / "clustimage", stubs_dir / "clustimage" / "v1"):
        if package.is_dir():
            (package / "__init__.py").touch()
    sys.path.insert(0, str(stubs_dir))
    try:
        pb2 = importlib.import_module("clustimage.v1.clustimage_pb2")
        pb2_grpc = importlib.import_module("clustimage.v1.clustimage_pb2_grpc")
    except ImportError as error:
        sys.exit(f"error: cannot import the generated stubs from {stubs_dir}: {error}")
    return pb2, pb2_grpc


# --- Calls ---------------------------------------------------------------------------------


def read_token(path: Path) -> str:
    """The token is the file's first line, trimmed, as the daemon reads it."""
    lines = path.read_text().splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        sys.exit(f"error: {path} holds no token")
    return token


def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    """The call metadata carrying `token`, or none."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def health_status(channel: grpc.Channel, service: str = "") -> str:
    """The health service's answer for `service` ("" is the server as a whole)."""
    stub = health_pb2_grpc.HealthStub(channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=CALL_TIMEOUT_S)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


class Daemon:
    """The calls of `clustimage.v1.Clustimage` that this client makes, with the token."""

    def __init__(self, channel: grpc.Channel, pb2, pb2_grpc, token: str | None):
        self.pb2 = pb2
        self.stub = pb2_grpc.ClustimageStub(channel)
        self.metadata = bearer(token)

    def get_status(self, metadata=None):
        """GetStatus; `metadata` replaces the token's, to test refusals."""
        request = self.pb2.GetStatusRequest()
        metadata = self.metadata if metadata is None else metadata
        return self.stub.GetStatus(request, metadata=metadata, timeout=CALL_TIMEOUT_S)

    def list_unique(self):
        request = self.pb2.ListUniqueRequest()
        return self.stub.ListUnique(request, metadata=self.metadata, timeout=CALL_TIMEOUT_S)

    def find_by_path(self, path: str, k: int):
        request = self.pb2.FindSimilarRequest(path=path, k=k)
        return self.stub.FindSimilar(request, metadata=self.metadata, timeout=CALL_TIMEOUT_S)

    def find_by_bytes(self, image: bytes, k: int):
        request = self.pb2.FindSimilarRequest(image=image, k=k)
        return self.stub.FindSimilar(request, metadata=self.metadata, timeout=CALL_TIMEOUT_S)

    def wait_for_model(self, wait_s: float):
        """GetStatus, polled for up to `wait_s` seconds until there is a model and nothing
        is pending or refitting; returns the last status either way."""
        deadline = time.monotonic() + wait_s
        while True:
            status = self.get_status()
            settled = status.HasField("model") and status.pending == 0 and not status.refitting
            if settled or time.monotonic() >= deadline:
                return status
            time.sleep(0.5)


def with_jpeg_comment(jpeg: bytes) -> bytes | None:
    """The same JPEG with a comment segment after its start marker: other bytes, so another
    image id, but the same pixels. None when `jpeg` is not a JPEG."""
    if not jpeg.startswith(b"\xff\xd8"):
        return None
    comment = b"clustimage python_client copy"
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return jpeg[:2] + segment + jpeg[2:]


# --- Printing ------------------------------------------------------------------------------


def print_status(status) -> None:
    roots = ", ".join(
        root.path + ("" if root.available else " (unavailable)") for root in status.roots
    )
    print(f"watching: {roots}")
    print(
        f"files: {status.files}, images: {status.images}, pending: {status.pending}, "
        f"failed: {status.failed}, clusters: {status.clusters}"
    )
    if status.HasField("model"):
        model = status.model
        print(
            f"model: {model.method}, {model.images} images in {model.clusters} clusters, "
            f"fitted {model.age_s:.0f} s ago in {model.duration_s:.2f} s, "
            f"{status.changes_since_model} changes since"
        )
    else:
        print("model: none yet")


def print_unique(unique) -> None:
    print(f"\n{len(unique.clusters)} clusters, one representative each:")
    print(f"  {'cluster':>7}  {'size':>4}  representative")
    for entry in unique.clusters:
        print(f"  {entry.id:>7}  {entry.size:>4}  {entry.representative.path}")


def print_hits(title: str, response) -> None:
    print(f"\n{title} (query image {response.query_image_id[:12]}):")
    if not response.hits:
        print("  no hits")
        return
    print(f"  {'distance':>10}  {'p-value':>8}  {'cluster':>7}  path")
    for hit in response.hits:
        print(f"  {hit.distance:>10.4f}  {hit.p_value:>8.3g}  {hit.cluster:>7}  {hit.path}")


# --- Checks --------------------------------------------------------------------------------


def expect_code(call, code: grpc.StatusCode, what: str) -> None:
    """Runs `call` and checks that it fails with `code`."""
    try:
        call()
    except grpc.RpcError as error:
        check(
            error.code() == code,
            f"{what}: expected {code.name}, got {error.code().name}: {error.details()}",
        )
        return
    raise CheckFailed(f"{what}: expected {code.name}, but the call succeeded")


def check_auth(daemon: Daemon) -> None:
    expect_code(
        lambda: daemon.get_status(metadata=()),
        grpc.StatusCode.UNAUTHENTICATED,
        "GetStatus without a token",
    )
    expect_code(
        lambda: daemon.get_status(metadata=bearer("not-the-token")),
        grpc.StatusCode.UNAUTHENTICATED,
        "GetStatus with a wrong token",
    )
    print("check: calls without the token or with a wrong one are UNAUTHENTICATED")


def is_under(path: str, roots: list[str]) -> bool:
    """Whether the absolute `path` lies under one of `roots` (all resolved)."""
    resolved = os.path.realpath(path)
    return any(os.path.commonpath([resolved, root]) == root for root in roots)


def check_status(status, expect_images: int | None, expect_root: str | None) -> None:
    check(status.HasField("model"), "status: no model was fitted (see --wait)")
    check(status.pending == 0, f"status: {status.pending} files still pending")
    check(
        status.failed == 0,
        f"status: {status.failed} files failed: {dict(status.failed_by_kind)}",
    )
    if expect_images is not None:
        check(
            status.images == expect_images,
            f"status: expected {expect_images} images, got {status.images}",
        )
        check(
            status.model.images == expect_images,
            f"status: expected a model of {expect_images} images, got {status.model.images}",
        )
    check(status.clusters > 0, "status: the model has no clusters")
    check(
        status.clusters == status.model.clusters,
        f"status: {status.clusters} clusters, but the model has {status.model.clusters}",
    )
    check(all(root.available for root in status.roots), "status: a watched folder is missing")
    if expect_root is not None:
        roots = [os.path.realpath(root.path) for root in status.roots]
        check(
            roots == [os.path.realpath(expect_root)],
            f"status: expected the watched folder {expect_root}, got {roots}",
        )
    print(f"check: status has a model, {status.images} images, nothing pending or failed")


def check_unique(unique, status) -> None:
    roots = [os.path.realpath(root.path) for root in status.roots]
    check(
        len(unique.clusters) == status.clusters,
        f"ListUnique: {len(unique.clusters)} representatives for {status.clusters} clusters",
    )
    ids = [entry.id for entry in unique.clusters]
    check(ids == sorted(set(ids)), f"ListUnique: cluster ids not distinct and sorted: {ids}")
    sizes = [entry.size for entry in unique.clusters]
    check(all(size > 0 for size in sizes), f"ListUnique: an empty cluster: sizes {sizes}")
    check(
        sizes == sorted(sizes, reverse=True),
        f"ListUnique: clusters not largest first: sizes {sizes}",
    )
    check(
        sum(sizes) <= status.images,
        f"ListUnique: {sum(sizes)} members in all, more than the {status.images} images",
    )
    for entry in unique.clusters:
        representative = entry.representative
        check(
            len(representative.image_id) == 64,
            f"ListUnique: cluster {entry.id}: bad image id {representative.image_id!r}",
        )
        check(
            list(representative.paths) == sorted(representative.paths)
            and representative.path == representative.paths[0],
            f"ListUnique: cluster {entry.id}: path {representative.path} is not the first of "
            f"the sorted paths {list(representative.paths)}",
        )
        for path in representative.paths:
            check(
                is_under(path, roots),
                f"ListUnique: cluster {entry.id}: {path} is not under a watched folder {roots}",
            )
    print(f"check: {len(unique.clusters)} representatives, all under the watched folders")


def check_hits(response, what: str) -> None:
    """What holds for the hits of any query."""
    distances = [hit.distance for hit in response.hits]
    check(response.hits, f"{what}: no hits")
    check(len(response.query_image_id) == 64, f"{what}: bad query id {response.query_image_id!r}")
    check(
        distances == sorted(distances),
        f"{what}: hits not sorted by distance: {distances}",
    )
    check(
        all(math.isfinite(d) and d >= 0 for d in distances),
        f"{what}: negative or non-finite distances: {distances}",
    )
    p_values = [hit.p_value for hit in response.hits]
    check(
        p_values == sorted(p_values),
        f"{what}: p-values do not grow with the distance: {p_values}",
    )
    for hit in response.hits:
        check(0.0 <= hit.p_value <= 1.0, f"{what}: p-value {hit.p_value} of {hit.path}")
        check(hit.cluster >= -1, f"{what}: cluster {hit.cluster} of {hit.path}")
        check(
            hit.paths and hit.path == sorted(hit.paths)[0],
            f"{what}: hit path {hit.path} is not the first of {list(hit.paths)}",
        )


def check_by_path(response, query: str, k: int, expect_nearest: str | None) -> None:
    what = f"FindSimilar(path={query})"
    check_hits(response, what)
    check(len(response.hits) <= k, f"{what}: {len(response.hits)} hits for k={k}")
    for hit in response.hits:
        check(
            hit.image_id != response.query_image_id and query not in hit.paths,
            f"{what}: the query's own image {hit.path} is a hit",
        )
    if expect_nearest is not None:
        nearest = response.hits[0]
        check(
            expect_nearest in nearest.paths,
            f"{what}: expected {expect_nearest} nearest, got {nearest.path} "
            f"at {nearest.distance:.4f}",
        )
    print(f"check: by path: {len(response.hits)} hits, sorted, the query not among them")


def check_upload_finds_query(uploaded, by_path, query: str, what: str) -> None:
    """An uploaded picture of the query finds the query's own image first, at distance ~0,
    then the hits of the query by path."""
    check_hits(uploaded, what)
    first = uploaded.hits[0]
    check(
        first.image_id == by_path.query_image_id and query in first.paths,
        f"{what}: expected the query itself first, got {first.path} at {first.distance:.4f}",
    )
    check(
        first.distance <= SAME_PICTURE_DISTANCE,
        f"{what}: the query itself is at distance {first.distance}, expected ~0",
    )
    got = [(hit.image_id, round(hit.distance, 6)) for hit in uploaded.hits[1:]]
    expected = [(hit.image_id, round(hit.distance, 6)) for hit in by_path.hits[: len(got)]]
    check(got == expected, f"{what}: hits after the query {got} differ from the path's {expected}")


def check_same_bytes(by_bytes, by_path, query: str) -> None:
    what = f"FindSimilar(image=bytes of {query})"
    check(
        by_bytes.query_image_id == by_path.query_image_id,
        f"{what}: query id {by_bytes.query_image_id} differs from the path's "
        f"{by_path.query_image_id}",
    )
    check_upload_finds_query(by_bytes, by_path, query, what)
    print("check: the query's bytes find the query itself first, at ~0, then the path's hits")


def check_copy(by_copy, by_path, query: str) -> None:
    what = f"FindSimilar(image=a copy of {query} with a JPEG comment)"
    check(
        by_copy.query_image_id != by_path.query_image_id,
        f"{what}: the copy has the query's own image id",
    )
    check_upload_finds_query(by_copy, by_path, query, what)
    print("check: a same-pixel copy finds the query itself first, at ~0, then the path's hits")


# --- Main ----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Query the clustimage daemon over gRPC; see the module docstring.",
    )
    parser.add_argument("--addr", default="127.0.0.1:50551", help="HOST:PORT of the daemon")
    parser.add_argument(
        "--token-file", type=Path, metavar="FILE", help="file whose first line is the token"
    )
    parser.add_argument(
        "--query",
        metavar="PATH",
        help="absolute path of the query image (default: a representative)",
    )
    parser.add_argument("-k", type=int, default=5, help="hits per query (default 5)")
    parser.add_argument(
        "--proto-root",
        type=Path,
        default=DEFAULT_PROTO_ROOT,
        metavar="DIR",
        help="folder of the proto files",
    )
    parser.add_argument(
        "--generated", type=Path, metavar="DIR", help="folder of stubs generated beforehand"
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for a model and no pending files (default 0)",
    )
    parser.add_argument("--check", action="store_true", help="check every answer (for CI)")
    parser.add_argument("--expect-images", type=int, metavar="N", help="with --check")
    parser.add_argument("--expect-root", metavar="DIR", help="with --check")
    parser.add_argument("--expect-nearest", metavar="PATH", help="with --check and --query")
    args = parser.parse_args()
    if not 1 <= args.k <= 1000:
        parser.error("-k must be between 1 and 1000")
    if args.query is not None and not os.path.isabs(args.query):
        parser.error("--query must be an absolute path (the daemon resolves it, not the client)")
    expectations = (args.expect_images, args.expect_root, args.expect_nearest)
    if not args.check and any(value is not None for value in expectations):
        parser.error("--expect-* options need --check")
    if args.expect_nearest is not None and args.query is None:
        parser.error("--expect-nearest needs --query")
    return args


def run(args: argparse.Namespace, stubs_dir: Path) -> None:
    pb2, pb2_grpc = import_stubs(stubs_dir)
    token = read_token(args.token_file) if args.token_file else None

    with grpc.insecure_channel(args.addr) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT_S)
        except grpc.FutureTimeoutError:
            sys.exit(f"error: no gRPC server answers at {args.addr}")
        daemon = Daemon(channel, pb2, pb2_grpc, token)

        # The health service needs no token.
        server_health = health_status(channel)
        api_health = health_status(channel, SERVICE_NAME)
        print(f"health: server {server_health}, {SERVICE_NAME} {api_health}")
        if args.check:
            check(server_health == "SERVING", f"health: server is {server_health}")
            check(api_health == "SERVING", f"health: {SERVICE_NAME} is {api_health}")
            if token:
                check_auth(daemon)

        status = daemon.wait_for_model(args.wait)
        print_status(status)
        if args.check:
            check_status(status, args.expect_images, args.expect_root)
        if not status.HasField("model"):
            print("no model yet: nothing to list or find (try --wait)")
            return

        unique = daemon.list_unique()
        print_unique(unique)
        if args.check:
            check_unique(unique, status)

        query = args.query
        if query is None:
            if not unique.clusters:
                print("no representative to take as the query: give --query")
                return
            query = unique.clusters[0].representative.path
        by_path = daemon.find_by_path(query, args.k)
        print_hits(f"nearest to {query}", by_path)
        if args.check:
            check_by_path(by_path, query, args.k, args.expect_nearest)

        try:
            image = Path(query).read_bytes()
        except OSError as error:
            # The daemon may be on another machine: its paths need not exist here.
            check(not args.check, f"cannot read {query} here to upload it: {error}")
            print(f"\nnot uploading {query}: {error.strerror}")
            return
        by_bytes = daemon.find_by_bytes(image, args.k)
        print_hits(f"nearest to the uploaded bytes of {Path(query).name}", by_bytes)
        if args.check:
            check_same_bytes(by_bytes, by_path, query)

        copy = with_jpeg_comment(image)
        if args.check and copy is not None:
            by_copy = daemon.find_by_bytes(copy, args.k)
            print_hits(f"nearest to a same-pixel copy of {Path(query).name}", by_copy)
            check_copy(by_copy, by_path, query)
        elif args.check:
            print(f"check: {query} is not a JPEG; the same-pixel copy check is skipped")


def main() -> int:
    args = parse_args()
    try:
        if args.generated is not None:
            run(args, args.generated)
        else:
            with tempfile.TemporaryDirectory(prefix="clustimage-stubs-") as stubs_dir:
                generate_stubs(args.proto_root, Path(stubs_dir))
                run(args, Path(stubs_dir))
    except CheckFailed as failure:
        print(f"check failed: {failure}", file=sys.stderr)
        return 1
    except grpc.RpcError as error:
        print(f"error: call failed: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    if args.check:
        print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
