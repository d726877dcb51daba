#!/usr/bin/env bash
# Create ./venv (if missing) with everything the tests need; quick when already installed.
#   bash scripts/setup_venv.sh
# PYTHON=/path/to/python3.x picks the interpreter (onert wheels exist for CPython 3.10-3.12).
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

TORCHAO_PIN="torchao==0.18.0"

pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  local p
  for p in python3.11 python3.12 python3.10 python3; do
    # pyenv shims exist for versions that are not active; ask the interpreter itself.
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys' >/dev/null 2>&1; then
      echo "$p"; return
    fi
  done
  echo "setup_venv.sh: no python3 found" >&2
  exit 1
}

if [ ! -x venv/bin/python ]; then
  py="$(pick_python)"
  echo "setup_venv.sh: creating venv with $("$py" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
  "$py" -m venv venv
fi

stamp=venv/.requirements.stamp
want="$(cat requirements.txt requirements-test.txt; echo "$TORCHAO_PIN")"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && venv/bin/python -c 'import torch, numpy, flatbuffers, circle_schema, onert, tico, torchao, pytest, sklearn' >/dev/null 2>&1; then
  echo "setup_venv.sh: venv up to date"
  exit 0
fi

# torch comes first through requirements.txt (its exact pin takes the CPU wheel); tico and onert
# then find it installed. torchao goes last without its dependencies, which would pull another torch.
venv/bin/python -m pip install -q -r requirements-test.txt
venv/bin/python -m pip install -q --no-deps "$TORCHAO_PIN"
venv/bin/python -c 'import torch, numpy, flatbuffers, circle_schema, onert, tico, torchao, pytest, sklearn; print("setup_venv.sh: torch", torch.__version__)'
printf '%s' "$want" > "$stamp"
