"""Colour decoded on the device (``data.decode_device``) vs in the workers: what a CPU core still does, and frames/s.

Frames as in benchmarks/shard_throughput.py: real 7-Scenes frames (640x480 JPEG + 16-bit PNG mm, like
scannet_frames_25k) laid out as ScanNet scenes, or synthetic rooms where they are absent; "exported" = the same
colour at ScanNet's exported 1296x968. Pipeline: decode, random resized crop to 240x320, flip, mask noise.
Variants, each the median of ``--rounds`` interleaved rounds
(ratios: median and range of the per-round ratios):
  per_core_worker_{full,deferred}_*: frames per CPU-second (process time, 1 thread, 0 workers) of the worker part:
      full = today's path (JPEG decode + colour resize in the worker); deferred = what the workers still do when
      colour decoding moves to the device (read files, decode + crop depth, draw crop/flip, mask noise)
  device_decode_*: decode_colour() alone on ``--device`` for batches of ``--batch-size``: frames/s (wall clock,
      synchronised) and main-process CPU-seconds per frame (on CUDA: the kernel launches nvjpeg and the crops need)
  end_to_end_{worker,device}_N_workers: a DataLoader with N workers feeding ``--device``; worker = colour
      decoded in the workers, rgb copied to the device; device = deferred + decode_colour on the device

    python benchmarks/device_decode_throughput.py --rounds 3 [--json]             # CPU: the worker side
    python benchmarks/device_decode_throughput.py --device cuda --frames 2048 --workers 16 --batch-size 256 --json
"""
import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import print_result  # noqa: E402
from mask3d.training.data.device_decode import collate_deferred, decode_colour, defer_colour  # noqa: E402
from mask3d.training.data.pretrain_data import EpochIndexSampler, PretrainSamples  # noqa: E402
from mask3d.training.data.scannet import ScanNetFrames  # noqa: E402
from mask3d.training.data.transforms import JointTransform  # noqa: E402
from shard_throughput import write_scannet_like  # noqa: E402

TRANSFORM = JointTransform((240, 320))


def _samples(frames) -> PretrainSamples:
    return PretrainSamples(frames, TRANSFORM, patch_size=16, seed=0)


def per_core_fps(samples: PretrainSamples, n: int) -> float:
    """Frames per CPU-second of this single-threaded process."""
    t0 = time.process_time()
    for i in range(n):
        samples[0, i % len(samples)]
    return n / (time.process_time() - t0)


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def device_decode(samples: PretrainSamples, device: torch.device, batch: int, batches: int):
    """(frames/s, main-process CPU-seconds per frame) of decode_colour alone, on batches read beforehand."""
    ready = [collate_deferred([samples[0, (b * batch + i) % len(samples)] for i in range(batch)])
             for b in range(min(batches, 4))]
    decode_colour(dict(ready[0]), TRANSFORM, device)  # warm-up (nvjpeg handle, kernels)
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for b in range(batches):
        decode_colour(dict(ready[b % len(ready)]), TRANSFORM, device)
    _sync(device)
    frames = batches * batch
    return frames / (time.perf_counter() - t0), (time.process_time() - c0) / frames


def end_to_end_fps(frames, device: torch.device, workers: int, batch: int, deferred: bool) -> float:
    samples = _samples(defer_colour(frames, 'benchmark') if deferred else frames)
    sampler = EpochIndexSampler(len(samples), seed=0)
    sampler.set_epoch(0)
    loader = torch.utils.data.DataLoader(samples, batch_size=batch, sampler=sampler, num_workers=workers,
                                         drop_last=True, prefetch_factor=4 if workers else None,
                                         pin_memory=device.type == 'cuda',
                                         collate_fn=collate_deferred if deferred else None)
    it, count = iter(loader), 0
    next(it)  # worker start-up excluded
    t0 = time.perf_counter()
    for b in it:
        rgb = decode_colour(b, TRANSFORM, device)['rgb'] if deferred else b['rgb'].to(device, non_blocking=True)
        b['depth'].to(device, non_blocking=True)
        count += rgb.shape[0]
    _sync(device)
    return count / (time.perf_counter() - t0) if count else float('nan')


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cpu')
    p.add_argument('--frames', type=int, default=64)
    p.add_argument('--workers', type=int, nargs='*', default=[], help='end-to-end variants (none by default)')
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--decode-batches', type=int, default=4)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--per-core-frames', type=int, default=48)
    p.add_argument('--json', action='store_true')
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    device = torch.device(args.device)
    import torchvision
    result = {'machine': platform.processor() or platform.machine(), 'cpu_count': os.cpu_count(),
              'torch': torch.__version__, 'torchvision': torchvision.__version__, 'device': str(device),
              'device_name': torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu',
              'frames': args.frames, 'batch_size': args.batch_size, 'output_size': [240, 320], 'rounds': args.rounds,
              'load_avg_1min_at_start': os.getloadavg()[0]}  # process-time rates drop on a loaded machine
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        result['source'] = write_scannet_like(tmp / '25k', args.frames)
        write_scannet_like(tmp / 'exported', min(args.frames, 64), colour_size=(1296, 968))
        sets = {'scannet_25k_640x480': ScanNetFrames(tmp / '25k'),
                'scannet_exported_1296x968': ScanNetFrames(tmp / 'exported')}
        runs = {}
        for _ in range(args.rounds):  # interleaved: machine noise hits every variant alike
            for name, frames in sets.items():
                for kind, source in (('full', frames), ('deferred', defer_colour(frames, name))):
                    runs.setdefault(f'per_core_worker_{kind}_{name}', []).append(
                        per_core_fps(_samples(source), args.per_core_frames))
                fps, cpu = device_decode(_samples(defer_colour(frames, name)), device, args.batch_size,
                                         args.decode_batches)
                runs.setdefault(f'device_decode_{name}_frames_s', []).append(fps)
                runs.setdefault(f'device_decode_{name}_main_cpu_ms_per_frame', []).append(1000 * cpu)
            for w in args.workers:
                for kind in ('worker', 'device'):
                    runs.setdefault(f'end_to_end_{kind}_{w}_workers', []).append(
                        end_to_end_fps(sets['scannet_25k_640x480'], device, w, args.batch_size, kind == 'device'))
        for name, values in runs.items():
            result[name] = statistics.median(values)
        for name in sets:  # paired by round: the two paths ran back to back, so machine noise mostly cancels
            full, deferred = runs[f'per_core_worker_full_{name}'], runs[f'per_core_worker_deferred_{name}']
            ratios = [d / f for d, f in zip(deferred, full)]
            result[f'per_core_deferred_over_full_{name}'] = statistics.median(ratios)
            result[f'per_core_deferred_over_full_{name}_range'] = [min(ratios), max(ratios)]
    result['load_avg_1min_at_end'] = os.getloadavg()[0]
    print_result(result, args.json)
    return 0


if __name__ == '__main__':
    sys.exit(main())
