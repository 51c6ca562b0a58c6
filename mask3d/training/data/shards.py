"""Sharded RGB-D data: any dataset ``mask3d data inspect`` opens, written as WebDataset tar shards and streamed.

Many small files on a shared filesystem are slow to list and open; a few hundred tar files read front to back
are not. Layout (the WebDataset convention: files of one sample share a key, the part after the first dot is
the field):

    OUT/shard-000000.tar   000000000.rgb.jpg     colour, the source's encoded bytes (JPEG stays JPEG)
                           000000000.depth.png   depth, the source's bytes (16-bit PNG, unit 1/depth_scale m,
                                                 or .npy/.tif metres); formats without such files: .npy metres
                           000000000.meta.json   intrinsics, depth_scale, resize_rgb_to_depth, source, index
                           000000000.semantic.png / .instances.npz   labels, when the source has them
    OUT/shards.json        source format, class names, frames per shard

The key is the frame's index in the source, so every random choice of pre-training (crop, flip, masks) is a
function of (seed, epoch, frame), as with the folder readers. Reading: :class:`ShardFrames` (random access to
local shards, for ``mask3d data inspect``) and :class:`ShardStream` (``data.source: shards``: every DDP rank and
DataLoader worker reads its own shards, a seeded shuffle buffer, exact mid-epoch resume; the rules are in
docs/datasets.md, "Shards").

webdataset is used through names exported at its top level only (``wds.ShardWriter``, ``wds.SimpleShardList``,
``wds.tarfile_samples``, ``wds.shuffle``, ``wds.gopen``; tested in tests/test_shards.py). Two things it has no
public API for are done with the standard library's ``tarfile``, each in one function: random access to a sample
(:func:`_tar_member_offsets`) and noticing a local shard that lost its end (:func:`check_local_shard`).
"""
import io
import json
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from ...errors import DataError
from .folder import RGBDFrames, decode_depth, decode_rgb, decode_rgbd

INDEX_NAME = 'shards.json'
SHARD_PATTERN = 'shard-%06d.tar'
_log = logging.getLogger(__name__)


_SCHEMA = ('rgb', 'depth', 'intrinsics', 'source', 'semantic', 'instance_masks', 'instance_labels',
           'instance_boxes')


# ---- writing -----------------------------------------------------------------------------------------------------
def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format='PNG')
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def encode_frame(dataset, index: int) -> Dict[str, Any]:
    """One frame of ``dataset`` as a WebDataset sample (field -> bytes). File-pair readers (folder, ScanNet,
    NYU raw) keep the source's colour and depth bytes; other formats store lossless PNG colour + float32 metres."""
    sample = dataset[index]
    record: Dict[str, Any] = {'__key__': f'{index:09d}'}
    meta: Dict[str, Any] = {'index': index, 'source': sample.get('source'),
                            'intrinsics': np.asarray(sample['intrinsics'], np.float32).tolist(),
                            'depth_scale': None, 'resize_rgb_to_depth': False}
    if isinstance(dataset, RGBDFrames) and dataset.plain_depth_files:
        rgb_path, depth_path = dataset.frames[index]
        record[f'rgb{rgb_path.suffix.lower()}'] = rgb_path.read_bytes()
        record[f'depth{depth_path.suffix.lower()}'] = depth_path.read_bytes()
        meta.update(depth_scale=float(dataset.depth_scale), resize_rgb_to_depth=bool(dataset.resize_rgb_to_depth))
        if dataset.depth_invalid is not None:  # e.g. 7-Scenes' 65535
            meta['depth_invalid'] = int(dataset.depth_invalid)
    else:
        record['rgb.png'] = _png(np.ascontiguousarray(np.asarray(sample['rgb']).transpose(1, 2, 0)))
        record['depth.npy'] = _npy(np.asarray(sample['depth'], np.float32)[0])
    if 'semantic' in sample:
        sem = np.asarray(sample['semantic'])
        if sem.size and 0 <= sem.min() and sem.max() < 65536:
            record['semantic.png'] = _png(sem.astype(np.uint8 if sem.max() < 256 else np.uint16))
        else:
            record['semantic.npy'] = _npy(sem.astype(np.int64))
    if 'instance_masks' in sample:
        buf = io.BytesIO()
        np.savez_compressed(buf, masks=np.asarray(sample['instance_masks'], bool),
                            labels=np.asarray(sample['instance_labels'], np.int64),
                            boxes=np.asarray(sample['instance_boxes'], np.float32))
        record['instances.npz'] = buf.getvalue()
    for key, value in sample.items():  # anything else a reader returns (e.g. the synthetic raw instance map)
        if key not in _SCHEMA and isinstance(value, np.ndarray):
            record[f'extra_{key}.npy'] = _npy(value)
    record['meta.json'] = json.dumps(meta).encode()
    return record


