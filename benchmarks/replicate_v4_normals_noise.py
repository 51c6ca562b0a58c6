"""How far the normals of the stored (noisy, mm-quantised) synthetic depth are from the normals of the clean depth:
the error issue 23 fixed in the probe's ground truth (docs/probing.md).

    python benchmarks/replicate_v4_normals_noise.py --sizes 96x128 192x256 --frames 20
"""
import argparse
import json
import sys

import numpy as np
import torch


def deviation(seed: int, frames: int, size) -> dict:
    from mask3d.training.data.synthetic import render_views
    from mask3d.training.probe.normals import normals_from_depth
    angles = []
    for i in range(frames):
        f = render_views(seed, i, 1, *size, clean_depth=True)[0]
        K = torch.from_numpy(f['intrinsics'])
        stored = torch.from_numpy(np.round(f['depth'][0] * 1000) / 1000).float()   # as depth/*.png holds it
        noisy, v_noisy = normals_from_depth(stored, K)
        clean, v_clean = normals_from_depth(torch.from_numpy(f['depth_clean'][0]), K)
        both = v_noisy & v_clean
        angles.append(torch.rad2deg(torch.acos((noisy * clean).sum(0)[both].clamp(-1, 1))))
    a = torch.cat(angles)
    return {'size': list(size), 'frames': frames, 'seed': seed, 'mean_deg': float(a.mean()),
            'median_deg': float(a.median())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sizes', nargs='+', default=['96x128', '192x256'])
    p.add_argument('--frames', type=int, default=20)
    p.add_argument('--seed', type=int, default=3000, help='synthetic seed (3000: the replications\' test rooms)')
    args = p.parse_args(argv)
    for s in args.sizes:
        print(json.dumps(deviation(args.seed, args.frames, tuple(int(x) for x in s.split('x')))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
