"""Pre-training step throughput, measured side by side in one process.

Times a full training step (forward, backward, AdamW) of
  (a) mask3d:          Mask3DPretrainer (visible-only encoder, depth branch, fusion decoder),
  (b) full_tokens:     the same ViT encoder on all tokens + a linear depth head (a naive, SimMIM-style step),
  (c) visible_encoder: the encoder alone on only the visible tokens + a linear head (the floor for (a)),
interleaving the variants round by round (the machine is shared and noisy), after warm-up; reports the median.
FLOPs per step come from torch.utils.flop_counter.FlopCounterMode.

    python benchmarks/pretrain_throughput.py --model mask3d_vit_base_patch16 --batch-size 8 --precision bf16
    python benchmarks/pretrain_throughput.py --json ...      # one JSON object on stdout
    python benchmarks/pretrain_throughput.py --profile ...   # torch.profiler table of the Mask3D step
"""
import argparse
import contextlib
import json
import gc
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Tuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mask3d  # noqa: E402
from mask3d.training import Mask3DPretrainer, PretrainMethodConfig  # noqa: E402
from mask3d.training.pretrain.depth_targets import normalize_depth  # noqa: E402
from mask3d.training.pretrain.losses import masked_reconstruction_loss  # noqa: E402
from mask3d.training.pretrain.masking import random_patch_mask  # noqa: E402
from mask3d.training.pretrain.patches import patchify  # noqa: E402

