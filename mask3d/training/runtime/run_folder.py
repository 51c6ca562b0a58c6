"""Run folders belong to mask3d: a marker says mask3d made them, a lock keeps one run per folder, and
``--overwrite`` removes only what mask3d wrote there.

- A run that creates its folder (or starts in an empty one) writes ``.mask3d-run`` (JSON: mask3d version, command,
  pid, host, time). ``--overwrite`` needs that marker and then removes only the files and folders mask3d writes
  (:data:`RUN_OUTPUTS`); any other file stays. Without the marker it refuses in one line.
- The working directory, its parents, the home folder and ``/`` are never a run folder.
- While a run lives it holds ``.mask3d-run.lock`` (``fcntl.flock``, released by the kernel when the process dies;
  the file names pid and host). A second run on the folder is refused naming the first one's pid; the lock file of
  a dead process is taken over with a note.
- Under torchrun only rank 0 prepares and locks the folder (the other ranks only read it).
"""
import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence, Tuple

from ...errors import ConfigError, RunFolderError

_log = logging.getLogger(__name__)

MARKER = '.mask3d-run'
LOCK = '.mask3d-run.lock'
TROUBLESHOOTING = 'docs/troubleshooting.md#run-folders'

# what mask3d writes into a run folder: top-level files, and sub-folders with the patterns of the files it writes
# there (a sub-folder is removed only when nothing else is left in it)
RUN_FILES = ('config.yaml', 'metrics.jsonl', 'summary.json', 'model.safetensors', 'probe.json',
             'probe_predictions.png', 'probe_pca.png')
RUN_SUBFOLDERS: Dict[str, Tuple[str, ...]] = {
    'checkpoints': ('last.pt', 'step_*.pt', '.*.tmp.*'),
    'figures': ('step_*.png',),
    'tensorboard': ('events.out.tfevents.*',),
    'export': ('model.safetensors', 'config.json', 'README.md'),
    'eval': ('metrics_*.json', 'predictions_*.png'),
}


def is_main_process() -> bool:
    """Rank 0 under torchrun (read from its environment: the process group may not exist yet), or a plain run."""
    return int(os.environ.get('RANK', '0')) == 0


def check_not_protected(folder: Path, option: str = '--output') -> None:
    """The working directory, its parents, the home folder and ``/`` are never a run folder."""
    resolved = folder.expanduser().resolve()
    cwd = Path.cwd().resolve()
    protected = {cwd: 'the working directory', Path(resolved.anchor): 'the root folder'}
    protected.update({parent: 'a parent of the working directory' for parent in cwd.parents})
    try:
        protected[Path.home().resolve()] = 'the home folder'
    except RuntimeError:  # no home folder known
        pass
    if resolved in protected:
        raise RunFolderError(f'{option} {folder}: is {protected[resolved]} ({resolved}); a run needs a folder of its '
                             f'own, e.g. {option} runs/NAME [{TROUBLESHOOTING}]')


