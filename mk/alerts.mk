# The Prometheus rules: recording rules, SLOs and alerts, generated from the spec in
# scripts/gen_alert_rules.py, and their promtool tests (tests/repo/promtool). Included by the
# main Makefile, whose $(BIN) and $(STAMP) it uses, and apt_install of mk/deploy.mk (promtool
# comes with Debian's prometheus package). `make check` runs the same checks through
# tests/repo/test_alert_rules.py.
ifndef PAYMENTS_ALERTS_MK
PAYMENTS_ALERTS_MK := 1

.PHONY: rules rules-check

rules: $(STAMP) ## Regenerate deploy/prometheus/rules and the PrometheusRule from the SLO and alert spec
	$(BIN)/python scripts/gen_alert_rules.py

rules-check: $(STAMP) ## The rules are up to date, `promtool check rules` and `promtool test rules` pass
	@command -v promtool >/dev/null || $(call apt_install,prometheus)
	$(BIN)/python scripts/gen_alert_rules.py --check
	promtool check rules deploy/prometheus/rules/payments.rules.yml
	cd tests/repo/promtool && promtool test rules *.test.yml

endif
