# The TREEHOOSE egress web app against a stack: its build configuration (REACT_APP_*).

.PHONY: webapp-env
webapp-env: ## write the web app's .env.*.local for the running local stack: make webapp-env APP=<web app checkout> [CFN_OUTPUTS=<describe-stacks outputs JSON> for a deployed stack]
	@test -n "$(APP)" || { echo "usage: make webapp-env APP=<web app checkout> [CFN_OUTPUTS=<file>]" >&2; exit 2; }
	@PYTHONPATH=$(ROOT)/local python3 -m egress_local.webapp_env --app "$(APP)" $(if $(CFN_OUTPUTS),--cfn-outputs "$(CFN_OUTPUTS)")
