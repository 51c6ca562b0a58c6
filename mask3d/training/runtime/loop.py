"""The one training loop: pre-training, fine-tuning and probing all run their optimizer steps here.

The loop owns what every task shares: autocast, gradient accumulation (DDP ``no_sync`` on the micro-steps that do
not end a step), the grad scaler and clipping, the per-iteration scheduler, the non-finite guard, logging
(metrics.jsonl, TensorBoard, progress bar), checkpoints and the exact position to resume from. A task passes what is
its own: how to get an epoch's batches, the forward pass that returns its losses, and hooks for log extras,
figures and evaluation.

Rules kept in one place:
- an epoch is a whole number of optimizer steps: leftover micro-batches are dropped, no gradient crosses epochs;
- losses stay on the device; every step's loss (and, with clipping, gradient norm) is checked for NaN/inf on the
  device, and the host reads the first bad step only at log and checkpoint steps; there the weights are checked
  too, and a checkpoint is checked again as it is written (``check_finite_tensors``): no checkpoint ever holds a
  non-finite value, and the error names the checkpoint that is really kept (or says none was written);
- the logged ``lr`` is the largest lr of any parameter group (with layer-wise decay: the head's, the configured lr).
"""
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional

import torch

from ...errors import NonFiniteLossError, NonFiniteTensorError
from ...finite import all_finite
from .distributed import DistInfo, all_reduce_mean
from .checkpoint import capture_training_state, kept_checkpoint, write_training_state
from .metrics_log import MetricsLogger
from .precision import autocast_context


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
    lr_value: Optional[float] = None    # its value: the message advises a tenth of it

    @classmethod
    def from_config(cls, cfg, **extra) -> 'LoopSettings':
        """From a pre-training or fine-tuning config's ``optim`` and ``train`` sections."""
        o, t = cfg.optim, cfg.train
        return cls(steps=t.steps, accum_steps=o.accum_steps, clip_grad=o.clip_grad, precision=t.precision,
                   log_every=t.log_every, ckpt_every=t.ckpt_every, keep_every=t.keep_every, **extra)


