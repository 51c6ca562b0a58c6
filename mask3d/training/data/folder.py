"""A generic RGB-D folder for users' own captures: ``ROOT/rgb/NAME.{png,jpg}`` + ``ROOT/depth/NAME.{png,npy,tif}``.

Depth PNGs are 16-bit integers divided by ``depth_scale`` to get metres (1000 for millimetres: Kinect, ScanNet,
NYU raw, 7-Scenes; 5000 for TUM). ``.npy`` and 32-bit float ``.tif`` files are read as metres. 0 = invalid.
Optional: ``ROOT/intrinsics.txt`` (3x3, every frame) or ``ROOT/intrinsics/NAME.txt`` (per frame), and
``ROOT/semantic/NAME.png`` class ids (8/16-bit, 255 = ignore), which become the sample's ``semantic``.

Every problem with a file is an error naming the file and what is wrong, in one line: unreadable or truncated
images, malformed matrices, label ids outside the classes, frames without a partner, two files for one frame,
broken symbolic links and link loops among the listed files, colour that is not 8-bit.
"""
import io
import logging
import os
import stat
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from ...constants import IGNORE_INDEX
from ...errors import BadDataFileError, DataError, LabelRangeError, MissingDataError

RGB_EXTS = ('.png', '.jpg', '.jpeg')
DEPTH_EXTS = ('.png', '.npy', '.tif', '.tiff')
# PIL modes of 8-bit colour: greyscale, palette and RGB(A) (P, CMYK and YCbCr are converted to RGB exactly); a 16-bit
# or float image ('I;16', 'I', 'F') would be clipped to white by convert('RGB'), so it is an error instead
COLOUR_MODES = ('L', 'LA', 'P', 'PA', 'RGB', 'RGBA', 'RGBX', 'CMYK', 'YCbCr')
_log = logging.getLogger(__name__)


def entry_problem(path: Path, what: str) -> Optional[str]:
    """Why a listed folder entry cannot be read as a ``what`` file (a broken symbolic link, a link loop, a folder,
    a missing file), in one line naming it; None for a regular file. Listing code calls it so that no such entry
    is dropped silently."""
    try:
        mode = path.stat().st_mode  # follows symbolic links
    except OSError as e:
        if path.is_symlink():
            return (f'{path}: {what} file is a symbolic link that cannot be followed (-> {os.readlink(path)}: '
                    f'{e.strerror}); fix or remove the link')
        if isinstance(e, FileNotFoundError):
            return f'{path}: {what} file not found'
        return f'{path}: cannot open the {what} file ({e.strerror})'
    if stat.S_ISDIR(mode):
        return f'{path}: a folder where a {what} file was expected'
    if not stat.S_ISREG(mode):
        return f'{path}: not a regular file (a {what} file was expected)'
    return None


def present(path: Path) -> bool:
    """True for anything at ``path``, broken symbolic links included (``is_file`` is False for those, which would
    let an optional file such as a per-frame label or intrinsics fall back silently)."""
    return os.path.lexists(path)


def read_file_bytes(path: Union[str, os.PathLike], what: str) -> bytes:
    """The bytes of a listed file; a missing file, a broken link or a read error is one line naming it."""
    path = Path(path)
    problem = entry_problem(path, what)
    if problem is not None:
        raise MissingDataError(problem)
    try:
        return path.read_bytes()
    except OSError as e:
        raise BadDataFileError(f'{path}: cannot read the {what} file ({e.strerror or e})') from e


def read_depth(path: Union[str, os.PathLike], depth_scale: float, invalid: Optional[int] = None) -> np.ndarray:
    """Depth file -> float32 metres [H, W], 0 where invalid; errors name the file and the problem."""
    path = Path(path)
    return decode_depth(read_file_bytes(path, 'depth'), path.suffix, depth_scale, str(path), invalid)


