#!/usr/bin/env bash
# The main job: set up, then recognize the digits in examples/ with the model shipped in the package.
# (Training the report's case-1 CNN for one epoch instead: bash scripts/train-demo.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/digitrec predict examples/ "$@"
