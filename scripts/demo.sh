#!/usr/bin/env bash
# The main job end to end on a local S3+KMS emulator: two scheduled runs of the
# function through the real Lambda runtime API (the first uploads every file,
# the second skips every file), a snapshot of the first format and a paged run
# after it, then the weekly verify and audit through the function, and restores
# with the CLI (the latest, and the first-format one) that must give back the
# tree byte for byte.
source "$(dirname "${BASH_SOURCE[0]}")/local.sh"
trap cleanup EXIT

rm -rf "$WORK/demo"
export SYNC_SOURCE_DIR="$WORK/demo/data" SYNC_MANIFEST_DIR="$WORK/demo/manifests" SYNC_PREFIX=demo
"$VENV/bin/python" "$ROOT/scripts/sample_tree.py" "$SYNC_SOURCE_DIR"
# What a restore must give back besides bytes: an empty directory, a symbolic
# link (its target text, never followed) and a private file in a private folder.
mkdir -p "$SYNC_SOURCE_DIR/empty/nested" "$SYNC_SOURCE_DIR/.ssh"
chmod 0750 "$SYNC_SOURCE_DIR/empty"
ln -s reports/2026/q1.csv "$SYNC_SOURCE_DIR/latest-report.csv"
printf 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDemo demo@example\n' >"$SYNC_SOURCE_DIR/.ssh/authorized_keys"
chmod 0600 "$SYNC_SOURCE_DIR/.ssh/authorized_keys"
chmod 0700 "$SYNC_SOURCE_DIR/.ssh"
mkdir -p "$SYNC_MANIFEST_DIR"
start_moto demo-backups
start_watch

echo "== first run (uploads everything; the first invoke also compiles the function)"
first=$(invoke "$ROOT/events/scheduled.json")
"$VENV/bin/python" -m json.tool <<<"$first"
echo "== second run (nothing changed: skips everything)"
second=$(invoke "$ROOT/events/scheduled.json")
"$VENV/bin/python" -m json.tool <<<"$second"

echo "== manifests"
echo "in S3:   $(field manifest_s3_uri <<<"$second")"
echo "locally: $(field manifest_local_path <<<"$second")"
if [ "$(field uploaded <<<"$second")" != 0 ] || [ "$(field failed <<<"$first")" != 0 ]; then
    echo "demo FAILED: the second run should upload nothing and the first should fail nothing" >&2
    exit 1
fi

echo "== a snapshot of the first format (the CLI with --snapshot-format 1: one document, as older releases wrote)"
older=$(cargo run --quiet --bin s3-kms-sync -- sync --snapshot-format 1 --json)
older_uri=$(field manifest_s3_uri <<<"$older")
echo "$older_uri"
echo "== the next scheduled run takes its index from it, and writes a paged snapshot"
fourth=$(invoke "$ROOT/events/scheduled.json")
"$VENV/bin/python" -m json.tool <<<"$fourth"
if [ "$(field uploaded <<<"$fourth")" != 0 ] || [ "$(field uploaded <<<"$older")" != 0 ]; then
    echo "demo FAILED: runs over an unchanged tree should upload nothing, whatever the format before" >&2
    exit 1
fi

echo "== verify (events/verify.json: every object checked, a tenth read back)"
report=$(invoke "$ROOT/events/verify.json")
"$VENV/bin/python" -m json.tool <<<"$report"
if [ "$(field status <<<"$report")" != ok ]; then
    echo "demo FAILED: verify found problems in a backup nothing touched" >&2
    exit 1
fi

echo "== snapshots (the CLI: one listing and one HEAD per manifest, no manifest body read)"
cargo run --quiet --bin s3-kms-sync -- snapshots --json \
    | "$VENV/bin/python" -c 'import json, sys
for s in json.load(sys.stdin):
    print(s["time"], s["run_id"], s["kind"], s["status"], s["files"], s["bytes"], s["signature"]["status"], s["restorable"])'

echo "== audit (events/audit.json: every object under the key with a Bucket Key)"
audit=$(invoke "$ROOT/events/audit.json")
"$VENV/bin/python" -m json.tool <<<"$audit"
if [ "$(field findings <<<"$audit")" != 0 ]; then
    echo "demo FAILED: audit found objects outside the configured encryption" >&2
    exit 1
fi

echo "== restore (the CLI, into $WORK/demo/restored)"
cargo run --quiet --bin s3-kms-sync -- restore --target "$WORK/demo/restored" \
    | "$VENV/bin/python" -m json.tool
if ! diff -r --no-dereference "$SYNC_SOURCE_DIR" "$WORK/demo/restored"; then
    echo "demo FAILED: the restored tree differs from the source" >&2
    exit 1