def write_shards(dataset, out: Union[str, os.PathLike], frames_per_shard: int, *, source_format: str,
                 class_names: Optional[Sequence[str]] = None, progress: bool = True) -> Path:
    """Write every frame of ``dataset`` into ``out/shard-%06d.tar`` (``frames_per_shard`` each, the last one
    may hold fewer) with webdataset's ShardWriter, and ``out/shards.json``; returns ``out``."""
    import webdataset as wds
    out = Path(out)
    if frames_per_shard < 1:
        raise DataError(f'--frames-per-shard must be >= 1, got {frames_per_shard}')
    if out.is_dir() and (any(out.glob('*.tar')) or (out / INDEX_NAME).exists()):
        raise DataError(f'{out}: already holds shards; choose an empty folder')
    out.mkdir(parents=True, exist_ok=True)
    n = len(dataset)
    if n == 0:
        raise DataError('dataset is empty')
    it = range(n)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc='shard', unit='frame')
    with wds.ShardWriter(str(out / SHARD_PATTERN), maxcount=frames_per_shard, maxsize=float('inf'),
                         verbose=0) as sink:
        for i in it:
            sink.write(encode_frame(dataset, i))
    counts = [min(frames_per_shard, n - s) for s in range(0, n, frames_per_shard)]
    index = {'layout': 'mask3d-rgbd-shards', 'version': 1, 'source_format': source_format, 'frames': n,
             'class_names': list(class_names) if class_names else None,
             'shards': [{'name': SHARD_PATTERN % k, 'frames': c} for k, c in enumerate(counts)]}
    (out / INDEX_NAME).write_text(json.dumps(index, indent=1))
    return out


# ---- decoding ----------------------------------------------------------------------------------------------------
def _field(raw: Dict[str, Any], name: str, where: str) -> Tuple[str, bytes]:
    for key, value in raw.items():
        if key.split('.', 1)[0] == name and '.' in key:
            return '.' + key.split('.', 1)[1], value
    raise DataError(f'{where}: sample has no {name}.* file (not a mask3d shard?)')


def read_record(raw: Dict[str, Any], where: str) -> Tuple[Dict[str, Any], Tuple[str, bytes], Tuple[str, bytes]]:
    """A shard sample's meta.json, (colour extension, bytes) and (depth extension, bytes)."""
    if 'meta.json' not in raw:
        raise DataError(f'{where}: sample has no meta.json (not a mask3d shard?)')
    try:
        meta = json.loads(raw['meta.json'])
    except ValueError as e:
        raise DataError(f'{where}.meta.json: not valid JSON ({e})') from e
    return meta, _field(raw, 'rgb', where), _field(raw, 'depth', where)


