"""Replication v4: per-seed probe JSON files -> paired statistics -> the pre-registered verdict per endpoint.

The rules are written in docs/results.md ("v4 plan") and committed before any v4 run; this script applies them
literally. Inputs are the ``probe.json`` files of ``mask3d probe`` under ``ROOT/probe/ARM/seedS/`` (as
``benchmarks/replicate.py --preset v4a|v4b`` writes them) and the margins fixed by the pilot.

    python benchmarks/replicate_v4_analysis.py --root runs/replicate_v4a --question A \
        --margins benchmarks/results/replicate_v4_pilot/margins.json
    python benchmarks/replicate_v4_analysis.py --pilot runs/replicate_v4_pilot    # margins + power check

Rules (the docs hold the same text):
- endpoints: depth AbsRel (lower better), depth delta1, normals mean angle in degrees (lower better), semantic
  mIoU over all classes; each from the frozen-feature probe on the test rooms;
- per seed s, the *improvement* of Mask3D over a comparator: comparator - Mask3D for lower-better endpoints,
  Mask3D - comparator otherwise (positive = Mask3D better);
- a comparison is **better** when every seed's improvement is > 0 and the one-sided paired t test (H1: mean > 0)
  has p < ALPHA; **worse** when every seed's improvement is < 0 and the one-sided test the other way has
  p < ALPHA; **below margin** when neither holds and the one-sided upper (1 - ALPHA) confidence bound of the mean
  improvement is below the endpoint's margin (an improvement worth reporting is excluded); else **unresolved**;
- per question and endpoint: **reproduced** if Mask3D is *better* than both comparators (A: MAE continued, no
  stage 2; B: MAE, random init); **not reproduced** if it is *worse* or *below margin* against at least one;
  otherwise **inconclusive**;
- per question, the headline: **reproduced** if at least one endpoint is reproduced and Mask3D is *worse* than a
  comparator on none; **not reproduced** if every endpoint is not reproduced; otherwise **inconclusive**;
- margins (from the pilot): margin_e = max(FLOOR_e, 3 * sigma_e), sigma_e the seed-to-seed standard deviation of
  endpoint e pooled over the pilot's arms (root mean square of the per-arm sample standard deviations);
- power check: for n seeds, the probability that a true improvement equal to the margin is declared *better*,
  with paired differences ~ Normal(margin, sigma_d), sigma_d the pooled standard deviation of the pilot's paired
  differences between arms (or sqrt(2) * sigma_e, whichever is larger), by simulation (20000 draws, seed 0).
  Because *better* needs every seed on the same side, power does not grow without limit with the seed count
  (each extra seed is one more chance of a seed on the wrong side): the study uses the smallest count in
  SEED_COUNTS whose power reaches POWER_TARGET on every endpoint, else the count with the highest minimum power.
"""
import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

ALPHA = 0.05
ENDPOINTS = {'depth.abs_rel': False, 'depth.delta1': True, 'normals.mean_angle_deg': False, 'semseg.miou': True}
FLOORS = {'depth.abs_rel': 0.005, 'depth.delta1': 0.01, 'normals.mean_angle_deg': 0.5, 'semseg.miou': 0.01}
QUESTIONS = {
    'A': {'mask3d': 'a_mask3d', 'comparators': ('a_mae', 'a_none')},     # continued pre-training from stage 1
    'B': {'mask3d': 'b_mask3d', 'comparators': ('b_mae', 'b_random')},   # from scratch
}
PILOT_ARMS = ('b_mask3d', 'b_mae', 'b_random')
POWER_TARGET = 0.8
MARGIN_SIGMAS = 3.0
SEED_COUNTS = (3, 4, 5, 6)


def _value(probe: Dict, key: str) -> float:
    node = probe
    for part in key.split('.'):
        node = node[part]
    return float(node)


def load_scores(root: Path, arms: Sequence[str]) -> Dict[str, Dict[int, Dict[str, float]]]:
    """{arm: {seed: {endpoint: value}}} from ROOT/probe/ARM/seedS/probe.json; an arm without files is an error."""
    scores = {}
    for arm in arms:
        files = sorted((root / 'probe' / arm).glob('seed*/probe.json'))
        if not files:
            raise SystemExit(f'{root / "probe" / arm}: no seed*/probe.json (run the study first)')
        scores[arm] = {int(f.parent.name[4:]): {e: _value(json.loads(f.read_text()), e) for e in ENDPOINTS}
                       for f in files}
    return scores