def decode_depth(data: bytes, suffix: str, depth_scale: float, where: str,
                 invalid: Optional[int] = None) -> np.ndarray:
    """Encoded depth (a file's bytes, ``suffix`` its extension) -> float32 metres [H, W]; shared by the folder
    readers and the shard reader, so both decode the same bytes to the same array. ``invalid``: a 16-bit PNG
    value that also means "no measurement" besides 0 (65535 in 7-Scenes)."""
    suffix = suffix.lower()
    try:
        if suffix == '.npy':
            arr = np.load(io.BytesIO(data), allow_pickle=False)
            if not np.issubdtype(arr.dtype, np.floating):
                raise BadDataFileError(f'{where}: .npy depth must be float metres, got dtype {arr.dtype}')
            depth = arr.astype(np.float32)
        else:
            with Image.open(io.BytesIO(data)) as im:
                arr = np.array(im)
            if suffix == '.png':
                if arr.dtype != np.uint16 and not (arr.dtype == np.int32 and arr.max() < 65536):
                    raise BadDataFileError(f'{where}: depth PNG must be 16-bit (got {arr.dtype}, mode {im.mode}); '
                                          f'8-bit images are colour-mapped, not depth')
                depth = arr.astype(np.float32) / float(depth_scale)
                if invalid is not None:
                    depth[arr == invalid] = 0
            else:
                if not np.issubdtype(arr.dtype, np.floating):
                    raise BadDataFileError(f'{where}: TIFF depth must be 32-bit float metres, got {arr.dtype}')
                depth = arr.astype(np.float32)
    except DataError:
        raise
    except Exception as e:  # truncated / corrupt files
        raise BadDataFileError(f'{where}: cannot read depth ({e})') from e
    if depth.ndim != 2:
        raise BadDataFileError(f'{where}: depth must be one channel [H, W], got shape {depth.shape}')
    depth[~np.isfinite(depth) | (depth < 0)] = 0
    return depth


def read_rgb(path: Union[str, os.PathLike]) -> np.ndarray:
    """Colour file -> uint8 [3, H, W]."""
    path = Path(path)
    return decode_rgb(read_file_bytes(path, 'colour'), str(path))


