"""Replication v4 (docs/results.md, "v4 plan"): one command per question, run by ``benchmarks/replicate.py``.

    python benchmarks/replicate.py --preset v4a        # question A: continued pre-training from one MAE stage 1
    python benchmarks/replicate.py --preset v4b        # question B: from scratch
    python benchmarks/replicate.py --preset v4pilot    # the pilot: seed-to-seed noise -> margins + power check
    python benchmarks/replicate.py --preset gpu        # question B at ViT-S 240x320 on one GPU (< 10 min planned)

Arms (``ARMS``): question A starts every arm from the same stage-1 weights (MAE on RGB of a separate pool of rooms,
seed 4000; its depth is never used) and continues on the RGB-D pool with Mask3D (the paper's masks,
``pretrain_mask3d_paper.yaml``) or MAE for the same steps, images and seeds, or stops (no stage 2). Question B
pre-trains Mask3D and MAE from scratch and compares them with random init. Every arm is probed with frozen
features (``mask3d probe``: labelled pool -> test rooms; depth, normals from the clean depth, semantic mIoU) once
per seed; the verdict comes from ``replicate_v4_analysis.py`` with the pilot's margins. Pre-training and probes of
different seeds run as ``jobs`` parallel processes (one thread each on CPU); finished runs are reused.
"""
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import replicate as R  # noqa: E402  (the shared pools, runs and statistics of replicate.py)
import replicate_v4_analysis as A  # noqa: E402

# arm -> (start, pre-training YAML): start None = random init, 'stage1' = the stage-1 MAE encoder
ARMS = {'a_mask3d': ('stage1', 'pretrain_mask3d_paper.yaml'), 'a_mae': ('stage1', 'pretrain_mae.yaml'),
        'a_none': ('stage1', None),
        'b_mask3d': (None, 'pretrain_mask3d_paper.yaml'), 'b_mae': (None, 'pretrain_mae.yaml'),
        'b_random': (None, None)}
QUESTION_ARMS = {'A': ('a_mask3d', 'a_mae', 'a_none'), 'B': ('b_mask3d', 'b_mae', 'b_random')}
STAGE1_YAML, STAGE1_SEED, STAGE1_POOL_SEED = 'pretrain_mae.yaml', 0, 4000
DEFAULT_MARGINS = HERE / 'results' / 'replicate_v4_pilot' / 'margins.json'


def pools(out: Path, budget: Dict, workers: int) -> Dict[str, Path]:
    """The RGB-D pre-training pool, the labelled and test pools (with clean depth) and, for question A, the
    stage-1 pool (other rooms: stage 1 stands for pre-training on another dataset)."""
    size, root = budget['image_size'], out / 'data'
    p = {'pool': R.render(root / 'pool', budget['pool'], R.SEEDS['pool'], size, workers, clean_depth=False),
         'labelled': R.render(root / 'labelled', budget['labelled'], R.SEEDS['labelled'], size, workers),
         'test': R.render(root / 'test', budget['test'], R.SEEDS['test'], size, workers)}
    if budget['question'] == 'A':
        p['stage1'] = R.render(root / 'stage1', budget['stage1_pool'], STAGE1_POOL_SEED, size, workers,
                               clean_depth=False)
    return p


def pools_planned(out: Path) -> Dict[str, Path]:
    return {k: out / 'data' / k for k in ('pool', 'labelled', 'test', 'stage1')}


def stage1_run(out: Path) -> Path:
    return out / 'pretrain' / 'stage1' / f'seed{STAGE1_SEED}'


def pretrain_job(out: Path, arm: str, seed: int, budget: Dict, p: Dict[str, Path], device: str) -> Dict:
    """The job that pre-trains ``arm`` (or stage 1 with arm 'stage1') for ``seed``."""
    if arm == 'stage1':
        steps, yaml, pool, init = budget['stage1_steps'], STAGE1_YAML, p['stage1'], None
    else:
        start, yaml = ARMS[arm]
        steps, pool = budget['pretrain_steps'], p['pool']
        init = stage1_run(out) / 'export' / 'model.safetensors' if start == 'stage1' else None
    sets = R.pretrain_sets(dict(budget, pretrain_steps=steps), pool, seed, device)
    sets += [f'model.init={init}'] if init else []
    return {'kind': 'pretrain', 'run': str(out / 'pretrain' / arm / f'seed{seed}'), 'yaml': yaml, 'sets': sets,
            'threads': budget['threads'], 'label': f'pretrain {arm} seed {seed}'}