def _t_one_sided(diffs: Sequence[float]) -> Dict[str, float]:
    """Paired t of the mean improvement against 0 and its one-sided p values (scipy.stats.t)."""
    from scipy.stats import t as student
    n = len(diffs)
    mean = statistics.fmean(diffs)
    sd = statistics.stdev(diffs) if n > 1 else float('nan')
    if n < 2:
        return {'mean': mean, 'std': sd, 't': float('nan'), 'p_greater': float('nan'), 'p_less': float('nan'),
                'upper': float('nan')}
    se = sd / math.sqrt(n)
    t = mean / se if se > 0 else math.copysign(math.inf, mean) if mean else 0.0
    return {'mean': mean, 'std': sd, 't': t, 'p_greater': float(student.sf(t, n - 1)),
            'p_less': float(student.cdf(t, n - 1)), 'upper': mean + float(student.ppf(1 - ALPHA, n - 1)) * se}


def compare(mask3d: Dict[int, float], other: Dict[int, float], higher_better: bool, margin: float) -> Dict:
    """Improvement of Mask3D over ``other`` per seed (positive = better) and its outcome under the rules."""
    seeds = sorted(set(mask3d) & set(other))
    if len(seeds) != len(mask3d) or len(seeds) != len(other):
        raise SystemExit(f'seeds differ between arms: {sorted(mask3d)} vs {sorted(other)}')
    sign = 1.0 if higher_better else -1.0
    diffs = [sign * (mask3d[s] - other[s]) for s in seeds]
    stats = _t_one_sided(diffs)
    if min(diffs) > 0 and stats['p_greater'] < ALPHA:
        outcome = 'better'
    elif max(diffs) < 0 and stats['p_less'] < ALPHA:
        outcome = 'worse'
    elif stats['upper'] < margin:
        outcome = 'below margin'
    else:
        outcome = 'unresolved'
    return {'seeds': seeds, 'improvements': diffs, **stats, 'margin': margin, 'outcome': outcome}


def endpoint_verdict(comparisons: Dict[str, Dict]) -> str:
    outcomes = [c['outcome'] for c in comparisons.values()]
    if all(o == 'better' for o in outcomes):
        return 'reproduced'
    if any(o in ('worse', 'below margin') for o in outcomes):
        return 'not reproduced'
    return 'inconclusive'


def question_verdict(scores: Dict, question: str, margins: Dict[str, float]) -> Dict:
    """Every endpoint's comparisons and verdict, then the question's headline (rules in the module docstring)."""
    q = QUESTIONS[question]
    endpoints = {}
    for e, higher in ENDPOINTS.items():
        comps = {other: compare({s: v[e] for s, v in scores[q['mask3d']].items()},
                                {s: v[e] for s, v in scores[other].items()}, higher, margins[e])
                 for other in q['comparators']}
        endpoints[e] = {'comparisons': comps, 'verdict': endpoint_verdict(comps)}
    verdicts = [x['verdict'] for x in endpoints.values()]
    worse = any(c['outcome'] == 'worse' for x in endpoints.values() for c in x['comparisons'].values())
    if 'reproduced' in verdicts and not worse:
        headline = 'reproduced'
    elif all(v == 'not reproduced' for v in verdicts):
        headline = 'not reproduced'
    else:
        headline = 'inconclusive'
    return {'question': question, 'alpha_one_sided': ALPHA, 'margins': margins, 'endpoints': endpoints,
            'verdict': headline}


def report(result: Dict) -> str:
    q = QUESTIONS[result['question']]
    lines = [f"**Question {result['question']}: {result['verdict']}** (one-sided paired t, alpha {ALPHA}; "
             f"improvement = Mask3D better when positive)", '',
             '| endpoint | margin | ' + ' | '.join(f'{q["mask3d"]} vs {o}: improvements; mean ± sd, t, p' for o in
                                                  q['comparators']) + ' | verdict |',
             '|---|---|' + '---|' * len(q['comparators']) + '---|']
    for e, x in result['endpoints'].items():
        cells = []
        for c in x['comparisons'].values():
            per = ', '.join(f'{d:+.4f}' for d in c['improvements'])
            cells.append(f"{per}; {c['mean']:+.4f} ± {c['std']:.4f}, t = {c['t']:.2f}, p = {c['p_greater']:.3f} "
                         f"-> {c['outcome']}")
        lines.append(f"| {e} | {result['margins'][e]:.4g} | " + ' | '.join(cells) + f" | {x['verdict']} |")
    return '\n'.join(lines) + '\n'


# ---- pilot: margins and power ------------------------------------------------------------------------------

def pooled_sd(groups: Sequence[Sequence[float]]) -> float:
    """Root mean square of the per-group sample standard deviations (groups of >= 2 values)."""
    sds = [statistics.stdev(g) for g in groups if len(g) > 1]
    return math.sqrt(statistics.fmean(s * s for s in sds)) if sds else float('nan')


