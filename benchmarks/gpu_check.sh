#!/usr/bin/env bash
# Every check that needs a GPU, one JSON summary on stdout (see benchmarks/gpu_check.py).
#   bash benchmarks/gpu_check.sh            # on one GPU, under 8 minutes
#   bash benchmarks/gpu_check.sh --smoke    # tiny sizes on the CPU
set -euo pipefail
cd "$(dirname "$0")/.."
export TOKENIZERS_PARALLELISM=false
exec python benchmarks/gpu_check.py "$@"
