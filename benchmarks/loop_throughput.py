"""The whole pre-training loop vs the step alone, for one config (default: the synthetic_tiny demo).

Measures, in one process and on the same machine state:
  step_only_img_s  the training step on a batch already in memory (same model, batch, precision)
  loader_img_s     the data pipeline alone (DataLoader with the config's workers, no training)
  loop_img_s       a real `pretrain()` run (data pipeline + workers + step + logging), steady state
  generator_fps    the synthetic renderer in this process, one core

    python benchmarks/loop_throughput.py [--config training/configs/pretrain/synthetic_tiny.yaml] [--steps 40] [--json]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import print_result  # noqa: E402
from _short_run import short_run_metrics  # noqa: E402
from mask3d.training.pretrain.config import load_config  # noqa: E402
from mask3d.training.data.pretrain_data import EpochIndexSampler, PretrainSamples  # noqa: E402
from mask3d.training.data.synthetic import render_scene  # noqa: E402
from mask3d.training.data.transforms import JointTransform  # noqa: E402
from mask3d.training.runtime.precision import autocast_context  # noqa: E402
from mask3d.training.pretrain.engine import (build_encoder, build_frames, build_optimizer,  # noqa: E402
                                    build_pretrainer)


def step_only(cfg, iters: int) -> float:
    torch.manual_seed(0)
    model = build_pretrainer(cfg, build_encoder(cfg), torch.device('cpu'))  # same settings as the engine
    opt = build_optimizer(cfg, model, lr=1e-4)
    b = cfg.data.batch_size
    h, w = cfg.data.image_size
    rgb, depth = torch.randn(b, 3, h, w), torch.rand(b, 1, h, w) * 4 + 0.5
    times = []
    for i in range(iters + 2):
        t0 = time.perf_counter()
        with autocast_context(torch.device('cpu'), cfg.train.precision):
            loss = model(rgb, depth)['loss']
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return b / statistics.median(times)


def loader_only(cfg, batches: int) -> float:
    frames = build_frames(cfg)
    samples = PretrainSamples(frames, JointTransform(cfg.data.image_size), patch_size=16, seed=0)
    sampler = EpochIndexSampler(len(samples), seed=0)
    sampler.set_epoch(0)
    loader = torch.utils.data.DataLoader(samples, batch_size=cfg.data.batch_size, sampler=sampler,
                                         num_workers=cfg.data.num_workers, drop_last=True,
                                         prefetch_factor=4 if cfg.data.num_workers else None)
    it = iter(loader)
    next(it)  # start-up
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * cfg.data.batch_size / (time.perf_counter() - t0)


def loop(cfg, steps: int) -> float:
    records = short_run_metrics(cfg, steps)
    steady = [r['img_s'] for r in records if r['step'] > max(5, steps // 4)]
    return statistics.median(steady)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default='training/configs/pretrain/synthetic_tiny.yaml')
    p.add_argument('--set', action='append', default=[])
    p.add_argument('--steps', type=int, default=40)
    p.add_argument('--json', action='store_true')
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.set)
    h, w = cfg.data.image_size
    t0 = time.perf_counter()
    for i in range(10):
        render_scene(0, i, h, w)
    r = {'config': args.config, 'overrides': args.set, 'batch_size': cfg.data.batch_size,
         'num_workers': cfg.data.num_workers, 'precision': cfg.train.precision, 'torch': torch.__version__,
         'threads': torch.get_num_threads(), 'generator_fps': 10 / (time.perf_counter() - t0)}
    r['step_only_img_s'] = step_only(load_config(args.config, args.set), 6)
    r['loader_img_s'] = loader_only(load_config(args.config, args.set), 10)
    r['loop_img_s'] = loop(load_config(args.config, args.set), args.steps)
    r['loop_over_step_only'] = r['loop_img_s'] / r['step_only_img_s']
    print_result(r, args.json)
    return 0


if __name__ == '__main__':
    sys.exit(main())
