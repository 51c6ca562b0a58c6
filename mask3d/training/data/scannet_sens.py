"""ScanNet ``.sens`` files: a streaming reader and the exporter behind ``mask3d data extract-sens``.

Format (little-endian; ScanNet's SensReader): version uint32 (= 4), sensor name (uint64 length + bytes), four
4x4 float32 matrices (colour intrinsics/extrinsics, depth intrinsics/extrinsics), colour and depth compression
types (int32; 2 = JPEG, 1 = zlib uint16), colour W, H, depth W, H (uint32), depth_shift (float32, units per
metre, normally 1000), frame count (uint64); then per frame a 4x4 camera-to-world pose, two uint64 timestamps,
two uint64 byte counts, the JPEG bytes and the zlib-compressed uint16 depth. Sizes always come from the header.

An export (``extract_sens``) writes ``mask3d-export.json`` first with ``"complete": false`` and rewrites it last
with ``"complete": true`` and the frame count, so an interrupted export is refused by the readers instead of
training on a partial scene (``check_export``).
"""
import io
import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Optional, Union

import numpy as np

from ...errors import BadDataFileError

SENS_VERSION = 4
COLOR_JPEG = 2
DEPTH_ZLIB_USHORT = 1
EXPORT_MARKER = 'mask3d-export.json'


class SensFormatError(BadDataFileError):
    """A .sens file is truncated, of another version or compression, or not a .sens file."""


@dataclass
class SensHeader:
    version: int
    sensor_name: str
    intrinsic_color: np.ndarray
    extrinsic_color: np.ndarray
    intrinsic_depth: np.ndarray
    extrinsic_depth: np.ndarray
    color_compression: int
    depth_compression: int
    color_width: int
    color_height: int
    depth_width: int
    depth_height: int
    depth_shift: float
    num_frames: int


@dataclass
class SensFrame:
    index: int
    camera_to_world: np.ndarray   # 4x4 float32 (may hold inf/NaN for frames without tracking)
    timestamp_color: int
    timestamp_depth: int
    color_bytes: bytes            # a complete JPEG
    depth_bytes: bytes            # zlib-compressed uint16

    def depth_mm(self, header: SensHeader, path: str = '') -> np.ndarray:
        try:
            raw = zlib.decompress(self.depth_bytes)
        except zlib.error as e:
            raise SensFormatError(f'{path}: frame {self.index}: depth is not valid zlib data ({e})') from e
        expected = header.depth_width * header.depth_height * 2
        if len(raw) != expected:
            raise SensFormatError(f'{path}: frame {self.index}: depth has {len(raw)} bytes, expected {expected} '
                                  f'({header.depth_width}x{header.depth_height} uint16)')
        return np.frombuffer(raw, dtype='<u2').reshape(header.depth_height, header.depth_width)

    def depth_m(self, header: SensHeader, path: str = '') -> np.ndarray:
        return self.depth_mm(header, path).astype(np.float32) / header.depth_shift

    def color(self, path: str = '') -> np.ndarray:
        from PIL import Image
        try:
            with Image.open(io.BytesIO(self.color_bytes)) as im:
                return np.array(im.convert('RGB'))
        except Exception as e:
            raise SensFormatError(f'{path}: frame {self.index}: colour is not a readable JPEG ({e})') from e


