"""Feature-extraction throughput: mask3d_vit_base_patch16 vs timm's vit_base_patch16_224 (the same network),
and features_only multi-level extraction, interleaved side by side in one process.

    python benchmarks/inference.py --batch-size 8 --image-size 240 320 --precision bf16 [--json]
"""
import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import mask3d  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='mask3d_vit_base_patch16')
    p.add_argument('--timm-model', default='vit_base_patch16_224')
    p.add_argument('--image-size', type=int, nargs=2, default=[240, 320], metavar=('H', 'W'))
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--precision', choices=('fp32', 'bf16'), default='bf16')
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    p.add_argument('--out-indices', type=int, nargs='+', default=[2, 5, 8, 11])
    p.add_argument('--model-args', type=json.loads, default={})
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--iters', type=int, default=10)
    p.add_argument('--json', action='store_true')
    return p.parse_args(argv)


def run(args) -> dict:
    torch.manual_seed(0)
    device = torch.device(args.device)
    x = torch.randn(args.batch_size, 3, *args.image_size, device=device)
    ours = mask3d.create_model(args.model, **args.model_args).to(device).eval()
    theirs = timm.create_model(args.timm_model, num_classes=0, dynamic_img_size=True, **args.model_args)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    theirs = theirs.to(device).eval()
    pyramid = mask3d.create_model(args.model, features_only=True, out_indices=tuple(args.out_indices),
                                  **args.model_args).to(device).eval()
    fns = {'mask3d': lambda: ours.forward_features(x), 'timm': lambda: theirs.forward_features(x),
           'mask3d_features_only': lambda: pyramid(x)}
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.precision == 'bf16' \
        else contextlib.nullcontext()
    times = {k: [] for k in fns}
    with torch.inference_mode(), autocast:
        same = torch.allclose(fns['mask3d']().float(), fns['timm']().float(), atol=1e-3)
        for _ in range(args.warmup):
            for f in fns.values():
                f()
        for _ in range(args.iters):
            for k, f in fns.items():
                if device.type == 'cuda':
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                f()
                if device.type == 'cuda':
                    torch.cuda.synchronize()
                times[k].append(time.perf_counter() - t0)
    r = {'model': args.model, 'timm_model': args.timm_model, 'image_size': list(args.image_size),
         'batch_size': args.batch_size, 'precision': args.precision, 'device': args.device,
         'torch': torch.__version__, 'timm': timm.__version__, 'threads': torch.get_num_threads(),
         'same_features': bool(same)}
    for k, v in times.items():
        r[f'{k}_img_s'] = args.batch_size / statistics.median(v)
    r['mask3d_over_timm'] = r['mask3d_img_s'] / r['timm_img_s']
    r['features_only_over_forward_features'] = r['mask3d_features_only_img_s'] / r['mask3d_img_s']
    return r


def main(argv=None) -> int:
    args = parse_args(argv)
    r = run(args)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{r['image_size'][0]}x{r['image_size'][1]} batch {r['batch_size']} {r['precision']} {r['device']} "
              f"({r['threads']} threads), torch {r['torch']}, timm {r['timm']}; same features: {r['same_features']}")
        for k in ('mask3d', 'timm', 'mask3d_features_only'):
            print(f"{k:22s} {r[f'{k}_img_s']:8.2f} img/s")
        print(f"mask3d / timm: {r['mask3d_over_timm']:.3f}   features_only / forward_features: "
              f"{r['features_only_over_forward_features']:.3f}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
