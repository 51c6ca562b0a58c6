"""A generic RGB-D folder for users' own captures: ``ROOT/rgb/NAME.{png,jpg}`` + ``ROOT/depth/NAME.{png,npy,tif}``.

Depth PNGs are 16-bit integers divided by ``depth_scale`` to get metres (1000 for millimetres: Kinect, ScanNet,
NYU raw, 7-Scenes; 5000 for TUM). ``.npy`` and 32-bit float ``.tif`` files are read as metres. 0 = invalid.
Optional: ``ROOT/intrinsics.txt`` (3x3, every frame) or ``ROOT/intrinsics/NAME.txt`` (per frame), and
``ROOT/semantic/NAME.png`` class ids (8/16-bit, 255 = ignore), which become the sample's ``semantic``.
"""
import io
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from PIL import Image

from ...errors import RGBDFolderError  # noqa: F401  (the readers import it from here)

RGB_EXTS = ('.png', '.jpg', '.jpeg')
DEPTH_EXTS = ('.png', '.npy', '.tif', '.tiff')


def read_depth(path: Union[str, os.PathLike], depth_scale: float) -> np.ndarray:
    """Depth file -> float32 metres [H, W], 0 where invalid; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise RGBDFolderError(f'{path}: depth file not found')
    return decode_depth(path.read_bytes(), path.suffix, depth_scale, str(path))


def decode_depth(data: bytes, suffix: str, depth_scale: float, where: str) -> np.ndarray:
    """Encoded depth (a file's bytes, ``suffix`` its extension) -> float32 metres [H, W]; shared by the folder
    readers and the shard reader, so both decode the same bytes to the same array."""
    suffix = suffix.lower()
    try:
        if suffix == '.npy':
            arr = np.load(io.BytesIO(data), allow_pickle=False)
            if not np.issubdtype(arr.dtype, np.floating):
                raise RGBDFolderError(f'{where}: .npy depth must be float metres, got dtype {arr.dtype}')
            depth = arr.astype(np.float32)
        else:
            with Image.open(io.BytesIO(data)) as im:
                arr = np.array(im)
            if suffix == '.png':
                if arr.dtype != np.uint16 and not (arr.dtype == np.int32 and arr.max() < 65536):
                    raise RGBDFolderError(f'{where}: depth PNG must be 16-bit (got {arr.dtype}, mode {im.mode}); '
                                          f'8-bit images are colour-mapped, not depth')
                depth = arr.astype(np.float32) / float(depth_scale)
            else:
                if not np.issubdtype(arr.dtype, np.floating):
                    raise RGBDFolderError(f'{where}: TIFF depth must be 32-bit float metres, got {arr.dtype}')
                depth = arr.astype(np.float32)
    except RGBDFolderError:
        raise
    except Exception as e:  # truncated / corrupt files
        raise RGBDFolderError(f'{where}: cannot read depth ({e})') from e
    if depth.ndim != 2:
        raise RGBDFolderError(f'{where}: depth must be one channel [H, W], got shape {depth.shape}')
    depth[~np.isfinite(depth) | (depth < 0)] = 0
    return depth


def read_rgb(path: Union[str, os.PathLike]) -> np.ndarray:
    """Colour file -> uint8 [3, H, W]."""
    path = Path(path)
    if not path.is_file():
        raise RGBDFolderError(f'{path}: colour file not found')
    return decode_rgb(path.read_bytes(), str(path))


def decode_rgb(data: bytes, where: str, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Encoded colour -> uint8 [3, H, W]; ``size`` (h, w): resized bilinearly after decoding."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert('RGB')
            if size is not None and (im.height, im.width) != tuple(size):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.array(im)
    except Exception as e:
        raise RGBDFolderError(f'{where}: cannot read image ({e})') from e
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def decode_rgbd(rgb: bytes, depth: bytes, *, depth_suffix: str, depth_scale: float, resize_rgb_to_depth: bool,
                rgb_where: str, depth_where: str) -> Tuple[np.ndarray, np.ndarray]:
    """A registered colour/depth pair from encoded bytes -> (uint8 [3, H, W], float32 metres [H, W]), checked."""
    depth_m = decode_depth(depth, depth_suffix, depth_scale, depth_where)
    rgb_arr = decode_rgb(rgb, rgb_where, depth_m.shape if resize_rgb_to_depth else None)
    if depth_m.shape != rgb_arr.shape[1:]:
        raise RGBDFolderError(f'{depth_where}: depth is {depth_m.shape}, colour {Path(rgb_where).name} is '
                              f'{rgb_arr.shape[1:]}; they must be registered at the same size')
    if not (depth_m > 0).any():
        raise RGBDFolderError(f'{depth_where}: no valid depth pixel (all zero or invalid)')
    return rgb_arr, depth_m


class RGBDFrames:
    """A list of (colour, depth) file pairs as samples of the common schema; subclasses find the pairs."""

    frames: List[Tuple[Path, Path]]
    depth_scale: float
    intrinsics: Optional[np.ndarray] = None
    resize_rgb_to_depth: bool = False
    plain_depth_files: bool = True  # depth files are 16-bit PNG / depth_scale or float metres (not SUN RGB-D's)

    def __len__(self) -> int:
        return len(self.frames)

    def frame_intrinsics(self, index: int) -> Optional[np.ndarray]:
        return self.intrinsics

    def __getitem__(self, index: int) -> Dict[str, object]:
        rgb_path, depth_path = self.frames[index]
        for path, what in ((rgb_path, 'colour'), (depth_path, 'depth')):
            if not path.is_file():
                raise RGBDFolderError(f'{path}: {what} file not found')
        # e.g. ScanNet: 1296x968 colour, 640x480 depth; colour intrinsics are the depth ones then
        rgb, depth = decode_rgbd(rgb_path.read_bytes(), depth_path.read_bytes(), depth_suffix=depth_path.suffix,
                                 depth_scale=self.depth_scale, resize_rgb_to_depth=self.resize_rgb_to_depth,
                                 rgb_where=str(rgb_path), depth_where=str(depth_path))
        K = self.frame_intrinsics(index)
        K = np.eye(3, dtype=np.float32) if K is None else K.copy()
        sample = {'rgb': rgb, 'depth': depth[None], 'intrinsics': K, 'source': f'{rgb_path}|{depth_path}'}
        label_path = self.label_path(index)
        if label_path is not None:
            with Image.open(label_path) as im:
                label = np.array(im)
            if label.shape != depth.shape:
                raise RGBDFolderError(f'{label_path}: labels are {label.shape}, depth is {depth.shape}')
            sample['semantic'] = label.astype(np.int64)
        return sample

    def label_path(self, index: int) -> Optional[Path]:
        return None


class RGBDFolder(RGBDFrames):
    """Matched colour/depth files of a folder, as samples of the common schema."""

    def __init__(self, root: Union[str, os.PathLike], depth_scale: float = 1000.0, rgb_dir: str = 'rgb',
                 depth_dir: str = 'depth', intrinsics: Optional[np.ndarray] = None):
        self.root = Path(root)
        if depth_scale <= 0:
            raise RGBDFolderError(f'depth_scale must be > 0, got {depth_scale}')
        self.depth_scale = float(depth_scale)
        rgb_root, depth_root = self.root / rgb_dir, self.root / depth_dir
        for d in (rgb_root, depth_root):
            if not d.is_dir():
                raise RGBDFolderError(f'{d}: folder not found (expected ROOT/{rgb_dir}/ and ROOT/{depth_dir}/)')
        rgbs = {p.stem: p for p in sorted(rgb_root.iterdir()) if p.suffix.lower() in RGB_EXTS}
        depths = {p.stem: p for p in sorted(depth_root.iterdir()) if p.suffix.lower() in DEPTH_EXTS}
        unmatched = sorted(set(rgbs) ^ set(depths))
        if unmatched:
            raise RGBDFolderError(f'{self.root}: {len(unmatched)} frame(s) without a colour/depth partner, '
                                  f'e.g. {unmatched[:3]}')
        self.frames: List[Tuple[Path, Path]] = [(rgbs[k], depths[k]) for k in sorted(rgbs)]
        if not self.frames:
            raise RGBDFolderError(f'{self.root}: no frames found')
        if intrinsics is None and (self.root / 'intrinsics.txt').is_file():
            intrinsics = np.loadtxt(self.root / 'intrinsics.txt', dtype=np.float32).reshape(3, 3)
        self.intrinsics = None if intrinsics is None else np.asarray(intrinsics, dtype=np.float32)
        if (self.root / 'classes.json').is_file():  # written by `mask3d data synth`; lets configs check class counts
            import json
            self.class_names = tuple(json.loads((self.root / 'classes.json').read_text())['names'])

    def frame_intrinsics(self, index: int) -> Optional[np.ndarray]:
        per_frame = self.root / 'intrinsics' / f'{self.frames[index][0].stem}.txt'
        if per_frame.is_file():
            return np.loadtxt(per_frame, dtype=np.float32).reshape(3, 3)
        return self.intrinsics

    def label_path(self, index: int) -> Optional[Path]:
        path = self.root / 'semantic' / f'{self.frames[index][0].stem}.png'
        return path if path.is_file() else None

