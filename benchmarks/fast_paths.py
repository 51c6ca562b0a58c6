"""Each fast path of the Mask3D pre-training step, measured before/after side by side in one process.

    python benchmarks/fast_paths.py --model mask3d_vit_base_patch16 --batch-size 8 [--json] [--only NAME ...]

Pairs (baseline vs alternative): fused SDPA attention vs unfused, gather vs boolean-mask indexing of the
visible tokens, channels-last vs contiguous input, torch.compile vs eager (with compile time), gradient
checkpointing vs none (time and memory).
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pretrain_throughput import build_steps, parse_args as throughput_args, peak_memory_mb  # noqa: E402

PAIRS = {
    'bf16_autocast': (['--precision', 'fp32'], ['--precision', 'bf16']),
    'fused_adamw': (['--optimizer', 'default'], ['--optimizer', 'fused']),
    'fused_attention': (['--attn', 'fused'], ['--attn', 'unfused']),
    'visible_gather': ([], ['--gather', 'mask_index']),
    'channels_last': ([], ['--channels-last']),
    'compile': ([], ['--compile']),
    'grad_checkpointing': ([], ['--grad-checkpointing']),
}


def compare(base_argv, name, iters):
    a_argv, b_argv = PAIRS[name]
    args_a = throughput_args(base_argv + a_argv + ['--variants', 'mask3d'])
    args_b = throughput_args(base_argv + b_argv + ['--variants', 'mask3d'])
    step_a = build_steps(args_a)['mask3d']
    t0 = time.perf_counter()
    step_b = build_steps(args_b)['mask3d']
    step_b()  # first call: compiles when --compile
    first_b = time.perf_counter() - t0
    t0 = time.perf_counter()
    step_a()
    first_a = time.perf_counter() - t0
    for _ in range(2):
        step_a()
        step_b()
    ta, tb = [], []
    for _ in range(iters):
        for step, out in ((step_a, ta), (step_b, tb)):
            t0 = time.perf_counter()
            step()
            out.append(time.perf_counter() - t0)
    r = {'pair': name, 'baseline': ' '.join(a_argv) or 'default', 'alternative': ' '.join(b_argv),
         'baseline_step_s': statistics.median(ta), 'alternative_step_s': statistics.median(tb),
         'first_call_baseline_s': first_a, 'first_call_alternative_s': first_b}
    r['alternative_speedup'] = r['baseline_step_s'] / r['alternative_step_s']
    if name == 'grad_checkpointing':
        r['baseline_step_memory_mb'] = peak_memory_mb(args_a, 'mask3d')[1]
        r['alternative_step_memory_mb'] = peak_memory_mb(args_b, 'mask3d')[1]
    return r


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='mask3d_vit_base_patch16')
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--precision', default='bf16')
    p.add_argument('--image-size', type=int, nargs=2, default=[240, 320])
    p.add_argument('--model-args', default='{}')
    p.add_argument('--decoder-depth', type=int, default=8)
    p.add_argument('--decoder-dim', type=int, default=512)
    p.add_argument('--iters', type=int, default=5)
    p.add_argument('--only', nargs='+', choices=list(PAIRS), default=list(PAIRS))
    p.add_argument('--json', action='store_true')
    args = p.parse_args(argv)
    base = ['--model', args.model, '--batch-size', str(args.batch_size), '--precision', args.precision,
            '--image-size', *map(str, args.image_size), '--model-args', args.model_args,
            '--decoder-depth', str(args.decoder_depth), '--decoder-dim', str(args.decoder_dim)]
    results = []
    for name in args.only:
        r = compare(base, name, args.iters)
        results.append(r)
        if not args.json:
            extra = ''
            if 'baseline_step_memory_mb' in r:
                extra = f"  memory {r['baseline_step_memory_mb']:.0f} -> {r['alternative_step_memory_mb']:.0f} MB"
            if name == 'compile':
                extra = f"  first call (compile) {r['first_call_alternative_s']:.1f}s vs {r['first_call_baseline_s']:.1f}s"
            print(f"{name:20s} {r['baseline_step_s']:.3f}s -> {r['alternative_step_s']:.3f}s "
                  f"(alternative x{r['alternative_speedup']:.2f}){extra}", flush=True)
    if args.json:
        print(json.dumps({'model': args.model, 'batch_size': args.batch_size, 'precision': args.precision,
                          'image_size': args.image_size, 'torch': torch.__version__, 'pairs': results}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
