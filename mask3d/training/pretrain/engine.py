"""The pre-training loop: one process or many (torchrun + DDP), resumable at any step.

Builds everything from a :class:`PretrainConfig`, then runs optimizer steps with autocast, gradient
accumulation and clipping, per-iteration warmup + cosine (timm's scheduler), atomic checkpoints, metrics.jsonl,
TensorBoard (when installed), a progress bar and reconstruction figures.
"""
import json
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch.utils.data import DataLoader

from ...errors import ConfigError, NonFiniteLossError  # noqa: F401 (NonFiniteLossError: re-exported)
from ...factory import create_model
from ...loading import load_checkpoint, load_state_dict_into
from ..config import check_image_size
from ..data.device_decode import ColourDecoding
from ..data.pretrain_data import EpochIndexSampler, PretrainSamples
from ..data.registry import canonical, get as get_dataset
from ..data.sanity import local_shards, warn_if_depth_implausible
from ..data.transforms import JointTransform
from ..runtime.checkpoint import load_training_checkpoint, restore_training_state
from ..runtime.distributed import DistInfo, wrap_distributed
from ..runtime.launch import launch, record_config
from ..runtime.loop import EpochLoader, LoopSettings, TrainingLoop
from ..runtime.metrics_log import MetricsLogger, read_metrics
from ..runtime.precision import grad_scaler
from ..runtime.skips import SkipCounter
from .config import PretrainConfig, config_from_dict, mixture_parts
from .data import open_frames
from .pretrainer import Mask3DPretrainer
from .reliance import rgb_reliance

def build_encoder(cfg: PretrainConfig) -> torch.nn.Module:
    """The backbone, through the same path as ``mask3d.create_model``; ``model.init`` loads initial weights."""
    encoder = create_model(cfg.model.name, drop_path_rate=cfg.model.drop_path_rate, **cfg.model.model_args)
    init = cfg.model.init
    if init:
        if Path(init).exists():
            load_checkpoint(encoder, init)
        else:
            source = create_model(init, pretrained=True, num_classes=0)
            load_state_dict_into(encoder, source.state_dict(), init)
    return encoder


def build_pretrainer(cfg: PretrainConfig, encoder: torch.nn.Module, device: torch.device) -> Mask3DPretrainer:
    """The pre-training model on ``device`` with the configured speed settings (checkpointing, attention path)."""
    model = Mask3DPretrainer(encoder, cfg.method).to(device)
    if cfg.train.grad_checkpointing:
        model.set_grad_checkpointing(True)
    if cfg.train.fused_attn != 'auto' or device.type == 'cpu':
        model.set_fused_attn(cfg.train.fused_attn == 'on')
    return model