def probe_job(out: Path, arm: str, seed: int, budget: Dict, p: Dict[str, Path], device: str) -> Dict:
    start, yaml = ARMS[arm]
    if yaml:
        backbone = [f'model.backbone={out / "pretrain" / arm / f"seed{seed}"}']
    elif start == 'stage1':
        backbone = [f'model.backbone={stage1_run(out)}']   # no stage 2: the same weights, probed per seed
    else:
        backbone = [f'model.backbone={budget["model"]}', 'model.pretrained=false']   # seeded by train.seed
    return {'kind': 'probe', 'run': str(out / 'probe' / arm / f'seed{seed}'),
            'sets': R.probe_sets(budget, p, seed, device) + backbone, 'threads': budget['threads'],
            'label': f'probe {arm} seed {seed}'}


def run_job(job: Dict) -> str:
    """One pre-training or probe run, in this process (a pool worker or the main process); skips finished runs."""
    import torch
    torch.set_num_threads(job['threads'])
    run, t0 = Path(job['run']), time.perf_counter()
    if job['kind'] == 'pretrain':
        from mask3d.training.pretrain.config import load_config
        from mask3d.training.pretrain.engine import pretrain
        cfg = load_config(R.CONFIGS / job['yaml'], job['sets'])
        if R._finished(run, cfg):
            return f"{job['label']}: reused"
        pretrain(cfg, run, resume=(run / 'checkpoints' / 'last.pt').is_file(), progress=False)
    else:
        if (run / 'probe.json').is_file():
            return f"{job['label']}: reused"
        from mask3d.training.probe.config import load_probe_config
        from mask3d.training.probe.engine import run_probe
        run_probe(load_probe_config(R.PROBE_CONFIG, job['sets']), run)
    return f"{job['label']}: {time.perf_counter() - t0:.0f}s"


def run_jobs(jobs: List[Dict], parallel: int) -> None:
    """Jobs in ``parallel`` fresh (spawned) processes, or in this one when parallel is 1."""
    if parallel <= 1:
        for job in jobs:
            R._log(run_job(job))
        return
    with ProcessPoolExecutor(parallel, mp_context=get_context('spawn')) as pool:
        for line in pool.map(run_job, jobs):
            R._log(line)


def plan(out: Path, budget: Dict, p: Dict[str, Path], device: str) -> List[List[Dict]]:
    """The study's jobs in phases (each phase needs the one before): stage 1, pre-training, probes."""
    arms, seeds = QUESTION_ARMS[budget['question']], budget['seeds']
    phases = [[pretrain_job(out, 'stage1', STAGE1_SEED, dict(budget, threads=budget['threads'] * budget['jobs']),
                            p, device)]] if budget['question'] == 'A' else []
    phases.append([pretrain_job(out, a, s, budget, p, device) for s in seeds for a in arms if ARMS[a][1]])
    phases.append([probe_job(out, a, s, budget, p, device) for s in seeds for a in arms])
    return phases


def dry_run(budget: Dict, out: Path, device: str) -> int:
    """Load and validate every configuration of the plan; run and write nothing."""
    from mask3d.training.pretrain.config import load_config
    from mask3d.training.probe.config import load_probe_config
    phases = plan(out, budget, pools_planned(out), device)
    for job in (j for phase in phases for j in phase):
        if job['kind'] == 'pretrain':
            load_config(R.CONFIGS / job['yaml'], job['sets']).validate()
        else:
            load_probe_config(R.PROBE_CONFIG, job['sets']).validate()
    n_pre = sum(j['kind'] == 'pretrain' for phase in phases for j in phase)
    n_probe = sum(j['kind'] == 'probe' for phase in phases for j in phase)
    stage1 = f"stage 1 x {budget['stage1_steps']} steps, " if budget['question'] == 'A' else ''
    print(f"dry run ({budget['preset']}, question {budget['question']}): {stage1}{n_pre - bool(stage1)} "
          f"pre-training runs x {budget['pretrain_steps']} steps, {n_probe} probes, {budget['model']} at "
          f"{budget['image_size'][0]}x{budget['image_size'][1]}, seeds {budget['seeds']}; every config validated")
    return 0


