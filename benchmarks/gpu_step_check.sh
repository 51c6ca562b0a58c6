#!/usr/bin/env bash
# Issue 15's GPU figures in one command (about 6-8 minutes on an H100; every part has its own time limit so the
# whole stays inside a 15-minute lease): Mask3D step vs full-token step at batch 64 and 256 (eager, torch.compile,
# CUDA graphs), MFU, memory per GPU for ViT-B/L, and loader img/s with 16 workers on sharded ScanNet-like frames,
# with colour decoded in the workers or on the GPU (nvjpeg; that part added about a minute, an estimate: not yet run).
# JSON files land in $OUT (default benchmarks/results/gpu), named after what they measured.
#   bash benchmarks/gpu_step_check.sh                       # on the GPU machine
#   DEVICE=cpu QUICK=1 bash benchmarks/gpu_step_check.sh    # toy sizes on CPU: checks the script itself runs
set -uo pipefail
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-benchmarks/results/gpu}
TAG=${TAG:-$($PY -c "import torch; n = torch.cuda.get_device_name(0).lower() if torch.cuda.is_available() else 'cpu'; print('h200' if 'h200' in n else 'h100' if 'h100' in n else n.split()[-1])")}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
log() { echo "== $(date +%T) $*"; }
if [ -n "${QUICK:-}" ]; then   # toy sizes: a 1-block ViT-Ti, 2 iterations, few frames
  SIZE=(--model mask3d_vit_tiny_patch16 --model-args '{"depth": 1}' --image-size 64 96 --decoder-depth 1 --decoder-dim 64
        --iters 2 --warmup 1 --peak-tflops 0)
  BATCHES="4 8"; MODELS="mask3d_vit_tiny_patch16"; FRAMES=64; WORKERS=2; LIMIT=300; DD_BATCH=8; DD_FRAMES=64
else
  SIZE=(--iters 20 --warmup 5); BATCHES="64 256"; MODELS="mask3d_vit_base_patch16 mask3d_vit_large_patch16"
  FRAMES=2048; WORKERS=16; LIMIT=150; DD_BATCH=64; DD_FRAMES=4096  # DD_: >= 4 batches per worker
fi
PREC=bf16
$PY -c "import platform, torch, timm; print('python', platform.python_version(), 'torch', torch.__version__, 'timm', timm.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"

step() {  # step BATCH VARIANT [extra args]: Mask3D vs full-token step, side by side in one process
  local b=$1 v=$2; shift 2
  log "step: batch $b, $v"
  timeout $LIMIT $PY benchmarks/pretrain_throughput.py --device $DEVICE --precision $PREC --batch-size $b --no-memory \
      --variants mask3d full_tokens "${SIZE[@]}" --json "$@" > "$OUT/${TAG}_step_bs${b}_${v}.json" \
    && $PY -c "import json,sys; r=json.load(open(sys.argv[1])); print({k: round(v, 3) for k, v in r.items() if k.endswith(('img_s', 'mfu', 'first_call_s')) or k.startswith('speedup')})" "$OUT/${TAG}_step_bs${b}_${v}.json" \
    || { echo "   failed or over ${LIMIT}s"; rm -f "$OUT/${TAG}_step_bs${b}_${v}.json"; }
}
for b in $BATCHES; do step $b eager; done
for b in $BATCHES; do step $b cudagraph --compile --compile-mode reduce-overhead; done
for b in $BATCHES; do step $b compile --compile; done

log "loader: $WORKERS workers, files vs shards, ScanNet-like frames (640x480 JPEG + 16-bit PNG -> 240x320)"
timeout $LIMIT $PY benchmarks/shard_throughput.py --frames $FRAMES --workers $WORKERS --rounds 1 --batch-size 64 \
    --per-core-frames 64 --json > "$OUT/${TAG}_loader_${WORKERS}workers_shards_vs_files.json" \
  && tail -c 600 "$OUT/${TAG}_loader_${WORKERS}workers_shards_vs_files.json" && echo \
  || { echo "   failed or over ${LIMIT}s"; rm -f "$OUT/${TAG}_loader_${WORKERS}workers_shards_vs_files.json"; }

log "loader: colour decoded on the GPU (data.decode_device=cuda; nvjpeg) vs in $WORKERS workers, same frames"
timeout 120 $PY -m pytest -q -p no:cacheprovider tests/test_device_decode.py -k cuda 2>&1 | tail -n 2  # CUDA == CPU decode
timeout $LIMIT $PY benchmarks/device_decode_throughput.py --device $DEVICE --frames $DD_FRAMES --workers $WORKERS \
    --batch-size $DD_BATCH --decode-batches 8 --rounds 1 --json > "$OUT/${TAG}_loader_${WORKERS}workers_device_decode.json" \
  && tail -c 700 "$OUT/${TAG}_loader_${WORKERS}workers_device_decode.json" && echo \
  || { echo "   failed or over ${LIMIT}s"; rm -f "$OUT/${TAG}_loader_${WORKERS}workers_device_decode.json"; }

log "memory per GPU (two Mask3D steps, peak allocated)"
$PY - "$DEVICE" "$OUT/${TAG}_memory_per_gpu.json" "$LIMIT" "${QUICK:-}" $MODELS <<'PY'
import json, subprocess, sys
device, out, limit, quick, models = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
batches, extra = ((4,), ['--image-size', '64', '96', '--model-args', '{"depth": 1}']) if quick else ((64, 256), [])
rows = []
for model in models:
    for b in batches:
        for ckpt in ([False, True] if 'large' in model and b == 256 or quick else [False]):
            argv = [sys.executable, 'benchmarks/pretrain_throughput.py', '--memory-only', '--variants', 'mask3d',
                    '--model', model, '--batch-size', str(b), '--precision', 'bf16', '--device', device] + extra
            argv += ['--grad-checkpointing'] if ckpt else []
            try:
                r = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
                peak, growth = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else (None, None)
                err = None if r.returncode == 0 else r.stderr.strip().splitlines()[-1][:200]
            except subprocess.TimeoutExpired:
                peak, growth, err = None, None, f'over {limit}s'
            rows.append({'model': model, 'batch_size': b, 'grad_checkpointing': ckpt, 'peak_mib': peak,
                         'step_growth_mib': growth, 'error': err})
            print(rows[-1], flush=True)
json.dump({'device': device, 'precision': 'bf16', 'image_size': [240, 320] if not quick else [64, 96],
           'rows': rows}, open(out, 'w'), indent=1)
PY
log "done: $OUT"
