"""Frames/s of each dataset reader with the pre-training transform, for 0, 1 and 2 DataLoader workers, and of
the synthetic generator. Fixtures in every official format are written to a temp dir from synthetic frames
(240x320); the real 7-Scenes frames in ../shared/data/rgbd are used too where present.

    python benchmarks/data_throughput.py [--frames 12] [--total 96] [--json]
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared_data import shared_rgbd  # noqa: E402
from mask3d.training.data.cityscapes import CityscapesRGBD  # noqa: E402
from mask3d.training.data.cli import write_synthetic  # noqa: E402
from mask3d.training.data.folder import RGBDFolder  # noqa: E402
from mask3d.training.data.pretrain_data import EpochIndexSampler, PretrainSamples  # noqa: E402
from mask3d.training.data.scannet import ScanNet25kFrames, ScanNetFrames  # noqa: E402
from mask3d.training.data.scannet_sens import extract_sens, write_sens  # noqa: E402
from mask3d.training.data.sunrgbd import SUNRGBDFrames  # noqa: E402
from mask3d.training.data.synthetic import SyntheticRGBD, render_scene  # noqa: E402
from mask3d.training.data.transforms import JointTransform  # noqa: E402
from mask3d.training.data.writers import (write_cityscapes_sample, write_scannet25k_frame,  # noqa: E402
                                          write_sunrgbd_sample)



def build_fixtures(root: Path, n: int) -> dict:
    frames = [render_scene(0, i) for i in range(n)]
    K4 = np.eye(4)
    K4[:3, :3] = frames[0]['intrinsics']
    out = {'folder (synthetic PNGs)': RGBDFolder(write_synthetic(root / 'folder', n, 0, progress=False))}
    depths = [np.round(f['depth'][0] * 1000).astype(np.uint16) for f in frames]
    write_sens(root / 's.sens', [f['rgb'].transpose(1, 2, 0) for f in frames], depths, [np.eye(4)] * n,
               intrinsic_color=K4, intrinsic_depth=K4)
    extract_sens(root / 's.sens', root / 'scannet' / 'scene0000_00', progress=False)
    out['scannet exported (.sens)'] = ScanNetFrames(root / 'scannet')
    for i, (f, d) in enumerate(zip(frames, depths)):
        write_scannet25k_frame(root / 'scannet25k' / 'scene0000_00', i * 100, f['rgb'], d,
                               np.clip(f['semantic'] + 1, 0, 40), f['instance'] + 5000 * (f['instance'] > 0),
                               f['intrinsics'])
        write_sunrgbd_sample(root / 'sun' / f'NYU{i:04d}', f['rgb'], d, f['intrinsics'])
        disp = np.where(f['depth'][0] > 0, 1 + 256 * (0.209 * 2262 / np.maximum(f['depth'][0] * 20, 1e-3)), 0)
        write_cityscapes_sample(root / 'cityscapes', 'train', 'aachen', 0, i, f['rgb'],
                                np.full(f['semantic'].shape, 7, np.uint8), np.clip(disp, 0, 65535),
                                {'extrinsic': {'baseline': 0.209}, 'intrinsic': {'fx': 2262.0, 'fy': 2262.0,
                                                                                 'u0': 160.0, 'v0': 120.0}})
    out['scannet_frames_25k'] = ScanNet25kFrames(root / 'scannet25k')
    out['sunrgbd'] = SUNRGBDFrames(root / 'sun')
    out['cityscapes'] = CityscapesRGBD(root / 'cityscapes', split='train')
    seven = shared_rgbd('tsdf-fusion-python-7scenes', 'data')  # None: no ../shared (or MASK3D_HIDE_SHARED=1)
    if seven is not None:
        (root / 'seven' / 'rgb').mkdir(parents=True)
        (root / 'seven' / 'depth').mkdir()
        for i in range(min(n, 30)):
            (root / 'seven' / 'rgb' / f'{i:06d}.jpg').symlink_to(seven / f'frame-{i:06d}.color.jpg')
            (root / 'seven' / 'depth' / f'{i:06d}.png').symlink_to(seven / f'frame-{i:06d}.depth.png')
        out['7-scenes real (640x480 folder)'] = RGBDFolder(root / 'seven')
    out['synthetic (rendered on the fly)'] = SyntheticRGBD(length=n)
    return out


class _Repeat:
    """Cycle a small fixture so that each measurement reads ``total`` frames."""

    def __init__(self, dataset, total: int):
        self.dataset, self.total = dataset, total

    def __len__(self):
        return self.total

    def __getitem__(self, i):
        return self.dataset[i % len(self.dataset)]


def frames_per_second(dataset, workers: int, total: int) -> float:
    samples = PretrainSamples(_Repeat(dataset, total), JointTransform((240, 320)), patch_size=16, seed=0)
    sampler = EpochIndexSampler(len(samples), seed=0)
    sampler.set_epoch(0)
    loader = torch.utils.data.DataLoader(samples, batch_size=4, sampler=sampler, num_workers=workers,
                                         drop_last=True, collate_fn=lambda b: b)
    it = iter(loader)
    next(it)  # start-up (worker spawn) excluded
    t0 = time.perf_counter()
    count = 0
    for batch in it:
        count += len(batch)
    return count / (time.perf_counter() - t0) if count else float('nan')


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--frames', type=int, default=12, help='fixture frames per format')
    p.add_argument('--total', type=int, default=96, help='frames read per measurement (the fixture cycles)')
    p.add_argument('--json', action='store_true')
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    for i in range(10):
        render_scene(1, i)
    result = {'torch': torch.__version__, 'frames': args.frames, 'image_size': [240, 320],
              'synthetic_generator_fps_one_core': 10 / (time.perf_counter() - t0), 'readers': {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, ds in build_fixtures(Path(tmp), args.frames).items():
            result['readers'][name] = {w: frames_per_second(ds, w, args.total) for w in (0, 1, 2)}
            if not args.json:
                r = result['readers'][name]
                print(f'{name:34s} ' + '  '.join(f'{w} workers {r[w]:6.1f} fps' for w in (0, 1, 2)), flush=True)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"synthetic generator, one core: {result['synthetic_generator_fps_one_core']:.1f} frames/s")
    return 0


if __name__ == '__main__':
    sys.exit(main())