def decode_frame(raw: Dict[str, Any], where: str) -> Dict[str, object]:
    """A shard sample (field -> bytes) -> a sample of the common schema, equal to what the source reader gave."""
    meta, (rgb_ext, rgb), (depth_ext, depth) = read_record(raw, where)
    if meta['depth_scale'] is None:
        rgb_arr, depth_m = decode_rgb(rgb, where), decode_depth(depth, depth_ext, 1.0, where)
    else:
        rgb_arr, depth_m = decode_rgbd(rgb, depth, depth_suffix=depth_ext, depth_scale=meta['depth_scale'],
                                       resize_rgb_to_depth=meta['resize_rgb_to_depth'],
                                       rgb_where=f'{where}.rgb{rgb_ext}', depth_where=f'{where}.depth{depth_ext}',
                                       depth_invalid=meta.get('depth_invalid'))
    sample = {'rgb': rgb_arr, 'depth': depth_m[None], 'intrinsics': np.asarray(meta['intrinsics'], np.float32)}
    if meta['source'] is not None:
        sample['source'] = meta['source']
    if 'semantic.png' in raw:
        try:
            with Image.open(io.BytesIO(raw['semantic.png'])) as im:
                sample['semantic'] = np.array(im).astype(np.int64)
        except Exception as e:
            raise DataError(f'{where}.semantic.png: cannot read label image ({e.__class__.__name__}: {e})') from e
    elif 'semantic.npy' in raw:
        sample['semantic'] = np.load(io.BytesIO(raw['semantic.npy']), allow_pickle=False)
    if 'instances.npz' in raw:
        with np.load(io.BytesIO(raw['instances.npz']), allow_pickle=False) as z:
            sample.update(instance_masks=z['masks'], instance_labels=z['labels'], instance_boxes=z['boxes'])
    for key, value in raw.items():
        if key.startswith('extra_') and key.endswith('.npy'):
            sample[key[len('extra_'):-len('.npy')]] = np.load(io.BytesIO(value), allow_pickle=False)
    return sample


# ---- the shard set -----------------------------------------------------------------------------------------------
@dataclass
class ShardSet:
    urls: List[str]
    counts: List[int]       # frames per shard, from shards.json
    index: Dict[str, Any]   # shards.json

    @property
    def frames(self) -> int:
        return sum(self.counts)


def _read_index(location: str) -> Dict[str, Any]:
    import webdataset as wds
    try:
        with wds.gopen(location) as f:
            index = json.loads(f.read())
    except Exception as e:
        raise DataError(f'{location}: cannot read the shard index ({e}); shards written by `mask3d data '
                              f'shard` have one, or set data.shard_index') from e
    if not isinstance(index, dict) or index.get('layout') != 'mask3d-rgbd-shards':
        raise DataError(f'{location}: not a mask3d shard index')
    _check_index_shards(index.get('shards'), location)
    return index


def _check_index_shards(shards: Any, location: str) -> None:
    """``shards``: a list of {"name": "X.tar", "frames": N >= 1}; anything else is named with the entry at fault."""
    if not isinstance(shards, list) or not shards:
        raise DataError(f'{location}: "shards" must be a non-empty list of {{"name", "frames"}} entries, got '
                              f'{shards!r:.60}; write the shards again with `mask3d data shard`')
    for i, entry in enumerate(shards):
        frames = entry.get('frames') if isinstance(entry, dict) else None
        if not (isinstance(entry, dict) and isinstance(entry.get('name'), str) and isinstance(frames, int)
                and not isinstance(frames, bool) and frames >= 1):
            raise DataError(f'{location}: shards[{i}] must be {{"name": "<file>.tar", "frames": an integer >= 1}}, '
                                  f'got {entry!r:.80}; write the shards again with `mask3d data shard`')


def _expand_shard_urls(pattern: str) -> List[str]:
    """The shard URLs of a brace pattern or ``::``-joined list, in order, as webdataset expands them (``${VAR}``
    from the environment's ``WDS_VAR``, then braces): what an unseeded ``wds.SimpleShardList`` yields."""
    import webdataset as wds
    return [shard['url'] for shard in wds.SimpleShardList(pattern)]


