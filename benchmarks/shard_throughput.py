"""Shards vs files, and what one CPU core decodes: ScanNet-like frames (JPEG colour + 16-bit PNG depth in mm) through
the pre-training pipeline (decode, random resized crop to 240x320, mask noise), side by side in one process.

Frames: the real 7-Scenes frames in ../shared/data/rgbd (640x480 JPEG + 16-bit PNG, like scannet_frames_25k)
laid out as ScanNet scenes, cycled to ``--frames``; without them, synthetic rooms written as JPEG. Variants:
  per_core_*:  0 workers, 1 torch thread: frames per CPU-second (process time), what one core decodes ("scannet_25k" 640x480 colour; "scannet_exported"
               1296x968 colour resized to the depth grid, as ScanNet's exported scenes are read)
  files/shards x workers: the ScanNet reader on files vs the same frames as shards (``mask3d data shard``)

    python benchmarks/shard_throughput.py [--frames 96] [--workers 0 1 2] [--rounds 3] [--json]
    python benchmarks/shard_throughput.py --frames 2048 --workers 16 --rounds 2 --json   # a 16-core GPU host
"""
import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import print_result  # noqa: E402
from _shared_data import shared_rgbd  # noqa: E402
from mask3d.training.data.pretrain_data import EpochIndexSampler, PretrainSamples  # noqa: E402
from mask3d.training.data.scannet import ScanNetFrames  # noqa: E402
from mask3d.training.data.shards import ShardStream, open_shard_set, write_shards  # noqa: E402
from mask3d.training.data.transforms import JointTransform  # noqa: E402

SEVEN = shared_rgbd('tsdf-fusion-python-7scenes', 'data')  # None: no ../shared (or MASK3D_HIDE_SHARED=1)


def write_scannet_like(root: Path, frames: int, colour_size=None) -> str:
    """``frames`` frames as ScanNet scenes of 64 frames (color/N.jpg, depth/N.png mm, intrinsics_depth.txt)."""
    root.mkdir(parents=True, exist_ok=True)
    if SEVEN is not None:
        pairs = [(p, p.with_name(p.name.replace('color.jpg', 'depth.png'))) for p in sorted(SEVEN.glob('*.color.jpg'))]
        source = 'real 7-Scenes frames (640x480 JPEG + 16-bit PNG mm)'
    else:
        from mask3d.training.data.synthetic import render_scene
        pairs = []
        for i in range(16):
            f = render_scene(0, i, 480, 640)
            rgb, depth = root / f'src{i}.jpg', root / f'src{i}.png'
            Image.fromarray(f['rgb'].transpose(1, 2, 0)).save(rgb, quality=95)
            Image.fromarray(np.round(f['depth'][0] * 1000).astype(np.uint16)).save(depth)
            pairs.append((rgb, depth))
        source = 'synthetic rooms (640x480 JPEG q95 + 16-bit PNG mm)'
    for i in range(frames):
        scene = root / f'scene{i // 64:04d}_00'
        if i % 64 == 0:
            (scene / 'color').mkdir(parents=True)
            (scene / 'depth').mkdir()
            K = np.eye(4)
            K[:3, :3] = [[585, 0, 320], [0, 585, 240], [0, 0, 1]]
            np.savetxt(scene / 'intrinsics_depth.txt', K)
        rgb, depth = pairs[i % len(pairs)]
        if colour_size:
            with Image.open(rgb) as im:
                im.resize(colour_size, Image.BILINEAR).save(scene / 'color' / f'{i}.jpg', quality=95)
        else:
            (scene / 'color' / f'{i}.jpg').write_bytes(rgb.read_bytes())
        (scene / 'depth' / f'{i}.png').write_bytes(depth.read_bytes())
    return source


def _samples(frames):
    return PretrainSamples(frames, JointTransform((240, 320)), patch_size=16, seed=0)


def files_fps(frames, workers: int, batch: int) -> float:
    samples = _samples(frames)
    sampler = EpochIndexSampler(len(samples), seed=0)
    sampler.set_epoch(0)
    loader = torch.utils.data.DataLoader(samples, batch_size=batch, sampler=sampler, num_workers=workers,
                                         drop_last=True, prefetch_factor=4 if workers else None)
    return _time(loader)


def shards_fps(shard_dir: str, workers: int, batch: int) -> float:
    stream = ShardStream(open_shard_set(shard_dir), _samples(()).prepare, batch_size=batch, num_workers=workers,
                         shuffle_buffer=256)
    loader = torch.utils.data.DataLoader(stream, batch_size=batch, num_workers=workers, drop_last=True,
                                         prefetch_factor=4 if workers else None)
    return _time(loader)


def _time(loader) -> float:
    it = iter(loader)
    next(it)  # worker start-up excluded
    t0, count = time.perf_counter(), 0
    for b in it:
        count += b['rgb'].shape[0]
    return count / (time.perf_counter() - t0) if count else float('nan')


def per_core_fps(frames, n: int) -> float:
    """Frames per CPU-second of this (single-threaded) process: what one core decodes, whatever else runs."""
    samples, t0 = _samples(frames), time.process_time()
    for i in range(n):
        samples[0, i % len(frames)]
    return n / (time.process_time() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--frames', type=int, default=96)
    p.add_argument('--frames-per-shard', type=int, default=0, help='default: frames / (4 x max workers)')
    p.add_argument('--workers', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--per-core-frames', type=int, default=48)
    p.add_argument('--json', action='store_true')
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    import torchvision
    result = {'machine': platform.processor() or platform.machine(), 'cpu_count': os.cpu_count(),
              'torch': torch.__version__, 'torchvision': torchvision.__version__, 'frames': args.frames,
              'batch_size': args.batch_size, 'output_size': [240, 320], 'rounds': args.rounds}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        result['source'] = write_scannet_like(tmp / 'files', args.frames)
        write_scannet_like(tmp / 'exported', min(args.frames, 64), colour_size=(1296, 968))
        files = ScanNetFrames(tmp / 'files')
        per_shard = args.frames_per_shard or max(1, args.frames // (4 * max(max(args.workers), 1)))
        write_shards(files, tmp / 'shards', per_shard, source_format='scannet-25k', progress=False)
        result['frames_per_shard'] = per_shard
        exported = ScanNetFrames(tmp / 'exported')
        per_core = {'per_core_scannet_25k_640x480': [], 'per_core_scannet_exported_1296x968': []}
        runs = {f'{kind}_{w}_workers': [] for w in args.workers for kind in ('files', 'shards')}
        for _ in range(args.rounds):  # interleaved: machine noise hits every variant alike
            per_core['per_core_scannet_25k_640x480'].append(per_core_fps(files, args.per_core_frames))
            per_core['per_core_scannet_exported_1296x968'].append(per_core_fps(exported, args.per_core_frames))
            for w in args.workers:
                runs[f'files_{w}_workers'].append(files_fps(files, w, args.batch_size))
                runs[f'shards_{w}_workers'].append(shards_fps(str(tmp / 'shards'), w, args.batch_size))
        for name, values in {**per_core, **runs}.items():
            result[name] = statistics.median(values)
        for w in args.workers:
            result[f'shards_over_files_{w}_workers'] = result[f'shards_{w}_workers'] / result[f'files_{w}_workers']
    print_result(result, args.json)
    return 0


if __name__ == '__main__':
    sys.exit(main())