def optimizer_step(model, optimizer, scaler, clip_grad) -> Optional[torch.Tensor]:
    """One update after the accumulated backward passes: optional clipping (on unscaled gradients), the grad
    scaler's step, and clearing the gradients. Returns the gradient norm (a device tensor) when clipping."""
    norm = None
    if clip_grad:
        scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return norm


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
        self.pending: Optional[Dict[str, Any]] = None  # a checkpoint captured, written once the next loss is finite
        self.pending_step = 0                           # its step on every rank (rank 0 alone holds the state)

    @property
    def epoch(self) -> int:
        return self.step // self.steps_per_epoch

    def capture(self, step: int) -> Optional[Dict[str, Any]]:
        """Every rank calls this at a checkpoint step; rank 0 gets the state to write (``capture_training_state``)."""
        return capture_training_state(self.info, step, lambda: dict(self.checkpoint_payload(step),
                                                                    epoch=step // self.steps_per_epoch), self.model)

    def write(self, state: Optional[Dict[str, Any]]) -> None:
        """Rank 0 writes a captured state; a state holding NaN or inf (the optimizer's moments included) is refused
        and stops the run, naming the checkpoint kept."""
        if state is None:
            return
        try:
            write_training_state(self.run_dir, state, self.s.keep_every)
        except NonFiniteTensorError as e:
            raise self.diverged(f'non-finite training state at step {state["step"]} ({e})', int(state['step'])) from e

    def save(self, step: int) -> None:
        """Capture and write at once (every rank calls it; rank 0 writes)."""
        self.write(self.capture(step))

    def diverged(self, what: str, step: int) -> NonFiniteLossError:
        """The one-line error of a run that diverged: what, the checkpoint really kept, and what to change."""
        s = self.s
        advice = f'lower {s.lr_hint}'
        resume_sets = []
        if s.lr_value:
            advice += f' (now {s.lr_value:g}, e.g. {s.lr_hint}={s.lr_value / 10:g})'
            resume_sets = [f'{s.lr_hint}={s.lr_value / 10:g}']
        advice += ', set optim.clip_grad or use train.precision=fp32'
        if not s.ckpt_every or self.run_dir is None:
            error = NonFiniteLossError(f'{what}; {advice}')
        else:
            kept, due = kept_checkpoint(self.run_dir), min(s.ckpt_every, s.steps)
            error = NonFiniteLossError(
                f'{what}; stopped before writing a checkpoint; ' +
                (f'kept {kept}: {advice}, then continue with --resume' if kept else
                 'no checkpoint was written' + (f' (the first is due at step {due})' if step < due else '') +
                 f': {advice}, then start again with --overwrite'))
        error.resume_sets = resume_sets  # the CLI adds them to the command it prints (mask3d_cli/failures.py)
        return error

    def check_finite(self, first_bad: torch.Tensor, step: int) -> None:
        """At log and checkpoint steps: the first step whose loss or gradient norm was NaN/inf (on any rank), then
        the weights themselves (the same on every rank); raises :meth:`diverged`."""
        bad = int(first_bad)
        anywhere = float(all_reduce_mean((first_bad >= 0).float(), self.info)) > 0  # every rank stops together
        if anywhere:
            at = f'at step {bad}' if bad >= 0 else f'on another process, by step {step}'
            raise self.diverged(f'non-finite loss or gradient {at} (checked every step)', step)
        if not all_finite(self.model.parameters()):
            raise self.diverged(f'non-finite weights after step {step} (the loss was still finite: the update '
                                f'overflowed)', step)

    def run(self, epoch_batches: Callable[[int, int], Iterable], forward: Callable, *,
            count: Callable[[Any], int] = lambda batch: len(batch['rgb']),
            log_extras: Optional[Callable[[], Dict[str, float]]] = None,
            record_extras: Optional[Callable[[], Dict[str, Any]]] = None,
            after_step: Optional[Callable[[int, Dict[str, torch.Tensor]], None]] = None) -> Dict[str, Any]:
        """The loop; returns the last logged record. ``log_extras()`` (averaged over ranks) and ``record_extras()``
        (rank 0's) add entries at log steps; ``after_step(step, losses)`` runs after logging, before the checkpoint
        (figures, evaluation)."""
        try:
            return self._run(epoch_batches, forward, count, log_extras, record_extras, after_step)
        except BaseException as e:  # Ctrl-C, SIGTERM, a bad frame... between a checkpoint step and the next: keep
            if self.pending is not None and not isinstance(e, NonFiniteLossError):  # that (finite) state
                self.write(self.pending)
            raise
        finally:
            self.pending, self.pending_step = None, 0

    def write_verified(self, step_bad: torch.Tensor, step: int) -> None:
        """Write the pending checkpoint once its weights have given a finite loss (on every rank) and finite
        gradients at ``step`` (before that step's update); otherwise stop without writing it: a state whose next
        step is already NaN is no state to resume from, so the previous checkpoint stays."""
        pending, self.pending, self.pending_step = self.pending, None, 0
        if float(all_reduce_mean(step_bad.float(), self.info)) > 0:
            raise self.diverged(f'non-finite loss at step {step} (checked every step)', step)
        if not self.scaler.is_enabled() and not all_finite(p.grad for p in self.model.parameters()
                                                           if p.grad is not None):
            raise self.diverged(f'non-finite gradients at step {step} (the loss was still finite)', step)
        self.write(pending)

    def log(self, step: int, epoch: int, acc: Dict[str, torch.Tensor], window: tuple, log_extras, record_extras,
            bar) -> float:
        """A log step: the step's losses and ``log_extras()`` averaged over ranks, ``record_extras()``, lr and the
        img/s of the ``window`` (start time, images) into ``last_record`` (metrics.jsonl, TensorBoard, the progress
        bar); returns the time the next window starts."""
        keys = sorted(acc)
        extras = log_extras() if log_extras is not None else {}
        values = [acc[k].float() for k in keys] + [torch.tensor(float(v), device=self.info.device)
                                                   for v in extras.values()]
        values = all_reduce_mean(torch.stack(values), self.info).tolist()
        now = time.perf_counter()
        img_s = window[1] / max(now - window[0], 1e-9)
        self.last_record = {'step': step, 'epoch': epoch, **self.log_tags, **dict(zip(keys + list(extras), values)),
                            'lr': logged_lr(self.optimizer), 'img_s': img_s,
                            **(record_extras() if record_extras is not None else {})}
        if self.logger is not None:
            self.logger.log(self.last_record)
        if bar is not None:
            bar.set_postfix({k: f'{v:.4f}' for k, v in self.last_record.items() if k in ('loss', 'rgb_reliance')} | {
                'lr': f'{self.last_record["lr"]:.2e}', 'img_s': f'{img_s:.1f}'})
        return now

    def _after_update(self, step: int, epoch: int, acc, first_bad: torch.Tensor, window: tuple, log_extras,
                      record_extras, after_step, bar) -> tuple:
        """After optimizer step ``step``: the finiteness check (before any log or checkpoint), the log, the progress
        bar, ``after_step`` and the checkpoint (held until the next step's loss is finite; at the last step written
        now); returns the img/s window, restarted at a log step."""
        s = self.s
        checkpoint_now = bool(s.ckpt_every) and (step % s.ckpt_every == 0 or step == s.steps)
        log_now = step % s.log_every == 0 or step == 1 or step == s.steps
        if log_now or checkpoint_now:  # before any checkpoint: last.pt stays the last finite state
            self.check_finite(first_bad, step)
        if log_now:
            window = self.log(step, epoch, acc, window, log_extras, record_extras, bar), 0
        if bar is not None:
            bar.update(1)
        if after_step is not None:
            after_step(step, acc)
        if checkpoint_now:  # written once the next step's loss is finite (at the last step: now)
            self.pending, self.pending_step = self.capture(step), step
            if step >= s.steps:
                self.write(self.pending)
                self.pending, self.pending_step = None, 0
        return window

    def _run(self, epoch_batches, forward, count, log_extras, record_extras, after_step) -> Dict[str, Any]:
        s, info, device = self.s, self.info, self.info.device
        bar = None
        if info.is_main and s.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=s.steps, initial=self.step, desc=s.desc, unit='step', dynamic_ncols=True)
        micro_per_epoch = self.steps_per_epoch * s.accum_steps
        step_bad = torch.zeros((), dtype=torch.bool, device=device)    # this step's loss or grad norm not finite
        first_bad = torch.full((), -1, dtype=torch.int64, device=device)  # the first such step (-1: none yet)
        watch_grad = not self.scaler.is_enabled()  # fp16's scaler skips steps with inf gradients on purpose
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
                    step_bad |= ~torch.isfinite(loss.detach())
                    self.scaler.scale(loss / s.accum_steps).backward()
                for k, v in losses.items():
                    v = v.detach() / s.accum_steps
                    acc[k] = acc[k] + v if k in acc else v
                micro += 1
                window_imgs += count(batch) * info.world_size
                if not sync:
                    continue
                if self.pending_step:  # the last checkpoint's weights gave this finite loss: write it (rank 0)
                    self.write_verified(step_bad, self.step + 1)
                grad_norm = optimizer_step(self.model, self.optimizer, self.scaler, s.clip_grad)
                self.step += 1
                step = self.step
                if grad_norm is not None and watch_grad:
                    step_bad |= ~torch.isfinite(grad_norm)
                first_bad = torch.where((first_bad < 0) & step_bad, step, first_bad)
                step_bad = torch.zeros_like(step_bad)
                self.scheduler.step_update(num_updates=step)
                window_t, window_imgs = self._after_update(step, epoch, acc, first_bad, (window_t, window_imgs),
                                                           log_extras, record_extras, after_step, bar)
                acc = {}
                if step >= s.steps:
                    break
            epoch += 1
            start_micro = 0
        if bar is not None:
            bar.close()
        return self.last_record


class EpochLoader:
    """A data section as the training loop takes it: ``epoch_batches(epoch, start_micro)``. Subclasses set
    ``sampler`` (an ``EpochIndexSampler`` or a shard stream: anything with ``set_epoch(epoch, start=samples)``),
    ``loader`` and ``batch_size`` (per process)."""
    sampler: Any
    loader: Any
    batch_size: int

    def epoch_batches(self, epoch: int, start_micro: int):
        """The batches of ``epoch`` from micro-batch ``start_micro`` on (a resumed run skips those it took)."""
        self.sampler.set_epoch(epoch, start=start_micro * self.batch_size)
        return self.batches(self.loader)

    def batches(self, loader):
        """The loader's batches as the step takes them (pre-training decodes JPEGs on the device here)."""
        return loader