def open_shard_set(root: str, index: Optional[str] = None) -> ShardSet:
    """``root``: a folder of shards, a brace pattern (``/data/s/shard-{000000..000099}.tar``) or any URL
    webdataset opens (``pipe:``, ``http(s)://``, ``::``-joined lists); ``index``: shards.json (default: next to
    the shards)."""
    root = str(root)
    if Path(root).is_dir():
        urls = sorted(str(p) for p in Path(root).glob('*.tar'))
        default_index = str(Path(root) / INDEX_NAME)
    else:
        urls = _expand_shard_urls(root)
        default_index = urls[0].rsplit('/', 1)[0] + '/' + INDEX_NAME if '/' in urls[0] else INDEX_NAME
    if not urls:
        raise DataError(f'{root}: no .tar shards found')
    where = index or default_index
    meta = _read_index(where)
    known = {s['name']: s['frames'] for s in meta['shards']}
    counts = []
    for url in urls:
        name = url.rsplit('/', 1)[-1]
        if name not in known:
            raise DataError(f'{url}: shard not listed in {where}')
        counts.append(int(known[name]))
        check_local_shard(url)
    if Path(root).is_dir():  # the whole set: every listed shard must be there
        missing = sorted(set(known) - {u.rsplit('/', 1)[-1] for u in urls})
        if missing:
            raise DataError(f'{Path(root) / missing[0]}: listed in {where} but missing'
                                  f'{f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""}')
    return ShardSet(urls, counts, meta)


TAR_BLOCK = 512


def check_local_shard(url: str) -> None:
    """A local shard that is empty, not a whole number of tar blocks or without the end-of-archive blocks (a copy
    or a write that stopped) is a one-line error naming it; costs a stat and a 1 KiB read per shard. Remote shards
    are checked as they are read (:func:`shard_records`).

    Hand-written because webdataset has no such check: its reader streams the tar and ends quietly where the
    file ends, so a shard cut at a member boundary reads as a shorter, valid one."""
    try:
        size = os.stat(url).st_size
    except OSError:
        return  # a URL, or a pattern webdataset opens: see ShardStream's reading
    if size == 0:
        raise DataError(f'{url}: shard is empty (0 bytes); write the shards again with `mask3d data shard`')
    if size % TAR_BLOCK:
        raise DataError(f'{url}: shard is truncated ({size} bytes, not a whole number of {TAR_BLOCK}-byte tar '
                              f'blocks); write the shards again with `mask3d data shard`')
    with open(url, 'rb') as f:  # a tar file ends with two zero blocks; a cut at a block boundary loses them
        f.seek(max(0, size - 2 * TAR_BLOCK))
        if size < 2 * TAR_BLOCK or f.read().strip(b'\0'):
            raise DataError(f'{url}: shard is truncated (it does not end with the tar end-of-archive blocks); '
                                  f'write the shards again with `mask3d data shard`')


def _shard_read_error(url: str) -> Callable[[Exception], bool]:
    """A webdataset ``handler`` that ends the stream with one line naming the shard (tar errors otherwise name
    an open file object, or nothing). webdataset adds `` @ <stream>`` to a tar error's message, and an error
    raised here reaches the handler of its next stage with (stream, url) added to its ``args``: both dropped."""
    def handler(exn: Exception) -> bool:
        if isinstance(exn, DataError):  # ours, passed up once more: webdataset appended (stream, url) to args
            raise DataError(exn.args[0]) from exn.__cause__
        detail = str(exn.args[0]).split(' @ ')[0] if exn.args else ''
        raise DataError(f'{url}: cannot read this shard ({exn.__class__.__name__}: {detail}); it is truncated '
                              f'or not a tar file: write the shards again with `mask3d data shard`') from exn
    return handler


def shard_records(urls: Sequence[str], counts: Sequence[int]) -> Iterator[Dict[str, Any]]:
    """The raw samples of ``urls`` in order, through ``wds.tarfile_samples``; a shard that cannot be read, or
    holds another number of frames than the index lists, is a one-line error naming it."""
    import webdataset as wds
    for url, expected in zip(urls, counts):
        seen = 0
        for record in wds.tarfile_samples([{'url': url}], handler=_shard_read_error(url)):
            seen += 1
            yield record
        if seen != expected:
            raise DataError(f'{url}: shard holds {seen} frames but {INDEX_NAME} lists {expected} (a truncated '
                                  f'shard, or the index of another set); write the shards again with `mask3d data '
                                  f'shard`')


