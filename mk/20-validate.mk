# Infrastructure: the offline template gate (`make validate`) and `make deploy ENV=<project>`.
#
# Tools are pinned and installed into project-local environments under .venv/infra, once:
#   .venv/infra/sam      SAM CLI, aws-sam-translator, cfn-lint, pytest (requirements-sam.txt)
#   .venv/infra/checkov  checkov (requirements-checkov.txt; its pins conflict with the SAM CLI's)
#   .venv/infra/bin      cfn-guard, built from crates.io (a few minutes on 2 cores, only once)
# Nothing in `validate` talks to AWS: every tool runs with fake credentials, a closed local
# endpoint and telemetry off (infra/validate/gatelib.py: offline_environment).

INFRA_DIR := $(ROOT)/infra
INFRA_VENV := $(VENV_DIR)/infra
SAM_VENV := $(INFRA_VENV)/sam
CHECKOV_VENV := $(INFRA_VENV)/checkov
CFN_GUARD := $(INFRA_VENV)/bin/cfn-guard
CFN_GUARD_VERSION := 3.2.1
VALIDATE_OUT := $(ROOT)/build/infra
TEMPLATE := $(INFRA_DIR)/template.yaml
SAMCONFIG := $(INFRA_DIR)/samconfig.toml

# The same offline environment the Python steps build for themselves, for the CLI steps.
OFFLINE_AWS := env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_ROLE_ARN \
	AWS_ACCESS_KEY_ID=offline-validation AWS_SECRET_ACCESS_KEY=offline-validation \
	AWS_DEFAULT_REGION=eu-west-2 AWS_REGION=eu-west-2 AWS_ENDPOINT_URL=http://127.0.0.1:9 \
	AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
	SAM_CLI_TELEMETRY=0 SAM_CLI_CONTACT_INFO=0 BC_SKIP_MAPPING=TRUE \
	CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false

# Each venv is keyed on the hash of its pins (not on file times, which a fresh checkout resets):
# a changed pin rebuilds it, anything else is a no-op.
SAM_REQUIREMENTS := $(INFRA_DIR)/validate/requirements-sam.txt
CHECKOV_REQUIREMENTS := $(INFRA_DIR)/validate/requirements-checkov.txt
SAM_STAMP := $(SAM_VENV)/.requirements-$(firstword $(shell sha256sum $(SAM_REQUIREMENTS) 2>/dev/null))
CHECKOV_STAMP := $(CHECKOV_VENV)/.requirements-$(firstword $(shell sha256sum $(CHECKOV_REQUIREMENTS) 2>/dev/null))

$(SAM_STAMP):
	@echo "infra-tools: SAM CLI, cfn-lint, pytest ($(SAM_VENV))"
	rm -rf $(SAM_VENV)
	python3 -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check --no-input --no-deps -r $(SAM_REQUIREMENTS)
	touch $@

$(CHECKOV_STAMP):
	@echo "infra-tools: checkov ($(CHECKOV_VENV))"
	rm -rf $(CHECKOV_VENV)
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check --no-input --no-deps -r $(CHECKOV_REQUIREMENTS)
	touch $@

# Built once per pinned version and machine: building costs minutes on 2 cores, so the binary
# is also kept in a per-user cache outside the checkout (like cargo's and pip's own caches) and
# a fresh clone (CI) copies it from there. Its target dir is separate from the workspace's so
# the build never blocks `cargo build`.
CFN_GUARD_STAMP := $(INFRA_VENV)/.cfn-guard-$(CFN_GUARD_VERSION)
CFN_GUARD_CACHE ?= $(HOME)/.cache/tre-egress-infra/cfn-guard-$(CFN_GUARD_VERSION)
$(CFN_GUARD_STAMP):
	@mkdir -p $(dir $(CFN_GUARD)) $(dir $(CFN_GUARD_CACHE))
	@if ! $(CFN_GUARD) --version 2>/dev/null | grep -qx "cfn-guard $(CFN_GUARD_VERSION)"; then \
	  if $(CFN_GUARD_CACHE) --version 2>/dev/null | grep -qx "cfn-guard $(CFN_GUARD_VERSION)"; then \
	    cp $(CFN_GUARD_CACHE) $(CFN_GUARD); \
	  else \
	    echo "building cfn-guard $(CFN_GUARD_VERSION) (once per machine; a few minutes)"; \
	    $(CARGO) install cfn-guard --locked --force --version $(CFN_GUARD_VERSION) --root $(INFRA_VENV) \
	      --target-dir $(INFRA_VENV)/cargo-target --quiet && rm -rf $(INFRA_VENV)/cargo-target; \
	  fi; fi
	@$(CFN_GUARD) --version | grep -qx "cfn-guard $(CFN_GUARD_VERSION)"
	@cp $(CFN_GUARD) $(CFN_GUARD_CACHE).tmp && mv $(CFN_GUARD_CACHE).tmp $(CFN_GUARD_CACHE)
	@touch $@

