"""Creates the template's sharded-run state machine in moto (scripts/moto_sfn.py),
executes it three times and checks what each run left in S3:

1. no manifest yet: a shard per top-level directory, every file uploaded once;
2. one file changed: shards cut by the first run's manifest, one upload, the
   new manifest linked to the first;
3. another run holds the lock: the plan says so and the execution ends
   without a shard;
4. a file that cannot be backed up (its name is not UTF-8): the manifest
   records it, the lock is released, and the execution fails loudly.

Usage: run_state_machine.py --source DIR --bucket B --prefix P
"""
import argparse
import base64
import hashlib
import json
import os
import pathlib
import sys
import time
import zlib
from datetime import datetime, timedelta, timezone

import boto3

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from infra_render import load  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
FUNCTION = "s3-kms-sync"  # the name cargo lambda watch serves the function under
INPUT = {"max_concurrency": 2, "tolerated_failure_percentage": 0}

checks = {"ok": 0, "failed": 0}


def check(name, actual, expected):
    if actual == expected:
        checks["ok"] += 1
        print(f"ok   {name}")
    else:
        checks["failed"] += 1
        print(f"FAIL {name}: got {actual!r}, expected {expected!r}")


def definition():
    """The state machine as the template defines it, its substitutions made
    the way CloudFormation makes them."""
    template = load(ROOT / "template.yaml")
    properties = template["Resources"]["ShardedBackupStateMachine"]["Properties"]
    text = json.dumps(properties["Definition"])
    for name in properties["DefinitionSubstitutions"]:
        value = {"FunctionArn": FUNCTION}[name]
        text = text.replace("${" + name + "}", value)
    return text


def execute(sfn, machine):
    # Named, as the scheduler names them: moto gives unnamed executions one name.
    name = f"run-{time.time_ns()}"
    started = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(INPUT))
    deadline = time.monotonic() + 900  # the first task compiles the function
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=started["executionArn"])
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.5)
    raise SystemExit("the execution did not finish within 15 minutes")


