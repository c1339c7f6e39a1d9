# The two commands: `make run` (demo studio) and `make test` (every test). Each sets up what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test bench browser clean

$(BIN)/.installed: pyproject.toml setup.py lmserver/media/_sendloop.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# Headless Chromium for the browser tests (Debian/Ubuntu package; never a downloaded browser build), a
# colour emoji font so the gift emoji in screenshots are not empty boxes, and Caddy for the reverse-proxy
# test of docs/deploy.md (tests/e2e/test_https_deploy.py), and nginx with its RTMP module for the restream
# tests (tests/media/test_restream.py starts its own nginx on loopback ports).
browser:
	@pkgs=; \
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || pkgs="$$pkgs chromium"; \
	command -v caddy >/dev/null 2>&1 || pkgs="$$pkgs caddy"; \
	command -v nginx >/dev/null 2>&1 || pkgs="$$pkgs nginx"; \
	dpkg -s libnginx-mod-rtmp >/dev/null 2>&1 || pkgs="$$pkgs libnginx-mod-rtmp"; \
	dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 || fc-list 2>/dev/null | grep -qi emoji || pkgs="$$pkgs fonts-noto-color-emoji"; \
	if [ -n "$$pkgs" ]; then \
	  echo "installing for the browser tests (apt-get):$$pkgs"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$pkgs >/dev/null; \
	fi

run: $(BIN)/.installed
	$(BIN)/lmserver serve --demo --data-dir data --host $(HOST) --port $(PORT)

test: $(BIN)/.installed browser
	$(BIN)/python -m pytest

bench: $(BIN)/.installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
