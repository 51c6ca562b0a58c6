"""How the ``mask3d`` command ends when something goes wrong: one line for a user's mistake, a traceback for a bug.

A user error is anything the user can fix without reading mask3d's code: a :class:`mask3d.errors.Mask3DError`
(bad config value, unreadable data, refused weights, ...), an argument the command checks itself
(:class:`UsageError`), and the predictable OS failures (a file not found, permission denied, disk full, a file-size
limit), a CUDA device asked for on a machine without one, and running out of GPU memory. Each prints

    mask3d: error: <one line naming the file, key or value and what to do>

and exits with :data:`EXIT_USAGE` (2: the command line or the config is wrong, nothing ran) or :data:`EXIT_FAILED`
(1: the work started and stopped). Any other exception is a bug: its traceback is printed with a line asking for
a report, exit 1. ``--debug`` (or ``MASK3D_DEBUG=1``) prints the full traceback of user errors too.

Ctrl-C (SIGINT) and SIGTERM stop a run like an error does (checkpoint writes clean up, the run folder's lock is
released) and print one line: which checkpoint was kept (or that none was) and the exact command that continues,
exit 130 / 143. A run that diverged (non-finite loss) gets the same command with the advised lower lr.

Light on purpose: nothing here imports torch or mask3d (the CLI starts before them); mask3d's error classes are
looked up in ``sys.modules``, where they are whenever one of them can have been raised.
"""
import errno
import os
import re
import shlex
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Optional, Sequence, Tuple

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130   # the shell's code for Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143    # 128 + SIGTERM

TROUBLESHOOTING = 'docs/troubleshooting.md'

# OS errors a user can meet and fix: paths, permissions, space; errno -> troubleshooting anchor
_USER_ERRNOS = {
    errno.ENOENT: 'file-or-folder-not-found', errno.ENOTDIR: 'file-or-folder-not-found',
    errno.EISDIR: 'file-or-folder-not-found', errno.EEXIST: 'output-path-problems',
    errno.ENAMETOOLONG: 'file-or-folder-not-found', errno.ELOOP: 'file-or-folder-not-found',
    errno.EACCES: 'permission-denied', errno.EPERM: 'permission-denied', errno.EROFS: 'permission-denied',
    errno.ENOSPC: 'disk-full', errno.EDQUOT: 'disk-full', errno.EFBIG: 'disk-full',
    errno.EMFILE: 'too-many-open-files', errno.ENFILE: 'too-many-open-files',
}
# what torch says when CUDA is asked for but absent (no GPU, no driver, a CPU-only build)
_NO_CUDA = re.compile(r'Torch not compiled with CUDA enabled|No CUDA GPUs are available|Found no NVIDIA driver|'
                      r'no CUDA-capable device is detected|CUDA driver initialization failed')


class UsageError(Exception):
    """An argument the command checks itself (e.g. ``--output`` naming a file): exit 2, like argparse's errors."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C, so the same clean-up runs; exit 143."""


def _raise_terminated(signum, frame):
    raise Terminated()


def install_signal_handlers() -> None:
    """SIGTERM raises :class:`Terminated` (SIGINT already raises KeyboardInterrupt); main thread only, and only
    where SIGTERM still has its default action (an embedding program's own handler is left alone)."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_terminated)


def resume_command(argv: Sequence[str], kept: bool, sets: Sequence[str] = ()) -> str:
    """The command that continues a stopped run: the same arguments with ``--resume`` (or, when no checkpoint was
    kept, ``--overwrite`` to start again), ``--set KEY=VALUE`` for each of ``sets`` replacing the same key."""
    keys = {s.split('=', 1)[0] for s in sets}
    out, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg in ('--resume', '--overwrite', '--debug'):
            continue
        if arg == '--set' and i + 1 < len(argv) and argv[i + 1].split('=', 1)[0] in keys:
            skip = True
            continue
        if arg.startswith('--set=') and arg[6:].split('=', 1)[0] in keys:
            continue
        out.append(arg)
    out.append('--resume' if kept else '--overwrite')
    for item in sets:
        out += ['--set', item]
    prefix = 'torchrun [the same torchrun options] -m mask3d' if int(os.environ.get('WORLD_SIZE', '1')) > 1 \
        else 'mask3d'
    return f'{prefix} {shlex.join(out)}'


def _run_hint(exc: BaseException, argv: Optional[Sequence[str]]) -> str:
    """For an exception that left a run (``exc.mask3d_run``, set by mask3d.training.runtime.launch.launch): the kept
    checkpoint and the command that continues; '' for anything else."""
    run = getattr(exc, 'mask3d_run', None)
    if not run or argv is None:
        return ''
    command = resume_command(argv, bool(run.get('checkpoint')), getattr(exc, 'resume_sets', ()))
    if _interrupt_behind(exc) is not None:
        kept = f"kept {run['checkpoint']}" if run.get('checkpoint') else \
            f"no checkpoint was written in {run['run_dir']}"
        return f'; {kept}; {"continue" if run.get("checkpoint") else "start again"} with: {command}'
    return f'; command: {command}'


def debug_requested(flag: bool = False) -> bool:
    """``--debug`` or ``MASK3D_DEBUG`` set to anything but empty/0/false/no."""
    return flag or os.environ.get('MASK3D_DEBUG', '').strip().lower() not in ('', '0', 'false', 'no')


def one_line(message: str) -> str:
    """A message on one line. An exception re-raised from a DataLoader worker carries the worker's traceback in its
    message (``Caught X in DataLoader worker process 0.\\nOriginal Traceback ...``): keep its last line, the
    worker's own message, without the ``module.Class:`` prefix."""
    text = str(message).strip()
    if 'Original Traceback' in text:
        last = [line for line in text.splitlines() if line.strip()][-1].strip()
        text = re.sub(r'^[\w.]+(Error|Exception|Warning|Interrupt)\w*: ', '', last)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return '; '.join(lines) if lines else type(message).__name__


