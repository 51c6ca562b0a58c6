"""Replication v2 of the paper's claim, built to detect the effect: does masked RGB-D pre-training (Mask3D) give a
ViT better features than RGB-only masked pre-training (MAE) or no pre-training?

Design (docs/results.md, with the verdict rules written down before the run):
- four pools of synthetic rooms from disjoint seeds, rendered once: an unlabelled pre-training pool (thousands of
  rooms), a label-scarce labelled pool (200 frames; its first 50 are the 50-label pool), a selection set (learning
  rate choice only) and a test set (scored once per run, never used to choose anything);
- arms: Mask3D with the knob measured to make the encoder used (pretrain_mask3d_measured.yaml; v2, the default
  preset, ran the reasoned choice pretrain_mask3d_reasoned.yaml), Mask3D with the paper's defaults
  (pretrain_mask3d_paper.yaml), MAE (pretrain_mae.yaml), scratch (random init); same backbone, pool, budget, seeds;
- evaluation: ``mask3d probe`` on frozen features (labelled 200-frame pool -> test set: depth, normals, semseg with
  object mIoU), and full fine-tuning on the 50-label pool (semseg) with the learning rate picked per arm on the
  selection set; layer decay for pre-trained arms only;
- seeds: seed s pre-trains, probes and fine-tunes; paired differences over seeds with mean, std and paired t.

    python benchmarks/replicate.py                    # the default preset: 44.5 min measured on 2 shared CPU cores
    python benchmarks/replicate.py --quick            # every stage at toy size
    python benchmarks/replicate.py --preset v2gpu     # v2's design: ViT-S, larger pool and budget, one GPU (not run)
    python benchmarks/replicate.py --preset v4a       # v4 question A (continued pre-training); --question A too
    python benchmarks/replicate.py --preset v4b       # v4 question B (from scratch); --question B too
    python benchmarks/replicate.py --preset v4pilot   # v4 pilot: seed-to-seed noise -> margins and power check
    python benchmarks/replicate.py --preset gpu       # v4 question B at ViT-S 240x320 on one GPU (< 10 min planned)
    python benchmarks/replicate.py --preset long      # v3: 2000 pre-training steps, the measured Mask3D knob
    python benchmarks/replicate.py --dry-run          # validate every config of the plan, run nothing

Every run is a normal ``mask3d`` run directory under --out; an interrupted replication continues where it stopped
(finished runs are kept, unfinished pre-training resumes from its last checkpoint). ``--arms`` runs a subset first
(the rest later into the same --out). Results: OUT/results.json, OUT/results.md, OUT/*.png.
v1 (the study docs/results.md corrects) is ``git show 3442173:benchmarks/replicate.py``.
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
PROBE_CONFIG = REPO / 'training' / 'configs' / 'probe' / 'synthetic.yaml'
SHARED = REPO.parent / 'shared' / 'data' / 'rgbd'

ARMS = {'mask3d': 'pretrain_mask3d_measured.yaml', 'mae': 'pretrain_mae.yaml', 'scratch': None,
        'mask3d_paper': 'pretrain_mask3d_paper.yaml'}
VERDICT_ARMS = ('mask3d', 'mae', 'scratch')   # the paper-default arm is secondary: run last, optional for results
# the paired comparisons: the claim (Mask3D best vs each other arm) and pre-trained vs random in the frozen probe
COMPARISONS = [('mask3d', 'mae'), ('mask3d', 'scratch'), ('mask3d', 'mask3d_paper'), ('mask3d_paper', 'scratch'),
               ('mae', 'scratch')]
PROBE_METRICS = {  # probe.json key -> higher is better?
    'semseg.object_miou': True, 'semseg.miou': True, 'depth.abs_rel': False, 'depth.delta1': True,
    'depth.rmse': False, 'normals.mean_angle_deg': False, 'normals.within_11_25': True}
FINETUNE_METRICS = {'object_miou': True, 'miou': True}
STRUCTURE_CLASSES = ('wall', 'floor', 'ceiling')   # left out of object mIoU
RULE_MARGIN = 0.02                                  # pre-registered: mean paired object-mIoU difference >= 0.02
STAGES = ('pretrain', 'finetune', 'probe')

SEEDS = dict(pool=0, labelled=1000, selection=2000, test=3000)   # disjoint synthetic seeds, one per pool
BUDGETS = {
    'smoke': dict(image_size=[96, 128], model='mask3d_vit_tiny_patch16', pool=24, labelled=12, few=8, selection=8,
                  test=8, batch_size=4, pretrain_steps=2, finetune_steps=2, lrs=[1e-3], seeds=[0], probe_quick=True,
                  probe_sets=['train.steps=3'], workers_per_loader=0, real_frames=1),
    'quick': dict(image_size=[96, 128], model='mask3d_vit_tiny_patch16', pool=256, labelled=64, few=32,
                  selection=32, test=48, batch_size=16, pretrain_steps=40, finetune_steps=20, lrs=[3e-4, 1e-3],
                  seeds=[0], probe_quick=True, workers_per_loader=2, real_frames=1),
    'default': dict(image_size=[96, 128], model='mask3d_vit_tiny_patch16', pool=3000, labelled=200, few=50,
                    selection=100, test=200, batch_size=16, pretrain_steps=200, finetune_steps=50,
                    lrs=[5e-4, 2e-3], seeds=[0, 1, 2], probe_quick=False, workers_per_loader=2,
                    real_frames=3, arm_configs={'mask3d': 'pretrain_mask3d_reasoned.yaml',   # v2, as it ran
                                                'mask3d_paper': 'pretrain_mask3d_paper_allstats.yaml'}),
    'v2gpu': dict(image_size=[128, 160], model='mask3d_vit_small_patch16', pool=10000, labelled=200, few=50,
                selection=200, test=400, batch_size=64, pretrain_steps=800, finetune_steps=150,
                lrs=[3e-4, 1e-3, 3e-3], seeds=[0, 1, 2], probe_quick=False, workers_per_loader=6, real_frames=3),
}
# v3 (docs/results.md): the default design with 10x the pre-training and, as `mask3d` (ARMS), the knob adopted by the
# pre-registered knob rule (docs/pretraining.md, "Choosing the knobs"); 343-561 s per pre-training run measured
# (its paper arm, as it ran, standardised depth with all-pixel statistics: pretrain_mask3d_paper_allstats.yaml)
BUDGETS['long'] = dict(BUDGETS['default'], pretrain_steps=2000,
                       arm_configs={'mask3d_paper': 'pretrain_mask3d_paper_allstats.yaml'})

# v4 (docs/results.md, "v4 plan"; benchmarks/replicate_v4_study.py): one command per question. CPU presets: ViT-Ti/16
# at 192x256 (12x16 tokens), 2 parallel jobs of 1 thread; measured 0.53 s per pre-training step (batch 16, 1
# thread, idle machine: benchmarks/results/replicate_v4_steptime.json) and about 6 min per probe.
V4 = dict(image_size=[192, 256], model='mask3d_vit_tiny_patch16', pool=3000, stage1_pool=3000, labelled=200,
          test=200, batch_size=16, seeds=[0, 1, 2, 3, 4], probe_quick=False, workers_per_loader=0, jobs=2, threads=1)
BUDGETS['v4a'] = dict(V4, question='A', stage1_steps=1500, pretrain_steps=1000)
BUDGETS['v4b'] = dict(V4, question='B', pretrain_steps=1500)
BUDGETS['v4pilot'] = dict(V4, question='B', pretrain_steps=300, seeds=[0, 1, 2], pilot=True)
BUDGETS['v4smoke'] = dict(V4, question='A', image_size=[32, 48], pool=8, stage1_pool=8, labelled=6, test=4,
                          batch_size=4, stage1_steps=2, pretrain_steps=2, seeds=[0, 1], probe_quick=True, jobs=1,
                          probe_sets=['train.steps=3', 'train.batch_size=4'])
# one H100/H200: question B at ViT-S/16 240x320 (15x20 tokens), bigger pools and batch; planned < 10 min (not run)
BUDGETS['gpu'] = dict(V4, question='B', model='mask3d_vit_small_patch16', image_size=[240, 320], pool=10000,
                      labelled=400, test=200, batch_size=64, pretrain_steps=600, seeds=[0, 1, 2], workers_per_loader=6,
                      jobs=1, threads=8)


# ---- data -----------------------------------------------------------------------------------------------------

def _render_shard(args):
    from mask3d.training.data.cli import write_synthetic  # imported by render() before the fork: costs nothing
    out, start, stop, seed, size, clean = args
    write_synthetic(out, stop, seed, size, progress=False, start=start, clean_depth=clean)


def render(out: Path, frames: int, seed: int, size, workers: int, clean_depth: bool = True) -> Path:
    """Synthetic rooms ``(seed, 0..frames-1)`` written once as an RGB-D folder (PNG, depth in mm), in parallel shards.
    A frame is a pure function of (seed, index), so the first 50 frames of a pool are the 50-frame pool.
    ``clean_depth``: also the noise-free depth (depth_clean/*.npy), the probe's normals ground truth; a folder
    rendered before it existed is completed by rendering again (same frames, same seed)."""
    done = out / 'classes.json'
    if done.is_file() and len(list((out / 'rgb').glob('*.png'))) == frames and \
            (not clean_depth or len(list((out / 'depth_clean').glob('*.npy'))) == frames):
        return out
    from mask3d.training.data.cli import write_synthetic
    if frames <= 64:  # a pool of processes costs more than it saves
        write_synthetic(out, frames, seed, tuple(size), progress=False, clean_depth=clean_depth)
        return out
    bounds = np.linspace(0, frames, workers * 4 + 1).astype(int)
    shards = [(out, int(a), int(b), seed, tuple(size), clean_depth) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    t0 = time.perf_counter()
    with Pool(workers) as pool:
        pool.map(_render_shard, shards)
    print(f'rendered {frames} frames (seed {seed}) into {out} in {time.perf_counter() - t0:.0f}s', flush=True)
    return out


def render_pools(out: Path, budget: Dict, workers: int) -> Dict[str, Path]:
    size = budget['image_size']
    pools = {name: render(out / 'data' / name, budget[name], SEEDS[name], size, workers, clean_depth=name != 'pool')
             for name in ('pool', 'labelled', 'selection', 'test')}
    pools['few'] = render(out / 'data' / 'few', budget['few'], SEEDS['labelled'], size, workers, clean_depth=False)
    return pools


# ---- runs -----------------------------------------------------------------------------------------------------

def _finished(run: Path, cfg, sections=('method', 'model', 'optim')) -> bool:
    """A finished run is reused only if it was made with the same settings in ``sections``; a stale one (e.g. an
    arm's YAML changed since) is an error, so no result silently mixes two recipes. A key the saved config lacks
    (a knob added later) must be at its default now."""
    if not (run / 'summary.json').is_file():
        return False
    import yaml
    saved, current, default = yaml.safe_load((run / 'config.yaml').read_text()), cfg.to_dict(), type(cfg)().to_dict()
    for section in sections:
        for key, value in current[section].items():
            if saved.get(section, {}).get(key, default[section][key]) != value:
                raise SystemExit(f'{run}: finished with {section}.{key}={saved[section].get(key)!r}, the current '
                                 f'config says {value!r}; delete the run to redo it')
    return True


def _log(msg: str) -> None:
    print(f'[{time.strftime("%H:%M:%S")}] {msg}', flush=True)


def pretrain_sets(budget: Dict, pool: Path, seed: int, device: str) -> List[str]:
    steps = budget['pretrain_steps']
    return [f'model.name={budget["model"]}', f'data.root={pool}', f'data.image_size={budget["image_size"]}',
            f'data.batch_size={budget["batch_size"]}', f'data.num_workers={budget["workers_per_loader"]}',
            f'train.steps={steps}', f'train.seed={seed}', f'train.device={device}',
            f'train.ckpt_every={max(steps // 4, 1)}', f'train.log_every={max(min(steps // 20, 25), 1)}']


def arm_config(arm: str, budget: Dict) -> str:
    """The arm's pre-training YAML: the preset's own choice where it has one (``arm_configs``), else ``ARMS``."""
    return budget.get('arm_configs', {}).get(arm, ARMS[arm])


def run_pretrain(out: Path, arm: str, budget: Dict, pool: Path, seed: int, device: str) -> Path:
    from mask3d.training.pretrain.config import load_config
    from mask3d.training.pretrain.engine import pretrain
    run = out / 'pretrain' / arm / f'seed{seed}'
    cfg = load_config(CONFIGS / arm_config(arm, budget), pretrain_sets(budget, pool, seed, device))
    if not _finished(run, cfg):
        t0 = time.perf_counter()
        resume = (run / 'checkpoints' / 'last.pt').is_file()  # else: replace a run killed before its checkpoint
        pretrain(cfg, run, resume=resume, overwrite=not resume, progress=False)
        _log(f'pretrain {arm} seed {seed}: {time.perf_counter() - t0:.0f}s')
    return run


def pretrain_record(run: Path) -> Dict:
    """Loss and rgb_reliance (pretext loss with another sample's RGB / true loss; ~1.0 = encoder ignored) at the
    first and last logged step."""
    from mask3d.training.runtime.metrics_log import read_metrics
    rec = [r for r in read_metrics(run) if 'loss' in r]
    rel = [r for r in rec if 'rgb_reliance' in r]
    out = {'loss_first': rec[0]['loss'], 'loss_last': rec[-1]['loss'], 'steps': rec[-1]['step']}
    if rel:   # Mask3D runs only: an MAE run has no depth pretext, so no rgb_reliance
        out.update(rgb_reliance_first=rel[0]['rgb_reliance'], rgb_reliance_last=rel[-1]['rgb_reliance'])
    return out


def probe_sets(budget: Dict, pools: Dict[str, Path], seed: int, device: str) -> List[str]:
    return ['data.source=folder', f'data.train_root={pools["labelled"]}', f'data.test_root={pools["test"]}',
            f'data.image_size={budget["image_size"]}', f'train.seed={seed}', f'train.device={device}',
            f'quick={str(budget["probe_quick"]).lower()}', 'tasks=[depth,normals,semseg]',  # no poses in these pools
            *budget.get('probe_sets', [])]


def run_probe(out: Path, arm: str, runs: Dict, seed: int, budget: Dict, pools: Dict[str, Path], device: str) -> Dict:
    """``mask3d probe`` on frozen features: heads trained on the labelled pool, scored on the test set."""
    from mask3d.training.probe.config import load_probe_config
    from mask3d.training.probe.engine import run_probe as probe
    run = out / 'probe' / arm / f'seed{seed}'
    if not (run / 'probe.json').is_file():
        backbone = [f'model.backbone={budget["model"]}', 'model.pretrained=false'] if arm == 'scratch' else \
            [f'model.backbone={runs[arm, seed]}']   # scratch: the architecture at random init, seeded by train.seed
        t0 = time.perf_counter()
        probe(load_probe_config(PROBE_CONFIG, probe_sets(budget, pools, seed, device) + backbone), run)
        _log(f'probe {arm} seed {seed}: {time.perf_counter() - t0:.0f}s')
    return json.loads((run / 'probe.json').read_text())


def object_miou(iou_per_class: Dict[str, float]) -> float:
    """mIoU over the object classes present (wall, floor and ceiling left out: they are layout, not objects)."""
    values = [v for k, v in iou_per_class.items() if k not in STRUCTURE_CLASSES and v == v]
    return statistics.fmean(values) if values else float('nan')


def finetune_sets(arm: str, runs: Dict, seed: int, lr: float, budget: Dict, pools: Dict[str, Path],
                  device: str) -> List[str]:
    steps = budget['finetune_steps']
    sets = [f'data.root={pools["few"]}', f'data.val_root={pools["selection"]}',
            f'data.image_size={budget["image_size"]}', f'data.batch_size={min(budget["batch_size"], budget["few"])}',
            f'data.num_workers={budget["workers_per_loader"]}', f'train.steps={steps}', f'train.seed={seed}',
            f'train.device={device}', f'train.ckpt_every={steps}', f'train.log_every={max(min(steps // 10, 10), 1)}',
            f'optim.lr={lr}', f'optim.layer_decay={1.0 if arm == "scratch" else 0.75}']  # decay: pre-trained only
    if arm == 'scratch':
        sets += [f'model.backbone={budget["model"]}', 'model.pretrained=false']
    else:
        sets += [f'model.backbone={runs[arm, seed]}']
    return sets


def run_finetune(out: Path, arm: str, runs: Dict, seed: int, lr: float, budget: Dict, pools: Dict[str, Path],
                 device: str, test: bool = False) -> Dict:
    """Full fine-tuning (UPerNet semseg) on the 50-label pool; scored on the selection set (final eval of the run)
    and, with ``test`` (the selected learning rate only), on the test set (stored apart in test.json)."""
    from mask3d.training.finetune.config import load_finetune_config
    from mask3d.training.finetune.engine import evaluate, finetune
    run = out / 'finetune' / arm / f'lr{lr:g}' / f'seed{seed}'
    sets = finetune_sets(arm, runs, seed, lr, budget, pools, device)
    cfg = load_finetune_config(CONFIGS / 'finetune_semseg.yaml', sets)
    if not _finished(run, cfg, sections=('optim',)):
        t0 = time.perf_counter()
        resume = (run / 'checkpoints' / 'last.pt').is_file()  # else: replace a run killed before its checkpoint
        finetune(cfg, run, resume=resume, overwrite=not resume, progress=False)
        _log(f'finetune {arm} lr {lr:g} seed {seed}: {time.perf_counter() - t0:.0f}s')
    score = lambda r: {'miou': r['miou'], 'object_miou': object_miou(r['iou_per_class'])}  # noqa: E731
    result = {'selection': score(json.loads((run / 'summary.json').read_text())['val'])}
    test_file = run / 'test.json'
    if test and not test_file.is_file():
        cfg = load_finetune_config(CONFIGS / 'finetune_semseg.yaml', sets + [f'data.val_root={pools["test"]}'])
        test_file.write_text(json.dumps(evaluate(run, cfg, split='val', out_dir=run / 'eval_test', progress=False),
                                        indent=1))
    if test:
        result['test'] = score(json.loads(test_file.read_text()))
    return result


# ---- statistics and verdict -----------------------------------------------------------------------------------

def _flat(d: Dict, prefix: str = '') -> Dict[str, float]:
    flat = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(_flat(v, f'{prefix}{k}.'))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            flat[f'{prefix}{k}'] = float(v)
    return flat


def paired(a: List[float], b: List[float]) -> Dict:
    """Paired differences a - b over seeds: mean, std, paired t and its two-sided p (scipy.stats.ttest_rel)."""
    from scipy.stats import ttest_rel
    diffs = [x - y for x, y in zip(a, b)]
    out = {'diffs': diffs, 'mean': statistics.fmean(diffs),
           'std': statistics.stdev(diffs) if len(diffs) > 1 else float('nan'), 't': float('nan'), 'p': float('nan')}
    if len(diffs) > 1 and out['std'] > 0:
        t = ttest_rel(a, b)
        out['t'], out['p'] = float(t.statistic), float(t.pvalue)
    return out


def paired_table(scores: Dict[str, Dict[int, Dict[str, float]]], metrics, seeds: List[int]) -> Dict:
    table = {}
    for a, b in COMPARISONS:
        if a in scores and b in scores:
            table[f'{a} - {b}'] = {m: paired([scores[a][s][m] for s in seeds], [scores[b][s][m] for s in seeds])
                                   for m in metrics if all(m in scores[x][s] for x in (a, b) for s in seeds)}
    return table


def verdict(pairs: Dict) -> Dict:
    """The rules written into docs/results.md before the run, applied literally to object mIoU:
    reproduced: Mask3D (best) minus MAE and minus scratch, in the frozen probe and in the 50-label fine-tune: every
    paired difference > 0 and the mean >= 0.02. Else inconclusive: no pre-trained arm's frozen-probe object mIoU
    is above random init (mean paired difference <= 0). Else not reproduced (the failed conditions are listed)."""
    conditions = {}
    for evaluation in ('probe', 'finetune'):
        for other in ('mae', 'scratch'):
            d = pairs[evaluation].get(f'mask3d - {other}', {}).get('object_miou' if evaluation == 'finetune'
                                                                    else 'semseg.object_miou')
            ok = d is not None and min(d['diffs']) > 0 and d['mean'] >= RULE_MARGIN
            conditions[f'{evaluation}: mask3d - {other}'] = {
                'met': bool(ok), 'mean': d['mean'] if d else None, 'diffs': d['diffs'] if d else None}
    beats_random = {}
    for arm in ('mask3d', 'mask3d_paper', 'mae'):
        d = pairs['probe'].get(f'{arm} - scratch', {}).get('semseg.object_miou')
        if d is not None:
            beats_random[arm] = d['mean'] > 0
    if all(c['met'] for c in conditions.values()):
        outcome = 'reproduced'
    elif not any(beats_random.values()):
        outcome = 'inconclusive'
    else:
        outcome = 'not reproduced'
    return {'outcome': outcome, 'conditions': conditions, 'pretrained_beats_random_in_probe': beats_random,
            'margin': RULE_MARGIN}


# ---- real data: depth reconstruction (sim-to-real gap) --------------------------------------------------------

def real_sources(per_source: int) -> Dict[str, List[Dict]]:
    """A few real RGB-D frames per source from ../shared/data/rgbd (metres, 0 = invalid)."""
    from PIL import Image

    from mask3d.training.data.folder import RGBDFolder, read_depth, read_rgb
    from mask3d.training.data.nyu import NYUSyncFrames
    from mask3d.training.data.sunrgbd import decode_sunrgbd_depth
    if not SHARED.is_dir() or os.environ.get('MASK3D_HIDE_SHARED', '') not in ('', '0'):  # benchmarks/_shared_data.py
        return {}
    o3d = SHARED / 'open3d' / 'examples' / 'test_data' / 'RGBD' / 'other_formats'

    def pair(rgb, depth):
        return {'rgb': read_rgb(rgb), 'depth': depth[None]}
    seven = SHARED / 'tsdf-fusion-python-7scenes' / 'data'
    holo = RGBDFolder(SHARED / 'deep-video-mvs-hololens' / 'sample-data' / 'hololens-dataset' / '000',
                      depth_scale=1000, rgb_dir='images', depth_dir='depth')
    sources = {
        'TUM (Kinect v1)': [pair(o3d / 'TUM_color.png', read_depth(o3d / 'TUM_depth.png', 5000))],
        'SUN RGB-D': [pair(o3d / 'SUN_color.jpg', decode_sunrgbd_depth(np.array(Image.open(o3d / 'SUN_depth.png'))))],
        'NYUv2 labelled #1407': [pair(SHARED / 'rcnn-depth' / 'demo-data' / 'images.png',
                                      read_depth(SHARED / 'rcnn-depth' / 'demo-data' / 'rawdepth.png', 1000))],
        'NYUv2 raw (sync)': [NYUSyncFrames(SHARED / 'metric3d' / 'data' / 'nyu_demo')[i] for i in range(per_source)],
        'ESANet (Kinect v2)': [pair(SHARED / 'esanet' / 'samples' / 'sample_rgb.png',
                                    read_depth(SHARED / 'esanet' / 'samples' / 'sample_depth.png', 10000))],
        '7-Scenes': [pair(seven / f'frame-{i:06d}.color.jpg', read_depth(seven / f'frame-{i:06d}.depth.png', 1000))
                     for i in range(per_source)],
        'HoloLens': [holo[i] for i in range(0, min(len(holo), 4 * per_source), 4)],
    }
    return sources


def _folder_frames(root: Path, n: int) -> List[Dict]:
    from mask3d.training.data.folder import RGBDFolder
    ds = RGBDFolder(root)
    return [ds[i] for i in range(min(n, len(ds)))]


def load_pretrainer(run: Path):
    """The whole pre-training model (encoder, depth branch, decoder) of a run's last checkpoint, in eval mode."""
    from mask3d.factory import create_model
    from mask3d.training.runtime.checkpoint import load_training_checkpoint
    from mask3d.training.pretrain.config import config_from_dict
    from mask3d.training.pretrain.pretrainer import Mask3DPretrainer
    state = load_training_checkpoint(run / 'checkpoints' / 'last.pt')
    cfg = config_from_dict(state['config'])
    model = Mask3DPretrainer(create_model(cfg.model.name, **cfg.model.model_args), cfg.method)
    model.load_state_dict(state['model'])
    return model.eval(), cfg


def _pretext_batch(model, cfg, frames: List[Dict], rng: np.random.Generator):
    """Frames resized whole to the pre-training size, and fixed mask noise: the same masks for every model."""
    from mask3d.training.data.transforms import JointTransform
    enc = model.encoder.pretrained_cfg
    tf = JointTransform(cfg.data.image_size, scale=(1.0, 1.0), hflip=0.0, mean=enc['mean'], std=enc['std'])
    samples = [tf({'rgb': f['rgb'], 'depth': f['depth']}, rng) for f in frames]
    rgb, depth = torch.stack([x['rgb'] for x in samples]), torch.stack([x['depth'] for x in samples])
    n = (rgb.shape[-2] // model.patch_size) * (rgb.shape[-1] // model.patch_size)
    return rgb, depth, torch.from_numpy(rng.random((len(frames), 2, n), dtype=np.float32))


@torch.no_grad()
def pretext_check(run: Path, frames: List[Dict], batch_size: int = 16) -> Dict[str, float]:
    """rgb_reliance and the depth reconstruction errors of a Mask3D run on held-out frames (fixed masks)."""
    from mask3d.training.pretrain.depth_eval import depth_reconstruction_errors
    from mask3d.training.pretrain.reliance import rgb_reliance
    model, cfg = load_pretrainer(run)
    rng = np.random.default_rng(0)
    rel, errs = [], []
    for i in range(0, len(frames) - 1, batch_size):
        rgb, depth, noise = _pretext_batch(model, cfg, frames[i:i + batch_size], rng)
        rel.append(rgb_reliance(model, rgb, depth, mask_noise=noise))
        errs.append(depth_reconstruction_errors(model, rgb, depth, mask_noise=noise))
    return {'rgb_reliance': statistics.fmean(rel), **{k: statistics.fmean(e[k] for e in errs) for k in errs[0]}}


@torch.no_grad()
def sim_to_real(runs: Dict, seed: int, budget: Dict, pools: Dict[str, Path]) -> Dict:
    """Depth reconstruction error over the hidden patches of each Mask3D arm on synthetic test rooms and real
    frames: unaligned (de-normalised with the visible depth only) and aligned (least-squares scale and shift)."""
    from mask3d.training.pretrain.depth_eval import depth_reconstruction_errors
    sources = {'synthetic test': _folder_frames(pools['test'], 16), **real_sources(budget['real_frames'])}
    table = {}
    for arm in ('mask3d', 'mask3d_paper'):
        if (arm, seed) not in runs:
            continue
        model, cfg = load_pretrainer(runs[arm, seed])
        table[arm] = {}
        for src, frames in sources.items():
            rgb, depth, noise = _pretext_batch(model, cfg, frames, np.random.default_rng(0))
            table[arm][src] = {**depth_reconstruction_errors(model, rgb, depth, mask_noise=noise),
                               'frames': len(frames)}
    return table


# ---- report ---------------------------------------------------------------------------------------------------

def _fmt(values: List[float], digits: int = 3) -> str:
    values = [v for v in values if v == v]
    if not values:
        return 'n/a'
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f'{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f}'


def plot_results(path: Path, r: Dict) -> None:
    """Per-arm scores (bars = mean, dots = seeds) for the probe and the fine-tune, and the paired differences."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mask3d.training.visualize import save_figure
    arms, seeds = r['arms'], r['budget']['seeds']
    panels = [('probe', 'semseg.object_miou', 'probe: object mIoU'), ('probe', 'semseg.miou', 'probe: mIoU'),
              ('probe', 'depth.abs_rel', 'probe: depth AbsRel (lower better)'),
              ('probe', 'normals.mean_angle_deg', 'probe: normals error ° (lower better)'),
              ('finetune', 'object_miou', '50-label fine-tune: object mIoU'),
              ('finetune', 'miou', '50-label fine-tune: mIoU')]
    colours = {'mask3d': 'tab:green', 'mask3d_paper': 'tab:olive', 'mae': 'tab:blue', 'scratch': 'tab:gray'}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.4))
    for ax, (evaluation, metric, title) in zip(axes, panels):
        for i, arm in enumerate(arms):
            vals = [r[evaluation][arm][str(s)].get(metric, float('nan')) for s in seeds
                    if str(s) in r[evaluation].get(arm, {})]
            if vals:
                ax.bar(i, statistics.fmean(vals), color=colours[arm])
                ax.scatter([i] * len(vals), vals, color='k', s=10, zorder=3)
        ax.set_xticks(range(len(arms)), arms, rotation=30, fontsize=8)
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"replication, preset {r['budget']['preset']}: verdict {r['verdict']['outcome']}", fontsize=10)
    save_figure(fig, path, dpi=100)


def plot_pretraining(path: Path, out: Path, r: Dict) -> None:
    """Pre-training loss and rgb_reliance per arm and seed."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mask3d.training.runtime.metrics_log import read_metrics
    from mask3d.training.visualize import save_figure
    colours = {'mask3d': 'tab:green', 'mask3d_paper': 'tab:olive', 'mae': 'tab:blue'}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for arm in [a for a in r['arms'] if ARMS[a]]:
        for seed in r['budget']['seeds']:
            rec = [x for x in read_metrics(out / 'pretrain' / arm / f'seed{seed}') if 'loss' in x]
            kw = dict(color=colours[arm], alpha=0.8, label=arm if seed == r['budget']['seeds'][0] else None)
            axes[0].plot([x['step'] for x in rec], [x['loss'] for x in rec], **kw)
            rel = [x for x in rec if 'rgb_reliance' in x]
            if arm.startswith('mask3d'):  # MAE has no depth loss to compare
                axes[1].plot([x['step'] for x in rel], [x['rgb_reliance'] for x in rel], marker='.', **kw)
    axes[0].set_title('pre-training loss (own objective; not comparable across arms)', fontsize=9)
    axes[1].axhline(1.0, color='k', lw=0.8, ls='--')
    axes[1].set_title('rgb_reliance of the Mask3D arms (1 = encoder ignored)', fontsize=9)
    for ax in axes:
        ax.set_xlabel('step')
        ax.legend(fontsize=8)
    save_figure(fig, path, dpi=100)


def report(r: Dict) -> str:
    b, arms, seeds = r['budget'], r['arms'], r['budget']['seeds']
    lines = [f"Preset {b['preset']}: {b['model']} at {b['image_size'][0]}x{b['image_size'][1]}; pools: pre-training "
             f"{b['pool']} (seed {SEEDS['pool']}), labelled {b['labelled']} / {b['few']} (seed {SEEDS['labelled']}), "
             f"selection {b['selection']} (seed {SEEDS['selection']}), test {b['test']} (seed {SEEDS['test']}); "
             f"{b['pretrain_steps']} pre-training steps x batch {b['batch_size']}, {b['finetune_steps']} fine-tuning "
             f"steps, lr grid {b['lrs']} picked on the selection set ({r['lr_selected_on']}), seeds {seeds}; "
             f"{r['seconds'] / 60:.1f} min in all.", '',
             f"**Verdict (pre-registered rules): {r['verdict']['outcome']}**", '']
    for name, c in r['verdict']['conditions'].items():
        diffs = ', '.join(f'{d:+.3f}' for d in c['diffs']) if c['diffs'] else 'n/a'
        lines.append(f"- {name} object mIoU: diffs {diffs}, mean {c['mean']:+.3f} -> "
                     f"{'met' if c['met'] else 'NOT met'} (every diff > 0 and mean >= {RULE_MARGIN})"
                     if c['mean'] is not None else f'- {name}: n/a')
    lines.append(f"- pre-trained arm above random init in the frozen probe (object mIoU, mean paired diff > 0): "
                 f"{r['verdict']['pretrained_beats_random_in_probe']}")
    lines += ['', '| pre-training arm (per seed) | loss first -> last | rgb_reliance in training, first -> last | '
              'held-out rgb_reliance | held-out depth AbsRel, hidden patches, unaligned / aligned |',
              '|---|---|---|---|---|']
    for arm, per in r['pretrain'].items():
        loss = '; '.join(f"{v['loss_first']:.3f} -> {v['loss_last']:.3f}" for v in per.values())
        rel = '; '.join(f"{v['rgb_reliance_first']:.2f} -> {v['rgb_reliance_last']:.2f}"
                        if v.get('rgb_reliance_last') is not None else 'not logged' for v in per.values())
        held = [v['held_out'] for v in per.values() if 'held_out' in v]
        held_rel = '; '.join(f"{h['rgb_reliance']:.2f}" for h in held) or 'n/a'
        held_err = '; '.join(f"{h['abs_rel_hidden_unaligned']:.3f} / {h['abs_rel_hidden_aligned']:.3f}"
                             for h in held) or 'n/a'
        lines.append(f'| {arm} | {loss} | {rel} | {held_rel} | {held_err} |')
    for evaluation, metrics in (('probe', PROBE_METRICS), ('finetune', FINETUNE_METRICS)):
        head = 'frozen probe (labelled 200 -> test)' if evaluation == 'probe' else '50-label fine-tune (test)'
        shown = [m for m in metrics if any(m in r[evaluation][a][str(s)] for a in arms for s in seeds
                                           if str(s) in r[evaluation].get(a, {}))]
        lines += ['', f'| {head} | ' + ' | '.join(f"{m} {'↑' if metrics[m] else '↓'}" for m in shown) + ' |',
                  '|---|' + '---|' * len(shown)]
        for arm in arms:
            per = r[evaluation].get(arm, {})
            lines.append(f'| {arm} | ' + ' | '.join(_fmt([per[str(s)].get(m, float('nan')) for s in seeds])
                                                    for m in shown) + ' |')
        lines += ['', f'| paired difference ({evaluation}) | ' + ' | '.join(shown) + ' |',
                  '|---|' + '---|' * len(shown)]
        for comp, per in r['paired'][evaluation].items():
            cells = []
            for m in shown:
                d = per.get(m)
                cells.append('n/a' if d is None else
                             f"{d['mean']:+.3f} ± {d['std']:.3f} (t={d['t']:.2f}, p={d['p']:.3f})")
            lines.append(f'| {comp} | ' + ' | '.join(cells) + ' |')
    if r.get('lr_selection'):
        lines += ['', '| lr selection (selection-set object mIoU, seed ' + str(seeds[0]) + ') | ' +
                  ' | '.join(f'{lr:g}' for lr in b['lrs']) + ' | chosen |', '|---|' + '---|' * (len(b['lrs']) + 1)]
        for arm, per in r['lr_selection'].items():
            lines.append(f'| {arm} | ' + ' | '.join(f"{per['scores'][f'{lr:g}']:.3f}" for lr in b['lrs']) +
                         f" | {per['chosen']:g} |")
    if r.get('sim_to_real'):
        srcs = list(next(iter(r['sim_to_real'].values())))
        for key in ('abs_rel_hidden_unaligned', 'abs_rel_hidden_aligned'):
            lines += ['', f'| depth reconstruction AbsRel, hidden patches, {key.rsplit("_", 1)[1]} | ' +
                      ' | '.join(srcs) + ' |',
                      '|---|' + '---|' * len(srcs)]
            for arm, per in r['sim_to_real'].items():
                lines.append(f'| {arm} | ' + ' | '.join(f"{per[s].get(key, float('nan')):.3f}" for s in srcs) + ' |')
    return '\n'.join(lines) + '\n'


# ---- main -----------------------------------------------------------------------------------------------------

def _machine() -> Dict:
    import platform

    import timm
    return {'python': platform.python_version(), 'torch': torch.__version__, 'timm': timm.__version__,
            'cpu': platform.processor() or platform.machine(), 'cores': os.cpu_count(),
            'threads': torch.get_num_threads(),
            'cuda': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def dry_run(budget: Dict, out: Path, arms: List[str], device: str) -> int:
    """Load and validate every configuration the plan would run, with the preset's overrides; run nothing."""
    from mask3d.training.pretrain.config import load_config
    from mask3d.training.finetune.config import load_finetune_config
    from mask3d.training.probe.config import load_probe_config
    pools = {k: out / 'data' / k for k in ('pool', 'labelled', 'few', 'selection', 'test')}
    runs = {(a, s): out / 'pretrain' / a / f'seed{s}' for a in arms for s in budget['seeds']}
    n = 0
    for arm in arms:
        for seed in budget['seeds']:
            if ARMS[arm]:
                sets = pretrain_sets(budget, pools['pool'], seed, device)
                load_config(CONFIGS / arm_config(arm, budget), sets).validate()
                n += 1
            for lr in budget['lrs']:
                load_finetune_config(CONFIGS / 'finetune_semseg.yaml',
                                     finetune_sets(arm, runs, seed, lr, budget, pools, device)).validate()
            load_probe_config(PROBE_CONFIG, probe_sets(budget, pools, seed, device)).validate()
    n_ft = len(arms) * (len(budget['lrs']) + len(budget['seeds']) - 1)
    print(f"dry run ({budget['preset']}): {n} pre-training runs x {budget['pretrain_steps']} steps, "
          f"{len(arms) * len(budget['seeds'])} probes, {n_ft} fine-tuning runs x {budget['finetune_steps']} steps; "
          f"every config validated")
    return 0


def run_arms(arms: List[str], runs: Dict, r: Dict, out: Path, budget: Dict, pools: Dict[str, Path], stages,
             device: str, held_out_checks: bool) -> None:
    """Pre-training, held-out pretext checks, 50-label fine-tuning and the probe for ``arms``, into ``r``."""
    seeds, first = budget['seeds'], budget['seeds'][0]
    # 1. pre-training, every pre-trained arm and seed; then rgb_reliance on held-out rooms (fixed masks)
    for seed in seeds:
        for arm in [a for a in arms if ARMS[a]]:
            runs[arm, seed] = run_pretrain(out, arm, budget, pools['pool'], seed, device)
            r['pretrain'].setdefault(arm, {})[str(seed)] = pretrain_record(runs[arm, seed])
    for seed in seeds if held_out_checks else []:
        for arm in [a for a in arms if a.startswith('mask3d')]:
            held = r['pretrain'][arm][str(seed)]['held_out'] = pretext_check(runs[arm, seed],
                                                                              _folder_frames(pools['test'], 64))
            _log(f'{arm} seed {seed}: held-out rgb_reliance {held["rgb_reliance"]:.3f}' +
                 (' ~ 1: the pretext barely uses the encoder' if held['rgb_reliance'] < 1.05 else ''))

    # 2. 50-label fine-tuning: lr picked per arm on the selection set (first seed), then every seed at that lr
    for arm in arms if 'finetune' in stages else []:
        scores = {f'{lr:g}': run_finetune(out, arm, runs, first, lr, budget, pools, device)['selection']
                  for lr in budget['lrs']}
        chosen = max(budget['lrs'], key=lambda lr: scores[f'{lr:g}']['object_miou'])
        r['lr_selection'][arm] = {'scores': {k: v['object_miou'] for k, v in scores.items()}, 'chosen': chosen}
        for seed in seeds:
            r['finetune'].setdefault(arm, {})[str(seed)] = {
                **run_finetune(out, arm, runs, seed, chosen, budget, pools, device, test=True)['test'], 'lr': chosen}

    # 3. frozen-feature probe
    for seed in seeds if 'probe' in stages else []:
        for arm in arms:
            r['probe'].setdefault(arm, {})[str(seed)] = _flat(run_probe(out, arm, runs, seed, budget, pools, device))


def run_v4(args, budget: Dict) -> int:
    """A v4 preset (``--preset v4a|v4b|v4pilot|gpu`` or ``--question A|B``): benchmarks/replicate_v4_study.py."""
    import replicate_v4_study as v4
    budget['jobs'] = args.jobs or budget['jobs']
    out = Path(args.out or f'runs/replicate_{budget["preset"]}').resolve()
    return v4.main(budget, out, args.device, args.workers, args.margins or v4.DEFAULT_MARGINS, args.dry_run,
                   seeds_given=bool(args.seeds))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='minutes-long smoke version (= --preset quick)')
    p.add_argument('--preset', default='default', choices=tuple(BUDGETS), help='budget (default: default)')
    p.add_argument('--out', default=None, help='default runs/replicate_v2_PRESET')
    p.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'))
    p.add_argument('--arms', nargs='+', default=list(ARMS), choices=tuple(ARMS), help='run these arms only')
    p.add_argument('--stages', nargs='+', default=list(STAGES), choices=STAGES,
                   help='run these stages only (pre-training always runs or is reused)')
    p.add_argument('--seeds', type=int, nargs='+', default=None, help="override the preset's seeds")
    p.add_argument('--workers', type=int, default=max(1, min(os.cpu_count() or 1, 16)), help='rendering processes')
    p.add_argument('--dry-run', action='store_true', help='validate every config of the plan, run nothing')
    p.add_argument('--question', choices=('A', 'B'), help='v4: the question to run (= --preset v4a / v4b)')
    p.add_argument('--jobs', type=int, default=None, help="v4: parallel runs (default: the preset's)")
    p.add_argument('--margins', type=Path, default=None,
                   help='v4: margins.json of the pilot (default benchmarks/results/replicate_v4_pilot/margins.json)')
    args = p.parse_args(argv)
    preset = 'quick' if args.quick else f'v4{args.question.lower()}' if args.question else args.preset
    budget = dict(BUDGETS[preset], preset=preset)
    if args.seeds:
        budget['seeds'] = args.seeds
    if 'question' in budget:   # v4: its own arms, pools and stages (benchmarks/replicate_v4_study.py)
        return run_v4(args, budget)
    arms = [a for a in ARMS if a in args.arms]
    out = Path(args.out or f'runs/replicate_v2_{preset}').resolve()
    if args.dry_run:
        return dry_run(budget, out, arms, args.device)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    seeds, first = budget['seeds'], budget['seeds'][0]
    pools = render_pools(out, budget, args.workers)
    r: Dict = {'budget': budget, 'arms': arms, 'seeds_of_pools': SEEDS, 'machine': _machine(), 'pretrain': {},
               'probe': {}, 'finetune': {}, 'lr_selection': {}, 'lr_selected_on': f'seed {first} only'}

    # the verdict's arms first, end to end, then the paper-default arm: a study cut short still has its verdict
    runs: Dict = {}
    full = set(args.stages) == set(STAGES) and set(VERDICT_ARMS) <= set(arms)
    for group in ([a for a in arms if a in VERDICT_ARMS], [a for a in arms if a not in VERDICT_ARMS]):
        run_arms(group, runs, r, out, budget, pools, args.stages, args.device, held_out_checks=full)
    if not full:
        _log(f'stages {args.stages} of arms {arms} done; run without --arms/--stages for the results')
        return 0

    # 4. paired statistics and the verdict
    probe_scores = {a: {s: r['probe'][a][str(s)] for s in seeds} for a in arms}
    ft_scores = {a: {s: r['finetune'][a][str(s)] for s in seeds} for a in arms}
    r['paired'] = {'probe': paired_table(probe_scores, PROBE_METRICS, seeds),
                   'finetune': paired_table(ft_scores, FINETUNE_METRICS, seeds)}
    r['verdict'] = verdict(r['paired'])

    # 5. sim-to-real: depth reconstruction of the Mask3D arms on real frames, unaligned and aligned
    r['sim_to_real'] = sim_to_real(runs, first, budget, pools)
    r['seconds'] = time.perf_counter() - t_start
    (out / 'results.json').write_text(json.dumps(r, indent=1))
    plot_results(out / 'replication_v2.png', r)
    plot_pretraining(out / 'replication_v2_pretraining.png', out, r)
    (out / 'results.md').write_text(report(r))
    print(report(r))
    _log(f'results: {out / "results.json"}, {out / "results.md"}, {out / "replication_v2.png"}, '
         f'{out / "replication_v2_pretraining.png"}  ({r["seconds"] / 60:.1f} min)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
