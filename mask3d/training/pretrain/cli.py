"""``mask3d pretrain`` and ``mask3d export``."""
import json
import logging
from pathlib import Path


def run_pretrain(args) -> int:
    from .config import load_config
    from .engine import pretrain

    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    cfg = load_config(args.config, args.set)  # validated
    summary = pretrain(cfg, args.output, resume=args.resume, overwrite=getattr(args, 'overwrite', False))
    if 'export' not in summary and 'first' not in summary:
        return 0  # not the main process
    run = Path(summary['run_dir'])
    first, final = summary.get('first', {}), summary.get('final', {})
    print()
    if first and final:
        drop = 100 * (1 - final['loss'] / first['loss']) if first['loss'] else 0.0
        print(f"loss: {first['loss']:.4f} (step {first['step']}) -> {final['loss']:.4f} (step {final['step']}), "
              f"{drop:.1f}% lower")
        if first.get('rgb_reliance') is not None and final.get('rgb_reliance') is not None:
            print(f"rgb_reliance: {first['rgb_reliance']:.3f} -> {final['rgb_reliance']:.3f}  (loss with another "
                  f"frame's RGB / true loss; about 1.0 = the encoder is being ignored, docs/pretraining.md)")
    print(f"run directory   {run}")
    print(f"config          {run / 'config.yaml'}")
    print(f"metrics         {run / 'metrics.jsonl'}")
    print(f"figures         {run / 'figures'}")
    print(f"checkpoint      {summary['checkpoint']}  (continue with --resume)")
    if 'export' in summary:
        print(f"backbone        {summary['export']}  -> mask3d.create_model('local-dir:{summary['export']}', "
              f"pretrained=True)")
    return 0


def run_export(args) -> int:
    from .engine import export_run

    out = export_run(args.run_dir, args.out, checkpoint=args.checkpoint)
    print(json.dumps({'export': str(out), 'load': f"mask3d.create_model('local-dir:{out}', pretrained=True)"}))
    return 0
