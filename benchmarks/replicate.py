"""Small-scale replication of the paper's claim: does masked RGB-D pre-training (Mask3D) give a ViT better
features than RGB-only masked pre-training (MAE) or no pre-training?

On the built-in synthetic rooms, rendered once and shared by every arm: pre-train ViT-Tiny/16 per arm with the
same data, budget and seed (training/configs/replicate/pretrain_*.yaml), fine-tune every backbone with one
identical recipe on semantic segmentation and depth estimation (finetune_*.yaml), for several seeds; then the
paper's knobs (RGB mask ratio, depth input, depth+RGB targets), a real-data indication on the labelled NYUv2
frame, and the pre-trained models' depth-reconstruction error on real RGB-D frames (sim-to-real gap).

    python benchmarks/replicate.py --quick            # smoke version, under 10 minutes on 2 CPU cores
    python benchmarks/replicate.py --preset medium    # the run behind docs/results.md, about 1 hour on 2 cores
    python benchmarks/replicate.py                    # the full budget, about 2.5 hours on 2 cores

Every run is a normal ``mask3d`` run directory under --out; an interrupted replication continues where it
stopped (finished runs are kept, unfinished ones resume from their last checkpoint). Results: OUT/results.json,
OUT/results.md (tables), OUT/*.png (bar plot, curves).
"""
import argparse
import json
import os
import statistics
import sys
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / 'training' / 'configs' / 'replicate'
SHARED = REPO.parent / 'shared' / 'data' / 'rgbd'

ARMS = {'mask3d': 'pretrain_mask3d.yaml', 'mae': 'pretrain_mae.yaml', 'scratch': None}
ABLATIONS = {  # each a Mask3D pre-training with one knob changed (the main arm is rgb_mask_ratio 0.8, depth in)
    'rgb_mask_0.5': ['method.rgb_mask_ratio=0.5'],
    'rgb_mask_0.75': ['method.rgb_mask_ratio=0.75'],
    'rgb_mask_0.9': ['method.rgb_mask_ratio=0.9'],
    'no_depth_input': ['method.depth_input=false'],
    'depth+rgb_targets': ['method.rgb_loss_weight=1.0'],
    'depth_norm_metric': ['method.depth_norm=metric'],   # absolute depth (/10 m) instead of per-frame standardised
}
BUDGETS = {
    'smoke': dict(train_frames=32, val_frames=8, pretrain_steps=2, finetune_steps=2, seeds=[0],  # tests only
                  ablation_seeds=[0], ablations=['no_depth_input'], probe_steps=2, long_factor=0),
    'quick': dict(train_frames=192, val_frames=32, pretrain_steps=40, finetune_steps=30, seeds=[0],
                  ablation_seeds=[0], ablations=['rgb_mask_0.5', 'no_depth_input'], probe_steps=20, long_factor=0),
    'medium': dict(train_frames=2000, val_frames=160, pretrain_steps=400, finetune_steps=120, seeds=[0, 1, 2],
                   ablation_seeds=[0], ablations=list(ABLATIONS), probe_steps=100, long_factor=3),
    'full': dict(train_frames=3000, val_frames=160, pretrain_steps=1500, finetune_steps=300, seeds=[0, 1, 2],
                 ablation_seeds=[0], ablations=list(ABLATIONS), probe_steps=100, long_factor=3),
}
TASKS = {'semseg': ('miou', 'max'), 'depth': ('abs_rel', 'min')}


def _render_shard(args):
    from mask3d.training.data.cli import write_synthetic
    out, start, stop, seed, size = args
    write_synthetic(out, stop, seed, size, progress=False, start=start)


