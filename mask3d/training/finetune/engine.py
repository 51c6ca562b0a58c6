"""The fine-tuning loop and evaluation, on the same runtime as pre-training.

One process or many (torchrun + DDP); autocast; layer-wise lr decay through timm's optimizer factory; warmup then
poly or cosine per iteration (timm schedulers); atomic checkpoints with every RNG state, so an interrupted run
resumes exactly; progress bars, metrics.jsonl, TensorBoard; evaluation writes metrics JSON and a PNG of
predictions next to ground truth.
"""
import json
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler, PolyLRScheduler
from torch.utils.data import DataLoader, Subset

from ...errors import ConfigError, Mask3DError, NonFiniteLossError  # noqa: F401 (re-exported)
from ...finite import check_finite_tensors
from ..backbones import input_normalisation
from ..config import check_image_size, ensure_valid
from ..data.pretrain_data import EpochIndexSampler
from ..runtime.checkpoint import load_training_checkpoint, restore_training_state
from ..runtime.distributed import DistInfo, cleanup, init_distributed, wrap_distributed
from ..runtime.launch import launch, record_config
from ..runtime.loop import EpochLoader, LoopSettings, TrainingLoop
from ..runtime.metrics_log import MetricsLogger
from ..runtime.precision import autocast_context, grad_scaler
from ..runtime.run_folder import check_not_protected
from ..runtime.skips import SkipCounter
from .config import FinetuneConfig, finetune_config_from_dict
from .data import TaskSamples, build_task_frames, collate, task_transform
from .models import build_task_model
from .tasks import get_task