def _mask3d_error_class(name: str):
    errors = sys.modules.get('mask3d.errors')
    return getattr(errors, name, None) if errors is not None else None


def classify(exc: BaseException) -> Optional[Tuple[int, str]]:
    """``(exit code, one-line message)`` for a user error, None for a bug."""
    config_error = _mask3d_error_class('ConfigError')
    mask3d_error = _mask3d_error_class('Mask3DError')
    if isinstance(exc, UsageError) or (config_error is not None and isinstance(exc, config_error)):
        return EXIT_USAGE, one_line(exc)
    if mask3d_error is not None and isinstance(exc, mask3d_error):
        return EXIT_FAILED, one_line(exc)
    if isinstance(exc, OSError) and exc.errno in _USER_ERRNOS:
        where = ' -> '.join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
        what = exc.strerror or one_line(exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            what += ' (free some space or raise the file-size limit, then continue with --resume)'
        return EXIT_FAILED, (f'{where}: {what}' if where else what) + _see(_USER_ERRNOS[exc.errno])
    if type(exc).__name__ == 'UnidentifiedImageError':   # PIL: names the file it cannot read
        return EXIT_FAILED, one_line(exc)
    if isinstance(exc, (AssertionError, RuntimeError)) and _NO_CUDA.search(str(exc)):
        return EXIT_FAILED, (f'CUDA was asked for but is not available here ({one_line(exc).rstrip(".")}); '
                             f'set train.device=cpu or auto' + _see('cuda-not-available'))
    if type(exc).__name__ == 'OutOfMemoryError':      # torch.OutOfMemoryError: the GPU, not a bug
        return EXIT_FAILED, (f'out of GPU memory ({one_line(exc).split(". ")[0]}); lower data.batch_size (raise '
                             f'optim.accum_steps to keep the effective batch) or set train.grad_checkpointing=true'
                             + _see('out-of-memory'))
    return None


def _see(anchor: str) -> str:
    return f' [{TROUBLESHOOTING}#{anchor}]'


def _close_progress_bars() -> None:
    """End any tqdm bar the failed command left open, so the message starts on a line of its own."""
    tqdm = sys.modules.get('tqdm')
    for bar in list(getattr(getattr(tqdm, 'tqdm', None), '_instances', ())):
        bar.close()


def _interrupt_behind(exc: BaseException) -> Optional[KeyboardInterrupt]:
    """``exc`` itself if it is Ctrl-C or SIGTERM, or the interrupt during whose handling ``exc`` was raised (a
    library's clean-up that fails because it was interrupted); None otherwise."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__context__
    return None


def report(exc: BaseException, debug: bool, version: str, argv: Optional[Sequence[str]] = None) -> int:
    """Print what the user needs about ``exc`` on stderr; returns the exit code. ``argv`` (the command's
    arguments) lets a stopped run's line name the exact command that continues it."""
    _close_progress_bars()
    interrupt = _interrupt_behind(exc)
    if interrupt is not None:
        if debug:
            traceback.print_exception(exc)
        terminated = isinstance(interrupt, Terminated)
        hint = _run_hint(exc, argv)
        print(f'mask3d: interrupted{(" (SIGTERM)" if terminated else " (SIGINT)") if hint else ""}{hint}',
              file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    found = classify(exc)
    if found is None:
        traceback.print_exception(exc)
        print(f'mask3d: internal error: {type(exc).__name__}: {one_line(exc)}\n'
              f'This is a bug in mask3d {version}, not a mistake in your input: please report it with the command '
              f'you ran and the traceback above.', file=sys.stderr)
        return EXIT_FAILED
    code, message = found
    if debug:
        traceback.print_exception(exc)
        if getattr(exc, 'worker_traceback', None):  # a mask3d error re-raised from a DataLoader worker
            print(exc.worker_traceback, file=sys.stderr)
    if getattr(exc, 'resume_sets', None) is not None:  # a run that diverged: the exact command that continues it
        message += _run_hint(exc, argv)
    print(f'mask3d: error: {message}', file=sys.stderr)
    return code


def check_output_folder(option: str, value: Optional[str]) -> None:
    """A folder the command will write into must not be an existing file, nor lie under one."""
    if not value:
        return
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise UsageError(f'{option} {value}: is an existing file, not a folder; name a folder (new or a run '
                         f'directory) instead' + _see('output-path-problems'))
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f'{option} {value}: {parent} is a file, so no folder can be made under it'
                                 + _see('output-path-problems'))
            break