def pretrain_summary(out: Path, budget: Dict) -> Dict:
    """Loss and, for the Mask3D arms only, rgb_reliance at the first and last logged step."""
    arms = [a for a in QUESTION_ARMS[budget['question']] if ARMS[a][1]]
    runs = {f'{a}/seed{s}': out / 'pretrain' / a / f'seed{s}' for a in arms for s in budget['seeds']}
    if budget['question'] == 'A':
        runs['stage1'] = stage1_run(out)
    return {name: R.pretrain_record(run) for name, run in runs.items()}


def probe_scores(run: Path) -> Dict[str, float]:
    """The probe's task metrics, flattened ('depth.abs_rel', ...); the recipe and config stay in probe.json."""
    probe = json.loads((run / 'probe.json').read_text())
    return R._flat({task: probe[task] for task in ('depth', 'normals', 'semseg') if task in probe})


def seeds_from_power_check(budget: Dict, margins: Optional[Path], seeds_given: bool) -> Dict:
    """The pre-registered rule: the pilot's power check picks the seed count n; the pre-training steps then scale
    by 5 / n (rounded down to 50) so the time stays the same. Explicit ``--seeds``, the pilot and presets planned
    for another seed count are left alone."""
    if seeds_given or budget.get('pilot') or len(budget['seeds']) != 5 or not (margins and margins.is_file()):
        return budget
    n = json.loads(margins.read_text()).get('power_check', {}).get('seeds', 5)
    scale = lambda steps: max(50, int(steps * 5 / n) // 50 * 50)  # noqa: E731
    out = dict(budget, seeds=list(range(n)), pretrain_steps=scale(budget['pretrain_steps']))
    if 'stage1_steps' in budget:   # stage 1 runs once, whatever n: it keeps its steps
        out['stage1_steps'] = budget['stage1_steps']
    return out


def main(budget: Dict, out: Path, device: str, workers: int, margins: Optional[Path], dry: bool,
         seeds_given: bool = False) -> int:
    budget = seeds_from_power_check(budget, margins, seeds_given)
    if dry:
        return dry_run(budget, out, device)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    p = pools(out, budget, workers)
    for phase in plan(out, budget, p, device):
        run_jobs(phase, budget['jobs'])
    arms = QUESTION_ARMS[budget['question']]
    r = {'budget': budget, 'arms': arms, 'machine': R._machine(), 'pretrain': pretrain_summary(out, budget),
         'probe': {a: {str(s): probe_scores(out / 'probe' / a / f'seed{s}') for s in budget['seeds']} for a in arms}}
    scores = A.load_scores(out, arms)
    if budget.get('pilot'):
        noise = A.margins_from_pilot(scores)
        r['pilot'] = {'noise': noise, 'power_check': A.power_check(noise)}
        (out / 'margins.json').write_text(json.dumps(r['pilot'], indent=1))
    elif margins and margins.is_file():
        m = {e: v['margin'] for e, v in json.loads(margins.read_text())['noise'].items()}
        r['verdict'] = A.question_verdict(scores, budget['question'], m)
        r['margins_file'] = str(margins)
        (out / 'results.md').write_text(A.report(r['verdict']))
        print(A.report(r['verdict']))
    else:
        R._log(f'no margins file ({margins}): run the pilot first; results without a verdict')
    r['seconds'] = time.perf_counter() - t0
    (out / 'results.json').write_text(json.dumps(r, indent=1))
    R._log(f"results: {out / 'results.json'} ({r['seconds'] / 60:.1f} min)")
    return 0


if __name__ == '__main__':
    sys.exit(R.main())
