#!/usr/bin/env bash
# One GPU session in under 10 minutes: `make gpu-check`, then the serving benchmark's compiled-decoding rows on CUDA
# (bf16: eager, no cache, compiled static cache with CUDA graphs, BART eager and compiled; greedy batch 1 and 8, beam 5).
# Everything goes to $OUT (default artifacts/gpu-session) with the date, the device and the commit; copy the tables
# into docs/benchmark.md ("GPU") by hand with those three facts. Never needed by tests or CI.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-artifacts/gpu-session}
mkdir -p "$OUT"
{
    date -u +"%Y-%m-%d %H:%M UTC"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "no nvidia-smi"
    git rev-parse HEAD
} | tee "$OUT/session.txt"
make gpu-check 2>&1 | tee "$OUT/gpu_check.log"
.venv/bin/python scripts/benchmark_serving.py --parts compiled --device cuda --dtype bfloat16 --length 64 \
    --repeats 3 --out-dir "$OUT/serving" --overwrite 2>&1 | tee "$OUT/serving.log"