def margins_from_pilot(scores: Dict[str, Dict[int, Dict[str, float]]]) -> Dict[str, Dict[str, float]]:
    """Per endpoint: sigma (pooled seed-to-seed sd over arms), sigma_d (pooled sd of paired differences between
    arms, at least sqrt(2) sigma) and margin = max(FLOOR, MARGIN_SIGMAS sigma)."""
    arms = list(scores)
    out = {}
    for e in ENDPOINTS:
        sigma = pooled_sd([[v[e] for v in scores[a].values()] for a in arms])
        pairs = []
        for i, a in enumerate(arms):
            for b in arms[i + 1:]:
                seeds = sorted(set(scores[a]) & set(scores[b]))
                pairs.append([scores[a][s][e] - scores[b][s][e] for s in seeds])
        sigma_d = max(pooled_sd(pairs), math.sqrt(2) * sigma)
        out[e] = {'sigma': sigma, 'sigma_d': sigma_d, 'margin': max(FLOORS[e], MARGIN_SIGMAS * sigma)}
    return out


def power(n: int, effect: float, sigma_d: float, sims: int = 20000, seed: int = 0) -> float:
    """P(declared *better*) for n seeds when the true mean improvement is ``effect``, sd ``sigma_d``."""
    from scipy.stats import t as student
    d = np.random.default_rng(seed).normal(effect, sigma_d, size=(sims, n))
    mean, sd = d.mean(1), d.std(1, ddof=1)
    t = mean / (sd / math.sqrt(n))
    return float(((d.min(1) > 0) & (student.sf(t, n - 1) < ALPHA)).mean())


def power_check(noise: Dict[str, Dict[str, float]], seeds: Sequence[int] = SEED_COUNTS) -> Dict:
    """Power at each seed count and endpoint for an improvement equal to the margin; the seed count to use: the
    smallest that reaches POWER_TARGET on every endpoint, else the one with the highest minimum power."""
    table = {n: {e: power(n, x['margin'], x['sigma_d']) for e, x in noise.items()} for n in seeds}
    enough = [n for n in seeds if min(table[n].values()) >= POWER_TARGET]
    best = enough[0] if enough else max(seeds, key=lambda n: min(table[n].values()))
    return {'power': table, 'target': POWER_TARGET, 'reaches_target': bool(enough), 'seeds': best,
            'min_power_at_seeds': min(table[best].values())}


def pilot_report(result: Dict) -> str:
    """The pilot's noise, margins and power check as markdown tables."""
    noise, check = result['noise'], result['power_check']
    counts = sorted(check['power'], key=int)
    lines = ['| endpoint | sigma (seed-to-seed) | sigma_d (paired) | margin = max(floor, 3 sigma) | ' +
             ' | '.join(f'power, {n} seeds' for n in counts) + ' |', '|---|---|---|---|' + '---|' * len(counts)]
    for e, x in noise.items():
        lines.append(f"| {e} | {x['sigma']:.4g} | {x['sigma_d']:.4g} | {x['margin']:.4g} | " +
                     ' | '.join(f"{check['power'][n][e]:.2f}" for n in counts) + ' |')
    lines += ['', f"Seeds for the study: **{check['seeds']}** (minimum power over endpoints "
                  f"{check['min_power_at_seeds']:.2f}; target {check['target']} "
                  f"{'reached' if check['reaches_target'] else 'NOT reached'})."]
    return '\n'.join(lines) + '\n'


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--root', type=Path, help='a v4 study folder (ROOT/probe/ARM/seedS/probe.json)')
    p.add_argument('--question', choices=tuple(QUESTIONS))
    p.add_argument('--margins', type=Path, help="margins.json of the pilot ({endpoint: {'margin': ...}})")
    p.add_argument('--pilot', type=Path, help='a pilot folder: writes margins.json and the power check')
    p.add_argument('--out', type=Path, default=None, help='where to write (default: the root / pilot folder)')
    args = p.parse_args(argv)
    if args.pilot:
        noise = margins_from_pilot(load_scores(args.pilot, PILOT_ARMS))
        result = {'noise': noise, 'power_check': power_check(noise)}
        out = args.out or args.pilot
        (out / 'margins.json').write_text(json.dumps(result, indent=1))
        (out / 'margins.md').write_text(pilot_report(result))
        print(pilot_report(result))
        return 0
    if not (args.root and args.question and args.margins):
        p.error('give --root, --question and --margins (or --pilot)')
    margins = {e: v['margin'] for e, v in json.loads(args.margins.read_text())['noise'].items()}
    q = QUESTIONS[args.question]
    result = question_verdict(load_scores(args.root, (q['mask3d'], *q['comparators'])), args.question, margins)
    out = args.out or args.root
    (out / f'verdict_{args.question}.json').write_text(json.dumps(result, indent=1))
    (out / f'verdict_{args.question}.md').write_text(report(result))
    print(report(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
