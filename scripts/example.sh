#!/usr/bin/env bash
# Set everything up and run the main job on the bundled example (see README).
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
bash scripts/setup_venv.sh
venv/bin/python examples/example.py "$@"
