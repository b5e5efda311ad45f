# Every tool the targets need is installed by the targets themselves:
# Python tools into .venv (pinned in requirements-dev.txt), Rust components with rustup.

VENV := .venv
TOOLS := $(VENV)/.installed
# Builds outside the clone survive fresh clones on the same machine.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/s3-kms-sync/target
# Loopback traffic to the emulator never goes through a proxy.
export NO_PROXY := 127.0.0.1,localhost
export no_proxy := 127.0.0.1,localhost

.PHONY: demo test lint unit lambda-events tools clean

## demo: run the function twice through the Lambda runtime API against a local S3+KMS emulator
demo: $(TOOLS)
	scripts/demo.sh

## test: formatting, clippy, every Rust test, and each event in events/ through the Lambda runtime API
test: lint unit lambda-events

lint: $(TOOLS)
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

unit: $(TOOLS)
	cargo test

lambda-events: $(TOOLS)
	scripts/test-lambda-events.sh

tools: $(TOOLS)

$(TOOLS): requirements-dev.txt
	rustup component add rustfmt clippy
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

clean:
	rm -rf $(VENV) .work