fi
# Every entry's kind, mode and link target, in both trees.
entries() {
    (cd "$1" && find . -mindepth 1 -printf '%y %m %l %p\n' | sort)
}
if ! diff <(entries "$SYNC_SOURCE_DIR") <(entries "$WORK/demo/restored"); then
    echo "demo FAILED: modes, directories or links differ from the source" >&2
    exit 1
fi
echo "== restore of the first-format snapshot by this code (into $WORK/demo/restored-older)"
cargo run --quiet --bin s3-kms-sync -- restore --manifest "$older_uri" --target "$WORK/demo/restored-older" \
    | "$VENV/bin/python" -m json.tool
if ! diff -r --no-dereference "$SYNC_SOURCE_DIR" "$WORK/demo/restored-older"; then
    echo "demo FAILED: the first-format snapshot restored a tree that differs from the source" >&2
    exit 1
fi
for shown in empty/nested latest-report.csv .ssh/authorized_keys; do
    ls -ld "$WORK/demo/restored/$shown"
done
echo "the restored tree equals the source: contents, modes, empty directories and links"

echo "== the snapshot's signature, checked offline against the pinned public key"
manifest_uri=$(field manifest_s3_uri <<<"$second")
manifest_key=${manifest_uri#s3://$SYNC_BUCKET/}
pem="$WORK/demo/manifest-signing.pem"
"$VENV/bin/python" "$ROOT/scripts/provision_moto.py" --public-key "$SYNC_SIGNING_KEY_ID" "$pem"
# A reader that holds only the PEM: no signing key, no GetPublicKey.
signed=$(env -u SYNC_SIGNING_KEY_ID SYNC_TRUSTED_PUBLIC_KEY="$pem" \
    cargo run --quiet --bin s3-kms-sync -- verify)
"$VENV/bin/python" -c 'import json, sys; r = json.load(sys.stdin); print(json.dumps({k: r[k] for k in ("status", "manifest_s3_uri", "signature")}, indent=2))' <<<"$signed"
if [ "$(field status <<<"$signed")" != ok ] || ! grep -q '"status": "valid"' <<<"$signed"; then
    echo "demo FAILED: the pinned public key does not prove the snapshot" >&2
    exit 1
fi
# The same proof with nothing of this tool: the signature is a plain
# ECDSA-SHA256 signature of the manifest file.
"$VENV/bin/python" - "$manifest_key" "$WORK/demo" <<'PY'
import base64, os, sys
import boto3
key, out = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
obj = s3.get_object(Bucket=os.environ["SYNC_BUCKET"], Key=key)
open(f"{out}/manifest.json", "wb").write(obj["Body"].read())
open(f"{out}/manifest.sig", "wb").write(base64.b64decode(obj["Metadata"]["signature"]))
PY
openssl dgst -sha256 -verify "$pem" -signature "$WORK/demo/manifest.sig" "$WORK/demo/manifest.json"

echo "== a third run after an edit, then diff (the first snapshot against the newest) and find"
printf 'region,total\neu,42\n' >"$SYNC_SOURCE_DIR/reports/2026/q1.csv"
rm "$SYNC_SOURCE_DIR/latest-report.csv"
printf 'new\n' >"$SYNC_SOURCE_DIR/added.txt"
sleep 1.1
third=$(invoke "$ROOT/events/scheduled.json")
changes=$(cargo run --quiet --bin s3-kms-sync -- diff "$(field manifest_s3_uri <<<"$first")" latest --json)
echo "$changes"
if ! "$VENV/bin/python" -c 'import json, sys
lines = [json.loads(l) for l in sys.stdin]
seen = {(l.get("change"), l.get("path")) for l in lines}
sys.exit(0 if {("added", "added.txt"), ("changed", "reports/2026/q1.csv")} <= seen else 1)' <<<"$changes"; then
    echo "demo FAILED: diff does not show the added and the changed file" >&2
    exit 1
fi
cargo run --quiet --bin s3-kms-sync -- find 'reports/2026/*.csv' --json \
    | "$VENV/bin/python" -c 'import json, sys
for f in json.load(sys.stdin)["found"]:
    print(f["path"], f["md5"], f["size"], f["first"]["run_id"], "..", f["last"]["run_id"], f["snapshots"], "snapshots")'

echo "== forget --dry-run (keep the last 2): what would go, and why the rest stays"
cargo run --quiet --bin s3-kms-sync -- forget --keep-last 2 --prune --dry-run --json \
    | "$VENV/bin/python" -c 'import json, sys
r = json.load(sys.stdin)
for s in r["snapshots"]:
    print("keep  " if s["kept"] else "forget", s["time"], s["run_id"], ", ".join(s["reasons"]))
print("prune would delete", r["prune"]["versions_to_delete"], "versions; forget would remove", r["forgotten"], "snapshots")'
echo "demo: ok"