def _tar_member_offsets(url: str) -> Dict[str, Dict[str, Tuple[int, int]]]:
    """Key -> field -> (offset, size) of its bytes, for the files of a local tar shard.

    The standard library's ``tarfile``, not webdataset: webdataset 1.0 only streams a tar front to back (random
    access, ``wids``, is not part of it and needs an index of its own), and ``mask3d data inspect`` reads single
    frames. Keys and fields split at the first dot, as the shards are written (:func:`encode_frame`)."""
    import tarfile
    samples: Dict[str, Dict[str, Tuple[int, int]]] = {}
    try:
        with tarfile.open(url) as tf:
            for m in tf.getmembers():
                if m.isfile():
                    key, field = m.name.split('.', 1)
                    samples.setdefault(key, {})[field] = (m.offset_data, m.size)
    except (tarfile.TarError, OSError, ValueError) as e:
        _shard_read_error(url)(e)
    return samples


class ShardFrames:
    """Random access to local shards (for ``mask3d data inspect`` and contact sheets): frame ``i`` is the i-th
    frame written, so it is the source's frame ``i``."""

    def __init__(self, root: Union[str, os.PathLike]):
        self.set = open_shard_set(str(root))
        self.class_names = self.set.index.get('class_names')
        self._starts = np.cumsum([0] + self.set.counts)
        self._members: Dict[int, List[Dict[str, Tuple[int, int]]]] = {}

    def __len__(self) -> int:
        return self.set.frames

    def _shard_members(self, s: int) -> List[Dict[str, Tuple[int, int]]]:
        """Per sample of shard ``s``: field -> (offset, size) of its bytes in the tar file."""
        if s not in self._members:
            url = self.set.urls[s]
            samples = _tar_member_offsets(url)
            if len(samples) != self.set.counts[s]:
                raise DataError(f'{url}: shard holds {len(samples)} frames but {INDEX_NAME} lists '
                                      f'{self.set.counts[s]}; write the shards again with `mask3d data shard`')
            self._members[s] = [samples[k] for k in sorted(samples)]
        return self._members[s]

    def __getitem__(self, i: int) -> Dict[str, object]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        s = int(np.searchsorted(self._starts, i, side='right') - 1)
        fields = self._shard_members(s)[i - self._starts[s]]
        raw = {}
        with open(self.set.urls[s], 'rb') as f:
            for field, (offset, size) in fields.items():
                f.seek(offset)
                raw[field] = f.read(size)
        return decode_frame(raw, f'{self.set.urls[s]}#{i}')


# ---- streaming for pre-training ------------------------------------------------------------------------------------
def epoch_assignment(num_shards: int, readers: int, seed: int, epoch: int) -> List[List[int]]:
    """Shard ids per reader (reader = rank * workers + worker) for one epoch: a seeded permutation of the shards
    dealt round-robin, so readers never share a shard and every epoch reads them in a new order."""
    perm = np.random.default_rng([seed, epoch]).permutation(num_shards)
    return [perm[r::readers].tolist() for r in range(readers)]


