"""The Distributed Map row of the benchmark: the same tree backed up by one
invocation and by a sharded run (the template's state machine executed on
moto, scripts/moto_sfn.py), both through cargo lambda watch, so the cost of
planning, of one invocation per shard and of the merge is visible.
"""
import json
import os
import shutil
import statistics
import subprocess
import time

import boto3
from botocore.config import Config

from bench_trees import free_port, spread_tree, wait_for
from provision_moto import default_encryption
from run_state_machine import definition, execute

FILES, DIRS, SHARD_FILES = 2_000, 20, 250
BUCKET, PREFIX = "sharded-bench", "bench"
SCHEDULED = {"detail-type": "Scheduled Event", "source": "aws.scheduler", "detail": {}}


def bench_sharded(work, root, env, repeats):
    tree, manifests = work / "trees" / "sharded", work / "sharded-manifests"
    spread_tree(tree, FILES, DIRS, lambda i: b"x" * (100 + i % 1000))
    moto_port, watch_port = free_port(), free_port()
    moto = f"http://127.0.0.1:{moto_port}"
    processes = [subprocess.Popen(
        [str(root / ".venv/bin/python"), str(root / "scripts/moto_sfn.py"), str(moto_port),
         f"http://127.0.0.1:{watch_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)]
    try:
        wait_for(moto_port, "moto")
        session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
        key_arn = session.client("kms", endpoint_url=moto).create_key()["KeyMetadata"]["Arn"]
        s3 = session.client("s3", endpoint_url=moto)
        s3.create_bucket(Bucket=BUCKET)
        default_encryption(s3, BUCKET, key_arn)
        function_env = {
            **env, "AWS_ENDPOINT_URL": moto, "SYNC_BUCKET": BUCKET, "SYNC_PREFIX": PREFIX,
            "SYNC_KMS_KEY_ID": key_arn, "SYNC_SOURCE_DIR": str(tree), "SYNC_MANIFEST_DIR": str(manifests),
            "SYNC_SHARD_FILES": str(SHARD_FILES), "RUST_LOG": "warn",
        }
        processes.append(subprocess.Popen(
            [str(root / ".venv/bin/cargo-lambda"), "lambda", "watch", "--release", "--ignore-changes", "--invoke-port",
             str(watch_port)],
            cwd=root, env=function_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        wait_for(watch_port, "cargo lambda watch", seconds=600)
        function = session.client("lambda", endpoint_url=f"http://127.0.0.1:{watch_port}",
                                  config=Config(read_timeout=1800, retries={"total_max_attempts": 1}))
        sfn = session.client("stepfunctions", endpoint_url=moto)
        machine = sfn.create_state_machine(name="bench-sharded-backup", definition=definition(),
                                           roleArn="arn:aws:iam::123456789012:role/bench")["stateMachineArn"]

        def invoke(payload):
            answer = function.invoke(FunctionName="s3-kms-sync", Payload=json.dumps(payload).encode())
            return json.loads(answer["Payload"].read())

        def reset():
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
                for o in page.get("Contents", []):
                    s3.delete_object(Bucket=BUCKET, Key=o["Key"])
            shutil.rmtree(manifests, ignore_errors=True)
            manifests.mkdir(parents=True)

        def direct():
            summary = invoke(SCHEDULED)
            assert summary["status"] == "succeeded", summary
            return 1

        def sharded():
            described = execute(sfn, machine)
            assert described["status"] == "SUCCEEDED", described
            return json.loads(described["output"])["planned"]["plan"]["shards"] + 2

        reset()
        invoke({"dry_run": True})  # the first invoke compiles the function
        runs = {(mode, phase): [] for mode in ("direct", "sharded") for phase in ("initial", "unchanged")}
        invocations = {}
        for _ in range(repeats):
            for mode, once in (("direct", direct), ("sharded", sharded)):
                reset()
                for phase in ("initial", "unchanged"):
                    start = time.perf_counter()
                    invocations[(mode, phase)] = once()
                    runs[(mode, phase)].append(time.perf_counter() - start)
        return {f"{mode}|{phase}": {"seconds": statistics.median(times), "invocations": invocations[(mode, phase)]}
                for (mode, phase), times in runs.items()}
    finally:
        for process in processes:
            os.killpg(process.pid, 15)


def sharded_table(sharded):
    lines = [
        "",
        f"{FILES:,} files in {DIRS} directories, backed up by one invocation and by the",
        f"template's sharded run (plan, Distributed Map, merge; SYNC_SHARD_FILES={SHARD_FILES}) executed",
        "on moto, every invocation through cargo lambda watch (release build), medians. A first",
        "run has no manifest to count by, so it cuts a shard per top-level directory:",
        "",
        "| run | mode | invocations | wall time | vs one invocation |",
        "|---|---|---:|---:|---:|",
    ]
    for phase in ("initial", "unchanged"):
        base = sharded[f"direct|{phase}"]["seconds"]
        for mode in ("direct", "sharded"):
            entry = sharded[f"{mode}|{phase}"]
            name = "one invocation" if mode == "direct" else "sharded run"
            lines.append(f"| {phase} | {name} | {entry['invocations']} | {entry['seconds']:.2f} s | "
                         f"{entry['seconds'] / base:.2f}x |")
    return lines
