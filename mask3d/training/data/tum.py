"""TUM RGB-D sequences as published (``rgbd_dataset_freiburg1_xyz/``): ``rgb.txt`` and ``depth.txt`` list
``timestamp path`` lines (``#`` comments), the files are ``rgb/*.png`` (640x480 RGB) and ``depth/*.png`` (uint16,
metres = value / 5000, 0 = no measurement), already registered to the colour camera by the OpenNI driver.

Colour and depth are taken at slightly different times, so frames are paired as TUM's ``associate.py`` does:
every (colour, depth) pair closer than 20 ms is a candidate, candidates are taken best first, and each colour and
each depth image is used at most once; timestamps left without a partner are dropped (the published sequences
have a few). The intrinsics are TUM's colour-camera calibration for the Freiburg sensor named in the folder name
(``freiburg1``/``fr1``, 2, 3); a folder without a Freiburg name gets TUM's "ROS default" (525, 525, 319.5, 239.5).
``root`` is one sequence folder or a folder of sequences.
"""
import os
import re
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

from ...errors import BadDataFileError, DataError, MissingDataError
from .folder import RGBDFrames, entry_problem, present

DEPTH_SCALE = 5000.0
MAX_DIFFERENCE_S = 0.02
# fx, fy, cx, cy of the colour cameras (TUM "file formats" page, intrinsic calibration of the Kinect)
CAMERAS = {'fr1': (517.3, 516.5, 318.6, 255.3), 'fr2': (520.9, 521.0, 325.1, 249.7),
           'fr3': (535.4, 539.2, 320.1, 247.6), 'ros': (525.0, 525.0, 319.5, 239.5)}


def camera_for(name: str) -> str:
    """'fr1' / 'fr2' / 'fr3' from a sequence name such as ``rgbd_dataset_freiburg2_desk``, else 'ros'."""
    m = re.search(r'(?:freiburg|fr)([123])(?![0-9])', name.lower())
    return f'fr{m.group(1)}' if m else 'ros'


def intrinsics_matrix(camera: str) -> np.ndarray:
    fx, fy, cx, cy = CAMERAS[camera]
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float32)


def read_file_list(path: Path) -> Dict[float, str]:
    """``rgb.txt`` / ``depth.txt`` -> {timestamp: relative path}; a malformed line is an error naming its number."""
    if not path.is_file():
        raise MissingDataError(f'{path}: file list not found (a TUM sequence has rgb.txt and depth.txt)')
    entries: Dict[float, str] = {}
    for number, line in enumerate(path.read_text(errors='replace').splitlines(), 1):
        fields = line.replace(',', ' ').replace('\t', ' ').split()
        if not fields or fields[0].startswith('#'):
            continue
        try:
            stamp = float(fields[0])
        except ValueError:
            raise BadDataFileError(f'{path}: line {number}: expected "timestamp filename", got {line.strip()[:60]!r}')
        if len(fields) < 2:
            raise BadDataFileError(f'{path}: line {number}: timestamp {fields[0]} has no file name')
        if stamp in entries:
            raise BadDataFileError(f'{path}: line {number}: timestamp {fields[0]} listed twice')
        entries[stamp] = fields[1]
    if not entries:
        raise BadDataFileError(f'{path}: lists no frames')
    return entries


def associate(first: Sequence[float], second: Sequence[float], max_difference: float = MAX_DIFFERENCE_S,
              offset: float = 0.0) -> List[Tuple[float, float]]:
    """Pairs (a, b) with |a - (b + offset)| < max_difference, best first, each stamp used once, sorted by a: the
    result of TUM's ``associate.py``, with candidates found by sorted search instead of all pairs."""
    a = np.asarray(sorted(first), np.float64)
    b = np.asarray(sorted(second), np.float64) + offset
    lo = np.searchsorted(b, a - max_difference, side='left')
    hi = np.searchsorted(b, a + max_difference, side='right')
    candidates = []
    for i in range(len(a)):
        for j in range(lo[i], hi[i]):
            diff = abs(a[i] - b[j])
            if diff < max_difference:
                candidates.append((diff, i, j))
    candidates.sort()
    used_a, used_b, pairs = set(), set(), []
    for _, i, j in candidates:
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((float(a[i]), float(b[j] - offset)))
    return sorted(pairs)


class TUMFrames(RGBDFrames):
    """The associated colour/depth pairs of one or more TUM sequences."""

    def __init__(self, root: Union[str, os.PathLike], camera: str = 'auto',
                 max_difference: float = MAX_DIFFERENCE_S, skip_bad: bool = False):
        self.root = Path(root)
        skip = self._skipper(skip_bad)
        if not self.root.is_dir():
            raise MissingDataError(f'{self.root}: folder not found')
        if camera != 'auto' and camera not in CAMERAS:
            raise DataError(f'camera must be auto or one of {", ".join(CAMERAS)}, got {camera!r}')
        sequences = [self.root] if (self.root / 'rgb.txt').is_file() else \
            sorted(p for p in self.root.iterdir() if (p / 'rgb.txt').is_file())
        if not sequences:
            raise MissingDataError(f'{self.root}: no rgb.txt here or in a subfolder (not a TUM RGB-D sequence)')
        self.depth_scale = DEPTH_SCALE
        self.frames: List[Tuple[Path, Path]] = []
        self.timestamps: List[Tuple[float, float]] = []
        self.cameras: Dict[Path, str] = {}
        self._sequence_of: List[Path] = []
        for seq in sequences:
            rgb, depth = read_file_list(seq / 'rgb.txt'), read_file_list(seq / 'depth.txt')
            pairs = associate(list(rgb), list(depth), max_difference)
            if not pairs:
                raise BadDataFileError(f'{seq}: no colour/depth timestamps within {max_difference * 1000:g} ms of '
                                      f'each other (rgb.txt and depth.txt of different recordings?)')
            for a, b in pairs:
                color_path, depth_path = seq / rgb[a], seq / depth[b]
                missing = [f'{path}: listed in {seq / listed} (frame {a:.6f}) but missing' if not present(path)
                           else f'{entry_problem(path, what)} (listed in {seq / listed})'
                           for path, listed, what in ((color_path, 'rgb.txt', 'colour'),
                                                      (depth_path, 'depth.txt', 'depth'))
                           if entry_problem(path, what) is not None]
                if missing and skip is None:
                    raise MissingDataError(missing[0])
                if missing:
                    skip(missing[0])
                    continue
                self.frames.append((color_path, depth_path))
                self.timestamps.append((a, b))
                self._sequence_of.append(seq)
            self.cameras[seq] = camera if camera != 'auto' else camera_for(seq.name)
        self._K = {seq: intrinsics_matrix(cam) for seq, cam in self.cameras.items()}

    def frame_intrinsics(self, index: int) -> np.ndarray:
        return self._K[self._sequence_of[index]]
