#!/usr/bin/env bash
# Regenerates the plain manifests in deploy/k8s (and the config part of the chart's
# values.schema.json) from the Helm chart in deploy/helm/portcullis; `--check` only reports
# stale files (exit 1). tests/python/test_k8s_manifests.py fails while any file is stale.
#
# Needs Python with helm-python-sdk (Helm's Go SDK as a library; no helm binary), as installed by
# scripts/test: python3 -m venv .venv && .venv/bin/pip install -r tests/python/requirements.txt
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
if ! "$PYTHON" -c 'import helm_python, yaml' 2>/dev/null; then
  echo "error: $PYTHON cannot import helm_python; install tests/python/requirements.txt into .venv" >&2
  echo "  (python3 -m venv .venv && .venv/bin/pip install -r tests/python/requirements.txt)" >&2
  exit 2
fi
case "${1:-}" in
  --check) exec "$PYTHON" tests/python/k8s_env.py check ;;
  "") exec "$PYTHON" tests/python/k8s_env.py render ;;
  *) echo "usage: deploy/render.sh [--check]" >&2; exit 2 ;;
esac
