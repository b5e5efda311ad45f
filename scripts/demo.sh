#!/usr/bin/env bash
# The main job end to end on a local S3+KMS emulator: two scheduled runs of the
# function through the real Lambda runtime API (the first uploads every file,
# the second skips every file), then the weekly verify and audit through the
# function, and a restore with the CLI that must give back the tree byte for byte.
source "$(dirname "${BASH_SOURCE[0]}")/local.sh"
trap cleanup EXIT

rm -rf "$WORK/demo"
export SYNC_SOURCE_DIR="$WORK/demo/data" SYNC_MANIFEST_DIR="$WORK/demo/manifests" SYNC_PREFIX=demo
"$VENV/bin/python" "$ROOT/scripts/sample_tree.py" "$SYNC_SOURCE_DIR"
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

echo "== verify (events/verify.json: every object checked, a tenth read back)"
report=$(invoke "$ROOT/events/verify.json")
"$VENV/bin/python" -m json.tool <<<"$report"
if [ "$(field status <<<"$report")" != ok ]; then
    echo "demo FAILED: verify found problems in a backup nothing touched" >&2
    exit 1
fi

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
if ! diff -r "$SYNC_SOURCE_DIR" "$WORK/demo/restored"; then
    echo "demo FAILED: the restored tree differs from the source" >&2
    exit 1
fi
echo "the restored tree equals the source"
