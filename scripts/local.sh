# Shared helpers for the local runs: a moto server on a free loopback port and
# the function served by `cargo lambda watch`. Source this file; call cleanup on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
WORK="$ROOT/.work"
mkdir -p "$WORK"
PIDS=()

free_port() {
    "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until PORT answers and the server started last is still running:
# a port found free may be taken by another server before ours binds it,
# and ours then exits while the stranger answers.
wait_for_port() {
    local port=$1 what=$2 log=$3 server=${PIDS[-1]}
    for _ in $(seq 1 600); do
        if ! kill -0 "$server" 2>/dev/null; then
            echo "$what exited before it answered on port $port; its log:" >&2
            tail -n 40 "$log" >&2
            return 1
        fi
        if "$VENV/bin/python" -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null \
            && kill -0 "$server" 2>/dev/null; then
            return 0
        fi
        sleep 0.5
    done
    echo "$what did not start on port $port; its log:" >&2
    tail -n 40 "$log" >&2
    return 1
}

# Each background service gets its own process group so cleanup stops its children too.
start_background() {
    local log=$1; shift
    setsid "$@" >"$log" 2>&1 &
    PIDS+=("$!")
}

cleanup() {
    for pid in "${PIDS[@]}"; do
        kill -- "-$pid" 2>/dev/null || true
    done
}

# Starts moto, creates BUCKET and a KMS key, and exports what the function reads.
start_moto() {
    local bucket=$1 port
    port=$(free_port)
    start_background "$WORK/moto.log" "$VENV/bin/python" "$ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$port"
    use_moto "$port" "$bucket"
}

# Waits for the moto server on PORT, creates BUCKET and a KMS key there, and
# exports what the function reads.
use_moto() {
    local port=$1 bucket=$2
    wait_for_port "$port" "moto server" "$WORK/moto.log"
    export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
    unset AWS_PROFILE AWS_SESSION_TOKEN
    export SYNC_BUCKET="$bucket"
    local keys
    keys="$("$VENV/bin/python" "$ROOT/scripts/provision_moto.py" "$bucket")"
    # As the template configures the function: the data key, and the key
    # that signs the manifests.
    SYNC_KMS_KEY_ID="$(sed -n 1p <<<"$keys")"
    SYNC_SIGNING_KEY_ID="$(sed -n 2p <<<"$keys")"
    export SYNC_KMS_KEY_ID SYNC_SIGNING_KEY_ID
    echo "moto server on $AWS_ENDPOINT_URL, bucket $bucket, KMS key $SYNC_KMS_KEY_ID, signing key $SYNC_SIGNING_KEY_ID" >&2
}

# Serves the function on the local Lambda runtime API (it inherits the SYNC_*
# settings), on WATCH_PORT if set, else on a free port.
start_watch() {
    WATCH_PORT=${WATCH_PORT:-$(free_port)}
    start_background "$WORK/watch.log" "$VENV/bin/cargo-lambda" lambda watch --ignore-changes --invoke-port "$WATCH_PORT"
    wait_for_port "$WATCH_PORT" "cargo lambda watch" "$WORK/watch.log"
}

# Invokes the function with an event file and prints its summary.
invoke() {
    "$VENV/bin/cargo-lambda" lambda invoke s3-kms-sync --invoke-port "$WATCH_PORT" --data-file "$1"
}

# Reads FIELD from a JSON summary on stdin.
field() {
    "$VENV/bin/python" -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"
}