.PHONY: infra-tools validate validate-steps validate-wiring validate-transform validate-cfn-lint \
	validate-sam validate-checkov validate-guard validate-tests deploy
infra-tools: $(SAM_STAMP) $(CHECKOV_STAMP) $(CFN_GUARD_STAMP) ## install the pinned template-gate tools into .venv/infra

# The checks are independent once the template is transformed; they run in parallel and each
# one's output is printed in one piece when it ends; a failing check does not stop the others.
validate: infra-tools ## offline template gate: wiring, asl-validator, cfn-lint, sam validate, checkov, cfn-guard and breakage tests
	@$(MAKE) -k -j4 --output-sync=target validate-steps
	@echo "make validate: template gate passed"

validate-steps: validate-wiring validate-asl validate-cfn-lint validate-sam validate-checkov validate-guard validate-tests

validate-wiring:
	@echo "== wiring: ASL placeholders, functions, environment, workflow role, resolvers, samconfig"
	$(OFFLINE_AWS) $(SAM_VENV)/bin/python $(INFRA_DIR)/validate/check_wiring.py --root $(ROOT) \
	  --template $(TEMPLATE) --samconfig $(SAMCONFIG) --contracts $(ROOT)/docs/contracts.md

validate-transform:
	@mkdir -p $(VALIDATE_OUT)
	$(OFFLINE_AWS) $(SAM_VENV)/bin/python $(INFRA_DIR)/validate/transform.py --template $(TEMPLATE) \
	  --samconfig $(SAMCONFIG) --out $(VALIDATE_OUT)/template.cfn.json \
	  --guard-out $(VALIDATE_OUT)/template.guard.json

validate-cfn-lint: validate-transform
	@echo "== cfn-lint: SAM template and transformed template"
	$(OFFLINE_AWS) $(SAM_VENV)/bin/cfn-lint $(TEMPLATE) $(VALIDATE_OUT)/template.cfn.json
	@echo "cfn-lint: no findings"

validate-sam:
	@echo "== sam validate --lint"
	@mkdir -p $(VALIDATE_OUT)/home
	$(OFFLINE_AWS) HOME=$(VALIDATE_OUT)/home $(SAM_VENV)/bin/sam validate --lint \
	  --template-file $(TEMPLATE) --region eu-west-2

validate-checkov: validate-transform
	@echo "== checkov (skips justified in infra/validate/checkov.yaml and in the template)"
	cd $(VALIDATE_OUT) && $(OFFLINE_AWS) $(CHECKOV_VENV)/bin/checkov \
	  --config-file $(INFRA_DIR)/validate/checkov.yaml -f template.cfn.json

validate-guard: validate-transform
	@echo "== cfn-guard: rule tests, then the rules on the transformed template"
	@$(CFN_GUARD) test -d $(INFRA_DIR)/guard/rules > $(VALIDATE_OUT)/guard-tests.log 2>&1 || \
	  { cat $(VALIDATE_OUT)/guard-tests.log; echo "cfn-guard rule tests failed" >&2; exit 1; }
	@echo "cfn-guard rule tests: $$(grep -c '^Test Case' $(VALIDATE_OUT)/guard-tests.log) cases passed"
	$(CFN_GUARD) validate -d $(VALIDATE_OUT)/template.guard.json -r $(INFRA_DIR)/guard/rules \
	  --show-summary fail -o single-line-summary
	@echo "cfn-guard: every rule passed"

validate-tests:
	@echo "== gate tests: the gate fails for the right reason on broken templates"
	$(OFFLINE_AWS) CFN_GUARD=$(CFN_GUARD) $(SAM_VENV)/bin/python -m pytest -q -p no:cacheprovider \
	  $(INFRA_DIR)/validate/tests

# ENV names an environment of infra/samconfig.toml (one per TRE project).
deploy: $(SAM_STAMP) ## deploy one TRE project's stack: make build && make deploy ENV=<project>
	@test -n "$(ENV)" || { echo "usage: make deploy ENV=<environment of infra/samconfig.toml>" >&2; exit 2; }
	@grep -q '^\[$(ENV)\.deploy\.parameters\]' $(SAMCONFIG) || \
	  { echo "infra/samconfig.toml has no [$(ENV).deploy.parameters] section" >&2; exit 2; }
	$(SAM_VENV)/bin/python $(INFRA_DIR)/validate/check_build.py --template $(TEMPLATE) \
	  --samconfig $(SAMCONFIG) --env $(ENV) --lambda-dir $(ROOT)/target/lambda
	$(MAKE) validate
	$(SAM_VENV)/bin/python $(INFRA_DIR)/validate/package.py --template $(TEMPLATE) \
	  --samconfig $(SAMCONFIG) --env $(ENV) --out-dir $(ROOT)/build/deploy/$(ENV)
	cd $(INFRA_DIR) && SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam deploy \
	  --template-file $(ROOT)/build/deploy/$(ENV)/template.json \
	  --config-file $(SAMCONFIG) --config-env $(ENV)

TEST_TARGETS += validate
