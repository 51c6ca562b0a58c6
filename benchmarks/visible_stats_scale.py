"""How large do standardised depth targets get when the mean and std come from the visible depth patches only?

With ``depth_norm_stats: visible`` the target is standardised with the statistics of the few visible depth
patches; with few patches (a high depth mask ratio at a small image size) the std is small and the targets
become large and heavy-tailed. Prints mean |target| per setting against all-pixel statistics, as JSON lines.

    python benchmarks/visible_stats_scale.py --root runs/replicate_v2_default/data/test
"""
import argparse
import json

import numpy as np
import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--root', required=True, help='an RGB-D folder (e.g. written by mask3d data synth)')
    p.add_argument('--frames', type=int, default=128)
    p.add_argument('--sizes', default='96x128,128x160', help='image sizes HxW, comma-separated')
    p.add_argument('--ratios', type=float, nargs='+', default=[0.8, 0.95], help='depth mask ratios')
    args = p.parse_args(argv)
    from mask3d.training.data.folder import RGBDFolder
    from mask3d.training.data.transforms import JointTransform
    from mask3d.training.pretrain.depth_targets import normalize_depth
    from mask3d.training.pretrain.masking import random_patch_mask
    from mask3d.training.pretrain.patches import upsample_patch_mask
    ds = RGBDFolder(args.root)
    for size in [[int(v) for v in s.split('x')] for s in args.sizes.split(',')]:
        tf = JointTransform(size, scale=(1.0, 1.0), hflip=0.0)
        rng = np.random.default_rng(0)
        torch.manual_seed(0)
        depth = torch.stack([tf(ds[i], rng)['depth'] for i in range(min(args.frames, len(ds)))])
        grid = (size[0] // 16, size[1] // 16)
        n = grid[0] * grid[1]
        every_pixel = float(normalize_depth(depth, 'standardize').value.abs().mean())
        for ratio in args.ratios:
            mask = random_patch_mask(len(depth), n, ratio)
            visible = ~upsample_patch_mask(mask.mask, 16, grid).bool()
            per_frame = normalize_depth(depth, 'standardize', stats_pixels=visible).value.abs().flatten(1).mean(1)
            print(json.dumps({'image_size': size, 'depth_mask_ratio': ratio,
                              'visible_patches': n - int(mask.mask[0].sum()), 'patches': n,
                              'mean_abs_target_visible_stats': round(float(per_frame.mean()), 3),
                              'median_frame': round(float(per_frame.median()), 3),
                              'p90_frame': round(float(per_frame.quantile(0.9)), 3),
                              'max_frame': round(float(per_frame.max()), 3),
                              'mean_abs_target_all_pixel_stats': round(every_pixel, 3)}))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