def _read(f: BinaryIO, n: int, path: str, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise SensFormatError(f'{path}: truncated while reading {what} (wanted {n} bytes, got {len(data)})')
    return data


def read_header(f: BinaryIO, path: str = '') -> SensHeader:
    version, = struct.unpack('<I', _read(f, 4, path, 'version'))
    if version != SENS_VERSION:
        raise SensFormatError(f'{path}: .sens version {version}, only version {SENS_VERSION} is supported')
    name_len, = struct.unpack('<Q', _read(f, 8, path, 'sensor name length'))
    if name_len > 4096:
        raise SensFormatError(f'{path}: implausible sensor name length {name_len}; not a .sens file?')
    name = _read(f, name_len, path, 'sensor name').decode('utf-8', errors='replace')
    mats = np.frombuffer(_read(f, 4 * 64, path, 'calibration'), dtype='<f4').reshape(4, 4, 4).copy()
    color_c, depth_c = struct.unpack('<ii', _read(f, 8, path, 'compression types'))
    cw, ch, dw, dh = struct.unpack('<IIII', _read(f, 16, path, 'image sizes'))
    shift, = struct.unpack('<f', _read(f, 4, path, 'depth shift'))
    n, = struct.unpack('<Q', _read(f, 8, path, 'frame count'))
    if color_c != COLOR_JPEG:
        raise SensFormatError(f'{path}: colour compression {color_c} is not supported (only 2 = JPEG)')
    if depth_c != DEPTH_ZLIB_USHORT:
        raise SensFormatError(f'{path}: depth compression {depth_c} is not supported (only 1 = zlib uint16)')
    if not (cw and ch and dw and dh) or shift <= 0:
        raise SensFormatError(f'{path}: invalid sizes {cw}x{ch} / {dw}x{dh} or depth shift {shift}')
    return SensHeader(version, name, mats[0], mats[1], mats[2], mats[3], color_c, depth_c, cw, ch, dw, dh,
                      float(shift), int(n))


class SensReader:
    """Iterate the frames of a ``.sens`` file without loading it whole."""

    def __init__(self, path: Union[str, os.PathLike]):
        self.path = Path(path)
        if not self.path.is_file():
            raise SensFormatError(f'{self.path}: file not found')
        with open(self.path, 'rb') as f:
            self.header = read_header(f, str(self.path))
        self._offsets = None

    def __len__(self) -> int:
        return self.header.num_frames

    def _frame_header(self, f: BinaryIO, i: int):
        what = f'frame {i} of {self.header.num_frames}'
        pose = np.frombuffer(_read(f, 64, str(self.path), what), dtype='<f4').reshape(4, 4).copy()
        return (pose, *struct.unpack('<QQQQ', _read(f, 32, str(self.path), what)))

    def _frame_body(self, f: BinaryIO, i: int, head) -> SensFrame:
        pose, ts_c, ts_d, n_c, n_d = head
        what = f'frame {i} of {self.header.num_frames}'
        color = _read(f, n_c, str(self.path), f'{what} colour')
        depth = _read(f, n_d, str(self.path), f'{what} depth')
        return SensFrame(i, pose, ts_c, ts_d, color, depth)

    def frames(self, every: int = 1) -> Iterator[SensFrame]:
        """All frames (every ``every``-th), streamed; skipped frames are seeked over, not read."""
        with open(self.path, 'rb') as f:
            read_header(f, str(self.path))
            for i in range(self.header.num_frames):
                head = self._frame_header(f, i)
                if i % every:
                    f.seek(head[3] + head[4], io.SEEK_CUR)
                    continue
                yield self._frame_body(f, i, head)

    def frame(self, i: int) -> SensFrame:
        """Frame ``i`` alone. The first call indexes the frame offsets by seeking over the payloads."""
        if not 0 <= i < self.header.num_frames:
            raise IndexError(i)
        if self._offsets is None:
            offsets = []
            with open(self.path, 'rb') as f:
                read_header(f, str(self.path))
                for k in range(self.header.num_frames):
                    offsets.append(f.tell())
                    head = self._frame_header(f, k)
                    f.seek(head[3] + head[4], io.SEEK_CUR)
            self._offsets = offsets
        with open(self.path, 'rb') as f:
            f.seek(self._offsets[i])
            return self._frame_body(f, i, self._frame_header(f, i))


def _write_marker(out: Path, record: dict) -> None:
    tmp = out / f'.{EXPORT_MARKER}.tmp'
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, out / EXPORT_MARKER)  # atomic: the marker is either the old or the new one, never torn


def check_export(scene: Union[str, os.PathLike]) -> None:
    """Refuse a scene whose ``extract_sens`` export did not finish (marker says incomplete) or lost frames since
    (fewer colour files than it wrote). Scenes without a marker (ScanNet's own exporter, scannet_frames_25k) pass."""
    scene = Path(scene)
    marker = scene / EXPORT_MARKER
    if not marker.is_file():
        return
    try:
        record = json.loads(marker.read_text())
        complete, frames = bool(record['complete']), record.get('frames')
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SensFormatError(f'{marker}: unreadable export marker ({e.__class__.__name__}: {e}); re-run '
                              f'mask3d data extract-sens') from e
    if not complete:
        raise SensFormatError(f'{scene}: export from {record.get("sens", "a .sens file")} did not finish '
                              f'({marker.name} says incomplete); re-run mask3d data extract-sens')
    found = sum(1 for _ in (scene / 'color').glob('*.jpg')) if (scene / 'color').is_dir() else 0
    if frames is not None and found != frames:
        raise SensFormatError(f'{scene}: the export wrote {frames} colour frames but color/ holds {found}; re-run '
                              f'mask3d data extract-sens')


