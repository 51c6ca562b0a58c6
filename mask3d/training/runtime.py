"""What every training loop here shares (pre-training and fine-tuning): the run setup (``run_setup``, which the
probe shares too, and ``launch``), autocast, run directories that refuse to be overwritten and resume only with a
compatible config, checkpoints carrying every rank's RNG, the loader's batches per epoch, and metrics.jsonl +
TensorBoard logging. A resumed run lists each step once: the lines logged after its checkpoint are
dropped before they are logged again."""
import contextlib
import json
import logging
import os
import random
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Sequence

import numpy as np
import torch
import yaml

from ..errors import ConfigError, Mask3DError
from .config import RESUMABLE_CHANGES, ensure_valid, schedule_warning
from ..finite import all_finite, check_finite_tensors
from .checkpoint import (load_training_checkpoint, remove_stale_temp_files, rng_state, save_atomic, set_rng_state,
                         signals_held)
from .distributed import DistInfo, cleanup, init_distributed, process_rank
from .run_folder import holding, is_main_process, prepare_run_folder, remove_earlier_run

_log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def autocast_context(device: torch.device, precision: str):
    """bf16/fp16 autocast on ``device``, or nothing for fp32."""
    if precision == 'fp32':
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == 'bf16' else torch.float16
    if precision == 'fp16' and device.type != 'cuda':
        raise ConfigError('train.precision=fp16 needs CUDA; use bf16 on CPU')
    return torch.autocast(device_type=device.type, dtype=dtype)


def flatten(d: Dict[str, Any], prefix: str = '') -> Dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out


def check_resume_config(saved: Dict[str, Any], current: Dict[str, Any], allowed: Sequence[str]) -> None:
    """Refuse to resume with a config that changes the maths; only the keys in ``allowed`` may differ."""
    a, b = flatten(saved), flatten(current)
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in allowed)
    if changed:
        raise ConfigError('--resume with a different config: ' + ', '.join(
            f'{k}: {a.get(k)!r} -> {b.get(k)!r}' for k in changed) + ' (only ' + ', '.join(k for k in allowed if k in b) +
            ' may change)')


def open_run(run_dir: Path, resume: bool, current_config: Dict[str, Any],
             allowed_changes: Sequence[str] = RESUMABLE_CHANGES) -> Optional[Dict[str, Any]]:
    """The training state to resume from (``resume=True``), or None for a fresh run in an unused directory."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f'{run_dir}: is an existing file, not a run directory; choose another --output')
    last = run_dir / 'checkpoints' / 'last.pt'
    if resume:
        if not last.is_file():
            raise Mask3DError(f'--resume: {last} not found (nothing to resume in {run_dir})')
        state = load_training_checkpoint(last)
        if not all_finite(state.get('model', {})):  # only an older mask3d wrote such a file
            raise Mask3DError(f'--resume: {last} holds NaN or inf weights (written before mask3d checked them); '
                              f'nothing to resume from: start again with --overwrite')
        check_resume_config(state['config'], current_config, allowed_changes)
        return state
    if last.is_file():
        raise Mask3DError(f'{run_dir} already holds a run ({last}); pass --resume to continue it or choose '
                          f'another --output')
    return None


@contextlib.contextmanager
def run_setup(cfg, run_dir, command: str, *, deterministic: bool = False, **folder) -> Iterator[None]:
    """What every command that writes a run folder does first (pre-training, fine-tuning, the probe): validate
    ``cfg`` (unless validated already), prepare and lock ``run_dir`` (``folder``: the options of
    ``run_folder.prepare_run_folder``), seed Python, NumPy and torch with ``train.seed`` + this process's torchrun
    rank, and with ``deterministic`` ask torch for deterministic algorithms. The lock is released however the block
    ends (a folder the run made and left empty goes too)."""
    ensure_valid(cfg)
    with holding(prepare_run_folder(Path(run_dir), command, **folder)):
        seed_everything(cfg.train.seed + process_rank())
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        yield


def launch(loop: Callable, cfg, run_dir, resume: bool, progress: bool, *, overwrite: bool = False,
           command: str = 'train'):
    """``run_setup`` (rank 0: refuse protected or foreign folders, lock, ``overwrite``: remove the earlier run's
    files, mark), then join torchrun's process group (the other ranks wait there until rank 0 has prepared the
    folder), open the run (fresh or resumed) and run ``loop(cfg, run_dir, info, state, progress)``. However the loop
    ends, the process group is left and the lock released; an exception leaving here carries ``mask3d_run`` (the
    folder and the checkpoint kept, for the CLI's resume hint)."""
    ensure_valid(cfg)  # before the warning reads it (run_setup then finds it validated)
    warning = schedule_warning(cfg)
    if warning and is_main_process():
        _log.warning(warning)
    run_dir = Path(run_dir)
    _saved_steps.pop(str(run_dir), None)
    with run_setup(cfg, run_dir, command, deterministic=cfg.train.deterministic, resume=resume, overwrite=overwrite):
        try:
            info = init_distributed(cfg.train.device)
            try:
                result = loop(cfg, run_dir, info, _opened(run_dir, resume, cfg, info), progress)
            finally:
                cleanup(info)
        except BaseException as e:
            e.mask3d_run = {'run_dir': str(run_dir), 'checkpoint': kept_checkpoint(run_dir)}
            raise
    return result


def _opened(run_dir: Path, resume: bool, cfg, info: DistInfo) -> Optional[Dict[str, Any]]:
    """``open_run``, remembering the resumed step (for ``kept_checkpoint``) and tidying the folder on rank 0."""
    state = open_run(run_dir, resume, cfg.to_dict())
    if state is not None:
        _saved_steps[str(run_dir)] = int(state['step'])
    if info.is_main:
        tidy_run_dir(run_dir, state)
    return state


def record_config(run_dir: Path, cfg, info: DistInfo) -> None:
    """Rank 0: ``RUN/config.yaml``, the whole config the run was started with (for people and tools reading the
    folder; ``--resume`` compares against the checkpoint's own copy)."""
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / 'config.yaml').write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


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