VARIANTS = ('mask3d', 'full_tokens', 'visible_encoder')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='mask3d_vit_base_patch16')
    p.add_argument('--image-size', type=int, nargs=2, default=[240, 320], metavar=('H', 'W'))
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--precision', choices=('fp32', 'bf16'), default='bf16')
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    p.add_argument('--rgb-mask-ratio', type=float, default=0.8)
    p.add_argument('--depth-mask-ratio', type=float, default=0.8)
    p.add_argument('--decoder-dim', type=int, default=512)
    p.add_argument('--decoder-depth', type=int, default=8)
    p.add_argument('--model-args', type=json.loads, default={}, help='JSON kwargs for create_model, e.g. {"depth": 2}')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--iters', type=int, default=5)
    p.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=VARIANTS)
    p.add_argument('--no-memory', action='store_true', help='skip the per-variant peak memory measurement')
    p.add_argument('--grad-checkpointing', action='store_true')
    p.add_argument('--compile', action='store_true', help='torch.compile each step function')
    p.add_argument('--compile-mode', default='default', choices=('default', 'reduce-overhead', 'max-autotune'),
                   help="reduce-overhead: CUDA graphs (cudagraph trees) replay forward and backward")
    p.add_argument('--peak-tflops', type=float, default=989.0,
                   help='dense bf16 peak for MFU (H100/H200 SXM: 989); 0: no MFU')
    p.add_argument('--attn', choices=('auto', 'fused', 'unfused'), default='auto',
                   help="auto (the engine's default): fused SDPA on CUDA, plain matmul attention on CPU")
    p.add_argument('--gather', choices=('gather', 'mask_index'), default='gather',
                   help='how visible tokens are selected (fast path comparison)')
    p.add_argument('--channels-last', action='store_true', help='channels_last RGB input and patch conv')
    p.add_argument('--optimizer', choices=('fused', 'foreach', 'default'), default='fused',
                   help="AdamW implementation (the engine uses 'fused')")
    p.add_argument('--memory-only', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--profile', action='store_true', help='print a torch.profiler table of the Mask3D step')
    p.add_argument('--json', action='store_true')
    return p.parse_args(argv)


class _Head(nn.Module):
    """Linear depth-patch head on encoder tokens: what a SimMIM-style step pays besides the encoder."""

    def __init__(self, encoder: nn.Module, patch: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.embed_dim, patch * patch)


def build_steps(args) -> Dict[str, Callable[[], None]]:
    torch.manual_seed(0)
    device = torch.device(args.device)
    h, w = args.image_size
    b = args.batch_size
    rgb = torch.randn(b, 3, h, w, device=device)
    if args.channels_last:
        rgb = rgb.contiguous(memory_format=torch.channels_last)
    depth = (torch.rand(b, 1, h, w, device=device) * 5 + 0.3)
    n = (h // 16) * (w // 16)
    noise = torch.rand(b, 2, n, device=device)
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if args.precision == 'bf16'
                else contextlib.nullcontext())
    steps = {}

    def new_encoder():
        enc = mask3d.create_model(args.model, **args.model_args).to(device)
        if args.grad_checkpointing:
            enc.set_grad_checkpointing(True)
        if args.channels_last:
            enc.patch_embed.proj.to(memory_format=torch.channels_last)
        return enc

    fused = args.attn == 'fused' or (args.attn == 'auto' and device.type == 'cuda')

    def finish(module):
        for m in module.modules():
            if hasattr(m, 'fused_attn'):
                m.fused_attn = fused
        impl = {'fused': {'fused': True}, 'foreach': {'foreach': True}, 'default': {}}[args.optimizer]
        return torch.optim.AdamW(module.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, **impl)

    def compiled(fn):
        return torch.compile(fn, mode=args.compile_mode, dynamic=False, fullgraph=True) if args.compile else fn

    def training_step(loss_fn, optimizer):
        def make(fwd, mark_step):
            def step():
                if mark_step:  # CUDA graphs: this step's outputs may overwrite the last step's
                    torch.compiler.cudagraph_mark_step_begin()
                with autocast:
                    loss = fwd()
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            return step
        step = make(compiled(loss_fn), args.compile and args.compile_mode == 'reduce-overhead')
        step.eager = make(loss_fn, False)  # FLOPs are counted on eager ops (compiled kernels are not seen)
        return step

    if 'mask3d' in args.variants:
        cfg = PretrainMethodConfig(rgb_mask_ratio=args.rgb_mask_ratio, depth_mask_ratio=args.depth_mask_ratio,
                                   decoder_dim=args.decoder_dim, decoder_depth=args.decoder_depth)
        pre = Mask3DPretrainer(new_encoder(), cfg).to(device)
        if args.grad_checkpointing:
            pre.set_grad_checkpointing(True)
        if args.gather == 'mask_index':
            _use_mask_indexing(pre)
        steps['mask3d'] = training_step(lambda: pre(rgb, depth, mask_noise=noise)['loss'], finish(pre))

    target = normalize_depth(depth, 'standardize')
    target_patches = patchify(target.value, 16)
    valid_patches = patchify(target.valid.float(), 16)

    if 'full_tokens' in args.variants:
        full = _Head(new_encoder(), 16).to(device)

        def loss_b():
            tokens = full.encoder.forward_features(rgb)[:, full.encoder.num_prefix_tokens:]
            return masked_reconstruction_loss(full.head(tokens), target_patches, valid_patches, 'l1')
        steps['full_tokens'] = training_step(loss_b, finish(full))

    if 'visible_encoder' in args.variants:
        vis = _Head(new_encoder(), 16).to(device)
        helper = Mask3DPretrainer(vis.encoder, PretrainMethodConfig(decoder_depth=0, depth_encoder_depth=0,
                                                                     decoder_dim=64, decoder_num_heads=4))
        keep = random_patch_mask(b, n, args.rgb_mask_ratio, noise=noise[:, 0]).ids_keep
        idx = keep.unsqueeze(-1).expand(-1, -1, 256)
        vis_target, vis_valid = target_patches.gather(1, idx), valid_patches.gather(1, idx)

        def loss_c():
            tokens = helper.encode_rgb(rgb, keep)[:, vis.encoder.num_prefix_tokens:]
            return masked_reconstruction_loss(vis.head(tokens), vis_target, vis_valid, 'l1')
        steps['visible_encoder'] = training_step(loss_c, finish(vis))
    return steps


def _use_mask_indexing(pre: Mask3DPretrainer) -> None:
    """Alternative visible-token selection by boolean-mask indexing (for the fast-path comparison)."""
    import mask3d.training.pretrain.pretrainer as mod

    def by_mask(tokens, ids):
        mask = torch.zeros(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        mask.scatter_(1, ids, True)
        return tokens[mask].view(tokens.shape[0], ids.shape[1], tokens.shape[-1])
    mod.gather_tokens = by_mask


def _sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def count_flops(step: Callable[[], None]) -> float:
    with FlopCounterMode(display=False) as counter:
        getattr(step, 'eager', step)()
    return float(counter.get_total_flops())


def _rss_kib():
    status = open('/proc/self/status').read()
    return {k: int(v.split()[0]) for k, v in (line.split(':', 1) for line in status.splitlines())
            if k in ('VmRSS', 'VmHWM')}


def peak_memory_mb(args, variant) -> Tuple[float, float]:
    """(peak, growth) in MiB for two steps of one variant, each variant in a fresh process.

    CUDA: max_memory_allocated, and its growth over the allocation after building. CPU (Linux): the process's
    peak RSS (VmHWM, reset through /proc/self/clear_refs after building) and its growth over the RSS then:
    gradients, optimizer state and the activation peak.
    """
    import subprocess
    argv = [sys.executable, __file__, '--memory-only', '--variants', variant, '--model', args.model,
            '--image-size', *map(str, args.image_size), '--batch-size', str(args.batch_size),
            '--precision', args.precision, '--device', args.device, '--rgb-mask-ratio', str(args.rgb_mask_ratio),
            '--depth-mask-ratio', str(args.depth_mask_ratio), '--decoder-dim', str(args.decoder_dim),
            '--decoder-depth', str(args.decoder_depth), '--model-args', json.dumps(args.model_args),
            '--optimizer', args.optimizer, '--gather', args.gather]
    argv += ['--attn', args.attn]
    argv += [flag for flag, on in (('--grad-checkpointing', args.grad_checkpointing),
                                   ('--channels-last', args.channels_last)) if on]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    peak, growth = json.loads(out)
    return peak, growth


def _measure_memory_here(args) -> Tuple[float, float]:
    variant = args.variants[0]
    step = build_steps(args)[variant]
    if args.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        step()
        peak = torch.cuda.max_memory_allocated()
        return peak / 2 ** 20, (peak - base) / 2 ** 20
    gc.collect()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # reset the peak-RSS counter
    base = _rss_kib()['VmRSS']
    step()
    step()
    peak = _rss_kib()['VmHWM']
    return peak / 1024.0, (peak - base) / 1024.0


def run(args) -> dict:
    steps = build_steps(args)
    flops = {name: count_flops(step) for name, step in steps.items()}  # also the first warm-up step
    t0 = time.perf_counter()
    for step in steps.values():  # compiles here, when compiling
        step()
    _sync(args.device)
    first_call_s = time.perf_counter() - t0
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    _sync(args.device)
    times = {name: [] for name in steps}
    for _ in range(args.iters):  # interleaved rounds: noise hits every variant alike
        for name, step in steps.items():
            _sync(args.device)
            t0 = time.perf_counter()
            step()
            _sync(args.device)
            times[name].append(time.perf_counter() - t0)
    b = args.batch_size
    result = {
        'model': args.model, 'image_size': list(args.image_size), 'batch_size': b, 'precision': args.precision,
        'device': args.device, 'rgb_mask_ratio': args.rgb_mask_ratio, 'depth_mask_ratio': args.depth_mask_ratio,
        'decoder': f'{args.decoder_depth}x{args.decoder_dim}', 'torch': torch.__version__,
        'threads': torch.get_num_threads(), 'machine': platform.processor() or platform.machine(),
        'iters': args.iters, 'optimizer': f'AdamW ({args.optimizer})',
        'first_call_s': first_call_s, 'peak_tflops': args.peak_tflops,
        'gpu': torch.cuda.get_device_name(0) if args.device == 'cuda' else None,
        'fast_paths': {'grad_checkpointing': args.grad_checkpointing, 'compile': args.compile,
                       'compile_mode': args.compile_mode if args.compile else None,
                                            'attn': args.attn, 'gather': args.gather,
                                            'channels_last': args.channels_last},
    }
    for name in steps:
        med = statistics.median(times[name])
        result[f'{name}_step_s'] = med
        result[f'{name}_img_s'] = b / med
        result[f'{name}_gflops_per_img'] = flops[name] / b / 1e9
        result[f'{name}_gflop_s'] = flops[name] / med / 1e9
        if args.peak_tflops:
            result[f'{name}_mfu'] = flops[name] / med / 1e12 / args.peak_tflops
    if {'mask3d', 'full_tokens'} <= set(steps):
        result['speedup_vs_full_tokens'] = result['mask3d_img_s'] / result['full_tokens_img_s']
        result['flop_ratio_full_over_mask3d'] = flops['full_tokens'] / flops['mask3d']
        result['gflop_s_ratio_vs_full_tokens'] = result['mask3d_gflop_s'] / result['full_tokens_gflop_s']
    if {'mask3d', 'visible_encoder'} <= set(steps):
        result['mask3d_over_visible_encoder'] = result['mask3d_img_s'] / result['visible_encoder_img_s']
    if not args.no_memory:
        mem = {name: peak_memory_mb(args, name) for name in steps}
        for name, (peak, growth) in mem.items():
            result[f'{name}_peak_memory_mb'] = peak
            result[f'{name}_step_memory_mb'] = growth
        result['peak_memory_mb'] = mem['mask3d'][0] if 'mask3d' in mem else max(p for p, _ in mem.values())
    if args.profile and 'mask3d' in steps:
        from torch.profiler import ProfilerActivity, profile
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == 'cuda' else [])
        with profile(activities=activities) as prof:
            steps['mask3d']()
        result['profile'] = prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=20)
    return result


