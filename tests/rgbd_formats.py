"""Small generated inputs in the byte formats of the real files under ../shared/data/rgbd.

Tests that need only a metadata file or a few frames in a known layout write them with these helpers, so they run
on every clone; the tests that check the contents of the official files keep using the ``rgbd_data`` fixture.
Formats follow the files the readers are written for (checked against the shared copies):

- NYUv2 ``classMapping40.mat`` / ``splits.mat``: MATLAB 5 files (scipy writes that format); ``mapClass`` (1x894,
  raw NYU id - 1 -> NYU-40 id), ``className`` (1x40 cell); ``trainNdxs`` / ``testNdxs`` (Nx1, 1-based).
- ScanNet ``scannetv2-labels.combined.tsv``: tab-separated, the official header, one row per raw category.
- NYU sync frames (BTS layout, as in metric3d's ``nyu_demo``): ``rgb/rgb_00000.jpg`` + ``depth/sync_depth_00000.png``
  (uint16 millimetres, 0 = no depth).
- TUM RGB-D frame: 640x480 colour PNG + uint16 depth PNG at 5000 units per metre.
"""
from pathlib import Path
from typing import Dict, Iterable, Sequence, Tuple

import numpy as np
from PIL import Image

NYU_RAW_CLASSES = 894
# raw NYU ids the tests rely on, with their NYU-40 class in the official mapping: 5 chair, 11 floor, 21 wall
NYU_RAW_TO_40 = {5: 5, 11: 2, 21: 1}

SCANNET_TSV_HEADER = ('id', 'raw_category', 'category', 'count', 'nyu40id', 'eigen13id', 'nyuClass', 'nyu40class',
                      'eigen13class', 'ModelNet40', 'ModelNet10', 'ShapeNetCore55', 'synsetoffset', 'wnsynsetid',
                      'wnsynsetkey', 'mpcat40', 'mpcat40index')
# (raw id, category, nyu40 id, nyu40 class): the first rows of the official table, and raw 22 -> 23 (books)
SCANNET_ROWS = ((1, 'wall', 1, 'wall'), (2, 'chair', 5, 'chair'), (3, 'floor', 2, 'floor'), (22, 'book', 23, 'books'))


def write_class_mapping_40(path: Path) -> Path:
    """A ``classMapping40.mat``: every raw id maps to a NYU-40 class (all 40 used); ``NYU_RAW_TO_40`` holds."""
    from scipy.io import savemat

    from mask3d.training.data.nyu import NYU40_NAMES
    raw = np.arange(1, NYU_RAW_CLASSES + 1)
    map_class = (raw * 7) % 40 + 1
    for raw_id, nyu40 in NYU_RAW_TO_40.items():
        map_class[raw_id - 1] = nyu40
    names = np.empty((1, 40), dtype=object)
    names[0, :] = list(NYU40_NAMES)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {'mapClass': map_class[None].astype(np.float64), 'className': names})
    return path


def write_splits_mat(path: Path, train: Sequence[int], test: Sequence[int]) -> Path:
    """A ``splits.mat`` with the given 1-based frame numbers."""
    from scipy.io import savemat
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {'trainNdxs': np.asarray(train, np.float64)[:, None], 'testNdxs': np.asarray(test, np.float64)[:, None]})
    return path


def write_scannet_label_tsv(path: Path, rows: Iterable[Tuple[int, str, int, str]] = SCANNET_ROWS) -> Path:
    """A ``scannetv2-labels.combined.tsv`` with the official columns (unused ones left empty)."""
    lines = ['\t'.join(SCANNET_TSV_HEADER)]
    for raw_id, category, nyu40, nyu40class in rows:
        cells: Dict[str, str] = dict.fromkeys(SCANNET_TSV_HEADER, '')
        cells.update(id=str(raw_id), raw_category=category, category=category, count='1', nyu40id=str(nyu40),
                     nyu40class=nyu40class)
        lines.append('\t'.join(cells[c] for c in SCANNET_TSV_HEADER))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('\n'.join(lines) + '\n')
    return path


def depth_png(path: Path, depth_m: np.ndarray, units_per_metre: float) -> Path:
    """A 16-bit depth PNG (0 = no depth), ``units_per_metre`` as the sensor stores it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(np.asarray(depth_m) * units_per_metre).astype(np.uint16)).save(path)
    return path


def room_depth(height: int, width: int, seed: int = 0, holes: float = 0.2) -> np.ndarray:
    """A depth map in metres (a tilted plane 1.5-3.5 m) with a known fraction of holes (0)."""
    rng = np.random.default_rng(seed)
    depth = np.linspace(1.5, 3.5, width, dtype=np.float32)[None].repeat(height, 0)
    depth[rng.random((height, width)) < holes] = 0
    return depth


def write_nyu_sync_frames(root: Path, indices: Sequence[int] = (0, 50, 100), size=(48, 64)) -> Path:
    """NYU sync frames in BTS layout: ``rgb/rgb_%05d.jpg`` and ``depth/sync_depth_%05d.png`` (mm)."""
    rng = np.random.default_rng(0)
    for n, i in enumerate(indices):
        (root / 'rgb').mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / 'rgb' / f'rgb_{i:05d}.jpg')
        depth_png(root / 'depth' / f'sync_depth_{i:05d}.png', room_depth(*size, seed=n), 1000)
    return root


def write_tum_frame(folder: Path, depth_m: np.ndarray) -> Path:
    """A TUM RGB-D frame as an RGB-D folder: ``rgb/f.png`` and ``depth/f.png`` (5000 units per metre)."""
    h, w = depth_m.shape
    (folder / 'rgb').mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(folder / 'rgb' / 'f.png')
    depth_png(folder / 'depth' / 'f.png', depth_m, 5000)
    return folder
