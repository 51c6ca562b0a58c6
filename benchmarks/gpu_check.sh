#!/usr/bin/env bash
# One short CUDA check of everything that has a CUDA path: pre-training (bf16 autocast, SDPA attention, fused
# AdamW), fine-tuning of all three tasks from that run, resume on CUDA, and ViT-B throughput. Writes to $OUT
# (or ./gpu_check_out). Usage: bash benchmarks/gpu_check.sh   (PY=python3 STEPS=60 DEVICE=cuda by default)
set -uo pipefail
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-60}
OUT=${OUT:-gpu_check_out}
W=${WORKERS:-8}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
T=$(mktemp -d)
log() { echo "== $*"; }
$PY - <<'PY'
import platform, torch, torchvision, timm
print('python', platform.python_version(), 'torch', torch.__version__, 'torchvision', torchvision.__version__,
      'timm', timm.__version__, 'cuda', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
PY
log "pretrain $STEPS steps on $DEVICE"
$PY -m mask3d pretrain --config training/configs/pretrain/synthetic_tiny.yaml --output "$T/pre" \
    --set train.steps=$STEPS --set train.device=$DEVICE --set data.num_workers=$W --set train.ckpt_every=$((STEPS / 2)) \
    --set train.figure_every=$STEPS 2>&1 | grep -v "it/s\]$" | tail -4
cp "$T/pre/figures/step_$(printf %07d $STEPS).png" "$OUT/pretrain_reconstruction.png" 2>/dev/null
for task in semseg depth instance; do
  log "finetune $task on $DEVICE from the pre-training run"
  $PY -m mask3d finetune --task $task --config training/configs/finetune/synthetic_$task.yaml --backbone "$T/pre" \
      --output "$T/ft_$task" --set train.steps=$STEPS --set train.device=$DEVICE --set data.num_workers=$W \
      --set train.precision=bf16 --set data.synthetic_val_length=32 2>&1 | grep -v "it/s\]$\|step/s\]$\|batch/s\]$" | tail -3
  cp "$T/ft_$task/eval/metrics_val.json" "$OUT/finetune_${task}_metrics.json" 2>/dev/null
  tail -3 "$T/ft_$task/metrics.jsonl" | cut -c1-220
done
cp "$T/ft_instance/eval/predictions_val.png" "$OUT/finetune_instance_predictions.png" 2>/dev/null
log "exact resume on $DEVICE (semseg: run to $STEPS, then again from the step-$((STEPS / 2)) checkpoint)"
$PY - "$T" $STEPS $DEVICE <<'PY'
import shutil, sys, torch
from pathlib import Path
from mask3d.training.finetune.config import load_finetune_config
from mask3d.training.finetune.engine import finetune
t, steps, device = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
sets = [f'train.steps={steps // 3}', f'train.ckpt_every={steps // 6}', f'train.keep_every={steps // 6}',
        f'train.device={device}', 'data.num_workers=4', 'data.synthetic_val_length=8', 'train.deterministic=true']
cfg = lambda: load_finetune_config('training/configs/finetune/synthetic_semseg.yaml', sets)
finetune(cfg(), t / 'r_full', progress=False)
shutil.copytree(t / 'r_full', t / 'r_cut')
shutil.copy(t / 'r_cut' / 'checkpoints' / f'step_{steps // 6:07d}.pt', t / 'r_cut' / 'checkpoints' / 'last.pt')
finetune(cfg(), t / 'r_cut', resume=True, progress=False)
a = torch.load(t / 'r_full/checkpoints/last.pt', weights_only=True)['model']
b = torch.load(t / 'r_cut/checkpoints/last.pt', weights_only=True)['model']
print('resume max |weight difference| on', device, max((a[k].float() - b[k].float()).abs().max().item() for k in a))
PY
if [ "$DEVICE" = cuda ]; then
  log "ViT-B/16 pre-training step throughput, bf16, batch 64, 240x320"
  $PY benchmarks/pretrain_throughput.py --device cuda --batch-size 64 --precision bf16 --iters 20 --warmup 5 --no-memory --json \
      > "$OUT/gpu_pretrain_throughput_vitb.json"; tail -c 1500 "$OUT/gpu_pretrain_throughput_vitb.json"
fi
rm -rf "$T"
