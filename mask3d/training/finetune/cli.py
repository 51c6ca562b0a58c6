"""``mask3d finetune`` and ``mask3d evaluate``."""
import json
import logging
from pathlib import Path


def _print_metrics(result) -> None:
    flat = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()
            if not isinstance(v, (dict, list))}
    print(json.dumps(flat))


def run_finetune(args) -> int:
    from .config import load_finetune_config
    from .engine import finetune

    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    overrides = list(args.set)
    if args.backbone:
        overrides.append(f'model.backbone={json.dumps(args.backbone)}')
    cfg = load_finetune_config(args.config, overrides, task=args.task)
    run = Path(args.output)
    summary = finetune(cfg, run, resume=args.resume, overwrite=args.overwrite)
    if not (run / 'summary.json').is_file():
        return 0  # not the main process
    print()
    _print_metrics(summary['val'])
    print(f"run directory   {run}")
    print(f"metrics         {run / 'metrics.jsonl'} and {run / 'eval' / 'metrics_val.json'}")
    print(f"predictions     {run / 'eval' / 'predictions_val.png'}")
    print(f"checkpoint      {summary['checkpoint']}  (continue with --resume)")
    print(f"weights         {run / 'model.safetensors'}")
    return 0


def run_evaluate(args) -> int:
    from .config import load_finetune_config
    from .engine import evaluate

    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    cfg = load_finetune_config(args.config, args.set, task=args.task) if args.config else None
    result = evaluate(args.checkpoint, cfg, task=args.task, split=args.split, out_dir=args.output)
    _print_metrics(result)
    print(f"metrics         {Path(result['out_dir']) / f'metrics_{args.split}.json'}")
    print(f"predictions     {Path(result['out_dir']) / f'predictions_{args.split}.png'}")
    return 0
