"""What a snapshot costs, by format, against restic on the same tree states.

A tree of FILES files in DIRS directories is backed up four times: the first
run, an unchanged run, 1% of the files changed across every directory, and
1% changed in one directory. For each run it prints the bytes this tool wrote
under `_manifests/` (first format, then the paged format, each in a prefix of
its own on the in-memory S3 stand-in) and restic's repository growth (a local
repository, data included), with the wall time of each.

    python scripts/bench_snapshots.py [--files 100000 --dirs 100]

With --scale N it measures instead, for each format, an unchanged rerun of N
files (wall time, peak RSS, what the manifest directory holds after it, the
bytes written under `_manifests/`) and restoring one file from that snapshot
(its GETs). Both formats back up to one prefix, so the data is stored once:
the first paged run takes its index from the first format's snapshot.

With --prune N it measures what prune reads of N files x 30 daily snapshots,
1% changed a day (examples/retention_scale.rs): the first format's manifests
streamed through prune's reader, then the same history published paged on
the stand-in, with the bytes and GETs prune's references read of it.
"""
import argparse
import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading
import time

import boto3

from bench import tool_env
from bench_trees import STANDIN_KEY, spread_tree, standin

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
BINARY = TARGET / "release" / "s3-kms-sync"
STANDIN = TARGET / "release" / "examples" / "s3_standin"
BUCKET = "snapshots-bench"


def standin_s3(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def manifest_bytes(s3, prefix):
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/_manifests/"):
        total += sum(o["Size"] for o in page.get("Contents", []))
    return total


def dir_bytes(path):
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def change(tree, files, dirs, spread, generation):
    """1% of the files: one in a hundred, over every directory; or as many in one directory."""
    count = files // 100
    if spread:
        picked = [k * 100 + k % min(dirs, 100) for k in range(count)]
    else:
        picked = [k * dirs for k in range(count)]
    for i in picked:
        path = tree / f"d{i % dirs:04d}" / f"f{i:07d}"
        path.write_bytes(f"changed {generation} {i}\n".encode())


def timed(cmd, env):
    started = time.monotonic()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def sync_command(tree, prefix, manifests, fmt):
    return [str(BINARY), "sync", "--source-dir", str(tree), "--bucket", BUCKET, "--prefix", prefix,
            "--kms-key-id", STANDIN_KEY, "--manifest-dir", str(manifests), "--snapshot-format", fmt, "--json"]


class PeakUse:
    """The peak bytes used on the file system at `path` while the block
    runs, polled every 50 ms: on a tmpfs of its own, that counts the files a
    run has unlinked but still writes (its spool) as well as those listed."""

    def __init__(self, path):
        self.path, self.peak, self.done = path, 0, threading.Event()

    def used(self):
        stat = os.statvfs(self.path)
        return (stat.f_blocks - stat.f_bfree) * stat.f_frsize

    def __enter__(self):
        self.base = self.used()
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()
        return self

    def poll(self):
        while not self.done.wait(0.05):
            self.peak = max(self.peak, self.used() - self.base)

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, self.used() - self.base)


@contextlib.contextmanager
def own_tmpfs(path, size="4g"):
    """`path` as a tmpfs of its own, where the machine lets us mount one (as
    Lambda's /tmp is a file system of its own); else a plain directory."""
    path.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", str(path)], check=False)


