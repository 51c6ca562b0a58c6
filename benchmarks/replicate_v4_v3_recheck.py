"""Re-check of replication v3 for issue 23: every paired difference docs/results.md quotes, recomputed from v3's own
per-seed numbers (``benchmarks/results/replicate_v3/results.json``) with the study's ``paired()`` (scipy's
``ttest_rel``, two-sided, df = 2), including the comparisons v3 never tabled (the paper-mask arm against MAE).

    python benchmarks/replicate_v4_v3_recheck.py   # prints the table, writes replicate_v3/recheck.json
"""
import json
import sys
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import replicate as R  # noqa: E402

V3 = HERE / 'results' / 'replicate_v3' / 'results.json'
CHECKS = [  # (evaluation, a, b, metric): a - b
    ('probe', 'mask3d', 'mae', 'semseg.miou'), ('probe', 'mask3d', 'mae', 'semseg.object_miou'),
    ('probe', 'mask3d_paper', 'mae', 'semseg.object_miou'), ('probe', 'mask3d_paper', 'mae', 'semseg.miou'),
    ('probe', 'mask3d_paper', 'mae', 'depth.abs_rel'), ('probe', 'mask3d_paper', 'mae', 'normals.mean_angle_deg'),
    ('probe', 'mae', 'scratch', 'semseg.object_miou'), ('probe', 'mae', 'scratch', 'semseg.miou'),
    ('probe', 'mae', 'scratch', 'depth.abs_rel'), ('probe', 'mae', 'scratch', 'depth.delta1'),
    ('probe', 'mae', 'scratch', 'normals.mean_angle_deg'),
    ('probe', 'mask3d', 'scratch', 'semseg.object_miou'),
    ('finetune', 'mask3d', 'scratch', 'object_miou'), ('finetune', 'mask3d', 'mae', 'object_miou'),
    ('finetune', 'mask3d_paper', 'mae', 'object_miou'), ('finetune', 'mask3d_paper', 'mae', 'miou'),
    ('finetune', 'mae', 'scratch', 'object_miou'),
]


def recheck(results: Dict) -> List[Dict]:
    seeds = [str(s) for s in results['budget']['seeds']]
    rows = []
    for evaluation, a, b, metric in CHECKS:
        d = R.paired([results[evaluation][a][s][metric] for s in seeds], [results[evaluation][b][s][metric]
                                                                         for s in seeds])
        rows.append({'evaluation': evaluation, 'comparison': f'{a} - {b}', 'metric': metric, **d})
    return rows


def main() -> int:
    rows = recheck(json.loads(V3.read_text()))
    (V3.parent / 'recheck.json').write_text(json.dumps(rows, indent=1))
    for r in rows:
        diffs = ', '.join(f'{x:+.4f}' for x in r['diffs'])
        print(f"{r['evaluation']:8s} {r['comparison']:22s} {r['metric']:24s} {r['mean']:+.4f} ± {r['std']:.4f} "
              f"(seeds {diffs}; t = {r['t']:.2f}, p = {r['p']:.3f})")
    return 0


if __name__ == '__main__':
    sys.exit(main())
