# cf-allow — the two set-up commands of the README:
#   make run    build and run a dry-run sync (shows what would change; changes nothing)
#   make test   install what the tests need, then run every test (as root: the kernel tests)
# Both install missing Debian packages themselves.

SHELL := /bin/bash
CARGO ?= cargo
DEB_PACKAGES := nftables iptables ipset libnftnl-dev libmnl-dev pkg-config perl iproute2 python3 python3-venv
RUN_DIR := target/run

.PHONY: run test deps build release fmt lint bench package clean

## Install the Debian packages that building and testing need, when they are missing.
deps:
	@command -v $(CARGO) >/dev/null || { echo "cargo is missing: install Rust >= 1.89 (https://rustup.rs), then re-run make" >&2; exit 1; }
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(CARGO) build --locked

release: deps
	$(CARGO) build --locked --release

## A dry-run sync with the built-in defaults (backend detected, state kept under target/run).
run: release
	@mkdir -p $(RUN_DIR)
	@printf 'state_dir: %s/state\n' "$(CURDIR)/$(RUN_DIR)" > $(RUN_DIR)/config.yaml
	./target/release/cf-allow --config $(RUN_DIR)/config.yaml sync --dry-run

## Every test: unit, property, fetcher, kernel (network namespaces), CSF sandbox, packaging.
test: deps
	$(CARGO) test --locked --workspace --all-targets
	$(CARGO) test --locked --workspace --doc

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean

## Wall time and peak memory per backend, printed as a table (root).
bench: release
	@command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
	BIN=target/release/cf-allow bash bench/run.sh