def render(out: Path, frames: int, seed: int, size, workers: int) -> Path:
    """Synthetic rooms written once as an RGB-D folder (PNG, depth in mm), shared by every arm and task."""
    done = out / 'classes.json'
    if done.is_file() and len(list((out / 'rgb').glob('*.png'))) == frames:
        return out
    bounds = np.linspace(0, frames, workers * 4 + 1).astype(int)
    shards = [(out, int(a), int(b), seed, tuple(size)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    t0 = time.perf_counter()
    with Pool(workers) as pool:
        pool.map(_render_shard, shards)
    print(f'rendered {frames} frames (seed {seed}) into {out} in {time.perf_counter() - t0:.0f}s', flush=True)
    return out


def _finished(run: Path) -> bool:
    return (run / 'summary.json').is_file()


def run_pretrain(out: Path, name: str, config: str, extra: List[str], seed: int, steps: int, data: Path,
                 device: str) -> Path:
    from mask3d.training.config import load_config
    from mask3d.training.engine import pretrain
    run = out / 'pretrain' / name / f'seed{seed}'
    if not _finished(run):
        cfg = load_config(CONFIGS / config, extra + [f'data.root={data}', f'train.steps={steps}',
                                                     f'train.seed={seed}', f'train.device={device}',
                                                     f'train.ckpt_every={max(steps // 4, 1)}'])
        t0 = time.perf_counter()
        pretrain(cfg, run, resume=(run / 'checkpoints' / 'last.pt').is_file(), progress=False)
        print(f'  pretrain {name} seed {seed}: {time.perf_counter() - t0:.0f}s', flush=True)
    return run


def run_finetune(out: Path, task: str, arm: str, backbone: Optional[Path], seed: int, steps: int, data: Path,
                 val: Path, device: str, extra: List[str] = (), tag: str = '') -> Dict:
    from mask3d.training.finetune.config import load_finetune_config
    from mask3d.training.finetune.engine import finetune
    run = out / 'finetune' / (tag or task) / arm / f'seed{seed}'
    if not _finished(run):
        sets = [f'data.root={data}', f'data.val_root={val}', f'train.steps={steps}', f'train.seed={seed}',
                f'train.device={device}', f'train.ckpt_every={max(steps // 2, 1)}']
        sets += [f'model.backbone={backbone}'] if backbone else []
        cfg = load_finetune_config(CONFIGS / f'finetune_{task}.yaml', sets + list(extra))
        t0 = time.perf_counter()
        finetune(cfg, run, resume=(run / 'checkpoints' / 'last.pt').is_file(), progress=False)
        print(f'  finetune {tag or task} {arm} seed {seed}: {time.perf_counter() - t0:.0f}s', flush=True)
    return json.loads((run / 'summary.json').read_text())


def _mean_std(values: List[float]):
    values = [v for v in values if v == v]
    if not values:
        return float('nan'), float('nan')
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


# ---- real data ------------------------------------------------------------------------------------------------

def real_sources() -> Dict[str, List[Dict]]:
    """A few real RGB-D frames per source from ../shared/data/rgbd (metres, 0 = invalid)."""
    from mask3d.training.data.folder import RGBDFolder, read_depth, read_rgb
    from mask3d.training.data.nyu import NYUSyncFrames
    from mask3d.training.data.sunrgbd import decode_sunrgbd_depth
    from PIL import Image
    if not SHARED.is_dir():
        return {}
    o3d = SHARED / 'open3d' / 'examples' / 'test_data' / 'RGBD' / 'other_formats'

    def pair(rgb, depth):
        return {'rgb': read_rgb(rgb), 'depth': depth[None]}
    sources = {
        'TUM (Kinect v1)': [pair(o3d / 'TUM_color.png', read_depth(o3d / 'TUM_depth.png', 5000))],
        'SUN RGB-D': [pair(o3d / 'SUN_color.jpg', decode_sunrgbd_depth(np.array(Image.open(o3d / 'SUN_depth.png'))))],
        'NYUv2 labelled #1407': [pair(SHARED / 'rcnn-depth' / 'demo-data' / 'images.png',
                                      read_depth(SHARED / 'rcnn-depth' / 'demo-data' / 'rawdepth.png', 1000))],
        'NYUv2 raw (sync)': [NYUSyncFrames(SHARED / 'metric3d' / 'data' / 'nyu_demo')[i] for i in range(3)],
        'ESANet (Kinect v2)': [pair(SHARED / 'esanet' / 'samples' / 'sample_rgb.png',
                                    read_depth(SHARED / 'esanet' / 'samples' / 'sample_depth.png', 10000))],
    }
    seven = SHARED / 'tsdf-fusion-python-7scenes' / 'data'
    sources['7-Scenes'] = [pair(seven / f'frame-{i:06d}.color.jpg', read_depth(seven / f'frame-{i:06d}.depth.png', 1000))
                           for i in range(3)]
    holo = SHARED / 'deep-video-mvs-hololens' / 'sample-data' / 'hololens-dataset' / '000'
    ds = RGBDFolder(holo, depth_scale=1000, rgb_dir='images', depth_dir='depth')
    sources['HoloLens'] = [ds[i] for i in range(0, len(ds), 4)]
    return sources


@torch.no_grad()
def depth_reconstruction_error(run: Path, frames: List[Dict], seed: int = 0) -> Dict[str, float]:
    """AbsRel of a pre-trained model's dense depth (masks as in pre-training, fixed seed) on valid pixels: over the
    depth patches it did not see, and over all pixels. Each frame is resized whole to the pre-training size."""
    from mask3d.factory import create_model
    from mask3d.training.checkpoint import load_training_checkpoint
    from mask3d.training.config import config_from_dict
    from mask3d.training.data.transforms import JointTransform
    from mask3d.training.patches import upsample_patch_mask
    from mask3d.training.pretrainer import Mask3DPretrainer
    state = load_training_checkpoint(run / 'checkpoints' / 'last.pt')
    cfg = config_from_dict(state['config'])
    model = Mask3DPretrainer(create_model(cfg.model.name, **cfg.model.model_args), cfg.method)
    model.load_state_dict(state['model'])
    model.eval()
    enc = model.encoder.pretrained_cfg
    tf = JointTransform(cfg.data.image_size, scale=(1.0, 1.0), hflip=0.0, mean=enc['mean'], std=enc['std'])
    rng = np.random.default_rng(seed)
    hidden_err, all_err = [], []
    for frame in frames:
        s = tf({'rgb': frame['rgb'], 'depth': frame['depth']}, rng)
        rgb, depth = s['rgb'][None], s['depth'][None]
        grid = (rgb.shape[-2] // model.patch_size, rgb.shape[-1] // model.patch_size)
        noise = torch.from_numpy(rng.random((1, 2, grid[0] * grid[1]), dtype=np.float32))
        out = model(rgb, depth, mask_noise=noise)
        pred, valid = out['pred_depth'][0, 0], depth[0, 0] > 0
        hidden = upsample_patch_mask(out['depth_mask'].float(), model.patch_size, grid)[0, 0] > 0
        rel = (pred - depth[0, 0]).abs() / depth[0, 0].clamp_min(1e-3)
        if (valid & hidden).any():
            hidden_err.append(float(rel[valid & hidden].mean()))
        all_err.append(float(rel[valid].mean()))
    return {'abs_rel_hidden': statistics.fmean(hidden_err) if hidden_err else float('nan'),
            'abs_rel_all': statistics.fmean(all_err), 'frames': len(frames)}


def nyu1407_folder(out: Path) -> Optional[Path]:
    """The one real labelled NYUv2 frame as an RGB-D folder with 40-class train ids (labels cropped onto the
    560x425 demo image, see ../shared/data/rgbd/README.md)."""
    from PIL import Image
    demo = SHARED / 'rcnn-depth' / 'demo-data'
    label = SHARED / 'h-0-0-nyuv2-meta-data' / 'test_labels_40' / 'new_nyu_class40_1407.png'
    if not (demo.is_dir() and label.is_file()):
        return None
    root = out / 'data' / 'nyu1407'
    for sub in ('rgb', 'depth', 'semantic'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    Image.open(demo / 'images.png').convert('RGB').save(root / 'rgb' / '1407.png')
    Image.open(demo / 'rawdepth.png').save(root / 'depth' / '1407.png')
    l40 = np.array(Image.open(label))[45:470, 40:600].astype(np.int64)
    Image.fromarray(np.where(l40 > 0, l40 - 1, 255).astype(np.uint8)).save(root / 'semantic' / '1407.png')
    return root


# ---- report ---------------------------------------------------------------------------------------------------

def _fmt(m, s, digits=3):
    return f'{m:.{digits}f} ± {s:.{digits}f}' if m == m else 'n/a'


def plot_bars(path: Path, table: Dict, arms: List[str]) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from mask3d.training.visualize import save_figure
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, (task, (metric, better)) in zip(axes, TASKS.items()):
        means = [table[task][a]['mean'] for a in arms]
        stds = [table[task][a]['std'] for a in arms]
        ax.bar(arms, means, yerr=stds, capsize=4, color=['tab:green', 'tab:blue', 'tab:gray'][:len(arms)])
        for i, (m, runs) in enumerate(zip(means, [table[task][a]['runs'] for a in arms])):
            ax.scatter([i] * len(runs), runs, color='k', s=10, zorder=3)
        ax.set_title(f"{task}: {metric} ({'higher' if better == 'max' else 'lower'} is better)")
    save_figure(fig, path, dpi=100)


def plot_curves(path: Path, out: Path, arms: List[str], seeds: List[int]) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from mask3d.training.runtime import read_metrics
    from mask3d.training.visualize import save_figure
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
    colours = {'mask3d': 'tab:green', 'mae': 'tab:blue', 'scratch': 'tab:gray'}
    for arm in arms:
        for seed in seeds:
            kw = dict(color=colours.get(arm), alpha=0.8, label=arm if seed == seeds[0] else None)
            if arm != 'scratch':
                rec = read_metrics(out / 'pretrain' / arm / f'seed{seed}')
                axes[0].plot([r['step'] for r in rec], [r['loss'] for r in rec], **kw)
            for ax, task in zip(axes[1:], TASKS):
                rec = [r for r in read_metrics(out / 'finetune' / task / arm / f'seed{seed}') if r['split'] == 'train']
                ax.plot([r['step'] for r in rec], [r['loss'] for r in rec], **kw)
    axes[0].set_title('pre-training loss (own objective)')
    axes[1].set_title('semseg fine-tuning loss (CE)')
    axes[2].set_title('depth fine-tuning loss (SILog)')
    for ax in axes:
        ax.set_xlabel('step')
        ax.legend()
    save_figure(fig, path, dpi=100)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='minutes-long smoke version (= --preset quick)')
    p.add_argument('--preset', default='full', choices=tuple(BUDGETS), help='budget (default full)')
    p.add_argument('--out', default=None, help='default runs/replicate_PRESET')
    p.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'))
    p.add_argument('--seeds', type=int, nargs='+', default=None, help='override the budget\'s seeds')
    p.add_argument('--workers', type=int, default=max(1, min(os.cpu_count() or 1, 16)), help='rendering processes')
    args = p.parse_args(argv)
    preset = 'quick' if args.quick else args.preset
    budget = dict(BUDGETS[preset], preset=preset)
    if args.seeds:
        budget['seeds'] = args.seeds
    out = Path(args.out or f'runs/replicate_{preset}').resolve()
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    import yaml
    size = yaml.safe_load((CONFIGS / 'pretrain_mask3d.yaml').read_text())['data']['image_size']
    train = render(out / 'data' / 'train', budget['train_frames'], 0, size, args.workers)
    val = render(out / 'data' / 'val', budget['val_frames'], 1000, size, args.workers)
    results: Dict = {'budget': budget, 'machine': _machine(), 'runs': {}}

    # main comparison
    backbones: Dict = {}
    for arm, config in ARMS.items():
        for seed in budget['seeds']:
            backbones[arm, seed] = run_pretrain(out, arm, config, [], seed, budget['pretrain_steps'], train,
                                                args.device) if config else None
            for task in TASKS:
                s = run_finetune(out, task, arm, backbones[arm, seed], seed, budget['finetune_steps'], train, val,
                                 args.device)
                results['runs'][f'{task}/{arm}/seed{seed}'] = s['val']
    table = {task: {} for task in TASKS}
    for task, (metric, _) in TASKS.items():
        for arm in ARMS:
            runs = [results['runs'][f'{task}/{arm}/seed{s}'][metric] for s in budget['seeds']]
            m, sd = _mean_std(runs)
            table[task][arm] = {'mean': m, 'std': sd, 'runs': runs}
    results['table'] = table

    # ablations: one knob of Mask3D each, fine-tuned with the same recipe
    ablation = {}
    for name in budget['ablations']:
        for seed in budget['ablation_seeds']:
            run = run_pretrain(out, f'ablation_{name}', ARMS['mask3d'], ABLATIONS[name], seed,
                               budget['pretrain_steps'], train, args.device)
            for task, (metric, _) in TASKS.items():
                s = run_finetune(out, task, f'ablation_{name}', run, seed, budget['finetune_steps'], train, val,
                                 args.device)
                ablation.setdefault(name, {}).setdefault(task, []).append(s['val'][metric])
    results['ablation'] = ablation

    # checks behind the reading: frozen-feature linear probes (feature quality without fine-tuning dynamics) and a
    # longer fine-tuning (does the ranking hold with more steps?), first seed only
    seed0 = budget['seeds'][0]
    probe_args = ['model.head=linear', 'model.freeze_backbone=true', 'model.drop_path_rate=0', 'optim.lr=1e-2',
                  'optim.layer_decay=1.0']
    checks = {'synthetic_linear_probe_miou': {}, 'long_finetune_miou': {}}
    for arm in ARMS:
        s = run_finetune(out, 'semseg', arm, backbones[arm, seed0], seed0, budget['finetune_steps'], train, val,
                         args.device, extra=probe_args, tag='semseg_linear_probe')
        checks['synthetic_linear_probe_miou'][arm] = s['val']['miou']
        if budget['long_factor']:
            s = run_finetune(out, 'semseg', arm, backbones[arm, seed0], seed0,
                             budget['finetune_steps'] * budget['long_factor'], train, val, args.device,
                             tag='semseg_long')
            checks['long_finetune_miou'][arm] = s['val']['miou']
    results['checks'] = checks

    # real data: linear probe on the labelled NYUv2 frame; depth reconstruction on real frames
    nyu = nyu1407_folder(out)
    if nyu is not None:
        probe = {}
        for arm in ARMS:
            b = backbones[arm, budget['seeds'][0]]
            s = run_finetune(out, 'semseg', arm, b, 0, budget['probe_steps'], nyu, nyu, args.device, tag='nyu1407_probe',
                             extra=['model.head=linear', 'model.freeze_backbone=true', 'model.num_classes=40',
                                    'model.drop_path_rate=0', 'data.batch_size=1', 'eval.batch_size=1',
                                    'data.image_size=[208,272]', 'optim.lr=1e-2', 'data.color_jitter=0'])
            probe[arm] = {k: v for k, v in s['val']['iou_per_class'].items() if v == v} | \
                {'miou': s['val']['miou'], 'pixel_acc': s['val']['pixel_acc']}
        results['nyu1407_probe'] = probe
    sources = real_sources()
    if sources:
        recon = {}
        synthetic_val = [f for f in _folder_frames(val, 16)]
        depth_models = ['mask3d'] + [f'ablation_{n}' for n in budget['ablations']]
        for name in depth_models:
            run = out / 'pretrain' / name / f'seed{budget["seeds"][0] if name == "mask3d" else budget["ablation_seeds"][0]}'
            recon[name] = {'synthetic val': depth_reconstruction_error(run, synthetic_val)}
            for src, frames in sources.items():
                recon[name][src] = depth_reconstruction_error(run, frames)
        results['depth_reconstruction'] = recon
    results['seconds'] = time.perf_counter() - t_start
    (out / 'results.json').write_text(json.dumps(results, indent=2))
    plot_bars(out / 'replication_bars.png', table, list(ARMS))
    plot_curves(out / 'replication_curves.png', out, list(ARMS), budget['seeds'])
    (out / 'results.md').write_text(report(results))
    print(report(results))
    print(f'results: {out / "results.json"}, {out / "results.md"}, {out / "replication_bars.png"}, '
          f'{out / "replication_curves.png"}  ({results["seconds"] / 60:.1f} min)')
    return 0


def _folder_frames(root: Path, n: int):
    from mask3d.training.data.folder import RGBDFolder
    ds = RGBDFolder(root)
    return [ds[i] for i in range(min(n, len(ds)))]


def _machine() -> Dict:
    import platform

    import timm
    return {'python': platform.python_version(), 'torch': torch.__version__, 'timm': timm.__version__,
            'cpu': platform.processor() or platform.machine(), 'threads': torch.get_num_threads(),
            'cuda': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def report(r: Dict) -> str:
    b = r['budget']
    lines = [f"Preset {b['preset']}: {b['train_frames']} training frames, {b['val_frames']} validation frames (disjoint seed), "
             f"{b['pretrain_steps']} pre-training steps, {b['finetune_steps']} fine-tuning steps, seeds "
             f"{b['seeds']}; {r['seconds'] / 60:.1f} min in all.", '',
             '| arm | semseg mIoU (mean ± std) | depth AbsRel (mean ± std) | per-seed mIoU | per-seed AbsRel |',
             '|---|---|---|---|---|']
    for arm in ARMS:
        s, d = r['table']['semseg'][arm], r['table']['depth'][arm]
        lines.append(f"| {arm} | {_fmt(s['mean'], s['std'])} | {_fmt(d['mean'], d['std'])} | "
                     f"{', '.join(f'{v:.3f}' for v in s['runs'])} | {', '.join(f'{v:.3f}' for v in d['runs'])} |")
    if r.get('ablation'):
        lines += ['', '| Mask3D variant (seed ' + ', '.join(map(str, b['ablation_seeds'])) + ') | semseg mIoU | '
                  'depth AbsRel |', '|---|---|---|']
        main = r['table']
        lines.append(f"| main arm (rgb mask 0.8, depth in, depth target) | {main['semseg']['mask3d']['runs'][0]:.3f}"
                     f" | {main['depth']['mask3d']['runs'][0]:.3f} |")
        for name, tasks in r['ablation'].items():
            lines.append(f"| {name} | {statistics.fmean(tasks['semseg']):.3f} | {statistics.fmean(tasks['depth']):.3f} |")
    c = r.get('checks', {})
    if c:
        lines += ['', f"| check (seed {b['seeds'][0]}) | " + ' | '.join(ARMS) + ' |', '|---|' + '---|' * len(ARMS)]
        lines.append('| semseg mIoU, linear probe on frozen features | ' +
                     ' | '.join(f"{c['synthetic_linear_probe_miou'][a]:.3f}" for a in ARMS) + ' |')
        if c.get('long_finetune_miou'):
            lines.append(f"| semseg mIoU, {b['long_factor']}x fine-tuning steps | " +
                         ' | '.join(f"{c['long_finetune_miou'][a]:.3f}" for a in ARMS) + ' |')
    if r.get('nyu1407_probe'):
        lines += ['', '| linear probe, NYUv2 #1407 (1 frame, trained and scored on it) | mIoU | pixel acc |',
                  '|---|---|---|']
        for arm, v in r['nyu1407_probe'].items():
            lines.append(f"| {arm} | {v['miou']:.3f} | {v['pixel_acc']:.3f} |")
    if r.get('depth_reconstruction'):
        srcs = list(next(iter(r['depth_reconstruction'].values())))
        lines += ['', '| depth reconstruction AbsRel on hidden patches | ' + ' | '.join(srcs) + ' |',
                  '|---|' + '---|' * len(srcs)]
        for name, per in r['depth_reconstruction'].items():
            lines.append(f'| {name} | ' + ' | '.join(f"{per[s]['abs_rel_hidden']:.3f}" for s in srcs) + ' |')
    return '\n'.join(lines) + '\n'


if __name__ == '__main__':
    sys.exit(main())
