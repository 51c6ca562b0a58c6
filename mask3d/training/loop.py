"""The one training loop: pre-training, fine-tuning and probing all run their optimizer steps here.

The loop owns what every task shares: autocast, gradient accumulation (DDP ``no_sync`` on the micro-steps that do
not end a step), the grad scaler and clipping, the per-iteration scheduler, the non-finite guard, logging
(metrics.jsonl, TensorBoard, progress bar), checkpoints and the exact position to resume from. A task passes what is
its own: how to get an epoch's batches, the forward pass that returns its losses, and hooks for log extras,
figures and evaluation.

Rules kept in one place:
- an epoch is a whole number of optimizer steps: leftover micro-batches are dropped, no gradient crosses epochs;
- losses stay on the device; the host reads them (and the non-finite flag) only at log and checkpoint steps, so a
  non-finite loss is caught before any checkpoint could store it;
- the logged ``lr`` is the largest lr of any parameter group (with layer-wise decay: the head's, the configured lr).
"""
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional

import torch

from ..errors import NonFiniteLossError
from .distributed import DistInfo, all_reduce_mean
from .runtime import MetricsLogger, autocast_context, save_training_state


@dataclass
class LoopSettings:
    """The knobs of the loop itself; tasks fill it from their config's ``optim`` and ``train`` sections."""
    steps: int
    accum_steps: int = 1
    clip_grad: Optional[float] = None
    precision: str = 'fp32'
    log_every: int = 10
    ckpt_every: int = 0                 # 0: no checkpoints (probing)
    keep_every: int = 0
    desc: str = 'train'                 # progress bar label
    progress: bool = True
    lr_hint: str = 'optim.lr'           # named in the non-finite message

    @classmethod
    def from_config(cls, cfg, **extra) -> 'LoopSettings':
        """From a pre-training or fine-tuning config's ``optim`` and ``train`` sections."""
        o, t = cfg.optim, cfg.train
        return cls(steps=t.steps, accum_steps=o.accum_steps, clip_grad=o.clip_grad, precision=t.precision,
                   log_every=t.log_every, ckpt_every=t.ckpt_every, keep_every=t.keep_every, **extra)


def optimizer_step(model, optimizer, scaler, clip_grad) -> None:
    """One update after the accumulated backward passes: optional clipping (on unscaled gradients), the grad
    scaler's step, and clearing the gradients."""
    if clip_grad:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def logged_lr(optimizer) -> float:
    return max(g['lr'] for g in optimizer.param_groups)


