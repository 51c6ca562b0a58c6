"""Does bf16 autocast train like fp32? Two short pre-training runs, same seed, data and masks; loss curves
compared step by step and plotted.

    python benchmarks/precision_loss_curve.py [--steps 80] [--out docs/figures/bf16_vs_fp32_loss.png] [--json]
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _short_run import short_run_metrics  # noqa: E402
from mask3d.training.pretrain.config import load_config  # noqa: E402
from mask3d.training.visualize import save_figure  # noqa: E402


def curve(config: str, precision: str, steps: int, overrides) -> list:
    cfg = load_config(config, list(overrides) + [f'train.precision={precision}'])
    return [r['loss'] for r in short_run_metrics(cfg, steps)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default='training/configs/pretrain/synthetic_tiny.yaml')
    p.add_argument('--set', action='append', default=[])
    p.add_argument('--steps', type=int, default=80)
    p.add_argument('--out', default='docs/figures/bf16_vs_fp32_loss.png')
    p.add_argument('--json', action='store_true')
    args = p.parse_args(argv)
    fp32 = curve(args.config, 'fp32', args.steps, args.set)
    bf16 = curve(args.config, 'bf16', args.steps, args.set)
    diffs = [abs(a - b) for a, b in zip(fp32, bf16)]
    # step-to-step noise of the fp32 curve itself, as the yardstick for "within noise"
    noise = statistics.median(abs(a - b) for a, b in zip(fp32[1:], fp32[:-1]))
    tail = max(1, len(fp32) // 4)
    r = {'steps': args.steps, 'config': args.config, 'fp32_final_mean': statistics.mean(fp32[-tail:]),
         'bf16_final_mean': statistics.mean(bf16[-tail:]), 'median_abs_diff': statistics.median(diffs),
         'fp32_step_to_step_noise': noise, 'fp32': fp32, 'bf16': bf16}
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(range(1, len(fp32) + 1), fp32, label='fp32')
    ax.plot(range(1, len(bf16) + 1), bf16, label='bf16 autocast', alpha=0.8)
    ax.set_xlabel('step')
    ax.set_ylabel('loss (L1, standardised depth)')
    ax.set_title(f'{Path(args.config).stem}: same seed, data and masks')
    ax.legend()
    save_figure(fig, args.out, dpi=90)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"final loss (mean of last {tail} steps): fp32 {r['fp32_final_mean']:.4f}  bf16 {r['bf16_final_mean']:.4f}")
        print(f"median |fp32 - bf16| per step {r['median_abs_diff']:.4f}; fp32 step-to-step noise {noise:.4f}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
