# The single front door: setup, build, test, demo, validate, deploy.
#
# Each area keeps its targets in mk/<area>.mk and adds its test target to TEST_TARGETS;
# `make test` runs them in the order the files are included (alphabetical).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV_DIR := $(ROOT)/.venv
TEST_TARGETS :=

include $(sort $(wildcard $(ROOT)/mk/*.mk))

.PHONY: help test
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  %-16s %s\n", $$1, $$2}'

test: $(TEST_TARGETS) ## the full test suite: unit, adapter, template gate and end-to-end tests
	@echo "make test: all suites passed"
