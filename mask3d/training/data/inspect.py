"""``mask3d data inspect``: what a dataset holds (format, frames, size, depth range, labels), and a contact sheet."""
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from ...constants import IGNORE_INDEX
from ...errors import BadDataFileError, Mask3DError, MissingDataError
from .folder import RGBDFolder
from .registry import allowed, get as get_dataset, names
from .sanity import depth_unit_fix, depth_unit_problem

FORMATS = ('auto',) + names('inspect', aliases=True)  # 'auto': detect_format; the rest from the dataset registry


def detect_format(path: Path) -> str:
    if str(path) == 'synthetic':
        return 'synthetic'
    if path.is_file():
        if path.suffix == '.sens':
            return 'scannet-sens'
        if path.suffix == '.mat':
            return 'nyu-mat'
        raise BadDataFileError(f'{path}: cannot tell the format of this file (expected .sens or .mat)')
    if not path.is_dir():
        raise MissingDataError(f'{path}: no such file or folder')
    if (path / 'shards.json').is_file():
        return 'shards'
    if (path / 'leftImg8bit').is_dir():
        return 'cityscapes'
    if (path / 'rgb.txt').is_file() or any((p / 'rgb.txt').is_file() for p in path.iterdir()):
        return 'tum'  # before 'folder': a TUM sequence also has rgb/ and depth/
    if next(path.glob('frame-*.color.*'), None) is not None or next(path.glob('seq-*/frame-*.color.*'), None) \
            is not None or next(path.glob('*/seq-*/frame-*.color.*'), None) is not None:
        return '7scenes'
    if (path / 'rgb').is_dir() and (path / 'depth').is_dir():
        return 'folder'
    scenes = [p for p in path.iterdir() if (p / 'color').is_dir() and (p / 'depth').is_dir()]
    if scenes:
        return 'scannet-25k' if any((p / 'label').is_dir() for p in scenes) else 'scannet-frames'
    if (path / 'color').is_dir() and (path / 'depth').is_dir():
        return 'scannet-frames'  # one scene: open_scannet reads it from its parent
    if next(path.rglob('sync_depth_*.png'), None) is not None:
        return 'nyu-raw'
    if next(path.rglob('image'), None) is not None:
        return 'sunrgbd'
    raise BadDataFileError(f"{path}: format not recognised; pass --format ({allowed('inspect')})")


@dataclass(frozen=True)
class OpenOptions:
    """What ``inspect`` and ``shard`` pass every opener; each reads the options its format has."""
    depth_scale: float = 1000.0               # folder, nyu-raw: 16-bit PNG units per metre
    class_mapping_40: Optional[str] = None    # nyu-mat: classMapping40.mat (default: next to the .mat)


def open_dataset(path: Union[str, os.PathLike], fmt: str = 'auto', *, depth_scale: float = 1000.0,
                 class_mapping_40: Optional[str] = None, label_map: Optional[str] = None):
    """(dataset, class names or None, format) for ``path``, opened through the dataset registry
    (``registry.py``: the ``open_*`` functions below); for shards the format is the source's (shards hold the
    same frames, so ``inspect`` reports the same values)."""
    path = Path(path)
    fmt = detect_format(path) if fmt == 'auto' else fmt
    return get_dataset(fmt, 'inspect').opener('inspect')(path, OpenOptions(depth_scale, class_mapping_40))


# the `inspect` openers of the dataset registry: (path, options) -> (dataset, class names or None, format)


def open_shards(path: Path, options: OpenOptions):
    from .shards import ShardFrames
    ds = ShardFrames(path)
    names = ds.class_names
    return ds, (tuple(names) if names else None), ds.set.index['source_format']


def open_synthetic(path: Path, options: OpenOptions):
    from .synthetic import CLASS_NAMES, SyntheticRGBD
    return SyntheticRGBD(length=16), CLASS_NAMES, 'synthetic'


def open_scannet_sens(path: Path, options: OpenOptions):
    return _SensFrames(path), None, 'scannet-sens'


def open_scannet(path: Path, options: OpenOptions):
    """Exported scenes: a folder of scenes, or one scene (its own color/ and depth/)."""
    from .scannet import ScanNetFrames
    if (path / 'color').is_dir() and (path / 'depth').is_dir():
        return ScanNetFrames(path.parent, split=None), None, 'scannet-frames'
    return ScanNetFrames(path), None, 'scannet-frames'


def open_scannet_25k(path: Path, options: OpenOptions):
    from .scannet import SCANNET20_NAMES, ScanNet25kFrames
    return ScanNet25kFrames(path), SCANNET20_NAMES, 'scannet-25k'


def open_nyuv2(path: Path, options: OpenOptions):
    from .nyu import NYU40_NAMES, NYUv2Labeled
    mapping = options.class_mapping_40 or (path.parent / 'classMapping40.mat')
    return NYUv2Labeled(path, class_mapping_40=mapping), NYU40_NAMES, 'nyu-mat'


def open_nyu_raw(path: Path, options: OpenOptions):
    from .nyu import NYUSyncFrames
    return NYUSyncFrames(path, depth_scale=options.depth_scale), None, 'nyu-raw'


def open_sunrgbd(path: Path, options: OpenOptions):
    from .sunrgbd import SUNRGBD37_NAMES, SUNRGBDFrames
    return SUNRGBDFrames(path), SUNRGBD37_NAMES, 'sunrgbd'


