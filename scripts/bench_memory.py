"""Memory as the tree grows: peak RSS of this tool's first run and of an
unchanged rerun over 10,000, 100,000 and 1,000,000 empty files, against the
in-memory S3 stand-in (examples/s3_standin.rs, no added latency), so that
the endpoint's speed does not stretch the runs. Empty files leave only the
bookkeeping: the walk, the listing, the last manifest's index and the
records.
"""
import json
import subprocess
import time

from bench_trees import STANDIN_KEY as KEY
from bench_trees import spread_tree
from bench_trees import standin as running_standin



def make_tree(root, files):
    spread_tree(root, files, 1000, lambda _: b"")


def peak_run(cmd, env, report):
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(report), *cmd], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{cmd[1]} exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    summary = json.loads(done.stdout)
    return {"seconds": seconds, "rss_mib": int(report.read_text().split()[-1]) / 1024,
            "status": summary["status"], "skipped": summary["skipped"]}


def memory_scaling(work, ours, standin, env, sizes):
    """Peak RSS (MiB) and wall time by tree size and phase."""
    out = {}
    for files in sizes:
        tree = work / "trees" / f"empty-{files}"
        make_tree(tree, files)
        manifests = work / f"memory-manifests-{files}"
        manifests.mkdir(parents=True, exist_ok=True)
        for old in manifests.iterdir():
            old.unlink()
        with running_standin(standin, "memory") as endpoint:
            run_env = dict(env, AWS_ENDPOINT_URL=endpoint)
            cmd = [str(ours), "sync", "--source-dir", str(tree), "--bucket", "memory", "--prefix", "m",
                   "--kms-key-id", KEY, "--manifest-dir", str(manifests)]
            for phase in ["initial", "unchanged"]:
                entry = peak_run(cmd, run_env, work / "memory-time.txt")
                out[f"{files}|{phase}"] = entry
                print(f"  {files:>9,} {phase:9} {entry['seconds']:7.1f}s  peak RSS {entry['rss_mib']:.1f} MiB", flush=True)
    return out


def memory_table(memory):
    sizes = sorted({int(key.split("|")[0]) for key in memory})
    lines = [
        "",
        "Peak RSS by tree size (empty files, against the in-memory stand-in; one run each):",
        "",
        "| files | first run | peak RSS | unchanged rerun | peak RSS |",
        "|---:|---:|---:|---:|---:|",
    ]
    for files in sizes:
        first, again = memory[f"{files}|initial"], memory[f"{files}|unchanged"]
        lines.append(f"| {files:,} | {first['seconds']:.1f} s | {first['rss_mib']:.1f} MiB | "
                     f"{again['seconds']:.1f} s | {again['rss_mib']:.1f} MiB |")
    return lines


def memory_targets(memory):
    rows = []
    small, large = memory.get("10000|unchanged"), memory.get("100000|unchanged")
    if small and large:
        ratio = large["rss_mib"] / small["rss_mib"]
        rows.append(("unchanged rerun: peak RSS at 100,000 files at most 1.5x that at 10,000",
                     f"{ratio:.2f}x", ratio <= 1.5))
    million = memory.get("1000000|unchanged")
    if million:
        rows.append(("unchanged rerun at 1,000,000 files: within half the template's 1,024 MB",
                     f"{million['rss_mib']:.0f} MiB", million["rss_mib"] <= 512))
    return rows
