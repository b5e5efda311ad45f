"""The EFS-like row of the benchmark: an unchanged rerun over 20,000 files
on a FUSE passthrough that waits 0.5 ms on each metadata call
(scripts/slow_fs.py), beside a serial `find -printf` stat walk of the same
mount. Needs root (for /dev/fuse) and Debian's fuse3 and python3-fusepy.
"""
import json
import os
import subprocess
import time

from bench_trees import STANDIN_KEY as KEY
from bench_trees import spread_tree
from bench_trees import standin as running_standin

FILES = 20_000
DELAY_MS = 0.5


def make_tree(root):
    spread_tree(root, FILES, 200, lambda _: b"x" * 100)


def timed(cmd, env=None):
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if done.returncode != 0:
        raise SystemExit(f"{cmd[0]} exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    return time.perf_counter() - start, done.stdout


def bench_efs(work, root, ours, standin, env, repeats):
    tree, mount = work / "trees" / "efs", work / "efs-mount"
    make_tree(tree)
    mount.mkdir(parents=True, exist_ok=True)
    fs = subprocess.Popen(["/usr/bin/python3", str(root / "scripts" / "slow_fs.py"), str(tree), str(mount),
                           "--delay-ms", str(DELAY_MS)], start_new_session=True)
    try:
        with running_standin(standin, "efs") as endpoint:
            return unchanged_reruns(work, ours, env, endpoint, mount, repeats)
    finally:
        subprocess.run(["umount", str(mount)], stderr=subprocess.DEVNULL)
        fs.terminate()


def unchanged_reruns(work, ours, env, endpoint, mount, repeats):
    """A first run, then reruns of this tool beside find, on the mount."""
    for _ in range(100):
        if os.path.ismount(mount):
            break
        time.sleep(0.1)
    run_env = dict(env, AWS_ENDPOINT_URL=endpoint)
    manifests = work / "efs-manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    sync = [str(ours), "sync", "--source-dir", str(mount), "--bucket", "efs", "--prefix", "efs",
            "--kms-key-id", KEY, "--manifest-dir", str(manifests)]
    timed(sync, run_env)  # the first run uploads everything
    find = ["find", str(mount), "-printf", "%s %T@ %i\n"]
    out = {"s3-kms-sync unchanged rerun": [], "find -printf (serial stat walk)": []}
    for rep in range(repeats):
        seconds, stdout = timed(sync, run_env)
        summary = json.loads(stdout)
        if summary["skipped"] != FILES:
            raise SystemExit(f"the rerun skipped {summary['skipped']} of {FILES}")
        out["s3-kms-sync unchanged rerun"].append(seconds)
        seconds, _ = timed(find)
        out["find -printf (serial stat walk)"].append(seconds)
        print(f"  rep {rep} rerun {out['s3-kms-sync unchanged rerun'][-1]:.2f}s, find {seconds:.2f}s", flush=True)
    return {name: sorted(times)[len(times) // 2] for name, times in out.items()}


def efs_table(efs):
    base = efs["find -printf (serial stat walk)"]
    lines = [
        "",
        f"{FILES:,} files on a FUSE passthrough that waits {DELAY_MS} ms on each metadata call, as EFS",
        "answers (`scripts/slow_fs.py`; kernel attribute and entry caches off), medians:",
        "",
        "| run | wall time | vs find |",
        "|---|---:|---:|",
    ]
    for name, seconds in efs.items():
        lines.append(f"| {name} | {seconds:.2f} s | {seconds / base:.2f}x |")
    return lines


def efs_targets(efs):
    if not efs:
        return []
    ratio = efs["s3-kms-sync unchanged rerun"] / efs["find -printf (serial stat walk)"]
    return [("EFS-like: unchanged rerun at most 0.5x a serial stat walk", f"{ratio:.2f}x", ratio <= 0.5)]
