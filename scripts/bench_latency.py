"""The latency row of the benchmark: 5,000 small files uploaded to an S3
stand-in that answers each request after 30 ms (examples/s3_standin.rs),
by this tool, s5cmd and aws s3 sync, each with its default settings.

moto cannot be the endpoint here: it answers a few hundred requests a
second, so every client would measure moto. The stand-in answers any number
of requests at once, so files in flight are what each client's rate shows.
"""
import os
import statistics
import subprocess
import time

from bench_trees import STANDIN_KEY as KEY
from bench_trees import spread_tree
from bench_trees import standin as running_standin

FILES = 5000
DELAY_MS = 30
TOOLS = ["s3-kms-sync", "s5cmd", "aws s3 sync"]


def make_tree(root):
    spread_tree(root, FILES, 50, lambda _: os.urandom(1024))


def commands(ours, s5cmd, tree, endpoint, prefix, manifests):
    return {
        "s3-kms-sync": [str(ours), "sync", "--source-dir", str(tree), "--bucket", "latency", "--prefix", prefix,
                        "--kms-key-id", KEY, "--manifest-dir", str(manifests)],
        "s5cmd": [str(s5cmd), "--endpoint-url", endpoint, "cp", "--sse", "aws:kms", "--sse-kms-key-id", KEY,
                  f"{tree}/*", f"s3://latency/{prefix}/"],
        "aws s3 sync": ["/usr/bin/aws", "s3", "sync", str(tree), f"s3://latency/{prefix}", "--sse", "aws:kms",
                        "--sse-kms-key-id", KEY, "--endpoint-url", endpoint, "--no-progress", "--only-show-errors"],
    }


# Without the delay: how fast each client can go at all on this machine,
# where it shares the cores with the stand-in.
CEILING = ["s3-kms-sync", "s5cmd"]


def bench_latency(work, ours, standin, s5cmd, env, repeats):
    """Median seconds and files/s per tool at DELAY_MS, and, under
    "no delay", of this tool and s5cmd with none."""
    tree = work / "trees" / "latency"
    make_tree(tree)
    manifests = work / "latency-manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    out = timed_uploads(standin, DELAY_MS, TOOLS, ours, s5cmd, tree, env, manifests, repeats, "")
    out["no delay"] = timed_uploads(standin, 0, CEILING, ours, s5cmd, tree, env, manifests, repeats, "fast-")
    return out


def timed_uploads(standin, delay_ms, tools, ours, s5cmd, tree, env, manifests, repeats, label):
    with running_standin(standin, "latency", delay_ms) as endpoint:
        env = dict(env, AWS_ENDPOINT_URL=endpoint)
        seconds = {tool: [] for tool in tools}
        for rep in range(repeats):
            for tool in tools:
                cmd = commands(ours, s5cmd, tree, endpoint, f"{label}{tool.split()[0]}-{rep}", manifests)[tool]
                start = time.perf_counter()
                done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                elapsed = time.perf_counter() - start
                if done.returncode != 0:
                    raise SystemExit(f"{tool} exited {done.returncode}: {done.stderr.decode()[-2000:]}")
                seconds[tool].append(elapsed)
                print(f"  rep {rep} {delay_ms:2} ms {tool:12} {elapsed:6.2f}s  {FILES / elapsed:7.0f} files/s",
                      flush=True)
    return {tool: {"seconds": statistics.median(s), "files_per_s": FILES / statistics.median(s)}
            for tool, s in seconds.items()}


def latency_table(latency):
    s5 = latency["s5cmd"]["files_per_s"]
    lines = [
        "",
        f"{FILES:,} files of 1 KiB uploaded to an in-memory S3 stand-in that answers",
        f"every request after {DELAY_MS} ms (`examples/s3_standin.rs`), each tool with its",
        "default settings (this tool: 256 files in flight; s5cmd: 256 workers):",
        "",
        "| tool | wall time | files/s | vs s5cmd |",
        "|---|---:|---:|---:|",
    ]
    for tool in TOOLS:
        entry = latency[tool]
        lines.append(f"| {tool} | {entry['seconds']:.2f} s | {entry['files_per_s']:.0f} | "
                     f"{entry['files_per_s'] / s5:.2f}x |")
    ceiling = latency.get("no delay")
    if ceiling:
        for tool in CEILING:
            entry = ceiling[tool]
            lines.append(f"| {tool}, no delay | {entry['seconds']:.2f} s | {entry['files_per_s']:.0f} | "
                         f"{entry['files_per_s'] / s5:.2f}x |")
        best = ceiling["s3-kms-sync"]["files_per_s"] / s5
        lines += [
            "",
            "With no delay at all (the stand-in answering at once, client and stand-in",
            f"sharing the two cores), this tool's default run reaches {best:.2f}x s5cmd's rate at",
            f"{DELAY_MS} ms: on this machine the CPU, not the files in flight, sets the pace, and",
            f"a run at {DELAY_MS} ms also waits out its own round trips one after another (the lock,",
            "the manifest folder, the listing, the manifest and the release).",
        ]
    return lines
