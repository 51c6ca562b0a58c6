"""Which pretext knobs make Mask3D pre-training need the encoder? (issue 11, docs/pretraining.md)

Each arm pre-trains the replication recipe (ViT-Ti/16, 128x160, batch 16, synthetic rooms rendered by
``mask3d data synth``) for the same steps from the paper preset plus its overrides, then measures on held-out
frames (fixed masks): ``rgb_reliance`` under its own pretext and the depth reconstruction errors, unaligned
(de-normalised from visible depth only) and aligned (least-squares scale and shift), over the hidden patches.

    python benchmarks/pretext_knobs.py --train runs/knobs/data/train --val runs/knobs/data/val --steps 300
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAPER = ROOT / 'training' / 'configs' / 'replicate' / 'pretrain_mask3d_paper_allstats.yaml'  # as the study ran
VISIBLE = ['method.depth_norm_stats=visible']
ARMS = {
    'paper': [],
    'visible_stats': VISIBLE,
    'loss_masked': ['method.loss_on=masked'],
    'depth_0.9': VISIBLE + ['method.depth_mask_ratio=0.9'],
    'depth_0.95': VISIBLE + ['method.depth_mask_ratio=0.95'],
    'depth_1.0': VISIBLE + ['method.depth_mask_ratio=1.0'],
    'drop_0.5': VISIBLE + ['method.depth_drop_prob=0.5'],
    'depth_0.95_drop_0.5_masked': VISIBLE + ['method.depth_mask_ratio=0.95', 'method.depth_drop_prob=0.5',
                                             'method.loss_on=masked'],
}


@torch.no_grad()
def evaluate(run: Path, val: Path, batches: int = 4, batch_size: int = 16) -> dict:
    from mask3d.factory import create_model
    from mask3d.training.runtime.checkpoint import load_training_checkpoint
    from mask3d.training.pretrain.config import config_from_dict
    from mask3d.training.data.folder import RGBDFolder
    from mask3d.training.data.transforms import JointTransform
    from mask3d.training.pretrain.depth_eval import depth_reconstruction_errors
    from mask3d.training.pretrain.pretrainer import Mask3DPretrainer
    from mask3d.training.pretrain.reliance import rgb_reliance
    state = load_training_checkpoint(run / 'checkpoints' / 'last.pt')
    cfg = config_from_dict(state['config'])
    model = Mask3DPretrainer(create_model(cfg.model.name, **cfg.model.model_args), cfg.method)
    model.load_state_dict(state['model'])
    enc = model.encoder.pretrained_cfg
    tf = JointTransform(cfg.data.image_size, scale=(1.0, 1.0), hflip=0.0, mean=enc['mean'], std=enc['std'])
    frames = RGBDFolder(val)
    rng = np.random.default_rng(0)
    rel, errs = [], []
    for k in range(batches):
        samples = [tf(frames[k * batch_size + i], rng) for i in range(batch_size)]
        rgb = torch.stack([s['rgb'] for s in samples])
        depth = torch.stack([s['depth'] for s in samples])
        n = (rgb.shape[-2] // 16) * (rgb.shape[-1] // 16)
        noise = torch.from_numpy(rng.random((batch_size, 2, n), dtype=np.float32))
        rel.append(rgb_reliance(model, rgb, depth, mask_noise=noise))
        errs.append(depth_reconstruction_errors(model, rgb, depth, mask_noise=noise))
    out = {'rgb_reliance_val': statistics.fmean(rel)}
    for key in ('abs_rel_hidden_unaligned', 'abs_rel_hidden_aligned'):
        vals = [e[key] for e in errs if e[key] == e[key]]
        out[key] = statistics.fmean(vals) if vals else float('nan')
    return out


def main(argv=None) -> int:
    from mask3d.training.pretrain.config import load_config
    from mask3d.training.pretrain.engine import pretrain
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--train', type=Path, required=True)
    p.add_argument('--val', type=Path, required=True)
    p.add_argument('--out', type=Path, default=Path('runs/pretext_knobs'))
    p.add_argument('--steps', type=int, default=300)
    p.add_argument('--arms', nargs='*', default=list(ARMS))
    p.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE',
                   help='overrides applied to every arm, e.g. data.image_size=[96,128]')
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    results = {}
    for name in args.arms:
        run = args.out / name
        if not (run / 'summary.json').is_file():
            cfg = load_config(PAPER, ARMS[name] + args.set + [f'data.root={args.train}', f'train.steps={args.steps}',
                                                   f'train.log_every={max(args.steps // 6, 1)}',
                                                   f'train.ckpt_every={args.steps}', 'train.export_at_end=false'])
            t0 = time.perf_counter()
            pretrain(cfg, run, progress=False)
            print(f'{name}: trained in {time.perf_counter() - t0:.0f}s', flush=True)
        summary = json.loads((run / 'summary.json').read_text())
        results[name] = {'overrides': ARMS[name] + args.set, 'steps': summary['steps'],
                         'rgb_reliance_train_first': summary['rgb_reliance']['first'],
                         'rgb_reliance_train_last': summary['rgb_reliance']['last'],
                         'loss_depth_last': summary['final']['loss_depth'], **evaluate(run, args.val)}
        print(name, json.dumps(results[name]), flush=True)
        (args.out / 'results.json').write_text(json.dumps(results, indent=2))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
