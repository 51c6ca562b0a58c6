"""Training checkpoints: atomic writes, every RNG state, and loading with ``weights_only=True``."""
import os
import random
from pathlib import Path
from typing import Any, Dict, Union

import numpy as np
import torch

from ..errors import Mask3DError


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


def save_atomic(state: Dict[str, Any], path: Union[str, os.PathLike]) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp.{os.getpid()}')
    with open(tmp, 'wb') as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_training_checkpoint(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise Mask3DError(f'{path}: checkpoint not found')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:
        raise Mask3DError(f'{path}: cannot load checkpoint safely (weights_only=True): '
                          f'{str(e).splitlines()[0]}') from e
