#!/usr/bin/env bash
# Install LiteLLM's proxy from PyPI into bench/.litellm-venv (once), then run the gateway
# benchmark with LiteLLM as a third column: direct nginx, spendgate and LiteLLM, measured in
# one run on the same fixed-response upstream. Arguments go to bench/gateway_bench.py
# (e.g. --quick). Set LITELLM_VERSION to pin a version.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=bench/.litellm-venv
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/litellm" ]; then
    echo "installing litellm[proxy]${LITELLM_VERSION:+==$LITELLM_VERSION} into $venv …"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet "litellm[proxy]${LITELLM_VERSION:+==$LITELLM_VERSION}"
fi
exec .venv/bin/python bench/gateway_bench.py --litellm "$venv/bin/litellm" "$@"