def print_table(r: dict) -> None:
    print(f"{r['model']}  {r['image_size'][0]}x{r['image_size'][1]}  batch {r['batch_size']}  {r['precision']}  "
          f"{r['device']} ({r['threads']} threads)  masks {r['rgb_mask_ratio']}/{r['depth_mask_ratio']}  "
          f"decoder {r['decoder']}  torch {r['torch']}")
    print(f"{'variant':18s} {'step s':>8s} {'img/s':>8s} {'GFLOP/img':>10s} {'GFLOP/s':>9s} {'peak MB':>9s} "
          f"{'step MB':>9s}")
    for name in VARIANTS:
        if f'{name}_img_s' in r:
            mem = [r.get(f'{name}_peak_memory_mb'), r.get(f'{name}_step_memory_mb')]
            mem = ['-' if m is None else str(round(m)) for m in mem]
            print(f"{name:18s} {r[f'{name}_step_s']:8.3f} {r[f'{name}_img_s']:8.2f} "
                  f"{r[f'{name}_gflops_per_img']:10.2f} {r[f'{name}_gflop_s']:9.1f} {mem[0]:>9s} {mem[1]:>9s}")
    for key in ('speedup_vs_full_tokens', 'flop_ratio_full_over_mask3d', 'gflop_s_ratio_vs_full_tokens',
                'mask3d_over_visible_encoder'):
        if key in r:
            print(f'{key}: {r[key]:.3f}')
    if 'profile' in r:
        print(r['profile'])


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.memory_only:
        print(json.dumps(_measure_memory_here(args)))
        return 0
    result = run(args)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != 'profile'}))
        if 'profile' in result:
            print(result['profile'], file=sys.stderr)
    else:
        print_table(result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
