"""How a run starts, resumes and ends, for every training command (pre-training, fine-tuning; the probe shares
``run_setup``): validate the config, prepare and lock the run folder, seed, join torchrun's process group, resume
only with a compatible config (``config.RESUMABLE_CHANGES`` may change), tidy what a killed run left, and on an
error name the checkpoint kept."""
import contextlib
import logging
import random
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Sequence

import numpy as np
import torch
import yaml

from ...errors import ConfigError, Mask3DError
from ...finite import all_finite
from ..config import RESUMABLE_CHANGES, ensure_valid, schedule_warning
from .checkpoint import kept_checkpoint, load_training_checkpoint, note_checkpoint_step, remove_stale_temp_files
from .distributed import DistInfo, cleanup, init_distributed, process_rank
from .metrics_log import drop_metrics_after
from .run_folder import holding, is_main_process, prepare_run_folder, remove_earlier_run

_log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


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
    note_checkpoint_step(run_dir, None)
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
        note_checkpoint_step(run_dir, int(state['step']))
    if info.is_main:
        tidy_run_dir(run_dir, state)
    return state


def record_config(run_dir: Path, cfg, info: DistInfo) -> None:
    """Rank 0: ``RUN/config.yaml``, the whole config the run was started with (for people and tools reading the
    folder; ``--resume`` compares against the checkpoint's own copy)."""
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / 'config.yaml').write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def tidy_run_dir(run_dir: Path, state: Optional[Dict[str, Any]]) -> None:
    """Before a run writes anything (main process): remove the temporary files of checkpoint writes that were
    killed, and when resuming drop the metrics.jsonl lines logged after the checkpoint (they are logged again)."""
    remove_stale_temp_files(run_dir / 'checkpoints')
    if state is not None:
        drop_metrics_after(run_dir / 'metrics.jsonl', int(state['step']))


def clear_run_dir(run_dir: Path, overwrite: bool, resume: bool) -> None:
    """``--overwrite`` outside a run (kept for callers of the old API): remove only what an earlier mask3d run wrote
    in ``run_dir`` (its ``.mask3d-run`` marker is required; other files stay). Runs do this themselves through
    ``launch(..., overwrite=True)``, under the folder's lock."""
    if not overwrite or resume or not run_dir.exists():
        return
    remove_earlier_run(run_dir)