def decode_rgb(data: bytes, where: str, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Encoded 8-bit colour -> uint8 [3, H, W]; ``size`` (h, w): resized bilinearly after decoding."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.mode not in COLOUR_MODES:
                raise BadDataFileError(f'{where}: colour must be 8-bit greyscale, RGB or RGBA, got PIL mode {im.mode} '
                                      f'(a 16-bit or float image: depth, or colour saved with more bits)')
            im = im.convert('RGB')
            if size is not None and (im.height, im.width) != tuple(size):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.array(im)
    except BadDataFileError:
        raise
    except Exception as e:
        raise BadDataFileError(f'{where}: cannot read image ({e})') from e
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def decode_rgbd(rgb: bytes, depth: bytes, *, depth_suffix: str, depth_scale: float, resize_rgb_to_depth: bool,
                rgb_where: str, depth_where: str, depth_invalid: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """A registered colour/depth pair from encoded bytes -> (uint8 [3, H, W], float32 metres [H, W]), checked."""
    depth_m = decode_depth(depth, depth_suffix, depth_scale, depth_where, depth_invalid)
    rgb_arr = decode_rgb(rgb, rgb_where, depth_m.shape if resize_rgb_to_depth else None)
    if depth_m.shape != rgb_arr.shape[1:]:
        raise BadDataFileError(f'{depth_where}: depth is {depth_m.shape}, colour {Path(rgb_where).name} is '
                              f'{rgb_arr.shape[1:]}; they must be registered at the same size')
    if not (depth_m > 0).any():
        raise BadDataFileError(f'{depth_where}: no valid depth pixel (all zero or invalid)')
    return rgb_arr, depth_m


def read_matrix(path: Union[str, os.PathLike], shapes: Sequence[Tuple[int, int]], what: str) -> np.ndarray:
    """A whitespace-separated text matrix (intrinsics, poses) -> float array of the first of ``shapes`` whose size
    matches; anything else (text, a wrong count, NaN) is one line naming the file."""
    path = Path(path)
    try:
        text = read_file_bytes(path, what).decode()
    except MissingDataError:
        raise
    except (OSError, UnicodeDecodeError) as e:
        raise BadDataFileError(f'{path}: cannot read {what} ({e.__class__.__name__}: {e})') from e
    try:
        values = np.array([float(v) for v in text.replace(',', ' ').split()], dtype=np.float64)
    except ValueError as e:
        raise BadDataFileError(f'{path}: {what} must be numbers, {e}') from e
    for shape in shapes:
        if values.size == shape[0] * shape[1]:
            if not np.isfinite(values).all() and what != 'pose':
                raise BadDataFileError(f'{path}: {what} holds NaN or infinite values')
            return values.reshape(shape)
    wanted = ' or '.join(f'{r}x{c} ({r * c} values)' for r, c in shapes)
    raise BadDataFileError(f'{path}: {what} must be {wanted}, found {values.size} values')


def read_intrinsics(path: Union[str, os.PathLike]) -> np.ndarray:
    """``intrinsics.txt`` (3x3, or 4x4 as ScanNet writes it) -> float32 3x3 with a positive focal length."""
    K = read_matrix(path, ((3, 3), (4, 4)), 'intrinsics')[:3, :3].astype(np.float32)
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise BadDataFileError(f'{path}: intrinsics need fx, fy > 0, got fx={K[0, 0]:g} fy={K[1, 1]:g}')
    return K


def read_pose(path: Union[str, os.PathLike]) -> Optional[np.ndarray]:
    """A 4x4 camera-to-world matrix, or None where the file is absent or holds non-finite values (lost tracking)."""
    path = Path(path)
    if not present(path):
        return None
    pose = read_matrix(path, ((4, 4),), 'pose')
    return pose if np.isfinite(pose).all() else None


def read_label(path: Union[str, os.PathLike], size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """A label / instance PNG -> int64 [H, W]; ``size`` (h, w): resized with nearest neighbour."""
    path = Path(path)
    data = read_file_bytes(path, 'label')
    try:
        with Image.open(io.BytesIO(data)) as im:
            if size is not None and (im.height, im.width) != tuple(size):
                im = im.resize((size[1], size[0]), Image.NEAREST)
            arr = np.array(im)
    except Exception as e:
        raise BadDataFileError(f'{path}: cannot read label image ({e.__class__.__name__}: {e})') from e
    if arr.ndim != 2:
        raise BadDataFileError(f'{path}: labels must be one channel of class ids, got shape {arr.shape}')
    return arr.astype(np.int64)


def check_label_ids(label: np.ndarray, num_classes: Optional[int], where: str) -> np.ndarray:
    """Class ids must be 0..num_classes-1 or 255 (ignore); anything else would fail at the loss, far from the
    file, so it is an error naming the file and the ids."""
    if num_classes is None or not label.size:
        return label
    bad = np.unique(label[((label < 0) | (label >= num_classes)) & (label != IGNORE_INDEX)])
    if bad.size:
        shown = ', '.join(str(int(v)) for v in bad[:8]) + (', ...' if bad.size > 8 else '')
        raise LabelRangeError(f'{where}: label ids {shown} outside the {num_classes} classes (0..{num_classes - 1}, '
                              f'{IGNORE_INDEX} = ignore)')
    return label


Skip = Optional[Callable[[str], None]]  # with data.skip_bad: called with the message instead of raising it


def files_by_stem(folder: Path, exts: Sequence[str], what: str, stem=lambda p: p.stem,
                  pattern: str = '*', skip: Skip = None) -> Dict[str, Optional[Path]]:
    """``{stem: file}`` of a folder's files matching ``pattern`` with one of ``exts``; two files for one frame
    (``000003.jpg`` and ``000003.png``) are an error, since either choice would silently lose one (with ``skip``:
    the frame is reported once and mapped to None, so ``check_partners`` leaves it out)."""
    found: Dict[str, Optional[Path]] = {}
    for p in sorted(folder.glob(pattern)):
        if p.suffix.lower() not in exts:
            continue
        key = stem(p)
        problem = entry_problem(p, what)  # a broken link or a loop is named, never dropped silently
        if problem is not None:
            if skip is None:
                raise BadDataFileError(problem)
            skip(problem)
            found[key] = None
            continue
        if key in found:
            if found[key] is None:
                continue
            message = f'{folder}: two {what} files for frame {key}: {found[key].name} and {p.name}; keep one'
            if skip is None:
                raise BadDataFileError(message)
            skip(message)
            found[key] = None
            continue
        found[key] = p
    return found


def check_partners(colors: Dict[str, Optional[Path]], depths: Dict[str, Optional[Path]], where: Path,
                   skip: Skip = None) -> List[str]:
    """The frame keys with both files, in order; a colour file without its depth file (or the reverse) is an
    error naming it, never a silently dropped frame (with ``skip``: each is reported and left out)."""
    for have, missing in ((colors, depths), (depths, colors)):
        orphans = sorted(k for k in set(have) - set(missing) if have[k] is not None)
        if orphans:
            kind = 'depth' if have is colors else 'colour'
            if skip is not None:
                for key in orphans:
                    skip(f'{have[key]}: frame {key} without a colour/depth partner (no {kind} file for it in {where})')
                continue
            more = f' (and {len(orphans) - 1} more)' if len(orphans) > 1 else ''
            raise MissingDataError(f'{have[orphans[0]]}: frame {orphans[0]} without a colour/depth partner (no {kind} '
                                  f'file for it in {where}){more}')
    return sorted(k for k, p in colors.items() if p is not None and depths.get(k) is not None)


class RGBDFrames:
    """A list of (colour, depth) file pairs as samples of the common schema; subclasses find the pairs."""

    frames: List[Tuple[Path, Path]]
    depth_scale: float
    depth_invalid: Optional[int] = None  # a 16-bit value that means "no depth" besides 0 (65535 in 7-Scenes)
    intrinsics: Optional[np.ndarray] = None
    resize_rgb_to_depth: bool = False
    plain_depth_files: bool = True  # depth files are 16-bit PNG / depth_scale or float metres (not SUN RGB-D's)
    num_classes: Optional[int] = None  # set (e.g. by fine-tuning) to check label ids as they are read
    skipped_at_listing: Sequence[str] = ()  # with skip_bad: the frames left out while listing, one message each

    def _skipper(self, skip_bad: bool) -> Skip:
        """None (problems raise), or with ``skip_bad`` a function that logs a problem and counts the frame."""
        if not skip_bad:
            return None
        self.skipped_at_listing = []

        def skip(message: str) -> None:
            _log.warning('data.skip_bad: leaving out %s', message)
            self.skipped_at_listing.append(message)
        return skip

    def __len__(self) -> int:
        return len(self.frames)

    def frame_intrinsics(self, index: int) -> Optional[np.ndarray]:
        return self.intrinsics

    def __getitem__(self, index: int) -> Dict[str, object]:
        rgb_path, depth_path = self.frames[index]
        rgb_bytes, depth_bytes = read_file_bytes(rgb_path, 'colour'), read_file_bytes(depth_path, 'depth')
        # e.g. ScanNet: 1296x968 colour, 640x480 depth; colour intrinsics are the depth ones then
        rgb, depth = decode_rgbd(rgb_bytes, depth_bytes, depth_suffix=depth_path.suffix,
                                 depth_scale=self.depth_scale, resize_rgb_to_depth=self.resize_rgb_to_depth,
                                 rgb_where=str(rgb_path), depth_where=str(depth_path),
                                 depth_invalid=self.depth_invalid)
        K = self.frame_intrinsics(index)
        K = np.eye(3, dtype=np.float32) if K is None else K.copy()
        sample = {'rgb': rgb, 'depth': depth[None], 'intrinsics': K, 'source': f'{rgb_path}|{depth_path}'}
        label_path = self.label_path(index)
        if label_path is not None:
            label = read_label(label_path)
            if label.shape != depth.shape:
                raise BadDataFileError(f'{label_path}: labels are {label.shape}, depth is {depth.shape}')
            sample['semantic'] = check_label_ids(label, self.num_classes, str(label_path))
        return sample

    def label_path(self, index: int) -> Optional[Path]:
        return None


class RGBDFolder(RGBDFrames):
    """Matched colour/depth files of a folder, as samples of the common schema."""

    def __init__(self, root: Union[str, os.PathLike], depth_scale: float = 1000.0, rgb_dir: str = 'rgb',
                 depth_dir: str = 'depth', intrinsics: Optional[np.ndarray] = None, skip_bad: bool = False):
        self.root = Path(root)
        skip = self._skipper(skip_bad)
        if depth_scale <= 0:
            raise DataError(f'depth_scale must be > 0, got {depth_scale}')
        self.depth_scale = float(depth_scale)
        rgb_root, depth_root = self.root / rgb_dir, self.root / depth_dir
        for d in (rgb_root, depth_root):
            if not d.is_dir():
                raise MissingDataError(f'{d}: folder not found (expected ROOT/{rgb_dir}/ and ROOT/{depth_dir}/)')
        rgbs = files_by_stem(rgb_root, RGB_EXTS, 'colour', skip=skip)
        depths = files_by_stem(depth_root, DEPTH_EXTS, 'depth', skip=skip)
        keys = check_partners(rgbs, depths, self.root, skip)
        if (self.root / 'semantic').is_dir():  # a broken label link counts as present: reading it names it
            stems = {p.stem for p in (self.root / 'semantic').iterdir() if p.suffix.lower() == '.png'}
            unlabelled = [k for k in keys if k not in stems]
            if stems and unlabelled:
                message = (f'{self.root / "semantic" / (unlabelled[0] + ".png")}: label file missing for frame '
                           f'{unlabelled[0]} ({len(unlabelled)} of {len(keys)} frames have none)')
                if skip is None:
                    raise MissingDataError(message)
                for k in unlabelled:
                    skip(f'{self.root / "semantic" / (k + ".png")}: label file missing for frame {k}')
                keys = [k for k in keys if k in stems]
        self.frames: List[Tuple[Path, Path]] = [(rgbs[k], depths[k]) for k in keys]
        if not self.frames:
            raise MissingDataError(f'{self.root}: no frames found')
        if intrinsics is None and present(self.root / 'intrinsics.txt'):
            intrinsics = read_intrinsics(self.root / 'intrinsics.txt')
        self.intrinsics = None if intrinsics is None else np.asarray(intrinsics, dtype=np.float32)
        if present(self.root / 'classes.json'):  # written by `mask3d data synth`; lets configs check class counts
            self.class_names = read_class_names(self.root / 'classes.json')
            self.num_classes = len(self.class_names)

    def frame_intrinsics(self, index: int) -> Optional[np.ndarray]:
        per_frame = self.root / 'intrinsics' / f'{self.frames[index][0].stem}.txt'
        if present(per_frame):
            return read_intrinsics(per_frame)
        return self.intrinsics

    def label_path(self, index: int) -> Optional[Path]:
        path = self.root / 'semantic' / f'{self.frames[index][0].stem}.png'
        return path if present(path) else None


def read_class_names(path: Path) -> Tuple[str, ...]:
    """``classes.json`` (``{"names": [...]}``) -> the class names."""
    import json
    try:
        names = json.loads(path.read_text())['names']
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BadDataFileError(f'{path}: expected JSON with a "names" list ({e.__class__.__name__}: {e})') from e
    if not isinstance(names, list) or not names:
        raise BadDataFileError(f'{path}: "names" must be a non-empty list')
    return tuple(str(n) for n in names)
