"""Reading torch checkpoint files without unpickling, and refusals that name only the safe ways on.

``torch.load(weights_only=True)`` rebuilds tensors and plain containers and refuses anything else. Its own message
suggests retrying with ``weights_only=False``, which runs whatever code the file holds; mask3d never does that and
never tells a user to, so the refusal is rewritten here.
"""
import os
import pickle
import re
from pathlib import Path
from typing import Any, Union

import torch

from .errors import InvalidWeightsFileError

_GLOBAL = re.compile(r'Unsupported global: GLOBAL ([\w.]+)')


def refusal_message(path: Union[str, os.PathLike], exc: BaseException, what: str = 'checkpoint') -> str:
    """One line saying why ``torch.load(path, weights_only=True)`` failed and what is safe to do instead."""
    found = _GLOBAL.search(str(exc))
    if found:
        return (f'{path}: refused: this {what} holds Python objects ({found.group(1)}) that only an unpickler '
                f'running code from the file could rebuild, and mask3d never unpickles; where you trust the file, '
                f'save its tensors with safetensors.torch.save_file(state_dict, "model.safetensors") and load that, or '
                f'ask its author for a model.safetensors')
    if isinstance(exc, (pickle.UnpicklingError, EOFError, KeyError)) or 'PytorchStreamReader' in str(exc):
        return (f'{path}: not a readable torch {what} (damaged, truncated, or not written by torch.save); write, '
                f'export or download it again')
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return f'{path}: cannot read this {what} ({first})'


def load_torch_file(path: Union[str, os.PathLike], what: str = 'checkpoint') -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; any failure is one :class:`InvalidWeightsFileError`."""
    path = Path(path)
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError from the zip reader, EOFError, KeyError, ...
        raise InvalidWeightsFileError(refusal_message(path, e, what)) from e
