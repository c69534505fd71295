#!/usr/bin/env bash
# Installs everything the stack and the tests need on a fresh machine; re-running is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/uv ]; then
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
  .venv/bin/pip install -q uv==0.13.8
fi
.venv/bin/uv pip sync -q --python .venv/bin/python requirements.lock
if [ ! -x scripts/node/node_modules/.bin/buf ]; then
  (cd scripts/node && npm install --silent --no-audit --no-fund)
fi
# The Python SDK 3.x runs in a virtualenv of its own: it cannot share one with SDK 5.x.
if [ ! -x .dev/venvs/langfuse3/bin/python ]; then
  python3 -m venv .dev/venvs/langfuse3
  .dev/venvs/langfuse3/bin/pip install -q "langfuse==3.15.0"
fi
# wrk drives the HTTP benchmarks (`make bench`): a C load generator leaves the cores to the stack.
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
scripts/engines.sh install