class Bucket:
    def __init__(self, bucket, prefix):
        self.s3 = boto3.client("s3")
        self.bucket, self.prefix = bucket, prefix

    def keys(self, under=""):
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/{under}")
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def signed(self, key):
        """Whether the manifest at `key` carries the signing key's ECDSA
        signature of its bytes, checked against the key's public half."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        obj = self.s3.get_object(Bucket=self.bucket, Key=key)
        body, metadata = obj["Body"].read(), obj["Metadata"]
        signing_key = os.environ["SYNC_SIGNING_KEY_ID"]
        if metadata.get("signing-key") != signing_key:
            return False
        der = boto3.client("kms").get_public_key(KeyId=signing_key)["PublicKey"]
        public = serialization.load_der_public_key(der)
        try:
            public.verify(base64.b64decode(metadata["signature"]), body, ec.ECDSA(hashes.SHA256()))
            return True
        except InvalidSignature:
            return False

    def manifests(self):
        folder = f"{self.prefix}/_manifests/"
        return [k for k in self.keys("_manifests/") if "/" not in k[len(folder):] and k[len(folder):][:1].isdigit()]

    def json(self, key):
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def records(self, manifest):
        """A manifest's records: its `files`, or a paged snapshot's pages, each
        checked against the SHA-256 it is named by."""
        if "files" in manifest:
            return manifest["files"]
        records, pending = [], [manifest["root"]["sha256"]]
        while pending:
            name = pending.pop(0)
            body = self.s3.get_object(Bucket=self.bucket, Key=f"{self.prefix}/_manifests/pages/{name}")["Body"].read()
            plain = zlib.decompress(body)
            if hashlib.sha256(plain).hexdigest() != name:
                raise SystemExit(f"page {name} does not hash to its name")
            node = json.loads(plain)
            if node["node"] == "index":
                pending[:0] = [entry["sha256"] for entry in node["entries"]]
            else:
                records.extend(node["records"])
        return records


def run(sfn, machine, label, expected="SUCCEEDED"):
    described = execute(sfn, machine)
    check(f"{label}: the execution ends {expected}", described["status"], expected)
    if expected != "SUCCEEDED":
        return described
    if described["status"] != "SUCCEEDED":
        history = sfn.get_execution_history(executionArn=described["executionArn"])["events"]
        print(json.dumps(history[-5:], default=str, indent=1))
        raise SystemExit(1)
    return json.loads(described["output"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", required=True)
    args = parser.parse_args()
    source = pathlib.Path(args.source)
    files = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    top_dirs = [p for p in source.iterdir() if p.is_dir()]
    bucket = Bucket(args.bucket, args.prefix)

    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="s3-kms-sync-sharded-backup",
        definition=definition(),
        roleArn="arn:aws:iam::123456789012:role/s3-kms-sync-ShardedRunRole",
    )["stateMachineArn"]

    first = run(sfn, machine, "first run")
    summary = first["merged"]["summary"]
    check("first run: a shard per top-level directory, and one before them", first["planned"]["plan"]["shards"], len(top_dirs) + 1)
    check("first run: succeeded", summary["status"], "succeeded")
    check("first run: every file uploaded", (summary["uploaded"], summary["failed"]), (len(files), 0))
    (manifest_key,) = bucket.manifests()
    manifest = bucket.json(manifest_key)
    # Directories and links are recorded too, with no object of their own.
    records = bucket.records(manifest)
    stored = [r["s3_key"] for r in records if r.get("kind", "file") == "file"]
    recorded_dirs = sorted(pathlib.Path(r["local_path"]).relative_to(manifest["source_dir"]).as_posix()
                           for r in records if r.get("kind") == "directory")
    check("first run: the manifest records each directory once", recorded_dirs,
          sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_dir()))
    check("first run: the manifest lists each file once", sorted(stored), sorted(f"{args.prefix}/{f}" for f in files))
    check("first run: the manifest is complete", manifest["complete"], True)
    check("first run: the merge signed the manifest", bucket.signed(manifest_key), True)
    check("first run: no shard documents left", bucket.keys("_manifests/shards/"), [])
    check("first run: the lock is released", bucket.keys("_manifests/lock.json"), [])

    changed = source / files[0]
    changed.write_bytes(changed.read_bytes() + b" changed")
    time.sleep(2.1)  # past the stamp window of whole-second file systems
    second = run(sfn, machine, "second run")
    summary = second["merged"]["summary"]
    check("second run: shards cut by the manifest's counts", second["planned"]["plan"]["shards"] >= len(files) // 4, True)
    check("second run: only the changed file uploaded", (summary["uploaded"], summary["skipped"]), (1, len(files) - 1))
    newest = bucket.manifests()[-1]
    check("second run: its manifest links to the first", bucket.json(newest)["previous_manifest"]["key"], manifest_key)

    now = datetime.now(timezone.utc)
    holder = {"run_id": "another-run", "acquired_at": now.isoformat(), "expires_at": (now + timedelta(hours=1)).isoformat(), "ttl_secs": 3600, "renewals": 0}
    lock = f"{args.prefix}/_manifests/lock.json"
    bucket.s3.put_object(Bucket=args.bucket, Key=lock, Body=json.dumps(holder).encode())
    third = run(sfn, machine, "while another run holds the lock")
    check("while another run holds the lock: nothing is planned", third["planned"]["plan"]["status"], "skipped")
    check("while another run holds the lock: no merge", "merged" in third, False)
    check("while another run holds the lock: no new manifest", bucket.manifests()[-1], newest)
    bucket.s3.delete_object(Bucket=args.bucket, Key=lock)

    (source / os.fsdecode(b"bad-\xff.txt")).write_bytes(b"x")
    failed = run(sfn, machine, "with a file that cannot be backed up", expected="FAILED")
    check("with a file that cannot be backed up: the run is reported incomplete", failed.get("error"), "RunIncomplete")
    last = bucket.json(bucket.manifests()[-1])
    check("with a file that cannot be backed up: the manifest records it", last["summary"]["failed"], 1)
    check("with a file that cannot be backed up: the lock is released", bucket.keys("_manifests/lock.json"), [])

    print(f"state machine checks: {checks['ok']} ok, {checks['failed']} failing")
    sys.exit(1 if checks["failed"] else 0)


if __name__ == "__main__":
    main()