def extract_sens(path: Union[str, os.PathLike], out: Union[str, os.PathLike], every: int = 1,
                 progress: bool = True, max_frames: Optional[int] = None) -> int:
    """Write ScanNet's standard exported layout: color/{i}.jpg (the stored JPEG bytes, unchanged),
    depth/{i}.png (uint16 mm), pose/{i}.txt, intrinsic/{intrinsic,extrinsic}_{color,depth}.txt. Returns frames.
    ``mask3d-export.json`` marks the export incomplete until the last frame is written (``check_export``)."""
    from PIL import Image

    if every < 1:
        raise SensFormatError(f'--every must be >= 1, got {every}')
    reader = SensReader(path)
    h = reader.header
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record = {'complete': False, 'sens': str(path), 'every': every, 'frames': None}
    _write_marker(out, record)
    for sub in ('color', 'depth', 'pose', 'intrinsic'):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for name, mat in (('intrinsic_color', h.intrinsic_color), ('extrinsic_color', h.extrinsic_color),
                      ('intrinsic_depth', h.intrinsic_depth), ('extrinsic_depth', h.extrinsic_depth)):
        np.savetxt(out / 'intrinsic' / f'{name}.txt', mat, fmt='%f')
    frames = reader.frames(every)
    if progress:
        from tqdm.auto import tqdm
        frames = tqdm(frames, total=(len(reader) + every - 1) // every, desc=f'extract {Path(path).name}',
                      unit='frame')
    count = 0
    for frame in frames:
        if max_frames is not None and count >= max_frames:
            break
        depth = frame.depth_mm(h, str(path))
        (out / 'color' / f'{frame.index}.jpg').write_bytes(frame.color_bytes)
        Image.fromarray(depth.astype(np.uint16)).save(out / 'depth' / f'{frame.index}.png')
        np.savetxt(out / 'pose' / f'{frame.index}.txt', frame.camera_to_world, fmt='%f')
        count += 1
    _write_marker(out, dict(record, complete=True, frames=count))
    return count


def write_sens(path: Union[str, os.PathLike], colors, depths_mm, poses, *, intrinsic_color, intrinsic_depth,
               depth_shift: float = 1000.0, sensor_name: str = 'StructureSensor', jpeg_quality: int = 95) -> Path:
    """Write a version-4 ``.sens`` file byte for byte as ScanNet's SensReader reads it (for tests and users
    converting their own streams). colors: uint8 [H, W, 3] list; depths_mm: uint16 [h, w] list; poses: 4x4."""
    from PIL import Image

    path = Path(path)
    ch, cw = colors[0].shape[:2]
    dh, dw = depths_mm[0].shape
    eye = np.eye(4, dtype='<f4')
    with open(path, 'wb') as f:
        f.write(struct.pack('<I', SENS_VERSION))
        name = sensor_name.encode()
        f.write(struct.pack('<Q', len(name)) + name)
        for mat in (intrinsic_color, eye, intrinsic_depth, eye):
            f.write(np.asarray(mat, dtype='<f4').reshape(4, 4).tobytes())
        f.write(struct.pack('<iiIIIIf', COLOR_JPEG, DEPTH_ZLIB_USHORT, cw, ch, dw, dh, depth_shift))
        f.write(struct.pack('<Q', len(colors)))
        for i, (c, d, pose) in enumerate(zip(colors, depths_mm, poses)):
            buf = io.BytesIO()
            Image.fromarray(c).save(buf, format='JPEG', quality=jpeg_quality)
            color_bytes = buf.getvalue()
            depth_bytes = zlib.compress(np.ascontiguousarray(d, dtype='<u2').tobytes())
            f.write(np.asarray(pose, dtype='<f4').reshape(4, 4).tobytes())
            f.write(struct.pack('<QQQQ', i * 33333, i * 33333, len(color_bytes), len(depth_bytes)))
            f.write(color_bytes)
            f.write(depth_bytes)
    return path
