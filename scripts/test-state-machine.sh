#!/usr/bin/env bash
# Executes the template's sharded-run state machine on moto: its plan, its
# Distributed Map of shards and its merge, each a Lambda task served by the
# function through the real Lambda runtime API (cargo lambda watch), and
# checks what the run left in S3.
source "$(dirname "${BASH_SOURCE[0]}")/local.sh"
# Outside the clone: the tree gets a file whose name is not UTF-8, which
# `sam build` cannot hash when it walks the project.
TREE=$(mktemp -d)
trap 'cleanup; rm -rf "$TREE"' EXIT

export SYNC_SOURCE_DIR="$TREE/data" SYNC_MANIFEST_DIR="$TREE/manifests" SYNC_PREFIX=sharded
# Small shards, so that the second run's plan cuts the tree by its manifest into several.
export SYNC_SHARD_FILES=4
"$VENV/bin/python" "$ROOT/scripts/sample_tree.py" "$SYNC_SOURCE_DIR" >/dev/null
mkdir -p "$SYNC_MANIFEST_DIR"

moto_port=$(free_port)
WATCH_PORT=$(free_port)
start_background "$WORK/moto.log" "$VENV/bin/python" "$ROOT/scripts/moto_sfn.py" "$moto_port" "http://127.0.0.1:$WATCH_PORT"
use_moto "$moto_port" sharded-backups
start_watch

"$VENV/bin/python" "$ROOT/scripts/run_state_machine.py" --source "$SYNC_SOURCE_DIR" --bucket "$SYNC_BUCKET" --prefix "$SYNC_PREFIX"
