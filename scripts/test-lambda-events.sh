#!/usr/bin/env bash
# Sends every payload in events/ to the function through the real Lambda
# runtime API (cargo lambda watch + invoke) against moto, and checks each summary.
source "$(dirname "${BASH_SOURCE[0]}")/local.sh"
trap cleanup EXIT

rm -rf "$WORK/events"
export SYNC_SOURCE_DIR="$WORK/events/data" SYNC_MANIFEST_DIR="$WORK/events/manifests" SYNC_PREFIX=events
"$VENV/bin/python" "$ROOT/scripts/sample_tree.py" "$SYNC_SOURCE_DIR" >/dev/null
mkdir -p "$SYNC_MANIFEST_DIR"
total=$(find "$SYNC_SOURCE_DIR" -type f | wc -l)
in_reports=$(find "$SYNC_SOURCE_DIR/reports" -type f ! -name '*.tmp' | wc -l)
start_moto events-backups
start_watch

passed=0 failed=0
check() {
    local name=$1 actual=$2 expected=$3
    if [ "$actual" = "$expected" ]; then
        passed=$((passed + 1)); echo "ok   $name"
    else
        failed=$((failed + 1)); echo "FAIL $name: got $actual, expected $expected"
    fi
}

# Order matters: the dry run first (it must change nothing), then the narrowed run.
for event in dry-run manual scheduled verify audit; do
    test -f "$ROOT/events/$event.json"
done
[ "$(ls "$ROOT"/events/*.json | wc -l)" = 6 ] || { echo "FAIL events/ has a payload this script does not check" >&2; exit 1; }

summary=$(invoke "$ROOT/events/dry-run.json")
check "dry-run.json uploads nothing" "$(field uploaded <<<"$summary")" 0
check "dry-run.json plans every file" "$(field would_upload <<<"$summary")" "$total"

summary=$(invoke "$ROOT/events/manual.json")
check "manual.json uploads only reports/ without *.tmp" "$(field uploaded <<<"$summary")" "$in_reports"
check "manual.json fails nothing" "$(field failed <<<"$summary")" 0

summary=$(invoke "$ROOT/events/scheduled.json")
check "scheduled.json succeeds" "$(field status <<<"$summary")" succeeded
check "scheduled.json uploads the rest" "$(field uploaded <<<"$summary")" $((total - in_reports))

report=$(invoke "$ROOT/events/verify.json")
check "verify.json finds the backup intact" "$(field status <<<"$report")" ok
check "verify.json checks every stored file" "$(field checked <<<"$report")" "$total"

# Another writer stores an object under SSE-S3; the audit re-encrypts it.
"$VENV/bin/python" - <<PY
import boto3
boto3.client("s3").put_object(Bucket="$SYNC_BUCKET", Key="events/foreign.txt", Body=b"sse-s3", ServerSideEncryption="AES256")
PY
report=$(invoke "$ROOT/events/audit.json")
check "audit.json re-encrypts the object another writer stored" "$(field fixed <<<"$report")" 1
check "audit.json leaves the prefix compliant" "$(field status <<<"$report")" compliant

# The retention schedule's payload: both lines keep their newest snapshot.
report=$(invoke "$ROOT/events/forget.json")
check "forget.json keeps both snapshots" "$(field kept <<<"$report")" 2
check "forget.json forgets none" "$(field forgotten <<<"$report")" 0
check "forget.json succeeds" "$(field status <<<"$report")" succeeded

echo "lambda runtime API checks: $passed ok, $failed failing"
[ "$failed" = 0 ]
