#!/usr/bin/env bash
# Every benchmark behind docs/performance.md and docs/datasets.md, in one go (about 50 minutes on 2 CPU cores).
# Results: benchmarks/results/*.json, docs/figures/cost_scaling.png.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p benchmarks/results docs/figures
$PY benchmarks/pretrain_throughput.py --batch-size 8 --precision bf16 --json > benchmarks/results/vitb_bf16.json
$PY benchmarks/pretrain_throughput.py --batch-size 8 --precision bf16 --variants mask3d --no-memory --profile \
    > benchmarks/results/vitb_bf16_profile.txt
$PY benchmarks/fast_paths.py --batch-size 8 --iters 5 --json > benchmarks/results/fast_paths.json
$PY benchmarks/inference.py --batch-size 8 --json > benchmarks/results/inference_240x320.json
$PY benchmarks/inference.py --batch-size 8 --image-size 224 224 --json > benchmarks/results/inference_224.json
$PY benchmarks/loop_throughput.py --json > benchmarks/results/loop_synthetic_tiny.json
synth=$(mktemp -d)
$PY -m mask3d data synth --out "$synth" --frames 480 --seed 0 > /dev/null
$PY benchmarks/loop_throughput.py --set data.source=folder --set "data.root=$synth" --json \
    > benchmarks/results/loop_synthetic_tiny_prerendered.json
rm -rf "$synth"
$PY benchmarks/cost_scaling.py --batch-size 4 --out docs/figures/cost_scaling.png --json benchmarks/results/cost_scaling.json
$PY benchmarks/data_throughput.py --json > benchmarks/results/data_throughput.json
$PY benchmarks/precision_loss_curve.py --json > benchmarks/results/bf16_vs_fp32_loss.json
