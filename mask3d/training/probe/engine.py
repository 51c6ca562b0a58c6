"""``run_probe``: frozen features once, then one light head per task, scored on the test split.

Follows Probe3D (El Banani et al., CVPR 2024) where it applies: frozen multi-block features, dense probes for
depth and normals trained with AdamW on a cosine schedule, zero-shot nearest-neighbour correspondence. The
differences are listed in docs/probing.md.
"""
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from timm.scheduler import CosineLRScheduler

from ...errors import ConfigError
from ..config import check_image_size
from ..runtime.distributed import DistInfo
from ..runtime.launch import run_setup
from ..runtime.loop import LoopSettings, TrainingLoop
from .config import ProbeConfig
from .correspondence import correspondence_recall, pair_errors
from .data import load_probe_data
from .features import build_frozen_backbone, extract_features
from .figures import save_pca_figure, save_probe_figure
from .tasks import DENSE_TASKS, ProbeTask

log = logging.getLogger(__name__)


def _device(name: str) -> torch.device:
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name == 'cuda' and not torch.cuda.is_available():
        raise ConfigError('train.device=cuda but no CUDA device is available')
    return torch.device(name)


def _train_head(head, feats: torch.Tensor, targets, loss_fn, cfg: ProbeConfig, device, desc: str):
    """AdamW (``optim.*``) + cosine schedule for ``train.steps`` steps on random batches of cached features,
    through the shared training loop (single process, fp32, no checkpoints: a probe retrains in seconds)."""
    t, o = cfg.train, cfg.optim
    head.to(device).train()
    opt = torch.optim.AdamW(head.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    sched = CosineLRScheduler(opt, t_initial=t.steps, warmup_t=max(1, t.steps // 20), warmup_lr_init=o.lr * 0.01,
                              t_in_epochs=False)  # stepped per update
    gen = torch.Generator().manual_seed(t.seed)
    size = tuple(cfg.data.image_size)

    def batches(epoch: int, start_micro: int):
        for _ in range(start_micro, t.steps):
            yield torch.randint(len(feats), (min(t.batch_size, len(feats)),), generator=gen)

    def forward(net, idx, autocast):
        x = feats[idx].float().flatten(1, 2).to(device)
        return {'loss': loss_fn(net(x, size), *[y[idx].to(device) for y in targets])}

    loop = TrainingLoop(LoopSettings(steps=t.steps, precision='fp32', log_every=10, desc=desc, lr_value=o.lr),
                        model=head, optimizer=opt, scheduler=sched, info=DistInfo(device=torch.device(device)))
    record = loop.run(batches, forward, count=len)
    return head.eval(), record['loss']


@torch.no_grad()
def _predict(head, feats: torch.Tensor, cfg: ProbeConfig, device) -> torch.Tensor:
    size = tuple(cfg.data.image_size)
    return torch.cat([head(feats[i:i + 16].float().flatten(1, 2).to(device), size).cpu()
                      for i in range(0, len(feats), 16)])


def _skip(result: Dict[str, Any], task: str, reason: str) -> None:
    log.warning('probe %s skipped: %s', task, reason)
    result.setdefault('skipped', {})[task] = reason


PROBE_OUTPUTS = ('probe.json', 'probe_predictions.png', 'probe_pca.png')


def run_probe(cfg: ProbeConfig, out_dir, backbone_label: Optional[str] = None) -> Dict[str, Any]:
    """Runs every task of ``cfg.tasks`` that the data supports; writes OUT/probe.json and the figures.

    OUT is a run folder like any other (``run_folder.prepare_run_folder``): never the working directory or above,
    locked while the probe runs, marked when the probe makes it; a probe may add its files to a pre-training run's
    folder, but never replaces a probe.json that mask3d did not write. Set up like a training run
    (``runtime.launch.run_setup``: validated, locked, seeded)."""
    out = Path(out_dir)
    with run_setup(cfg, out, 'probe', outputs=PROBE_OUTPUTS, adds_to_runs=True):
        return _run_probe(cfg, out, backbone_label)


def _run_probe(cfg: ProbeConfig, out: Path, backbone_label: Optional[str]) -> Dict[str, Any]:
    started = time.time()
    device = _device(cfg.train.device)
    net, recipe = build_frozen_backbone(cfg.model, cfg.features.blocks)
    check_image_size(cfg.data.image_size, recipe['patch_size'], recipe.get('name', cfg.model.backbone))
    net.to(device)
    train, test, posed = load_probe_data(cfg, recipe['mean'], recipe['std'])
    f_train = extract_features(net, train.rgb, cfg.features.batch_size, device, 'features train')
    f_test = extract_features(net, test.rgb, cfg.features.batch_size, device, 'features test')
    result: Dict[str, Any] = {'backbone': dict(recipe, label=backbone_label or cfg.model.backbone),
                              'config': cfg.to_dict(), 'frames': {'train': len(train), 'test': len(test)}}
    probe = _Probe(cfg, device, train, test, f_train, f_test, list(range(min(cfg.figure_samples, len(test)))))
    panels: Dict[str, Any] = {}
    for task in DENSE_TASKS:  # in this order: each head's initialisation draws from the seeded RNG
        if task.name in cfg.tasks:
            skipped = task.missing(train, test)
            if skipped:
                _skip(result, task.name, skipped)
            else:
                result[task.name], panels[task.name] = probe.run(task)
    if 'correspondence' in cfg.tasks:
        if posed is None or posed.pose is None or posed.intrinsics is None or not posed.pairs:
            _skip(result, 'correspondence', 'no posed frame pairs (needs depth + intrinsics + pose/ per frame)')
        else:
            result['correspondence'] = _correspondence(cfg, net, posed, test, f_test, recipe['patch_size'], device)
    result['figures'] = _figures(out, test, f_test, probe.shown, panels, recipe, result['backbone']['label'])
    result['seconds'] = round(time.time() - started, 1)
    (out / 'probe.json').write_text(json.dumps(_finite(result), indent=1))
    return result


class _Probe:
    """The frozen-feature probe of one dense task (``probe/tasks.py``): train its head on the training features, score
    the test features; ``run`` returns (metrics with the final training loss, figure panel)."""

    def __init__(self, cfg: ProbeConfig, device, train, test, f_train, f_test, shown):
        self.cfg, self.device, self.train, self.test = cfg, device, train, test
        self.f_train, self.f_test, self.shown = f_train, f_test, shown

    def run(self, task: ProbeTask):
        train_targets, test_targets = task.targets(self.train), task.targets(self.test)
        head = task.head(self.f_train.shape[1], self.f_train.shape[2], self.cfg, self.train)
        head, last = _train_head(head, self.f_train, train_targets, task.loss, self.cfg, self.device,
                                 f'probe {task.name}')
        pred = task.prediction(_predict(head, self.f_test, self.cfg, self.device))
        return (dict(task.score(pred, test_targets, self.cfg, self.train), train_loss=last),
                task.panel(pred, test_targets, self.shown, self.train))


def _correspondence(cfg: ProbeConfig, net, posed, test, f_test, patch_size: int, device) -> Dict[str, Any]:
    """Nearest-neighbour matching of frozen features between posed frame pairs, scored against the geometry."""
    c = cfg.correspondence
    step = max(1, len(posed.pairs) / c.max_pairs)
    pairs = [posed.pairs[int(i * step)] for i in range(min(c.max_pairs, len(posed.pairs)))]
    f_posed = f_test if posed is test else extract_features(net, posed.rgb, cfg.features.batch_size, device,
                                                            'features views')
    gen = torch.Generator().manual_seed(cfg.train.seed)
    errors = [pair_errors(f_posed[i], f_posed[j], posed.frame(i), posed.frame(j), max_queries=c.max_queries,
                          stride=max(1, patch_size // 4), tolerance=c.occlusion_tolerance, generator=gen)
              for i, j in pairs]
    every = torch.cat(errors)
    return dict(correspondence_recall(every, c.thresholds_px), pairs=len(pairs), matches=int(every.numel()),
                pair_recall=[correspondence_recall(e, c.thresholds_px) for e in errors])


def _figures(out: Path, test, f_test, shown, panels, recipe, label: str) -> Dict[str, str]:
    """probe_predictions.png (when a dense task ran) and probe_pca.png (the last block's first three PCs)."""
    figures = {}
    if panels:
        figures['predictions'] = str(save_probe_figure(out / 'probe_predictions.png', test.rgb[shown], panels,
                                                       recipe['mean'], recipe['std'],
                                                       title=f'{label}: frozen-feature probes'))
    figures['pca'] = str(save_pca_figure(out / 'probe_pca.png', test.rgb[shown], f_test[shown, -1], recipe['mean'],
                                         recipe['std'], title=f"{label}: first 3 PCs of block {recipe['blocks'][-1]}"))
    return figures


def _finite(x):
    """NaN -> null, so probe.json is strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x
