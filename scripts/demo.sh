#!/usr/bin/env bash
# The main job end to end on a local S3+KMS emulator: two scheduled runs of the
# function through the real Lambda runtime API. The first uploads every file,
# the second skips every file.
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
