# Rust: format, lint, unit and adapter tests, Lambda builds.

CARGO ?= cargo
TOOLS_VENV := $(VENV_DIR)/tools
CARGO_LAMBDA := $(TOOLS_VENV)/bin/cargo-lambda
CARGO_LAMBDA_VERSION := 1.9.2

.PHONY: fmt lint test-rust build build-debug tools
fmt: ## format the Rust code
	$(CARGO) fmt --all

lint: ## rustfmt check and clippy (every target and feature, e2e tests included) with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features --locked -- -D warnings

test-rust: ## unit and adapter tests of every crate (no local stack needed)
	$(CARGO) test --workspace --locked
TEST_TARGETS += lint test-rust

$(CARGO_LAMBDA):
	python3 -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check "cargo-lambda==$(CARGO_LAMBDA_VERSION)"

tools: $(CARGO_LAMBDA) ## install cargo-lambda into .venv/tools

build: $(CARGO_LAMBDA) ## release build of every function into target/lambda/<name>/bootstrap
	PATH="$(TOOLS_VENV)/bin:$$PATH" $(CARGO_LAMBDA) lambda build --release --workspace --exclude e2e-tests $(LAMBDA_BUILD_FLAGS)

build-debug: ## debug build of the workspace (what the local stack runs)
	$(CARGO) build --workspace --locked
