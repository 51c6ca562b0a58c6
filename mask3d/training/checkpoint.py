"""Training checkpoints: atomic writes, every RNG state, and loading with ``weights_only=True``.

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
from typing import Any, Dict, Iterator, List, Union

import numpy as np
import torch

from ..errors import CheckpointWriteError, Mask3DError
from ..safe_load import load_torch_file

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