class TrainingLoop:
    """Runs ``settings.steps`` optimizer steps of ``model`` (wrapped as ``train_model``: DDP, compiled).

    ``epoch_batches(epoch, start_micro)`` returns the batches of an epoch from micro-batch ``start_micro`` on;
    ``forward(train_model, batch, autocast)`` returns a dict of scalar loss tensors (``loss`` is backpropagated, all
    are averaged over the step and logged); ``count(batch)`` is the number of images in a batch (img/s).
    """

    def __init__(self, settings: LoopSettings, *, model: torch.nn.Module, optimizer, scheduler,
                 info: DistInfo, run_dir: Optional[Path] = None, scaler=None, train_model=None,
                 steps_per_epoch: Optional[int] = None, logger: Optional[MetricsLogger] = None,
                 checkpoint_payload: Optional[Callable[[int], Dict[str, Any]]] = None, start_step: int = 0,
                 log_tags: Optional[Dict[str, Any]] = None):
        self.s, self.model, self.optimizer, self.scheduler, self.info = settings, model, optimizer, scheduler, info
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.scaler = scaler if scaler is not None else torch.amp.GradScaler('cuda', enabled=False)
        self.train_model = train_model if train_model is not None else model
        self.steps_per_epoch = steps_per_epoch or settings.steps
        self.logger = logger
        self.checkpoint_payload = checkpoint_payload
        self.step = start_step
        self.log_tags = log_tags or {}
        self.autocast = autocast_context(info.device, settings.precision)
        self.last_record: Dict[str, Any] = {}

    @property
    def epoch(self) -> int:
        return self.step // self.steps_per_epoch

    def save(self, step: int) -> None:
        """Every rank calls this; rank 0 writes ``last.pt`` (and ``step_N.pt``) through ``save_training_state``."""
        save_training_state(self.info, self.run_dir, step, self.s.keep_every,
                            lambda: dict(self.checkpoint_payload(step), epoch=step // self.steps_per_epoch))

    def run(self, epoch_batches: Callable[[int, int], Iterable], forward: Callable, *,
            count: Callable[[Any], int] = lambda batch: len(batch['rgb']),
            log_extras: Optional[Callable[[], Dict[str, float]]] = None,
            record_extras: Optional[Callable[[], Dict[str, Any]]] = None,
            after_step: Optional[Callable[[int, Dict[str, torch.Tensor]], None]] = None) -> Dict[str, Any]:
        """The loop; returns the last logged record. ``log_extras()`` (averaged over ranks) and ``record_extras()``
        (rank 0's) add entries at log steps; ``after_step(step, losses)`` runs after logging, before the checkpoint
        (figures, evaluation)."""
        s, info, device = self.s, self.info, self.info.device
        bar = None
        if info.is_main and s.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=s.steps, initial=self.step, desc=s.desc, unit='step', dynamic_ncols=True)
        micro_per_epoch = self.steps_per_epoch * s.accum_steps
        nonfinite = torch.zeros((), dtype=torch.bool, device=device)
        window_t, window_imgs = time.perf_counter(), 0
        self.model.train()
        epoch, start_micro = self.epoch, (self.step % self.steps_per_epoch) * s.accum_steps
        while self.step < s.steps:
            micro, acc = start_micro, {}
            for batch in epoch_batches(epoch, start_micro):
                if micro >= micro_per_epoch:
                    break  # an epoch is whole steps: no gradient is carried into the next epoch
                sync = (micro + 1) % s.accum_steps == 0
                no_sync = self.train_model.no_sync if (info.distributed and not sync and
                                                       hasattr(self.train_model, 'no_sync')) else contextlib.nullcontext
                with no_sync():
                    losses = forward(self.train_model, batch, self.autocast)
                    loss = losses['loss']
                    nonfinite |= ~torch.isfinite(loss.detach())
                    self.scaler.scale(loss / s.accum_steps).backward()
                for k, v in losses.items():
                    v = v.detach() / s.accum_steps
                    acc[k] = acc[k] + v if k in acc else v
                micro += 1
                window_imgs += count(batch) * info.world_size
                if not sync:
                    continue
                optimizer_step(self.model, self.optimizer, self.scaler, s.clip_grad)
                self.step += 1
                step = self.step
                self.scheduler.step_update(num_updates=step)

                checkpoint_now = bool(s.ckpt_every) and (step % s.ckpt_every == 0 or step == s.steps)
                log_now = step % s.log_every == 0 or step == 1 or step == s.steps
                if (log_now or checkpoint_now) and bool(nonfinite):  # before any checkpoint: last.pt stays good
                    where = f' Last good checkpoint: {self.run_dir / "checkpoints" / "last.pt"}' \
                        if s.ckpt_every and self.run_dir is not None else ''
                    raise NonFiniteLossError(
                        f'non-finite loss (last: {float(acc["loss"])}) at step {step} or in the {s.log_every - 1} '
                        f'steps before; lower {s.lr_hint}, set optim.clip_grad, or try train.precision=fp32.{where}')
                if log_now:
                    keys = sorted(acc)
                    extras = log_extras() if log_extras is not None else {}
                    values = [acc[k].float() for k in keys] + [torch.tensor(float(v), device=device)
                                                               for v in extras.values()]
                    values = all_reduce_mean(torch.stack(values), info).tolist()
                    now = time.perf_counter()
                    img_s = window_imgs / max(now - window_t, 1e-9)
                    window_t, window_imgs = now, 0
                    self.last_record = {'step': step, 'epoch': epoch, **self.log_tags,
                                        **dict(zip(keys + list(extras), values)), 'lr': logged_lr(self.optimizer),
                                        'img_s': img_s, **(record_extras() if record_extras is not None else {})}
                    if self.logger is not None:
                        self.logger.log(self.last_record)
                    if bar is not None:
                        bar.set_postfix({k: f'{v:.4f}' for k, v in self.last_record.items()
                                         if k in ('loss', 'rgb_reliance')} | {
                            'lr': f'{self.last_record["lr"]:.2e}', 'img_s': f'{img_s:.1f}'})
                if bar is not None:
                    bar.update(1)
                if after_step is not None:
                    after_step(step, acc)
                if checkpoint_now:
                    self.save(step)
                acc = {}
                if step >= s.steps:
                    break
            epoch += 1
            start_micro = 0
        if bar is not None:
            bar.close()
        return self.last_record
