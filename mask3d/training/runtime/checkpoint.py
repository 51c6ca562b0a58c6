"""Training checkpoints: what one holds (model, optimizer, scheduler, loss scaler, every rank's RNG), atomic
writes, resuming from one, and loading with ``weights_only=True``.

A checkpoint is written to ``.NAME.tmp.PID`` beside its final name, fsynced, then renamed: a kill or a full disk
never leaves half a ``last.pt``. A failed write removes its temporary file; temporary files of writes that were
killed are removed when the next run starts in that folder (:func:`remove_stale_temp_files`). Ctrl-C or SIGTERM
during a write is held until the write has finished (a fraction of a second), so the checkpoint it names is whole.
"""
import contextlib
import logging
import os
import random
import shutil
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

import numpy as np
import torch

from ...errors import CheckpointWriteError, Mask3DError
from ...finite import check_finite_tensors
from ...safe_load import load_torch_file
from .distributed import DistInfo

_log = logging.getLogger(__name__)


def rng_state() -> Dict[str, Any]:
    """Python, NumPy and torch (CPU + CUDA) RNG states, as types ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    state = {
        'python': random.getstate(),
        'numpy': {'keys': torch.from_numpy(np_state[1].astype(np.int64)), 'pos': int(np_state[2]),
                  'has_gauss': int(np_state[3]), 'cached_gaussian': float(np_state[4])},
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    n = state['numpy']
    np.random.set_state(('MT19937', n['keys'].numpy().astype(np.uint32), n['pos'], n['has_gauss'],
                         n['cached_gaussian']))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _temp_name(path: Path) -> Path:
    return path.with_name(f'.{path.name}.tmp.{os.getpid()}')


def _os_error(exc: BaseException):
    """The OSError behind ``exc``: torch.save reports a failed write of its file object as a RuntimeError
    ("enforce fail ... unexpected pos") raised while handling the OSError (ENOSPC, EFBIG, EDQUOT, ...)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _free_space(folder: Path) -> str:
    try:
        return f'{shutil.disk_usage(folder).free / 2 ** 20:.0f} MiB free there'
    except OSError:
        return 'free space unknown'


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the block runs, then deliver them to the handlers that were in place.

    A KeyboardInterrupt raised inside ``torch.save`` leaves its zip writer half-closed, and the writer's own error
    then replaces the interrupt; holding the signal lets the write finish and the interrupt arrive as itself.
    Main thread only (elsewhere Python delivers no signals); a handler that is not Python's (SIG_DFL) is re-raised
    with the default action once the block ends. An ignored signal stays ignored: a process started in the background
    of a non-interactive shell (``cmd &`` in a script) or under ``nohup`` inherits SIGINT ignored, and Ctrl-C does
    not reach it, held or not.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: List[int] = []
    previous: Dict[int, Any] = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(signum)
            if handler in (signal.SIG_IGN, None):
                continue
            # signal.signal first runs the handlers of signals already pending: one may raise here, before the hold
            signal.signal(signum, lambda n, frame: received.append(n))
            previous[signum] = handler
        yield
    finally:
        _restore_handlers(list(previous.items()))
        for signum in dict.fromkeys(received):
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            else:
                signal.raise_signal(signum)


def _restore_handlers(handlers: List[tuple]) -> None:
    """Put every handler back even when restoring one raises (a signal that arrived that instant, delivered by the
    handler just restored), so no signal is left recorded into a hold that has ended."""
    if not handlers:
        return
    try:
        signal.signal(*handlers[0])
    finally:
        _restore_handlers(handlers[1:])


def save_atomic(state: Dict[str, Any], path: Union[str, os.PathLike]) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename: a crash never leaves half a file.

    A write that fails (disk full, file-size limit, quota, I/O error) or is interrupted removes its temporary file
    and leaves ``path`` as it was; OS failures become a one-line :class:`CheckpointWriteError`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        with signals_held(), open(tmp, 'wb') as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, path)
    except BaseException as e:  # KeyboardInterrupt included: nothing half-written stays behind
        tmp.unlink(missing_ok=True)
        cause = _os_error(e)
        if cause is None:
            raise
        kept = f'the previous {path.name} is kept' if path.is_file() else f'no earlier {path.name} exists'
        raise CheckpointWriteError(
            f'cannot write checkpoint {path}: {cause.strerror or cause} ({_free_space(path.parent)}); the partial '
            f'file was removed and {kept}: free space (or raise the file-size limit), then continue with '
            f'--resume') from e
    return path


def remove_stale_temp_files(folder: Union[str, os.PathLike]) -> list:
    """Remove the temporary files of checkpoint writes that were killed (``.NAME.tmp.PID``); returns their names.

    Called when a run starts in ``folder`` (before any write of its own): a killed write can leave a file as large
    as a whole checkpoint.
    """
    folder = Path(folder)
    removed = []
    for tmp in sorted(folder.glob('.*.tmp.*')) if folder.is_dir() else []:
        if tmp.is_file() and tmp.name.rsplit('.', 1)[-1].isdigit():
            tmp.unlink(missing_ok=True)
            removed.append(tmp.name)
    if removed:
        _log.warning('removed %d temporary file(s) of interrupted checkpoint writes in %s: %s', len(removed),
                     folder, ', '.join(removed))
    return removed


def load_training_checkpoint(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise Mask3DError(f'{path}: checkpoint not found')
    return load_torch_file(path, 'checkpoint')


_saved_steps: Dict[str, int] = {}  # run folder -> step of the last checkpoint this process wrote (or resumed from)


def kept_checkpoint(run_dir: Path) -> Optional[str]:
    """``RUN/checkpoints/last.pt (step N)``: the checkpoint a run that stops now leaves behind; None if none."""
    last = Path(run_dir) / 'checkpoints' / 'last.pt'
    if not last.is_file():
        return None
    step = _saved_steps.get(str(run_dir))
    return f'{last} (step {step})' if step is not None else str(last)


def note_checkpoint_step(run_dir, step: Optional[int]) -> None:
    """Remember ``step`` as the last checkpoint this process wrote in (or resumed from) ``run_dir``; None forgets it
    (a run starting there)."""
    if step is None:
        _saved_steps.pop(str(run_dir), None)
    else:
        _saved_steps[str(run_dir)] = step


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
        note_checkpoint_step(run_dir, step)
        if keep_every and step % keep_every == 0:
            save_atomic(state, run_dir / 'checkpoints' / f'step_{step:07d}.pt')


_SCHEDULE_VALUES = ('base_values', 'lr_min', 'warmup_lr_init')  # what optim.lr/base_lr/min_lr set in a scheduler


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
