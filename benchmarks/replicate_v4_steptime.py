"""Seconds per pre-training step of the v4 arms at a given size, on this machine, for the v4 budget.

Times forward + backward + AdamW of the arm YAMLs' models (MAE and Mask3D with the paper's masks) on a fixed
batch of synthetic rooms (rendered once, so rendering is not timed), after warm-up steps; the median of the timed
steps is reported. The v4 plan in docs/results.md chooses its step counts from these numbers.

    nice -n 10 python benchmarks/replicate_v4_steptime.py --size 192 256 --batch 16 --threads 1 \
        --out benchmarks/results/replicate_v4_steptime.json
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
ARM_YAMLS = {'mae': 'pretrain_mae.yaml', 'mask3d_paper': 'pretrain_mask3d_paper.yaml'}


def batch_of_rooms(n: int, size, mean, std):
    """``n`` synthetic rooms (seed 0) at ``size``, normalised like the encoder's pretrained_cfg."""
    from mask3d.training.data.synthetic import render_scene
    frames = [render_scene(0, i, *size) for i in range(n)]
    rgb = torch.stack([torch.from_numpy(f['rgb']).float() / 255 for f in frames])
    rgb = (rgb - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    return rgb, torch.stack([torch.from_numpy(f['depth']) for f in frames])


def time_arm(yaml_name: str, model: str, size, batch: int, steps: int, warmup: int) -> dict:
    from mask3d.factory import create_model
    from mask3d.training.pretrain.config import load_config
    from mask3d.training.pretrain.pretrainer import Mask3DPretrainer
    cfg = load_config(REPO / 'training' / 'configs' / 'replicate' / yaml_name, [f'model.name={model}'])
    net = Mask3DPretrainer(create_model(model), cfg.method).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    enc = net.encoder.pretrained_cfg
    rgb, depth = batch_of_rooms(batch, size, enc['mean'], enc['std'])
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            loss = net(rgb, depth)['loss']
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return {'s_per_step_median': statistics.median(times), 's_per_step': times}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--size', type=int, nargs=2, default=[192, 256])
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--models', nargs='+', default=['mask3d_vit_tiny_patch16'])
    p.add_argument('--arms', nargs='+', default=list(ARM_YAMLS), choices=tuple(ARM_YAMLS))
    p.add_argument('--steps', type=int, default=8)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--out', default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    np.random.seed(0)
    torch.manual_seed(0)
    import os
    result = {'size': args.size, 'batch': args.batch, 'threads': args.threads, 'torch': torch.__version__,
              'load_average_at_start': os.getloadavg(), 'runs': {}}
    for model in args.models:
        for arm in args.arms:
            r = time_arm(ARM_YAMLS[arm], model, args.size, args.batch, args.steps, args.warmup)
            result['runs'][f'{model}/{arm}'] = r
            print(f"{model} {arm} {args.size[0]}x{args.size[1]} batch {args.batch}, {args.threads} thread(s): "
                  f"{r['s_per_step_median']:.3f} s/step (median of {args.steps})", flush=True)
    result['load_average_at_end'] = os.getloadavg()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
