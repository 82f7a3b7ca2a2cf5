# Evidence anyone can verify (README "Evidence anyone can verify").

.PHONY: evidence

evidence: ## export a request's evidence pack (manifest, signature, audit chain + verification, downloads) as evidence-<ID>.json from the running local stack: make evidence ID=<egress_request_id>
	@test -n "$(ID)" || { echo "usage: make evidence ID=<egress_request_id>"; exit 2; }
	$(CARGO) run --locked -q -p e2e-tests --bin egress-evidence -- $(ID) $(if $(OUT),$(OUT))