def open_cityscapes(path: Path, options: OpenOptions):
    from .cityscapes import CITYSCAPES19_NAMES, CityscapesRGBD
    return CityscapesRGBD(path, split='train'), CITYSCAPES19_NAMES, 'cityscapes'


def open_tum(path: Path, options: OpenOptions):
    from .tum import TUMFrames
    return TUMFrames(path), None, 'tum'


def open_seven_scenes(path: Path, options: OpenOptions):
    from .seven_scenes import SevenScenesFrames
    return SevenScenesFrames(path), None, '7scenes'


def open_folder(path: Path, options: OpenOptions):
    ds = RGBDFolder(path, depth_scale=options.depth_scale)
    return ds, getattr(ds, 'class_names', None), 'folder'


class _SensFrames:
    """A ``.sens`` file as samples (for inspection: colour resized to the depth grid)."""

    def __init__(self, path: Path):
        from .scannet_sens import SensReader
        self.reader = SensReader(path)

    def __len__(self):
        return len(self.reader)

    def __getitem__(self, i: int):
        from PIL import Image
        f, h = self.reader.frame(i), self.reader.header
        depth = f.depth_m(h, str(self.reader.path))
        rgb = np.array(Image.fromarray(f.color(str(self.reader.path))).resize((h.depth_width, h.depth_height)))
        return {'rgb': rgb.transpose(2, 0, 1), 'depth': depth[None], 'intrinsics': h.intrinsic_depth[:3, :3]}


def inspect(dataset, class_names=None, fmt: str = '', max_frames: int = 50) -> Dict[str, Any]:
    """Statistics of up to ``max_frames`` evenly spaced frames. A frame that cannot be read (a broken file, label
    ids outside the classes) does not stop the inspection: its one-line error is listed under ``problems``."""
    n = len(dataset)
    if n == 0:
        raise MissingDataError('dataset is empty')
    picks = np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int))
    depths, valid_total, pixel_total, labels, problems = [], 0, 0, {}, []
    size = None
    for i in picks:
        try:
            s = dataset[int(i)]
        except Mask3DError as e:
            problems.append(str(e))
            continue
        size = size or list(np.asarray(s['rgb']).shape[-2:])
        if 'depth' in s:
            d = np.asarray(s['depth'])[0]
            v = d > 0
            valid_total += int(v.sum())
            pixel_total += d.size
            depths.append(d[v])
        if 'semantic' in s:
            ids, counts = np.unique(np.asarray(s['semantic']), return_counts=True)
            outside = [k for k in ids.tolist() if class_names and k != IGNORE_INDEX and not 0 <= k < len(class_names)]
            if outside:
                problems.append(f"{s.get('source', i)}: label ids {', '.join(map(str, outside[:8]))} outside the "
                                f'{len(class_names)} classes (0..{len(class_names) - 1}, {IGNORE_INDEX} = ignore)')
            for k, c in zip(ids.tolist(), counts.tolist()):
                known = class_names and 0 <= k < len(class_names)
                name = 'ignore' if k == IGNORE_INDEX else (class_names[k] if known else str(k) if not class_names
                                                           else f'{k} (outside the classes)')
                labels[name] = labels.get(name, 0) + c
    all_d = np.concatenate(depths) if depths else np.zeros(0)
    report = {'format': fmt, 'frames': n, 'inspected_frames': len(picks), 'image_size': size,
              'depth_m': ({'min': float(all_d.min()), 'median': float(np.median(all_d)), 'max': float(all_d.max())}
                          if all_d.size else None),
              'depth_valid_fraction': valid_total / pixel_total if pixel_total else 0.0}
    if labels:
        report['labels'] = dict(sorted(labels.items(), key=lambda kv: -kv[1]))
    report['problems'] = problems
    unit = depth_unit_problem(depths)
    report['warnings'] = [f'depth looks like the wrong unit ({unit}, over {len(depths)} inspected frames); '
                          f'{depth_unit_fix(dataset)}'] if unit else []
    return report


def contact_sheet(dataset, out: Union[str, os.PathLike], frames: int = 4) -> Path:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    n = min(frames, len(dataset))
    picks = np.linspace(0, len(dataset) - 1, n).round().astype(int)
    samples = [dataset[int(i)] for i in picks]
    cols = 3 if any('semantic' in s for s in samples) else 2
    fig, axes = plt.subplots(n, cols, figsize=(4 * cols, 3 * n), squeeze=False)
    cmap = matplotlib.colormaps['turbo'].with_extremes(bad='black')
    for r, s in enumerate(samples):
        axes[r, 0].imshow(np.asarray(s['rgb']).transpose(1, 2, 0))
        d = np.asarray(s['depth'])[0] if 'depth' in s else np.zeros(np.asarray(s['rgb']).shape[1:])
        im = axes[r, 1].imshow(np.where(d > 0, d, np.nan), cmap=cmap)
        fig.colorbar(im, ax=axes[r, 1], fraction=0.046, label='m')
        if cols == 3 and 'semantic' in s:
            sem = np.asarray(s['semantic']).astype(float)
            axes[r, 2].imshow(np.where(sem == IGNORE_INDEX, np.nan, sem), cmap='tab20', interpolation='nearest')
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(str(s.get('source', picks[r]))[-40:], fontsize=7)
    for c, title in enumerate(['RGB', 'depth (black: invalid)', 'labels'][:cols]):
        axes[0, c].set_title(title)
    from ..visualize import save_figure
    return save_figure(fig, out)