def build_optimizer(cfg: PretrainConfig, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """AdamW through timm's factory (no weight decay on norms, biases, tokens); fused: one kernel over all
    parameters (measured 4.5x faster than the default update on CPU for ViT-B + decoder, docs/performance.md)."""
    o = cfg.optim
    return create_optimizer_v2(model, 'adamw', lr=lr, weight_decay=o.weight_decay, betas=tuple(o.betas),
                               fused=o.fused)


def build_frames(cfg: PretrainConfig):
    """The frames of ``data.source``, opened through the dataset registry (``data/registry.py``)."""
    return open_frames(cfg.data, cfg.train.seed)


def pretrain(cfg: PretrainConfig, run_dir, *, resume: bool = False, progress: bool = True,
             overwrite: bool = False) -> Dict[str, Any]:
    """Run (or resume) pre-training into ``run_dir``; returns a summary dict (also written as summary.json).
    ``overwrite``: first remove what an earlier mask3d run wrote there (``run_folder.prepare_run_folder``)."""
    return launch(_pretrain, cfg, run_dir, resume, progress, overwrite=overwrite, command='pretrain')


def _pretrain(cfg: PretrainConfig, run_dir: Path, info: DistInfo, state: Optional[Dict[str, Any]],
              progress: bool) -> Dict[str, Any]:
    o_cfg = cfg.optim
    encoder = build_encoder(cfg)
    check_image_size(cfg.data.image_size, encoder.patch_embed.patch_size[0], cfg.model.name)
    record_config(run_dir, cfg, info)
    model = build_pretrainer(cfg, encoder, info.device)
    optimizer, scheduler, scaler = _optimization(cfg, model, info)
    step = restore_training_state(state, info, model, optimizer, scheduler, scaler) if state is not None else 0
    train_model = _wrap_for_training(model, cfg, info)
    data = _PretrainData(cfg, state, info, model)
    skips = SkipCounter.for_run(info, data.frames, state)
    logger = MetricsLogger(run_dir, info.is_main, 'pretrain')
    loop = TrainingLoop(
        LoopSettings.from_config(cfg, desc='pretrain', progress=progress,
                                 lr_hint='optim.lr' if o_cfg.lr is not None else 'optim.base_lr',
                                 lr_value=o_cfg.lr if o_cfg.lr is not None else o_cfg.base_lr),
        model=model, train_model=train_model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, info=info,
        run_dir=run_dir, steps_per_epoch=data.steps_per_epoch, logger=logger, start_step=step,
        checkpoint_payload=lambda _: {'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
                                      'scheduler': scheduler.state_dict(), 'scaler': scaler.state_dict(),
                                      'config': cfg.to_dict(), 'skipped_frames_read': skips.read})
    steps = _PretrainStep(cfg, model, info, run_dir, loop, skips, data.mean, data.std)
    last_record = loop.run(data.epoch_batches, steps.forward, log_extras=steps.reliance,
                           record_extras=lambda: {'skipped_frames': skips.total}, after_step=steps.figure)
    logger.close()
    skips.gather()
    return _finish(cfg, run_dir, info, model, loop.step, last_record, skips.total)


def _optimization(cfg: PretrainConfig, model: Mask3DPretrainer, info: DistInfo):
    """AdamW (timm's factory) at ``optim.lr``, or ``base_lr x global batch / 256``; per-step cosine with warmup."""
    o_cfg, t_cfg = cfg.optim, cfg.train
    eff_batch = cfg.data.batch_size * o_cfg.accum_steps * info.world_size
    lr = o_cfg.lr if o_cfg.lr is not None else o_cfg.base_lr * eff_batch / 256
    optimizer = build_optimizer(cfg, model, lr)
    warmup = o_cfg.warmup_steps or int(round(o_cfg.warmup_fraction * t_cfg.steps))
    scheduler = CosineLRScheduler(optimizer, t_initial=t_cfg.steps, lr_min=o_cfg.min_lr, warmup_t=warmup,
                                  warmup_lr_init=lr * 0.01 if warmup else lr, warmup_prefix=True,
                                  t_in_epochs=False)
    return optimizer, scheduler, grad_scaler(t_cfg.precision, info.device)


def _wrap_for_training(model: Mask3DPretrainer, cfg: PretrainConfig, info: DistInfo) -> torch.nn.Module:
    """DDP across processes, then ``torch.compile`` when ``train.compile`` asks for it."""
    train_model = wrap_distributed(model, info)
    if cfg.train.compile:
        # static shapes (every batch has the same size and visible count); one graph without breaks on a single
        # process (DDP splits it at its bucket boundaries); mode 'reduce-overhead' replays it as CUDA graphs
        train_model = torch.compile(train_model, mode=cfg.train.compile_mode, dynamic=False,
                                    fullgraph=not info.distributed)
    return train_model


class _PretrainData(EpochLoader):
    """The frames (or shard stream), their sampler and loader, and ``epoch_batches`` for the training loop."""

    def __init__(self, cfg: PretrainConfig, state: Optional[Dict[str, Any]], info: DistInfo,
                 model: Mask3DPretrainer):
        d_cfg, t_cfg = cfg.data, cfg.train
        device = info.device
        self.batch_size = d_cfg.batch_size
        self.mean, self.std = model.encoder.pretrained_cfg['mean'], model.encoder.pretrained_cfg['std']
        transform = JointTransform(d_cfg.image_size, scale=tuple(d_cfg.scale), hflip=d_cfg.hflip, mean=self.mean,
                                   std=self.std)
        # data.decode_device: JPEGs decoded on a device
        self.colour = ColourDecoding(d_cfg.decode_device, device, transform)
        self.frames = None  # data.skip_bad: its skipped_at_listing are the frames left out while listing
        source = get_dataset(d_cfg.source, 'pretrain')
        if source.streamed:  # shards
            self.sampler, samples = source.opener('pretrain')(cfg, state, info, transform, model.patch_size,
                                                              self.colour)
            warn_if_depth_implausible(local_shards(d_cfg.root), 'data.source=shards')  # a wrong depth unit
            frames_total, micro_per_epoch = self.sampler.shards.frames, self.sampler.batches_per_epoch
        else:
            self.frames = build_frames(cfg)
            warn_if_depth_implausible(self.frames, f'data.source={d_cfg.source}')  # one line: a wrong depth unit
            samples = PretrainSamples(self.colour.frames(self.frames, d_cfg.source), transform,
                                      patch_size=model.patch_size, seed=t_cfg.seed, skip_bad=d_cfg.skip_bad)
            self.sampler = EpochIndexSampler(len(samples), num_replicas=info.world_size, rank=info.rank,
                                             seed=t_cfg.seed)
            frames_total = len(samples)
            micro_per_epoch = (len(samples) // info.world_size) // d_cfg.batch_size
        self.steps_per_epoch = micro_per_epoch // cfg.optim.accum_steps
        if self.steps_per_epoch < 1:
            eff_batch = d_cfg.batch_size * cfg.optim.accum_steps * info.world_size
            raise ConfigError(f'{frames_total} frames are too few for one step of {eff_batch} (batch_size x '
                              f'accum_steps x processes); lower data.batch_size or add data')
        self.loader = DataLoader(samples, batch_size=d_cfg.batch_size, num_workers=d_cfg.num_workers,
                                 pin_memory=device.type == 'cuda', drop_last=True,
                                 persistent_workers=False, prefetch_factor=4 if d_cfg.num_workers else None,
                                 collate_fn=self.colour.collate_fn,
                                 **({} if source.streamed else dict(
                                     sampler=self.sampler,  # a seeded generator leaves the global RNG to the model
                                     generator=torch.Generator().manual_seed(t_cfg.seed))))

    def batches(self, loader):
        return self.colour.batches(loader)


class _PretrainStep:
    """What the loop calls around each step: the forward pass (``loss``, ``loss_depth``), ``rgb_reliance`` at log
    steps and the reconstruction figure; it keeps the latest micro-batch and its outputs for the last two."""

    def __init__(self, cfg: PretrainConfig, model: Mask3DPretrainer, info: DistInfo, run_dir: Path,
                 loop: TrainingLoop, skips: SkipCounter, mean, std):
        self.cfg, self.model, self.info, self.run_dir, self.loop, self.skips = cfg, model, info, run_dir, loop, skips
        self.mean, self.std = mean, std
        self.last: Dict[str, Any] = {}

    def forward(self, net, batch, autocast):
        device, t_cfg = self.info.device, self.cfg.train
        rgb = batch['rgb'].to(device, non_blocking=True)
        depth = batch['depth'].to(device, non_blocking=True)
        noise = batch['mask_noise'].to(device, non_blocking=True)
        self.skips.add(batch)
        if t_cfg.compile and t_cfg.compile_mode == 'reduce-overhead':
            torch.compiler.cudagraph_mark_step_begin()  # CUDA graphs: a new step may reuse output memory
        with autocast:
            out = net(rgb, depth, mask_noise=noise)
        self.last.update(rgb=rgb, depth=depth, noise=noise, out=out)
        return {'loss': out['loss'], 'loss_depth': out['loss_depth']}

    def reliance(self) -> Dict[str, float]:
        self.skips.gather()  # every rank is here (a log step): the skip count of all ranks for record_extras
        if not self.model.has_depth_pretext:  # MAE (no depth loss): the ratio would mean nothing, so none is stored
            return {}
        # one extra no-grad forward pair on the last micro-batch: does the loss need the encoder?
        rgb = self.last['rgb']
        return {'rgb_reliance': rgb_reliance(self.model, rgb, self.last['depth'], mask_noise=self.last['noise'],
                                             autocast=self.loop.autocast) if rgb.shape[0] > 1 else float('nan')}

    def figure(self, step: int, losses: Dict[str, torch.Tensor]) -> None:
        t_cfg = self.cfg.train
        if t_cfg.ckpt_every and (step % t_cfg.ckpt_every == 0 or step == t_cfg.steps):
            self.skips.gather()  # before the loop saves the checkpoint: it stores the count of this very step
        if self.info.is_main and (step % t_cfg.figure_every == 0 or step == t_cfg.steps):
            from .figures import save_reconstruction_figure
            out = self.last['out']
            save_reconstruction_figure(
                self.run_dir / 'figures' / f'step_{step:07d}.png', self.last['rgb'], self.last['depth'],
                out['pred_depth'], out['rgb_mask'], out['depth_mask'], patch_size=self.model.patch_size,
                mean=self.mean, std=self.std, max_samples=t_cfg.figure_samples,
                pred_depth_normalized=out['pred_depth_normalized'].detach(),
                title=f"step {step}  loss {float(losses['loss']):.4f}  "
                      f"rgb_reliance {self.loop.last_record.get('rgb_reliance', float('nan')):.3f}")


def _finish(cfg: PretrainConfig, run_dir: Path, info: DistInfo, model: Mask3DPretrainer, step: int,
            last_record: Dict[str, Any], skipped: int) -> Dict[str, Any]:
    """The run's summary (summary.json on rank 0: first and last records, rgb_reliance, the export)."""
    summary = {'run_dir': str(run_dir), 'steps': step, 'final': last_record, 'skipped_frames': skipped,
               'checkpoint': str(run_dir / 'checkpoints' / 'last.pt')}
    if info.is_main:
        records = read_metrics(run_dir)
        if records:
            summary['first'] = records[0]
            if model.has_depth_pretext:
                summary['rgb_reliance'] = {'first': records[0].get('rgb_reliance'),
                                           'last': records[-1].get('rgb_reliance')}
        if cfg.train.export_at_end:
            summary['export'] = str(export_encoder(model.encoder, cfg, run_dir / 'export', metrics=last_record,
                                                   run_dir=run_dir))
        (run_dir / 'summary.json').write_text(json.dumps(summary, indent=2))
    return summary


def describe_data(data) -> str:
    """Where the pre-training frames came from, in words (the card's training data; no dataset is implied)."""
    if canonical(data.source) == 'mixture':
        return 'mixture of ' + '; '.join(f'{describe_data(part)} (weight {w:g})' for part, w in mixture_parts(data))
    words = {'synthetic': 'built-in synthetic indoor RGB-D rooms (mask3d.training.data.synthetic), no real images',
             'folder': f'RGB-D folder {data.root}',
             'scannet': f'ScanNet v2 RGB-D frames ({data.split or "all scenes"}, every {data.every})',
             'nyu-raw': f'NYU Depth v2 raw frames ({data.root})',
             'sunrgbd': f'SUN RGB-D frames ({data.root})',
             'tum': f'TUM RGB-D sequences ({data.root})',
             '7scenes': f'Microsoft 7-Scenes frames ({data.split or "all"} sequences, {data.root})'}
    return words.get(canonical(data.source), f'{data.source} ({data.root})')


def data_sources(data) -> list:
    """The canonical names of the sources a run read (an alias records its dataset's name: licences go by it)."""
    parts = [p for p, _ in mixture_parts(data)] if canonical(data.source) == 'mixture' else [data]
    return sorted({canonical(p.source) or p.source for p in parts})


def run_metadata(cfg: PretrainConfig, run_dir: Optional[Path], metrics: Dict[str, Any]) -> Dict[str, Any]:
    """What an export records about its run: data, init, steps, licence, base model, probe metrics if measured."""
    from ...licensing import derived_license, init_license_and_base
    init_license, base_model = init_license_and_base(cfg.model.init)
    meta = {'architecture': cfg.model.name, 'init': cfg.model.init or 'scratch', 'init_license': init_license,
            'training_data': describe_data(cfg.data), 'data_sources': data_sources(cfg.data),
            'steps': metrics.get('step'), 'license': derived_license(init_license, has_init=bool(cfg.model.init)),
            'base_model': base_model, 'metrics': {k: (round(v, 6) if isinstance(v, float) else v)
                                                  for k, v in metrics.items()}}
    probe = Path(run_dir) / 'probe.json' if run_dir else None
    if probe is not None and probe.is_file():  # written by `mask3d probe RUN`
        try:
            values = json.loads(probe.read_text())
        except ValueError as e:
            raise ConfigError(f'{probe}: not valid JSON ({e})') from e
        from ...export import probe_results
        results, meta['results_command'] = probe_results(values if isinstance(values, dict) else {}, str(probe))
        meta['metrics'].update(results)
    return meta


def export_encoder(encoder: torch.nn.Module, cfg: PretrainConfig, out_dir, *, metrics: Dict[str, Any],
                   run_dir: Optional[Path] = None) -> Path:
    """The encoder as a Hub folder (model.safetensors + config.json + card), described from the run itself."""
    from ...export import MASK3D_OBJECTIVE, save_pretrained
    meta = {**run_metadata(cfg, run_dir, metrics), 'objective': MASK3D_OBJECTIVE, 'training_config': cfg.to_dict()}
    steps = f', {meta["steps"]} steps' if meta['steps'] is not None else ''
    license_note = '' if meta['init_license'] or not cfg.model.init else \
        f' The licence of the init weights ({cfg.model.init}) is unknown: check it before publishing.'
    card = dict(description=f'Mask3D pre-trained {cfg.model.name} on {meta["training_data"]} (init: {meta["init"]}'
                            f'{steps}).{license_note}',
                license=meta['license'], base_model=meta['base_model'], training_data=meta['training_data'],
                training_config=cfg.to_dict(), metrics=meta['metrics'])
    return save_pretrained(encoder, out_dir, model_card=card, metadata=meta)


def export_run(run_dir, out_dir, checkpoint: Optional[str] = None) -> Path:
    """``mask3d export``: rebuild the pretrainer from a run's checkpoint and save its encoder."""
    run_dir = Path(run_dir)
    path = Path(checkpoint) if checkpoint else run_dir / 'checkpoints' / 'last.pt'
    state = load_training_checkpoint(path)
    cfg = config_from_dict(state['config'])
    encoder = create_model(cfg.model.name, **cfg.model.model_args)
    model = Mask3DPretrainer(encoder, cfg.method)
    model.load_state_dict(state['model'])
    records = read_metrics(run_dir)
    metrics = records[-1] if records else {'step': int(state['step'])}
    return export_encoder(model.encoder, cfg, out_dir, metrics=metrics, run_dir=run_dir)