def scale(files):
    """An unchanged rerun of `files` files, and one file restored, by format."""
    work = pathlib.Path(tempfile.mkdtemp(prefix="snapshots-scale-"))
    tree = work / "tree"
    dirs = max(files // 1000, 1)
    spread_tree(tree, files, dirs, lambda i: f"file {i}\n".encode())
    rows = []
    with standin(STANDIN, BUCKET) as endpoint:
        env, s3 = {**tool_env(endpoint), "RUST_LOG": "error"}, standin_s3(endpoint)
        prefix = "scale"
        for fmt in ("1", "2"):
            manifests = work / f"manifests-v{fmt}"
            with own_tmpfs(manifests) as mounted:
                with PeakUse(manifests) as first:
                    subprocess.run(sync_command(tree, prefix, manifests, fmt), env=env, check=True,
                                   stdout=subprocess.DEVNULL)
                before = manifest_bytes(s3, prefix)
                started = time.monotonic()
                with PeakUse(manifests) as rerun:
                    timed_run = subprocess.run(
                        ["/usr/bin/time", "-f", "%M"] + sync_command(tree, prefix, manifests, fmt),
                        env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                seconds = time.monotonic() - started
                rss_kib = int(timed_run.stderr.decode().strip().splitlines()[-1])
                written = manifest_bytes(s3, prefix) - before
                held = dir_bytes(manifests)
                peaks = (first.peak + first.base, rerun.peak + rerun.base) if mounted else None
            target = work / f"restored-v{fmt}"
            restored = subprocess.run(
                [str(BINARY), "restore", "--bucket", BUCKET, "--prefix", prefix, "--kms-key-id", STANDIN_KEY,
                 "--target", str(target), "--include", f"d{7 % dirs:04d}/f{7:07d}", "--json"],
                env=env, check=True, capture_output=True)
            gets = json.loads(restored.stdout)["requests"].get("GetObject", 0)
            rows.append((fmt, seconds, rss_kib, held, peaks, written, gets))
    print(f"{files:,} files in {dirs} directories: an unchanged rerun, and one file restored")
    print("Peak manifest directory: its own tmpfs's peak use during the first run and the rerun, what")
    print("Lambda's /tmp must hold (\"-\" where no tmpfs could be mounted).")
    print("| format | rerun s | peak RSS | manifest dir after | peak manifest dir, first run / rerun "
          "| bytes under _manifests/ | GETs to restore one file (data included) |")
    print("|---|---|---|---|---|---|---|")
    for fmt, seconds, rss_kib, held, peaks, written, gets in rows:
        name = "first" if fmt == "1" else "paged"
        peak = f"{peaks[0] / 2**20:.0f} / {peaks[1] / 2**20:.0f} MiB" if peaks else "-"
        print(f"| {name} | {seconds:.1f} | {rss_kib / 1024:.0f} MiB | {held / 2**20:.1f} MiB | {peak} "
              f"| {written:,} | {gets} |")
    shutil.rmtree(work, ignore_errors=True)


def merge(files):
    """A sharded run's merge of `files` records in 100 shards that write real
    pages (examples/merge_scale.rs), on the stand-in."""
    shards = 100
    with standin(STANDIN, "merge-scale") as endpoint:
        out = subprocess.run([str(STANDIN.parent / "merge_scale"), endpoint, str(files), str(shards)],
                             check=True, capture_output=True, text=True, env=tool_env(endpoint)).stdout
    print(f"The merge of a sharded run: {files:,} records in {shards} shards, each shard's pages real")
    print("```")
    print("\n".join(line for line in out.splitlines() if not line.startswith("{")))
    print("```")


def prune(files):
    """Prune's references over `files` x 30 daily snapshots, by format."""
    example = STANDIN.parent / "retention_scale"
    print(f"Prune over {files:,} files x 30 daily snapshots, 1% changed a day")
    print("```")
    first = subprocess.run([str(example), str(files), "30"], check=True, capture_output=True, text=True)
    print(first.stdout.strip())
    with standin(STANDIN, "example-backups") as endpoint:
        paged = subprocess.run([str(example), str(files), "30", "--paged", endpoint],
                               check=True, capture_output=True, text=True, env=tool_env(endpoint))
    print(paged.stdout.strip())
    print("```")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--dirs", type=int, default=100)
    parser.add_argument("--scale", type=int, help="measure an unchanged rerun of this many files instead")
    parser.add_argument("--merge", type=int, help="measure the merge of a sharded run of this many files instead")
    parser.add_argument("--prune", type=int, help="measure prune's reading of this many files x 30 snapshots instead")
    args = parser.parse_args()
    if args.prune:
        prune(args.prune)
        return
    if args.scale:
        scale(args.scale)
        return
    if args.merge:
        merge(args.merge)
        return
    work = pathlib.Path(tempfile.mkdtemp(prefix="snapshots-bench-"))
    tree = work / "tree"
    spread_tree(tree, args.files, args.dirs, lambda i: f"file {i}\n".encode())
    repo = work / "restic"
    restic_env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(repo)}
    subprocess.run(["restic", "init", "--quiet"], env=restic_env, check=True)
    rows = []
    with standin(STANDIN, BUCKET) as endpoint:
        env, s3 = tool_env(endpoint), standin_s3(endpoint)
        steps = [("first run", None), ("unchanged", None), ("1% across every directory", True),
                 ("1% in one directory", False)]
        for generation, (name, spread) in enumerate(steps):
            if spread is not None:
                change(tree, args.files, args.dirs, spread, generation)
            row = [name]
            for fmt in ("1", "2"):
                prefix = f"v{fmt}"
                manifests = work / f"manifests-v{fmt}"
                manifests.mkdir(exist_ok=True)
                before = manifest_bytes(s3, prefix)
                seconds = timed(sync_command(tree, prefix, manifests, fmt), env)
                row += [manifest_bytes(s3, prefix) - before, seconds]
            before = dir_bytes(repo)
            seconds = timed(["restic", "backup", "--quiet", str(tree)], restic_env)
            row += [dir_bytes(repo) - before, seconds]
            rows.append(row)
    print(f"{args.files:,} files in {args.dirs} directories")
    print("| run | first format: bytes | s | paged: bytes | s | restic growth | s | paged ÷ restic |")
    print("|---|---|---|---|---|---|---|---|")
    for name, v1, t1, v2, t2, restic, tr in rows:
        ratio = f"{v2 / restic:.2f}" if restic else "-"
        print(f"| {name} | {v1:,} | {t1:.1f} | {v2:,} | {t2:.1f} | {restic:,} | {tr:.1f} | {ratio} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