class ShardStream(IterableDataset):
    """Pre-training samples streamed from shards, for one DDP rank.

    Rules (docs/datasets.md, "Shards"): ``readers = world_size * max(num_workers, 1)``; fewer shards than
    readers is an error. Each epoch, every reader gets its shards from :func:`epoch_assignment`, passes their
    samples through a shuffle buffer seeded by (seed, epoch, reader) and yields exactly ``batches_per_reader``
    batches (the smallest number any reader can fill); the rest of its frames are dropped for that epoch. So all
    ranks run the same number of steps, and batch ``j`` of an epoch comes from reader ``j mod workers`` (the
    DataLoader's round-robin order). ``set_epoch(e, start)`` resumes mid-epoch: the first ``start`` samples'
    batches are skipped (read, not decoded) and the workers rotate so the next batch comes out first.
    """

    def __init__(self, shards: ShardSet, prepare: Callable[[Dict[str, object], int, int, int], Dict[str, Any]], *,
                 batch_size: int, rank: int = 0, world_size: int = 1, num_workers: int = 0, seed: int = 0,
                 shuffle_buffer: int = 1000, skip_bad: bool = False,
                 decode: Callable[[Dict[str, Any], str], Dict[str, object]] = decode_frame):
        self.shards, self.prepare, self.decode = shards, prepare, decode  # decode: device_decode defers colour
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.workers = max(num_workers, 1)
        self.seed, self.shuffle_buffer, self.skip_bad = seed, shuffle_buffer, skip_bad
        readers = world_size * self.workers
        n = len(shards.urls)
        if n < readers:
            raise DataError(
                f'{n} shards for {world_size} rank(s) x {self.workers} worker(s) = {readers} readers: every reader '
                f'needs its own shard; write more shards (smaller --frames-per-shard) or lower data.num_workers')
        smallest = sum(sorted(shards.counts)[:n // readers])  # the fewest frames any reader can be dealt
        self.batches_per_reader = smallest // batch_size
        if self.batches_per_reader < 1:
            raise DataError(f'{n} shards of {min(shards.counts)}+ frames give a reader only {smallest} frames, '
                                  f'fewer than data.batch_size={batch_size}; write larger shards or lower the batch')
        dropped = 1 - readers * self.batches_per_reader * batch_size / shards.frames
        if dropped > 0.1:
            _log.warning('shards: %.0f %% of the frames are left out of each epoch (unequal shards per reader); '
                         'use a shard count that is a multiple of ranks x workers', 100 * dropped)
        self.epoch, self.start_batches = 0, 0

    @property
    def batches_per_epoch(self) -> int:
        """Batches one rank takes per epoch."""
        return self.workers * self.batches_per_reader

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """``start``: samples of this rank already used in this epoch (a multiple of the batch size)."""
        self.epoch, self.start_batches = epoch, start // self.batch_size

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        info = get_worker_info()
        return self.reader_samples(info.id if info is not None else 0)

    def reader_samples(self, worker: int) -> Iterator[Dict[str, Any]]:
        """What DataLoader worker ``worker`` yields this epoch (a whole number of batches)."""
        import webdataset as wds
        w = self.workers
        logical = (worker + self.start_batches) % w         # rotate, so the resumed epoch's next batch is first
        skip = len(range(logical, self.start_batches, w))   # batches of this reader already used
        reader = self.rank * w + logical
        mine = epoch_assignment(len(self.shards.urls), self.world_size * w, self.seed, self.epoch)[reader]
        raw = shard_records([self.shards.urls[s] for s in mine], [self.shards.counts[s] for s in mine])
        seed = int(np.random.SeedSequence([self.seed, self.epoch, reader]).generate_state(1)[0])
        raw = wds.shuffle(bufsize=self.shuffle_buffer, initial=self.shuffle_buffer, rng=random.Random(seed))(raw)
        to_skip, to_yield = skip * self.batch_size, (self.batches_per_reader - skip) * self.batch_size
        skipped = 0
        for r in raw:
            if to_yield == 0:
                return
            if to_skip:
                to_skip -= 1
                continue
            where = f"{r.get('__url__', '?')}#{r['__key__']}"
            try:
                frame = self.decode(r, where)
            except (ValueError, OSError) as e:
                if not self.skip_bad:
                    raise
                _log.warning('skip_bad: skipping %s: %s', where, e)
                skipped += 1
                continue
            yield self.prepare(frame, self.epoch, int(r['__key__']), skipped)
            skipped, to_yield = 0, to_yield - 1
        if to_yield:
            raise DataError(f'reader {reader} ran out of frames in epoch {self.epoch} ({skipped} bad frames '
                                  f'skipped at the end); too many unreadable frames')
