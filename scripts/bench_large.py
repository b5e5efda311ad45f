"""Large files at full bandwidth: this tool against s5cmd and `aws s3 cp`,
each with its default settings, on the S3 stand-in capped at 50 MB/s per
connection (what one S3 connection carries in practice, and what makes
parts in parallel matter). Rows: one large file (4 GiB by default) and
200 files of 20 MiB, each uploaded and then restored; times as ratios to
s5cmd's in the same run, and this tool's peak RSS beside its memory budget.

    python scripts/bench_large.py [--big-mib 4096] [--files 200] [--file-mib 20]
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import urllib.request

from bench import S5CMD, tool_env
from bench_trees import STANDIN_KEY, standin

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
OURS = TARGET / "release" / "s3-kms-sync"
STANDIN = TARGET / "release" / "examples" / "s3_standin"
BUCKET = "large-bench"
RATE_MB_S = 50
BUDGET = "256MiB"


def write_random(path, size):
    """`size` bytes that do not compress, written a MiB at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as out:
        for i in range(size >> 20):
            out.write(chunk[i % 251:] + chunk[:i % 251])


def upload(tool, source, prefix, manifests, env):
    if tool == "s3-kms-sync":
        return [str(OURS), "sync", "--source-dir", str(source), "--bucket", BUCKET, "--prefix", prefix,
                "--kms-key-id", STANDIN_KEY, "--manifest-dir", str(manifests), "--memory-budget", BUDGET]
    if tool == "s5cmd":
        return [str(S5CMD), "--endpoint-url", env["AWS_ENDPOINT_URL"], "cp", f"{source}/", f"s3://{BUCKET}/{prefix}/"]
    return ["/usr/bin/aws", "s3", "cp", "--recursive", str(source), f"s3://{BUCKET}/{prefix}",
            "--endpoint-url", env["AWS_ENDPOINT_URL"], "--no-progress", "--only-show-errors"]


def restore(tool, target, prefix, manifests, env):
    if tool == "s3-kms-sync":
        return [str(OURS), "restore", "--bucket", BUCKET, "--prefix", prefix, "--kms-key-id", STANDIN_KEY,
                "--manifest-dir", str(manifests), "--target", str(target)]
    if tool == "s5cmd":
        return [str(S5CMD), "--endpoint-url", env["AWS_ENDPOINT_URL"], "cp", f"s3://{BUCKET}/{prefix}/*", f"{target}/"]
    return ["/usr/bin/aws", "s3", "cp", "--recursive", f"s3://{BUCKET}/{prefix}", str(target),
            "--endpoint-url", env["AWS_ENDPOINT_URL"], "--no-progress", "--only-show-errors"]


def timed(cmd, env):
    """Seconds, peak RSS (KiB, from /usr/bin/time) and bytes read (the
    command's `rchar`, read every 20 ms until it ends) of one command,
    which must succeed."""
    with tempfile.NamedTemporaryFile("r") as rss:
        start = time.perf_counter()
        timer = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        read = 0
        while timer.poll() is None:
            read = max(read, rchar_of_child(timer.pid))
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        if timer.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} exited {timer.returncode}")
        return seconds, int(rss.read().split()[-1]), read


def rchar_of_child(pid):
    """Bytes the descendants of `pid` have read so far: a tool may be a
    wrapper that runs the real one (PyPI's s5cmd)."""
    total = 0
    try:
        children = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0
    for child in children:
        try:
            io = pathlib.Path(f"/proc/{child}/io").read_text()
            total += int(io.split("rchar:")[1].split()[0])
        except (OSError, IndexError, ValueError):
            pass
        total += rchar_of_child(int(child))
    return total


def peak_in_flight(endpoint):
    with urllib.request.urlopen(f"{endpoint}/_standin/stats") as answer:
        return json.load(answer)["peak_in_flight"]


def row(name, source, work):
    """Upload then restore of `source` by each tool, each on a fresh stand-in."""
    figures = {}
    for tool in ["s3-kms-sync", "s5cmd", "aws s3 cp"]:
        with standin(STANDIN, BUCKET, extra=["--per-connection-mb-s", str(RATE_MB_S)]) as endpoint:
            env = tool_env(endpoint)
            manifests = work / "manifests" / tool.split()[0]
            target = work / "restored" / tool.split()[0]
            shutil.rmtree(manifests, ignore_errors=True)
            shutil.rmtree(target, ignore_errors=True)
            manifests.mkdir(parents=True)
            os.sync()
            up, up_rss, source_read = timed(upload(tool, source, "large", manifests, env), env)
            down, down_rss, _ = timed(restore(tool, target, "large", manifests, env), env)
            restored = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
            figures[tool] = (up, down, max(up_rss, down_rss), peak_in_flight(endpoint), source_read / restored)
            shutil.rmtree(target, ignore_errors=True)
    peer = figures["s5cmd"]
    print(f"\n{name}\n")
    print("| tool | upload s | restore s | upload vs s5cmd | restore vs s5cmd | bytes read per byte uploaded "
          "| peak RSS | most requests at once |")
    print("|---|---|---|---|---|---|---|---|")
    for tool, (up, down, rss, peak, read_ratio) in figures.items():
        print(f"| {tool} | {up:.1f} | {down:.1f} | {up / peer[0]:.2f}x | {down / peer[1]:.2f}x "
              f"| {read_ratio:.2f} | {rss / 1024:.0f} MiB | {peak} |")
    return figures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--big-mib", type=int, default=4096)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--file-mib", type=int, default=20)
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="large-bench-"))
    try:
        print(f"Large files, default settings, stand-in capped at {RATE_MB_S} MB/s per connection; "
              f"this tool's memory budget {BUDGET}")
        big = work / "big"
        write_random(big / "one.bin", args.big_mib << 20)
        row(f"One file of {args.big_mib:,} MiB", big, work)
        shutil.rmtree(big)
        many = work / "many"
        for i in range(args.files):
            write_random(many / f"f{i:04d}.bin", args.file_mib << 20)
        row(f"{args.files} files of {args.file_mib} MiB", many, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