_saved_steps: Dict[str, int] = {}  # run folder -> step of the last checkpoint this process wrote (or resumed from)


def kept_checkpoint(run_dir: Path) -> Optional[str]:
    """``RUN/checkpoints/last.pt (step N)``: the checkpoint a run that stops now leaves behind; None if none."""
    last = Path(run_dir) / 'checkpoints' / 'last.pt'
    if not last.is_file():
        return None
    step = _saved_steps.get(str(run_dir))
    return f'{last} (step {step})' if step is not None else str(last)


def tidy_run_dir(run_dir: Path, state: Optional[Dict[str, Any]]) -> None:
    """Before a run writes anything (main process): remove the temporary files of checkpoint writes that were
    killed, and when resuming drop the metrics.jsonl lines logged after the checkpoint (they are logged again)."""
    remove_stale_temp_files(run_dir / 'checkpoints')
    if state is not None:
        drop_metrics_after(run_dir / 'metrics.jsonl', int(state['step']))


def drop_metrics_after(path: Path, step: int) -> int:
    """Keep the records of steps <= ``step``, and drop a last line cut short by a kill; returns how many went."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:  # written half when the process was killed
            record = None
        if not isinstance(record, dict) or record.get('step', 0) > step:
            dropped += 1
            continue
        kept.append(line + '\n')
    if dropped:
        tmp = path.with_name(f'.{path.name}.tmp.{os.getpid()}')
        tmp.write_text(''.join(kept))
        os.replace(tmp, path)
        _log.info('resuming at step %d: dropped %d line(s) of %s logged after that checkpoint', step, dropped, path)
    return dropped


_SCHEDULE_VALUES = ('base_values', 'lr_min', 'warmup_lr_init')  # what optim.lr/base_lr/min_lr set in a scheduler


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """The loss scaler of ``train.precision``: active only for fp16 on CUDA (bf16 and fp32 need none)."""
    return torch.amp.GradScaler('cuda', enabled=precision == 'fp16' and device.type == 'cuda')


def wrap_distributed(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """``model`` in DistributedDataParallel under torchrun (one device per process), else ``model`` itself."""
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel
    device = info.device
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == 'cuda' else None)


def restore_training_state(state: Dict[str, Any], info: DistInfo, model, optimizer, scheduler, scaler) -> int:
    """Load a checkpoint's model, optimizer, scheduler, grad scaler and this rank's RNG; returns its step.

    A resume that changed the learning rate (``optim.lr``, ``base_lr`` or ``min_lr``, e.g. lowered after a
    divergence) keeps the scheduler built from the current config, positioned at the checkpoint's step, instead of
    the saved one (which would bring the old rate back)."""
    step = int(state['step'])
    model.load_state_dict(state['model'])
    initial_lrs = [group.get('initial_lr') for group in optimizer.param_groups]  # from the current config
    current = scheduler.state_dict()
    optimizer.load_state_dict(state['optimizer'])
    saved = state['scheduler']
    if any(current.get(k) != saved.get(k) for k in _SCHEDULE_VALUES):
        for group, initial_lr in zip(optimizer.param_groups, initial_lrs):
            group['initial_lr'] = initial_lr
        scheduler.step_update(num_updates=step)
        if info.is_main:
            _log.info('resuming at step %d with a changed learning rate: the schedule follows the current config '
                      '(lr %s)', step, ', '.join(f'{v:g}' for v in sorted(set(current['base_values']))))
    else:
        scheduler.load_state_dict(saved)
    if state['scaler'] or not scaler.is_enabled():  # fp16's scaler starts afresh after a bf16/fp32 run
        scaler.load_state_dict(state['scaler'])
    set_rng_state(state['rng'][min(info.rank, len(state['rng']) - 1)])
    return step


def clear_run_dir(run_dir: Path, overwrite: bool, resume: bool) -> None:
    """``--overwrite`` outside a run (kept for callers of the old API): remove only what an earlier mask3d run wrote
    in ``run_dir`` (its ``.mask3d-run`` marker is required; other files stay). Runs do this themselves through
    ``launch(..., overwrite=True)``, under the folder's lock."""
    if not overwrite or resume or not run_dir.exists():
        return
    remove_earlier_run(run_dir)


