"""How the Mask3D step's time and memory grow with image size and mask ratio; writes a table and a PNG plot.

    python benchmarks/cost_scaling.py --batch-size 4 --out docs/figures/cost_scaling.png [--json results.json]
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pretrain_throughput import parse_args as throughput_args, run  # noqa: E402

from mask3d.training.visualize import save_figure  # noqa: E402

SIZES = [(224, 224), (240, 320), (480, 640)]
RATIOS = [0.5, 0.6, 0.75, 0.8, 0.9]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='mask3d_vit_base_patch16')
    p.add_argument('--batch-size', type=int, default=4)
    p.add_argument('--precision', default='bf16')
    p.add_argument('--iters', type=int, default=3)
    p.add_argument('--model-args', default='{}')
    p.add_argument('--out', default='docs/figures/cost_scaling.png')
    p.add_argument('--json', default=None, help='also write the raw results here')
    p.add_argument('--sizes', type=int, nargs='+', default=None, help='H W pairs, e.g. 224 224 240 320')
    p.add_argument('--ratios', type=float, nargs='+', default=RATIOS)
    p.add_argument('--decoder-depth', default='8')
    p.add_argument('--decoder-dim', default='512')
    args = p.parse_args(argv)
    common = ['--model', args.model, '--batch-size', str(args.batch_size), '--precision', args.precision,
              '--iters', str(args.iters), '--warmup', '1', '--variants', 'mask3d', 'full_tokens',
              '--model-args', args.model_args, '--decoder-depth', args.decoder_depth, '--decoder-dim', args.decoder_dim]
    sizes = list(zip(args.sizes[::2], args.sizes[1::2])) if args.sizes else SIZES
    rows = []
    for h, w in sizes:
        r = run(throughput_args(common + ['--image-size', str(h), str(w)]))
        rows.append(dict(sweep='image_size', h=h, w=w, ratio=0.8, **_pick(r)))
        print(json.dumps(rows[-1]), flush=True)
    h0, w0 = (240, 320) if (240, 320) in sizes else sizes[0]
    for ratio in args.ratios:
        r = run(throughput_args(common + ['--image-size', str(h0), str(w0), '--rgb-mask-ratio', str(ratio),
                                          '--depth-mask-ratio', str(ratio)]))
        rows.append(dict(sweep='mask_ratio', h=h0, w=w0, ratio=ratio, **_pick(r)))
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({'model': args.model, 'batch_size': args.batch_size,
                                               'precision': args.precision, 'rows': rows}, indent=1))
    plot(rows, Path(args.out), f'{args.model}, batch {args.batch_size}, {args.precision}')
    print(table(rows))
    return 0


def _pick(r):
    return {k: r[k] for k in ('mask3d_step_s', 'full_tokens_step_s', 'mask3d_step_memory_mb',
                              'full_tokens_step_memory_mb', 'mask3d_gflops_per_img', 'full_tokens_gflops_per_img')}


def table(rows) -> str:
    lines = ['| sweep | input | mask ratio | Mask3D step (s) | full-token step (s) | speed-up | Mask3D step memory (MB) '
             '| full-token step memory (MB) |', '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for r in rows:
        lines.append(f"| {r['sweep']} | {r['h']}x{r['w']} | {r['ratio']} | {r['mask3d_step_s']:.2f} | "
                     f"{r['full_tokens_step_s']:.2f} | {r['full_tokens_step_s'] / r['mask3d_step_s']:.2f} | "
                     f"{r['mask3d_step_memory_mb']:.0f} | {r['full_tokens_step_memory_mb']:.0f} |")
    return '\n'.join(lines)


def plot(rows, out: Path, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    sizes = [r for r in rows if r['sweep'] == 'image_size']
    ratios = [r for r in rows if r['sweep'] == 'mask_ratio']
    labels = [f"{r['h']}x{r['w']}" for r in sizes]
    ax = axes[0]
    ax.plot(labels, [r['mask3d_step_s'] for r in sizes], 'o-', label='Mask3D step (masks 0.8/0.8)')
    ax.plot(labels, [r['full_tokens_step_s'] for r in sizes], 's--', label='full-token encoder step')
    ax.set_xlabel('input size')
    ax.set_ylabel('step time (s)')
    ax2 = ax.twinx()
    ax2.bar(labels, [r['mask3d_step_memory_mb'] for r in sizes], alpha=0.2, color='C0')
    ax2.set_ylabel('Mask3D step memory (MB, bars)')
    ax.legend(loc='upper left')
    ax = axes[1]
    ax.plot([r['ratio'] for r in ratios], [r['mask3d_step_s'] for r in ratios], 'o-',
            label=f"Mask3D step, {ratios[0]['h']}x{ratios[0]['w']}")
    ax.axhline(ratios[0]['full_tokens_step_s'], ls='--', color='C1', label='full-token encoder step')
    ax.set_xlabel('mask ratio (RGB = depth)')
    ax.set_ylabel('step time (s)')
    ax.legend()
    fig.suptitle(title)
    save_figure(fig, out, dpi=90)


if __name__ == '__main__':
    sys.exit(main())