def build_finetune_optimizer(cfg: FinetuneConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW from timm's factory: layer-wise lr decay from the backbone's group_matcher, no decay on norms,
    biases, tokens and position embeddings."""
    o = cfg.optim
    return create_optimizer_v2(model, 'adamw', lr=o.lr, weight_decay=o.weight_decay, betas=tuple(o.betas),
                               layer_decay=o.layer_decay if o.layer_decay < 1 else None, fused=o.fused)


def build_scheduler(cfg: FinetuneConfig, optimizer):
    o, steps = cfg.optim, cfg.train.steps
    warmup = o.warmup_steps or int(round(o.warmup_fraction * steps))
    common = dict(t_initial=steps, lr_min=o.min_lr, warmup_t=warmup, warmup_lr_init=o.lr * 1e-3 if warmup else o.lr,
                  warmup_prefix=True, t_in_epochs=False)
    if o.schedule == 'poly':
        return PolyLRScheduler(optimizer, power=o.poly_power, **common)
    return CosineLRScheduler(optimizer, **common)


def _mean_std(model: torch.nn.Module):
    """The normalisation the backbone was trained with (its timm pretrained_cfg)."""
    vit, _ = model._vit()
    return input_normalisation(vit)


def finetune(cfg: FinetuneConfig, run_dir, *, resume: bool = False, progress: bool = True,
             overwrite: bool = False) -> Dict[str, Any]:
    """Run (or resume) fine-tuning into ``run_dir``; returns a summary (also written as summary.json).
    ``overwrite``: first remove what an earlier mask3d run wrote there (``run_folder.prepare_run_folder``)."""
    return launch(_finetune, cfg, run_dir, resume, progress, overwrite=overwrite, command='finetune')


def _finetune(cfg: FinetuneConfig, run_dir: Path, info: DistInfo, state: Optional[Dict[str, Any]],
              progress: bool) -> Dict[str, Any]:
    # data first: a wrong class count or a missing dataset fails before any model is built or trained
    train_frames = build_task_frames(cfg, 'train')
    val_frames = build_task_frames(cfg, 'val')
    t_cfg, o_cfg, device = cfg.train, cfg.optim, info.device
    record_config(run_dir, cfg, info)

    model, recipe = build_task_model(cfg, backbone=state['backbone'] if state else None)
    check_image_size(cfg.data.image_size, model._vit()[0].patch_embed.patch_size[0], recipe['name'])
    model = model.to(device)
    if info.distributed and device.type == 'cuda':
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = build_finetune_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    scaler = grad_scaler(t_cfg.precision, device)
    step = restore_training_state(state, info, model, optimizer, scheduler, scaler) if state is not None else 0
    train_model = wrap_distributed(model, info)

    data = _FinetuneData(cfg, info, train_frames, model)
    skips = SkipCounter.for_run(info, train_frames, state)  # data.skip_bad, as in pre-training
    logger = MetricsLogger(run_dir, info.is_main, f'finetune_{cfg.task}')
    loop = TrainingLoop(
        LoopSettings.from_config(cfg, desc=f'finetune {cfg.task}', progress=progress, lr_value=o_cfg.lr),
        model=model, train_model=train_model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, info=info,
        run_dir=run_dir, steps_per_epoch=data.steps_per_epoch, logger=logger, start_step=step,
        log_tags={'split': 'train'},
        checkpoint_payload=lambda _: {'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
                                      'scheduler': scheduler.state_dict(), 'scaler': scaler.state_dict(),
                                      'config': cfg.to_dict(), 'backbone': recipe, 'task': cfg.task,
                                      'skipped_frames_read': skips.read})
    steps = _FinetuneStep(cfg, model, info, run_dir, val_frames, skips, logger, progress)
    last = loop.run(data.epoch_batches, steps.forward, log_extras=steps.log_extras,
                    record_extras=lambda: {'skipped_frames': skips.total}, after_step=steps.after_step)
    step = loop.step
    skips.gather()
    result = steps.evaluate(step, final=True)
    logger.close()
    summary = {'run_dir': str(run_dir), 'task': cfg.task, 'steps': step, 'final_train': last, 'val': result,
               'skipped_frames': skips.total,
               'checkpoint': str(run_dir / 'checkpoints' / 'last.pt')}
    if info.is_main:
        _write_weights(model, run_dir / 'model.safetensors')
        (run_dir / 'summary.json').write_text(json.dumps(summary, indent=2))
    return summary


class _FinetuneData(EpochLoader):
    """The task samples of the training split, their sampler and loader, and ``epoch_batches`` for the loop."""

    def __init__(self, cfg: FinetuneConfig, info: DistInfo, train_frames, model: torch.nn.Module):
        d_cfg, t_cfg, o_cfg = cfg.data, cfg.train, cfg.optim
        mean, std = _mean_std(model)
        samples = TaskSamples(train_frames, get_task(cfg.task), task_transform(cfg, True, mean, std), seed=t_cfg.seed,
                              skip_bad=d_cfg.skip_bad)
        self.batch_size = d_cfg.batch_size
        self.sampler = EpochIndexSampler(len(samples), num_replicas=info.world_size, rank=info.rank, seed=t_cfg.seed)
        self.steps_per_epoch = (len(samples) // info.world_size) // d_cfg.batch_size // o_cfg.accum_steps
        if self.steps_per_epoch < 1:
            raise ConfigError(f'{len(samples)} training frames are too few for one step of '
                              f'{d_cfg.batch_size * o_cfg.accum_steps * info.world_size} frames')
        self.loader = DataLoader(samples, batch_size=d_cfg.batch_size, sampler=self.sampler,
                                 num_workers=d_cfg.num_workers, collate_fn=collate,
                                 pin_memory=info.device.type == 'cuda', drop_last=True,
                                 generator=torch.Generator().manual_seed(t_cfg.seed),  # keeps the global RNG exact
                                 prefetch_factor=4 if d_cfg.num_workers else None)


class _FinetuneStep:
    """What the loop calls around each step: the task's loss, the skip count at log and checkpoint steps, and the
    evaluation on the validation split every ``train.eval_every`` steps (and at the end)."""

    def __init__(self, cfg: FinetuneConfig, model: torch.nn.Module, info: DistInfo, run_dir: Path, val_frames,
                 skips: SkipCounter, logger: MetricsLogger, progress: bool):
        self.cfg, self.model, self.info, self.run_dir, self.val_frames = cfg, model, info, run_dir, val_frames
        self.skips, self.logger, self.progress = skips, logger, progress
        self.task = get_task(cfg.task)

    def forward(self, net, batch, autocast):
        batch['rgb'] = batch['rgb'].to(self.info.device, non_blocking=True)
        self.skips.add(batch)
        with autocast:
            return self.task.loss(net, batch, self.info.device, self.cfg)

    def log_extras(self) -> Dict[str, Any]:
        self.skips.gather()  # every rank is here (a log step): the skip count of all ranks for record_extras
        return {}

    def after_step(self, step: int, losses) -> None:
        t_cfg = self.cfg.train
        if t_cfg.ckpt_every and (step % t_cfg.ckpt_every == 0 or step == t_cfg.steps):
            self.skips.gather()  # before the loop saves the checkpoint: it stores the count of this very step
        if t_cfg.eval_every and step % t_cfg.eval_every == 0 and step < t_cfg.steps:
            self.evaluate(step, final=False)

    def evaluate(self, tag_step: int, final: bool) -> Dict[str, Any]:
        model = self.model
        if self.info.distributed:  # BatchNorm running stats drift apart per rank (no SyncBN on CPU): score rank
            for buffer in model.buffers():  # 0's model, the one the checkpoint holds
                torch.distributed.broadcast(buffer, src=0)
        result = evaluate_model(self.cfg, model, self.val_frames, self.info,
                                out_dir=self.run_dir / 'eval' if final else None, split='val',
                                progress=self.progress and final, title=f'step {tag_step}')
        self.logger.log({'step': tag_step, 'split': 'val',
                         **{k: v for k, v in result.items() if not isinstance(v, list)}})
        model.train()
        return result


def _write_weights(model: torch.nn.Module, path: Path) -> None:
    """The fine-tuned model (backbone + head) as safetensors; refused if any tensor is NaN/inf."""
    from safetensors.torch import save_file
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    check_finite_tensors(weights, f'weights {path}')  # never write NaN/inf
    save_file(weights, str(path))


@torch.no_grad()
def evaluate_model(cfg: FinetuneConfig, model: torch.nn.Module, frames, info: DistInfo, *, out_dir=None,
                   split: str = 'val', progress: bool = True, title: str = '') -> Dict[str, Any]:
    """Score ``model`` on ``frames`` (each rank a share, metrics reduced across ranks); with ``out_dir``, rank 0
    writes ``metrics_{split}.json`` and ``predictions_{split}.png``."""
    e, device, task = cfg.eval, info.device, get_task(cfg.task)
    mean, std = _mean_std(model)
    samples = TaskSamples(frames, task, task_transform(cfg, False, mean, std), seed=cfg.train.seed,
                          keep_full_target=e.full_resolution)
    n = len(samples) if not e.max_frames else min(e.max_frames, len(samples))
    shard = Subset(samples, list(range(info.rank, n, info.world_size)))
    loader = DataLoader(shard, batch_size=e.batch_size, num_workers=cfg.data.num_workers, collate_fn=collate)
    metrics = task.build_metrics(cfg)
    model.eval()
    shown = {'images': [], 'gts': [], 'preds': []}
    batches = loader
    if progress and info.is_main:
        from tqdm.auto import tqdm
        batches = tqdm(loader, desc=f'evaluate {split}', unit='batch', dynamic_ncols=True)
    with autocast_context(device, cfg.train.precision):
        for batch in batches:
            batch['rgb'] = batch['rgb'].to(device)
            preds = task.predict(model, batch, e.full_resolution)
            gts = task.ground_truth(batch, e.full_resolution)
            task.update_metrics(metrics, preds, gts)
            if out_dir is not None and info.is_main and len(shown['images']) < e.figure_samples:
                k = e.figure_samples - len(shown['images'])
                m_, s_ = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
                shown['images'] += [(r.float().cpu() * s_ + m_).clamp(0, 1).permute(1, 2, 0).numpy()
                                    for r in batch['rgb'][:k]]
                shown['gts'] += gts[:k]
                shown['preds'] += preds[:k]
    result = metrics.compute()
    result['frames'] = n
    result = task.finish_result(result, frames, cfg)
    if out_dir is not None and info.is_main:
        _write_evaluation(task, Path(out_dir), split, result, shown, getattr(frames, 'class_names', ()), title)
    return result


def _write_evaluation(task, out_dir: Path, split: str, result: Dict[str, Any], shown: Dict[str, list],
                      class_names, title: str) -> None:
    """``metrics_{split}.json`` (with the task's primary metric and its direction) and ``predictions_{split}.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    metric = task.primary_metric
    record = {'task': task.name, 'split': split, 'primary_metric': metric, 'higher_is_better': task.higher_is_better,
              **result}
    (out_dir / f'metrics_{split}.json').write_text(json.dumps(record, indent=2))
    if shown['images']:
        score = f'{metric}={result.get(metric, float("nan")):.4f}'
        task.save_prediction_figure(out_dir / f'predictions_{split}.png', shown['images'], shown['gts'],
                                    shown['preds'], class_names=class_names,
                                    title=f'{task.name} {split} {title}  {score}')


def load_finetuned(checkpoint, cfg: Optional[FinetuneConfig] = None, task: Optional[str] = None):
    """(model, config, step) from a fine-tuning checkpoint (``RUN_DIR`` or a ``.pt``); ``cfg`` replaces the stored
    data and eval sections (e.g. another split or dataset copy), the model section always comes from the checkpoint."""
    path = Path(checkpoint)
    if path.is_dir():
        path = path / 'checkpoints' / 'last.pt'
    state = load_training_checkpoint(path)
    if 'task' not in state or 'backbone' not in state:
        raise Mask3DError(f'{path}: not a mask3d fine-tuning checkpoint (no task/backbone entry); pre-training runs '
                          f'are evaluated by fine-tuning them: mask3d finetune --backbone RUN_DIR ...')
    stored = finetune_config_from_dict(state['config'])
    if task is not None and task != state['task']:
        raise ConfigError(f'--task {task} but {path} was fine-tuned for {state["task"]!r}')
    if cfg is not None:
        if cfg.task != stored.task:
            raise ConfigError(f'the config is for {cfg.task!r} but {path} was fine-tuned for {stored.task!r}')
        if cfg.model.num_classes != stored.model.num_classes and get_task(stored.task).has_classes:
            raise ConfigError(f'the config has model.num_classes={cfg.model.num_classes} but {path} predicts '
                              f'{stored.model.num_classes} classes')
        cfg.model = stored.model
    else:
        cfg = stored
    model, _ = build_task_model(cfg, backbone=state['backbone'])
    model.load_state_dict(state['model'])
    return model, cfg, int(state['step'])


def evaluate(checkpoint, cfg: Optional[FinetuneConfig] = None, *, task: Optional[str] = None, split: str = 'val',
             out_dir=None, progress: bool = True) -> Dict[str, Any]:
    """``mask3d evaluate``: score a fine-tuned run on ``split`` ('val' or 'train', evaluation transform)."""
    if split not in ('val', 'train'):
        raise ConfigError(f"--split must be 'val' or 'train', got {split!r}")
    info = init_distributed(cfg.train.device if cfg is not None else 'auto')
    try:
        model, cfg, step = load_finetuned(checkpoint, cfg, task)
        ensure_valid(cfg)
        frames = build_task_frames(cfg, split, training=False)
        model = model.to(info.device)
        if out_dir is None:
            p = Path(checkpoint)
            out_dir = (p if p.is_dir() else p.parent.parent) / 'eval'
        else:
            check_not_protected(Path(out_dir))  # never the working directory or above
        result = evaluate_model(cfg, model, frames, info, out_dir=out_dir, split=split, progress=progress,
                                title=f'(checkpoint step {step})')
        return {'out_dir': str(out_dir), 'step': step, **result}
    finally:
        cleanup(info)
