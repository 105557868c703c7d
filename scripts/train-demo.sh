#!/usr/bin/env bash
# Set up, then train the report's case-1 CNN for one epoch on MNIST and print its test accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/env.sh
.venv/bin/digitrec train --model paper-case1 --epochs 1 --out "runs/main-$(date +%Y%m%d-%H%M%S)" "$@"
