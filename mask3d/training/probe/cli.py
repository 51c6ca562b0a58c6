"""``mask3d probe``: the 3D awareness of any backbone from frozen features."""
import json
import logging
from pathlib import Path


def run_probe_cli(args) -> int:
    from .config import load_probe_config
    from .engine import run_probe

    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    overrides = list(args.set)
    if args.backbone:
        overrides.append(f'model.backbone={json.dumps(args.backbone)}')
    cfg = load_probe_config(args.config, overrides)
    out = Path(args.output)
    result = run_probe(cfg, out)
    summary = {}
    for task, keys in (('depth', ('abs_rel', 'delta1', 'rmse')), ('normals', ('mean_angle_deg', 'within_11_25')),
                       ('semseg', ('miou', 'object_miou')), ('correspondence', None)):
        if task in result:
            summary[task] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result[task].items()
                             if (keys is None and not isinstance(v, (list, dict))) or (keys and k in keys)}
    print(json.dumps(summary))
    for task, reason in result.get('skipped', {}).items():
        print(f'skipped {task}: {reason}')
    print(f"probe results   {out / 'probe.json'}  ({result['seconds']} s)")
    for name, path in result['figures'].items():
        print(f'{name:15s} {path}')
    return 0
