"""Microsoft 7-Scenes as published: ``SCENE/seq-XX/frame-NNNNNN.color.png`` (640x480 RGB),
``frame-NNNNNN.depth.png`` (uint16 millimetres; 0 and 65535 = no measurement) and ``frame-NNNNNN.pose.txt``
(4x4 camera-to-world), with ``TrainSplit.txt`` / ``TestSplit.txt`` (``sequence1`` lines) beside the sequences.

Intrinsics are the dataset's nominal 585, 585, 320, 240, or ``camera-intrinsics.txt`` where a folder has one.
Colour and depth come from the Kinect's two cameras without registration (a few pixels apart): fine for
pre-training and correspondence, not for pixel-exact RGB/depth alignment. ``root`` is a sequence folder (frames
directly inside, ``.color.jpg`` accepted too), a scene folder of ``seq-*`` folders, or a folder of scenes.
"""
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from ...errors import BadDataFileError, DataError, MissingDataError
from .folder import RGBDFrames, check_partners, files_by_stem, present, read_intrinsics, read_pose

DEPTH_SCALE = 1000.0
DEPTH_INVALID = 65535
INTRINSICS = np.array([[585.0, 0, 320.0], [0, 585.0, 240.0], [0, 0, 1]], np.float32)
_COLOR_EXTS = ('.png', '.jpg', '.jpeg')


def _frame_key(path: Path) -> str:
    return path.name.split('.')[0]  # frame-000012.color.png -> frame-000012


def _split_sequences(scene: Path, split: str) -> List[Path]:
    """``TrainSplit.txt`` / ``TestSplit.txt`` (``sequence1`` lines) -> the ``seq-01`` folders."""
    path = scene / f'{split.capitalize()}Split.txt'
    if not path.is_file():
        raise MissingDataError(f'{path}: split file not found (split={split!r} needs the scene\'s {path.name})')
    folders = []
    for line in path.read_text().split():
        m = re.fullmatch(r'sequence(\d+)', line.strip())
        if not m:
            raise BadDataFileError(f'{path}: expected lines like "sequence1", got {line!r}')
        folders.append(scene / f'seq-{int(m.group(1)):02d}')
    return folders


def find_sequences(root: Path, split: Optional[str] = None) -> List[Path]:
    if next(root.glob('frame-*.color.*'), None) is not None:
        return [root]
    scenes = [root] if next(root.glob('seq-*'), None) is not None else \
        sorted(p for p in root.iterdir() if p.is_dir() and next(p.glob('seq-*'), None) is not None)
    sequences = []
    for scene in scenes:
        sequences += _split_sequences(scene, split) if split else sorted(p for p in scene.glob('seq-*') if p.is_dir())
    if not sequences:
        raise MissingDataError(f'{root}: no frame-*.color.* files and no seq-* folders (not a 7-Scenes scene)')
    return sequences


class SevenScenesFrames(RGBDFrames):
    """Colour/depth pairs (and poses) of 7-Scenes sequences, in sequence and frame order."""
    depth_invalid = DEPTH_INVALID

    def __init__(self, root: Union[str, os.PathLike], split: Optional[str] = None, skip_bad: bool = False):
        self.root = Path(root)
        skip = self._skipper(skip_bad)
        if not self.root.is_dir():
            raise MissingDataError(f'{self.root}: folder not found')
        if split not in (None, 'train', 'test'):
            raise DataError(f"7-Scenes split must be 'train' or 'test', got {split!r}")
        self.depth_scale = DEPTH_SCALE
        self.frames: List[Tuple[Path, Path]] = []
        self.sequence_of: List[Path] = []
        self._K: Dict[Path, np.ndarray] = {}
        for seq in find_sequences(self.root, split):
            if not seq.is_dir():
                raise MissingDataError(f'{seq}: sequence folder not found')
            colors = files_by_stem(seq, _COLOR_EXTS, 'colour', stem=_frame_key, pattern='frame-*.color.*', skip=skip)
            depths = files_by_stem(seq, ('.png',), 'depth', stem=_frame_key, pattern='frame-*.depth.*', skip=skip)
            keys = check_partners(colors, depths, seq, skip)
            if not keys:
                raise MissingDataError(f'{seq}: no frame-*.color.png / frame-*.depth.png pairs')
            self.frames += [(colors[k], depths[k]) for k in keys]
            self.sequence_of += [seq] * len(keys)
            K = INTRINSICS
            for candidate in (seq / 'camera-intrinsics.txt', seq.parent / 'camera-intrinsics.txt'):
                if present(candidate):
                    K = read_intrinsics(candidate)
                    break
            self._K[seq] = K

    def frame_intrinsics(self, index: int) -> np.ndarray:
        return self._K[self.sequence_of[index]]

    def pose_path(self, index: int) -> Path:
        color = self.frames[index][0]
        return color.parent / f'{_frame_key(color)}.pose.txt'

    def __getitem__(self, index: int) -> Dict[str, object]:
        sample = super().__getitem__(index)
        sample['pose'] = read_pose(self.pose_path(index))
        return sample
