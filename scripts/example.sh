#!/usr/bin/env bash
# Set everything up (./venv, when missing or stale) and run the main job on real data (see README):
# train a small CNN on scikit-learn's digits, quantize it, convert it through cfg/, run it on onert.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
bash scripts/setup_venv.sh
venv/bin/python examples/example.py "$@"