def has_marker(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def write_marker(folder: Path, command: str) -> None:
    record = {'mask3d': _version(), 'command': command, 'pid': os.getpid(), 'host': socket.gethostname(),
              'created': time.strftime('%Y-%m-%dT%H:%M:%S%z')}
    (folder / MARKER).write_text(json.dumps(record) + '\n')


def _version() -> str:
    from ...version import __version__
    return __version__


def mask3d_entries(folder: Path) -> list:
    """The paths in ``folder`` that mask3d writes (top-level files, and files of its sub-folders)."""
    found = [folder / name for name in RUN_FILES if (folder / name).is_file() and not (folder / name).is_symlink()]
    for sub, patterns in RUN_SUBFOLDERS.items():
        if (folder / sub).is_dir() and not (folder / sub).is_symlink():
            found += sorted({p for pattern in patterns for p in (folder / sub).glob(pattern)
                             if p.is_file() and not p.is_symlink()})
    return found


def remove_earlier_run(folder: Path) -> list:
    """``--overwrite``: remove what an earlier mask3d run wrote in ``folder`` (marker required); returns the paths
    removed. Other files, and the sub-folders holding them, stay."""
    if not has_marker(folder):
        raise RunFolderError(f'--overwrite: {folder} has no {MARKER} marker, so mask3d did not make it (or an older '
                             f'version did); nothing was deleted: remove its contents yourself or choose another '
                             f'--output [{TROUBLESHOOTING}]')
    removed = mask3d_entries(folder)
    for path in removed:
        path.unlink()
    for sub in RUN_SUBFOLDERS:
        if (folder / sub).is_dir() and not (folder / sub).is_symlink():
            _remove_empty_tree(folder / sub)
    left = sorted(p.name for p in folder.iterdir() if p.name not in (MARKER, LOCK))
    if left:
        _log.info('--overwrite: removed %d file(s) of the earlier run in %s; kept what mask3d did not write: %s',
                  len(removed), folder, ', '.join(left[:5]) + (' ...' if len(left) > 5 else ''))
    return removed


def _remove_empty_tree(folder: Path) -> None:
    """Remove ``folder`` and its sub-folders when no file is left in them (tensorboard writes nested folders)."""
    for sub in sorted((p for p in folder.rglob('*') if p.is_dir() and not p.is_symlink()), key=lambda p: -len(p.parts)):
        if not any(sub.iterdir()):
            sub.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()


def check_foreign_files(folder: Path, outputs: Sequence[str]) -> None:
    """A folder without the marker: refuse when a file mask3d would write is already there (it is the user's)."""
    clash = [name for name in outputs if (folder / name).exists()]
    if clash:
        raise RunFolderError(f'--output {folder}: already holds {clash[0]} and has no {MARKER} marker, so it is not '
                             f'a mask3d run; mask3d will not overwrite it: choose a new or empty folder '
                             f'[{TROUBLESHOOTING}]')


class RunLock:
    """``folder/.mask3d-run.lock`` held with ``fcntl.flock`` while the run lives (the kernel drops it when the
    process dies, however it dies); the file names the holder's pid and host for the refusal message."""

    def __init__(self, folder: Path, created: bool = False):
        self.path = folder / LOCK
        self.fd: Optional[int] = None
        self.created = created  # the run made the folder: a run that fails before writing anything removes it

    def acquire(self) -> 'RunLock':
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunFolderError(
                    f'{self.path.parent}: another run is using this folder ({holder}); wait for it to end or choose '
                    f'another --output [{TROUBLESHOOTING}]') from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:  # the holder released (and removed) it between our open and flock
                same = False
            if same:
                break
            os.close(fd)
        previous = _read_holder(fd, default='')
        if previous:
            _log.warning('%s: taking over the lock of a run that is no longer running (%s)', self.path, previous)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps({'pid': os.getpid(), 'host': socket.gethostname()}).encode())
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self, failed: bool = False) -> None:
        """Drop the lock; ``failed``: a folder this run made and left holding only its marker goes too."""
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it: the next run finds no stale holder
            folder = self.path.parent
            if failed and self.created and {p.name for p in folder.iterdir()} <= {MARKER}:
                (folder / MARKER).unlink(missing_ok=True)
                folder.rmdir()
        except OSError:
            pass
        finally:
            os.close(self.fd)
            self.fd = None


@contextlib.contextmanager
def holding(lock: Optional[RunLock]) -> Iterator[None]:
    """Release ``lock`` (None: this rank holds none) however the block ends; ``failed=True`` on an exception."""
    try:
        yield
    except BaseException:
        if lock is not None:
            lock.release(failed=True)
        raise
    if lock is not None:
        lock.release()


def _read_holder(fd: int, default: str = 'pid unknown') -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        record = json.loads(os.read(fd, 4096).decode() or 'null')
        return f"pid {record['pid']} on {record['host']}"
    except (OSError, ValueError, TypeError, KeyError):
        return default


def prepare_run_folder(folder, command: str, *, resume: bool = False, overwrite: bool = False,
                       outputs: Sequence[str] = RUN_FILES + tuple(RUN_SUBFOLDERS),
                       adds_to_runs: bool = False) -> Optional[RunLock]:
    """Before a run writes anything (rank 0 only; the other ranks get None): refuse protected folders, take the
    lock, remove the earlier run (``overwrite``), refuse a folder whose files it would overwrite, and mark the folder
    as mask3d's. ``adds_to_runs``: the command (the probe) may write its ``outputs`` into a marked run folder.
    Returns the held lock; the caller releases it when the run ends."""
    folder = Path(folder)
    if not is_main_process():
        return None
    check_not_protected(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f'{folder}: is an existing file, not a run directory; choose another --output')
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = RunLock(folder, created).acquire()
    try:
        marked = has_marker(folder)
        if overwrite and not resume and any(p.name not in (MARKER, LOCK) for p in folder.iterdir()):
            remove_earlier_run(folder)
        elif not marked and not resume:
            check_foreign_files(folder, outputs)
        elif marked and not resume and not adds_to_runs:
            check_no_earlier_run(folder)
        if not marked:
            write_marker(folder, command)
    except BaseException:
        lock.release(failed=True)
        raise
    return lock


def check_no_earlier_run(folder: Path) -> None:
    """A fresh run in a marked folder: refuse when an earlier run left its files (its metrics would mix in)."""
    last = folder / 'checkpoints' / 'last.pt'
    if last.is_file():
        raise RunFolderError(f'{folder} already holds a run ({last}); pass --resume to continue it, --overwrite to '
                             f'replace it, or choose another --output')
    left = mask3d_entries(folder)
    if left:
        raise RunFolderError(f'{folder} holds an earlier run that wrote no checkpoint ({left[0].relative_to(folder)}'
                             f'{" ..." if len(left) > 1 else ""}); pass --overwrite to replace it or choose another '
                             f'--output')