def save_training_state(info: DistInfo, run_dir: Path, step: int, keep_every: int,
                        payload: Callable[[], Dict[str, Any]]) -> None:
    """Every rank calls this (its RNG state is gathered); rank 0 writes ``last.pt`` atomically, and also
    ``step_N.pt`` every ``keep_every`` steps. ``payload()`` builds the rest of the state on rank 0 only."""
    state = capture_training_state(info, step, payload)
    if state is not None:
        write_training_state(run_dir, state, keep_every)


def capture_training_state(info: DistInfo, step: int, payload: Callable[[], Dict[str, Any]],
                           model: Optional[torch.nn.Module] = None) -> Optional[Dict[str, Any]]:
    """Every rank calls this (its RNG state is gathered); rank 0 gets the checkpoint's state, the others None.

    The state refers to the live weights and optimizer tensors (no copy): it stays valid until the next optimizer
    step. ``model``'s buffers (BatchNorm statistics, which a forward pass changes) are copied, so the state can be
    written after the next step's forward pass (``TrainingLoop`` writes a checkpoint once the next loss is finite).
    """
    rngs = [rng_state()]
    if info.distributed:
        gathered = [None] * info.world_size if info.is_main else None
        torch.distributed.gather_object(rngs[0], gathered, dst=0)
        rngs = gathered
    if not info.is_main:
        return None
    state = dict(payload(), step=step, rng=rngs)
    if model is not None and isinstance(state.get('model'), dict):
        buffers = {name for name, _ in model.named_buffers()}
        state['model'] = type(state['model'])(
            (k, v.clone() if k in buffers and isinstance(v, torch.Tensor) else v) for k, v in state['model'].items())
    return state


def write_training_state(run_dir: Path, state: Dict[str, Any], keep_every: int) -> None:
    """Rank 0: ``last.pt`` (and ``step_N.pt`` every ``keep_every`` steps), refused if any tensor is NaN/inf."""
    step = int(state['step'])
    last = run_dir / 'checkpoints' / 'last.pt'
    check_finite_tensors(state, f'checkpoint {last} at step {step}')  # last.pt stays the last finite state
    with signals_held():  # Ctrl-C now arrives after the bookkeeping, so the message names the step on disk
        save_atomic(state, last)
        _saved_steps[str(run_dir)] = step
        if keep_every and step % keep_every == 0:
            save_atomic(state, run_dir / 'checkpoints' / f'step_{step:07d}.pt')


class MetricsLogger:
    """metrics.jsonl always; TensorBoard (``prefix/key``) when it is installed. Main process only."""

    def __init__(self, run_dir: Path, enabled: bool, prefix: str):
        self.enabled, self.prefix, self.tb = enabled, prefix, None
        if not enabled:
            return
        self.path = run_dir / 'metrics.jsonl'
        logged = read_metrics(run_dir)  # a resumed run: TensorBoard hides events past the last kept step
        purge_step = max(r.get('step', 0) for r in logged) + 1 if logged else None
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(run_dir / 'tensorboard'), purge_step=purge_step)
        except ImportError:  # tensorboard not installed
            self.tb = None

    def log(self, record: Dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, 'a') as f:
            f.write(json.dumps(record) + '\n')
        if self.tb is not None:
            group = f"{self.prefix}/{record['split']}" if 'split' in record else self.prefix
            for k, v in record.items():
                if k != 'step' and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.tb.add_scalar(f'{group}/{k}', v, record['step'])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(run_dir: Path) -> list:
    path = Path(run_dir) / 'metrics.jsonl'
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
