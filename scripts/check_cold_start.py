"""Cold start with the template's own environment.

For the default parameters and for EFS, the function's Environment.Variables
are taken from the rendered template as they are; only the names of the
stack's bucket and keys are replaced by the same resources in moto. The
function is started with them through `cargo lambda watch` (the real Lambda
runtime API), and each command it is scheduled for is invoked: sync, verify,
audit. Each must run, or fail with the message the README promises.

With EFS the access point is mounted at the rendered SYNC_SOURCE_DIR: the
function runs in a mount namespace of its own (unshare), with a tmpfs holding
a sample tree there, so the host's /mnt is untouched. That needs root; run as
another user, the EFS scenario is reported as not run and the check fails.

Usage: check_cold_start.py (from make test, after moto and cargo-lambda are
installed). Exit status 0 when every expectation holds.
"""
import json
import os
import pathlib
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import boto3

import infra_review
from infra_render import expand_sam, load, render

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"
EVENTS = {"sync": "scheduled.json", "verify": "verify.json", "audit": "audit.json"}

# What each command must do, by scenario: "runs" (a result whose status is
# one of these), or "fails" (an error whose message holds these words).
EXPECTED = {
    "defaults": {
        "sync": ("fails", ["source directory /mnt/data cannot be opened", "EfsAccessPointArn"]),
        "verify": ("fails", ["no manifest under", "run sync first"]),
        "audit": ("runs", ["compliant"]),
    },
    "efs": {
        "sync": ("runs", ["succeeded"]),
        "verify": ("runs", ["ok"]),
        "audit": ("runs", ["compliant"]),
    },
}

checks = {"ok": 0, "failed": 0}


def check(name, held, detail):
    checks["ok" if held else "failed"] += 1
    print(f"{'ok  ' if held else 'FAIL'} {name}{'' if held else ': ' + detail}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, process, log):
    deadline = time.monotonic() + 900  # the first start compiles the function
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"exited before it listened on {port}; its log:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise SystemExit(f"nothing listened on {port}")


def rendered_environment(scenario):
    """The function's Environment.Variables as the stack would set them."""
    stack = render(expand_sam(load(ROOT / "template.yaml")), infra_review.SCENARIOS[scenario])
    (function,) = [r for r in stack["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    return {k: str(v) for k, v in function["Properties"]["Environment"]["Variables"].items()}


def localised(variables, moto):
    """The rendered variables with the stack's resources named as in moto."""
    names = {"BackupBucket": moto["bucket"], "BackupKey.Arn": moto["key"], "SigningKey.Arn": moto["signing"]}
    return {k: names.get(v, v) for k, v in variables.items()}


def invoke(port, event, log):
    """Invokes the served function with an event file: its exit status and
    output. A function that dies at start leaves the invoke waiting, so the
    watch's log is read meanwhile: a process that exited ends the invoke
    with what it logged."""
    process = subprocess.Popen(
        [str(VENV / "cargo-lambda"), "lambda", "invoke", "s3-kms-sync", "--invoke-port", str(port),
         "--data-file", str(ROOT / "events" / event), "--output-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 900  # the first invoke compiles the function
    while process.poll() is None:
        text = log.read_text()
        # Exited since it was last started: the watch does not start it again.
        dead = text.rfind("command exited") > text.rfind("Running `")
        if dead or time.monotonic() > deadline:
            process.kill()
            process.wait()
            return 1, "the function exited before it answered: " + text.strip()[-600:]
        time.sleep(0.5)
    return process.returncode, process.stdout.read()


def judge(scenario, command, code, output):
    mode, words = EXPECTED[scenario][command]
    name = f"{scenario}: {command} {'runs' if mode == 'runs' else 'fails as the README says'}"
    if mode == "runs":
        try:
            status = json.loads(output[output.index("{"):])["status"]
        except (ValueError, KeyError):
            status = None
        check(name, code == 0 and status in words, f"exit {code}: {output.strip()[-600:]}")
    else:
        check(name, code != 0 and all(w in output for w in words), f"exit {code}: {output.strip()[-600:]}")


def serve(variables, work, efs_tree):
    """cargo lambda watch with exactly `variables` (and what the process
    needs to run), in its own mount namespace with EFS."""
    port = free_port()
    env = {k: os.environ[k] for k in ("PATH", "HOME", "CARGO_TARGET_DIR", "CARGO_HOME", "RUSTUP_HOME") if k in os.environ}
    env.update(variables)
    env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")})
    env["SYNC_MANIFEST_DIR"] = str(work / "manifests")
    watch = [str(VENV / "cargo-lambda"), "lambda", "watch", "--ignore-changes", "--invoke-port", str(port)]
    if efs_tree:
        mount = variables["SYNC_SOURCE_DIR"]
        script = (
            f"mount --make-rprivate / && mount -t tmpfs efs {shlex.quote(str(pathlib.Path(mount).parent))} "
            f"&& mkdir -p {shlex.quote(mount)} && cp -a {shlex.quote(str(efs_tree))}/. {shlex.quote(mount)} "
            f"&& exec {shlex.join(watch)}"
        )
        watch = ["unshare", "--mount", "sh", "-c", script]
    log = work / "watch.log"
    process = subprocess.Popen(watch, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(port, process, log)
    return port, process, log


def start_moto(work):
    port = free_port()
    log = work / "moto.log"
    process = subprocess.Popen(
        [str(VENV / "python"), str(ROOT / "scripts" / "moto_server.py"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True,
    )
    wait_for(port, process, log)
    os.environ.update({
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
    })
    keys = subprocess.run(
        [str(VENV / "python"), str(ROOT / "scripts" / "provision_moto.py"), "cold-start-backups"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    return process, {"bucket": "cold-start-backups", "key": keys[0], "signing": keys[1]}


def main() -> int:
    work = pathlib.Path(tempfile.mkdtemp(prefix="cold-start-", dir=ROOT / ".work" if (ROOT / ".work").exists() else None))
    (work / "manifests").mkdir()
    tree = work / "efs"
    subprocess.run([str(VENV / "python"), str(ROOT / "scripts" / "sample_tree.py"), str(tree)], check=True, stdout=subprocess.DEVNULL)
    moto, resources = start_moto(work)
    try:
        for scenario in EXPECTED:
            variables = localised(rendered_environment(scenario), resources)
            print(f"== {scenario}: SYNC_SOURCE_DIR={variables.get('SYNC_SOURCE_DIR')}, as the template sets it")
            efs = bool(infra_review.SCENARIOS[scenario].get("EfsAccessPointArn"))
            if efs and os.geteuid() != 0:
                check(f"{scenario}: runs with the access point mounted", False, "needs root to mount it in a namespace of its own; not run")
                continue
            port, watch, log = serve(variables, work, tree if efs else None)
            try:
                for command, event in EVENTS.items():
                    code, output = invoke(port, event, log)
                    judge(scenario, command, code, output)
            finally:
                os.killpg(watch.pid, 15)
                watch.wait()
    finally:
        os.killpg(moto.pid, 15)
    if not checks["failed"]:
        shutil.rmtree(work, ignore_errors=True)
    print(f"cold start checks: {checks['ok']} ok, {checks['failed']} failing")
    return 1 if checks["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
