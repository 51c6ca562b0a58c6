"""Depth unit sanity: valid depth far outside a room's range means the unit is wrong (millimetres read as metres, a
wrong ``depth_scale``). Training would run on such depth and report NaN or meaningless metrics with exit 0, so
``mask3d data inspect`` and the start of pre-training and fine-tuning warn in one line with the likely fix.

The check reads a few evenly spaced frames (``SAMPLE_FRAMES``): cheap next to a run, and enough, since a wrong unit
affects every frame of a source alike.
"""
import logging
from pathlib import Path
from typing import Any, List, Optional, Sequence, Set

import numpy as np

MAX_PLAUSIBLE_MEDIAN_M = 100.0   # no RGB-D sensor mask3d reads has a median depth above this
BEYOND_FRACTION = 0.9            # "almost all" valid pixels beyond max_depth
SAMPLE_FRAMES = 4
_log = logging.getLogger(__name__)
_warned: Set[str] = set()


def depth_unit_problem(valid_depths: Sequence[np.ndarray], max_depth: Optional[float] = None) -> Optional[str]:
    """Why depth values (metres; values <= 0 or non-finite are invalid and ignored) look like the wrong unit, or
    None: their median is above ``MAX_PLAUSIBLE_MEDIAN_M``, or more than ``BEYOND_FRACTION`` of them lie beyond
    ``max_depth`` (where a task has one)."""
    values = np.concatenate([np.ravel(d) for d in valid_depths]) if len(valid_depths) else np.zeros(0)
    values = values[np.isfinite(values) & (values > 0)]
    if not values.size:
        return None  # no valid depth at all is an error of its own, raised where a frame is read
    median = float(np.median(values))
    if median > MAX_PLAUSIBLE_MEDIAN_M:
        return f'median valid depth {median:.4g} m, above {MAX_PLAUSIBLE_MEDIAN_M:g} m'
    if max_depth is not None:
        beyond = float((values > max_depth).mean())
        if beyond > BEYOND_FRACTION:
            return f'{100 * beyond:.0f} % of the valid depth beyond max_depth {max_depth:g} m (median {median:.4g} m)'
    return None


def depth_unit_fix(dataset: Any) -> str:
    """The likely fix, by the kind of depth file the reader decodes."""
    if hasattr(dataset, 'set'):  # ShardFrames: the scale was stored when the shards were written
        return 'the depth scale is stored in the shards: write them again with `mask3d data shard --depth-scale N`'
    frames = getattr(dataset, 'frames', None)
    suffix = frames[0][1].suffix.lower() if frames and getattr(dataset, 'plain_depth_files', False) else ''
    if suffix in ('.npy', '.tif', '.tiff'):
        return (f'float {suffix} depth is read as metres, so these files hold another unit (millimetres?): '
                f'convert them to metres')
    return ('set --depth-scale / data.depth_scale to the depth files\' units per metre (1000 for millimetres, '
            '5000 for TUM, 10000 for 1/10 mm)')


def _sampled_valid_depth(dataset: Any, frames: int) -> List[np.ndarray]:
    """Valid depth of up to ``frames`` evenly spaced frames; frames that fail to read are left to the run, which
    names them (or skips them with data.skip_bad)."""
    n = len(dataset)
    out = []
    for i in np.unique(np.linspace(0, n - 1, min(n, frames)).round().astype(int)):
        try:
            sample = dataset[int(i)]
        except (ValueError, OSError):
            continue
        if 'depth' in sample:
            d = np.asarray(sample['depth'], dtype=np.float32)
            out.append(d[np.isfinite(d) & (d > 0)])
    return out


def depth_unit_warning(dataset: Any, where: str, max_depth: Optional[float] = None,
                       frames: int = SAMPLE_FRAMES) -> Optional[str]:
    """The one-line warning for ``dataset`` (each source of a mixture on its own), or None where its depth is
    plausible. Synthetic frames are rendered in metres and are not read."""
    from .synthetic import SyntheticRGBD
    if hasattr(dataset, 'sources'):  # MixtureFrames
        found = (depth_unit_warning(s, f'{where} source {k}', max_depth, frames) for k, s in enumerate(dataset.sources))
        return next((w for w in found if w), None)
    if isinstance(dataset, SyntheticRGBD) or len(dataset) == 0:
        return None
    depths = _sampled_valid_depth(dataset, frames)
    problem = depth_unit_problem(depths, max_depth)
    if problem is None:
        return None
    root = getattr(dataset, 'root', None)
    return (f'{root or where}: depth looks like the wrong unit ({problem}, over {len(depths)} sampled frames); '
            f'{depth_unit_fix(dataset)}')


def local_shards(root: str) -> Any:
    """A folder of shards as random-access frames for the check (``ShardFrames``), or None where ``root`` is a
    pattern or URL, or the set does not open (the stream names that problem itself)."""
    from ...errors import Mask3DError
    from .shards import ShardFrames
    if not Path(str(root)).is_dir():
        return None
    try:
        return ShardFrames(root)
    except Mask3DError:
        return None


def warn_if_depth_implausible(dataset: Any, where: str, max_depth: Optional[float] = None) -> Optional[str]:
    """Log :func:`depth_unit_warning` (on rank 0 with DDP, once per process and message); returns it."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return None
    if dataset is None:
        return None
    message = depth_unit_warning(dataset, where, max_depth)
    if message and message not in _warned:  # fine-tuning opens the same root for train and val: say it once
        _warned.add(message)
        _log.warning(message)
    return message
