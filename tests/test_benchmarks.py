"""Smoke tests: every benchmark script runs on a tiny model and prints valid JSON (no timing is asserted)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

TINY = ['--model', 'mask3d_vit_tiny_patch16', '--model-args', '{"depth": 1}']
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}


def _run(script, *args, timeout=300):
    out = subprocess.run([sys.executable, str(REPO_ROOT / 'benchmarks' / script), *args], capture_output=True,
                         text=True, env=ENV, timeout=timeout, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.bench
def test_pretrain_throughput_json():
    r = _run('pretrain_throughput.py', *TINY, '--image-size', '64', '96', '--batch-size', '2', '--decoder-depth', '1',
             '--decoder-dim', '64', '--iters', '1', '--warmup', '0', '--json')
    for key in ('model', 'image_size', 'batch_size', 'precision', 'device', 'mask3d_img_s', 'full_tokens_img_s',
                'visible_encoder_img_s', 'mask3d_gflops_per_img', 'full_tokens_gflops_per_img', 'peak_memory_mb'):
        assert key in r, key
    assert r['full_tokens_gflops_per_img'] > r['mask3d_gflops_per_img'] > 0


@pytest.mark.bench
def test_inference_json():
    r = _run('inference.py', *TINY, '--timm-model', 'vit_tiny_patch16_224', '--image-size', '64', '96',
             '--batch-size', '2', '--out-indices', '0', '--iters', '1', '--warmup', '0', '--json')
    assert r['same_features'] and r['mask3d_img_s'] > 0 and r['mask3d_features_only_img_s'] > 0


@pytest.mark.bench
def test_fast_paths_json():
    r = _run('fast_paths.py', *TINY, '--image-size', '64', '96', '--batch-size', '2', '--decoder-depth', '1',
             '--decoder-dim', '64', '--iters', '1', '--only', 'fused_attention', 'visible_gather', 'fused_adamw',
             'grad_checkpointing', '--json')
    assert [p['pair'] for p in r['pairs']] == ['fused_attention', 'visible_gather', 'fused_adamw', 'grad_checkpointing']
    assert 'alternative_step_memory_mb' in r['pairs'][-1]


@pytest.mark.bench
def test_cost_scaling_json_and_plot(tmp_path):
    out = tmp_path / 'plot.png'
    raw = tmp_path / 'raw.json'
    subprocess.run([sys.executable, str(REPO_ROOT / 'benchmarks' / 'cost_scaling.py'), *TINY, '--batch-size', '1',
                    '--iters', '1', '--sizes', '32', '32', '64', '96', '--ratios', '0.5', '0.8', '--decoder-depth', '1',
                    '--decoder-dim', '64', '--out', str(out), '--json', str(raw)], check=True, capture_output=True,
                   env=ENV, cwd=REPO_ROOT, timeout=300)
    assert out.stat().st_size > 10_000 and len(json.loads(raw.read_text())['rows']) == 4


@pytest.mark.bench
def test_loop_throughput_json():
    r = _run('loop_throughput.py', '--steps', '6', '--set', 'model.model_args={depth: 1}', '--set',
             'data.image_size=[64,96]', '--set', 'data.batch_size=2', '--set', 'data.num_workers=0', '--json')
    assert r['loop_img_s'] > 0 and r['step_only_img_s'] > 0 and r['generator_fps'] > 0


@pytest.mark.bench
@pytest.mark.shared_data  # real 7-Scenes frames where ../shared is present
def test_data_throughput_json():
    r = _run('data_throughput.py', '--frames', '2', '--total', '8', '--json')
    assert r['synthetic_generator_fps_one_core'] > 0
    assert {'folder (synthetic PNGs)', 'scannet exported (.sens)', 'sunrgbd', 'cityscapes'} <= set(r['readers'])


@pytest.mark.bench
def test_precision_loss_curve_json(tmp_path):
    r = _run('precision_loss_curve.py', '--steps', '3', '--set', 'model.model_args={depth: 1}', '--set',
             'data.image_size=[64,96]', '--set', 'data.batch_size=2', '--set', 'data.num_workers=0',
             '--out', str(tmp_path / 'c.png'), '--json')
    assert len(r['fp32']) == len(r['bf16']) == 3 and (tmp_path / 'c.png').is_file()


@pytest.mark.bench
def test_replicate_smoke_end_to_end_and_reuses_finished_runs(tmp_path):
    def replicate():
        out = subprocess.run([sys.executable, str(REPO_ROOT / 'benchmarks' / 'replicate.py'), '--preset', 'smoke',
                              '--out', str(tmp_path), '--device', 'cpu', '--workers', '2'], capture_output=True,
                             text=True, env=ENV, timeout=600, cwd=REPO_ROOT)
        assert out.returncode == 0, out.stderr[-3000:]
    replicate()
    r = json.loads((tmp_path / 'results.json').read_text())
    arms = {'mask3d', 'mask3d_paper', 'mae', 'scratch'}
    assert set(r['probe']) == arms and set(r['finetune']) == arms
    for arm in arms:
        assert 0 <= r['probe'][arm]['0']['semseg.object_miou'] <= 1 and r['probe'][arm]['0']['depth.abs_rel'] > 0
        assert 0 <= r['finetune'][arm]['0']['object_miou'] <= 1
    assert {'mask3d - mae', 'mask3d - scratch', 'mask3d - mask3d_paper'} <= set(r['paired']['probe'])
    assert r['verdict']['outcome'] in ('reproduced', 'not reproduced', 'inconclusive')
    assert r['pretrain']['mask3d']['0']['rgb_reliance_last'] > 0
    for png in ('replication_v2.png', 'replication_v2_pretraining.png'):
        assert (tmp_path / png).stat().st_size > 10_000
    assert '| mae |' in (tmp_path / 'results.md').read_text()
    mae_cfg = (tmp_path / 'pretrain' / 'mae' / 'seed0' / 'config.yaml').read_text()
    assert 'depth_input: false' in mae_cfg and 'rgb_loss_weight: 1.0' in mae_cfg
    scratch = (tmp_path / 'finetune' / 'scratch' / 'lr0.001' / 'seed0' / 'config.yaml').read_text()
    assert 'layer_decay: 1.0' in scratch  # layer decay for pre-trained arms only
    summary = tmp_path / 'finetune' / 'mask3d' / 'lr0.001' / 'seed0' / 'summary.json'
    before = summary.stat().st_mtime
    replicate()
    assert summary.stat().st_mtime == before  # finished runs are kept, not re-run


def _replicate_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location('replicate', REPO_ROOT / 'benchmarks' / 'replicate.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.shared_data
def test_replicate_real_sources_are_empty_without_the_shared_folder(monkeypatch):
    """The smoke run's sim-to-real table reads ../shared; hidden (or absent) it has the synthetic source only."""
    monkeypatch.setenv('MASK3D_HIDE_SHARED', '1')
    assert _replicate_module().real_sources(1) == {}


def test_replicate_paired_statistics_match_scipy_by_hand():
    R = _replicate_module()
    d = R.paired([0.30, 0.35, 0.32], [0.29, 0.32, 0.30])   # diffs 0.01, 0.03, 0.02
    assert [round(x, 6) for x in d['diffs']] == [0.01, 0.03, 0.02]
    assert abs(d['mean'] - 0.02) < 1e-9 and abs(d['std'] - 0.01) < 1e-9
    assert abs(d['t'] - 0.02 / (0.01 / 3 ** 0.5)) < 1e-6    # t = mean / (std / sqrt(n)) = 3.464
    assert 0.05 < d['p'] < 0.1                              # df = 2: not significant at 0.05


def test_replicate_verdict_rules_applied_literally():
    R = _replicate_module()

    def pairs(probe_vs_mae, probe_vs_scratch, ft_vs_mae, ft_vs_scratch, mae_vs_random, paper_vs_random):
        def p(diffs):
            return {'diffs': diffs, 'mean': sum(diffs) / len(diffs)}
        return {'probe': {'mask3d - mae': {'semseg.object_miou': p(probe_vs_mae)},
                          'mask3d - scratch': {'semseg.object_miou': p(probe_vs_scratch)},
                          'mae - scratch': {'semseg.object_miou': p(mae_vs_random)},
                          'mask3d_paper - scratch': {'semseg.object_miou': p(paper_vs_random)}},
                'finetune': {'mask3d - mae': {'object_miou': p(ft_vs_mae)},
                             'mask3d - scratch': {'object_miou': p(ft_vs_scratch)}}}
    good, random_ok = [0.03, 0.02, 0.025], [0.01, 0.01, 0.01]
    assert R.verdict(pairs(good, good, good, good, random_ok, random_ok))['outcome'] == 'reproduced'
    # one seed negative: not every paired difference positive
    v = R.verdict(pairs(good, good, [0.05, -0.001, 0.05], good, random_ok, random_ok))
    assert v['outcome'] == 'not reproduced' and not v['conditions']['finetune: mask3d - mae']['met']
    # all positive but the mean under 0.02
    assert R.verdict(pairs(good, good, good, [0.01, 0.02, 0.01], random_ok, random_ok))['outcome'] == 'not reproduced'
    # no pre-trained arm above random init in the frozen probe: inconclusive
    below = [-0.01, 0.0, 0.005]
    assert R.verdict(pairs(below, below, good, good, [0.0, 0.0, 0.0], below))['outcome'] == 'inconclusive'


@pytest.mark.bench
def test_visible_stats_scale_counts_visible_patches(tmp_path):
    from mask3d.training.data.cli import write_synthetic
    write_synthetic(tmp_path / 'rooms', 4, 0, (64, 80), progress=False)
    out = subprocess.run([sys.executable, str(REPO_ROOT / 'benchmarks' / 'visible_stats_scale.py'), '--root',
                          str(tmp_path / 'rooms'), '--sizes', '64x80', '--ratios', '0.8', '0.95'],
                         capture_output=True, text=True, env=ENV, timeout=300, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in out.stdout.strip().splitlines()]
    assert [(r['patches'], r['visible_patches']) for r in rows] == [(20, 4), (20, 1)]
    assert all(r['mean_abs_target_visible_stats'] > 0 and r['mean_abs_target_all_pixel_stats'] > 0 for r in rows)


def _replicate_dry_run(preset: str, device: str, out_dir, *extra: str) -> str:
    """``replicate.py --preset P --dry-run``: validates every config of the plan; returns its stdout."""
    out = subprocess.run([sys.executable, str(REPO_ROOT / 'benchmarks' / 'replicate.py'), '--preset', preset,
                          '--dry-run', '--device', device, '--out', str(out_dir), *extra], capture_output=True,
                         text=True, env=ENV, timeout=300, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert not any(out_dir.iterdir())   # nothing ran, nothing written
    return out.stdout


@pytest.mark.bench
def test_replicate_v2gpu_preset_dry_run_validates_every_config(tmp_path):
    assert 'dry run (v2gpu): 9 pre-training runs x 800 steps, 12 probes, 20 fine-tuning runs' in \
        _replicate_dry_run('v2gpu', 'cuda', tmp_path)


@pytest.mark.bench
@pytest.mark.parametrize('preset, device, expected', [
    ('gpu', 'cuda', 'dry run (gpu, question B): 6 pre-training runs x 600 steps, 9 probes, mask3d_vit_small_patch16 '
                    'at 240x320, seeds [0, 1, 2]'),
    ('v4a', 'cpu', 'dry run (v4a, question A): stage 1 x 1500 steps, 10 pre-training runs x 1000 steps, 15 probes, '
                   'mask3d_vit_tiny_patch16 at 192x256, seeds [0, 1, 2, 3, 4]'),
    ('v4b', 'cpu', 'dry run (v4b, question B): 10 pre-training runs x 1500 steps, 15 probes, mask3d_vit_tiny_patch16 '
                   'at 192x256, seeds [0, 1, 2, 3, 4]'),
    ('v4pilot', 'cpu', 'dry run (v4pilot, question B): 6 pre-training runs x 300 steps, 9 probes')])
def test_replicate_v4_presets_dry_run(tmp_path, preset, device, expected):
    """Replication v4: one command per question, the pilot and the GPU preset validate every config they plan
    (as planned for 5 seeds: no pilot margins file, so no seed count from its power check)."""
    assert expected in _replicate_dry_run(preset, device, tmp_path, '--margins', str(tmp_path / 'none.json'))


@pytest.mark.bench
def test_replicate_v4_question_flag_is_the_preset(tmp_path):
    out = subprocess.run([sys.executable, str(REPO_ROOT / 'benchmarks' / 'replicate.py'), '--question', 'B',
                          '--dry-run', '--out', str(tmp_path)], capture_output=True, text=True, env=ENV,
                         timeout=300, cwd=REPO_ROOT)
    assert out.returncode == 0 and 'dry run (v4b, question B)' in out.stdout, out.stderr[-2000:]


@pytest.mark.slow
def test_replicate_v4_smoke_question_a_end_to_end(tmp_path):
    """Question A at toy size, offline: one MAE stage 1, both stage-2 arms start from its local export, every arm
    probed per seed, no rgb_reliance stored for MAE; the analysis reads the per-seed files (measured ~45-100 s)."""
    margins = tmp_path / 'margins.json'
    margins.write_text(json.dumps({'noise': {e: {'margin': 0.01} for e in ('depth.abs_rel', 'depth.delta1',
                                                                          'normals.mean_angle_deg', 'semseg.miou')}}))
    out = subprocess.run([sys.executable, str(REPO_ROOT / 'benchmarks' / 'replicate.py'), '--preset', 'v4smoke',
                          '--out', str(tmp_path / 'study'), '--device', 'cpu', '--margins', str(margins)],
                         capture_output=True, text=True, env=ENV, timeout=600, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    study = tmp_path / 'study'
    r = json.loads((study / 'results.json').read_text())
    init = str(study / 'pretrain' / 'stage1' / 'seed0' / 'export' / 'model.safetensors')
    for arm in ('a_mask3d', 'a_mae'):
        assert f'init: {init}' in (study / 'pretrain' / arm / 'seed1' / 'config.yaml').read_text()
    assert 'rgb_reliance_last' in r['pretrain']['a_mask3d/seed0']
    assert 'rgb_reliance_last' not in r['pretrain']['a_mae/seed0']   # MAE: no depth pretext, no rgb_reliance
    assert set(r['probe']) == {'a_mask3d', 'a_mae', 'a_none'} and 'semseg.miou' in r['probe']['a_none']['1']
    assert r['verdict']['verdict'] in ('reproduced', 'not reproduced', 'inconclusive')
    assert (study / 'data' / 'test' / 'depth_clean' / '000000.npy').is_file()


@pytest.mark.bench
def test_replicate_long_preset_uses_the_measured_knob_arm(tmp_path):
    assert 'dry run (long): 9 pre-training runs x 2000 steps' in _replicate_dry_run('long', 'cpu', tmp_path)
    R = _replicate_module()
    budget = R.BUDGETS['long']
    assert R.arm_config('mask3d', budget) == 'pretrain_mask3d_measured.yaml'
    assert R.arm_config('mask3d', R.BUDGETS['default']) == 'pretrain_mask3d_reasoned.yaml'   # v2, as it ran
    from mask3d.training.pretrain.config import load_config
    measured = load_config(R.CONFIGS / 'pretrain_mask3d_measured.yaml').method
    assert R.arm_config('mask3d_paper', budget) == 'pretrain_mask3d_paper_allstats.yaml'   # v3, as it ran
    paper = load_config(R.CONFIGS / 'pretrain_mask3d_paper.yaml').method
    allstats = load_config(R.CONFIGS / 'pretrain_mask3d_paper_allstats.yaml').method
    assert measured.depth_mask_ratio == 1.0 and paper.depth_mask_ratio == 0.8
    assert {k for k, v in vars(measured).items() if vars(paper)[k] != v} == {'depth_mask_ratio'}
    # the paper setting standardises with what the model may see; `all` (v2/v3) is the leaking non-paper variant
    assert paper.depth_norm_stats == 'visible' and allstats.depth_norm_stats == 'all'
    assert {k for k, v in vars(paper).items() if vars(allstats)[k] != v} == {'depth_norm_stats'}


@pytest.mark.bench
def test_cli_startup_json():
    r = _run('cli_startup.py', '--repeats', '1', '--json')
    assert set(r) == {'mask3d --help', 'mask3d --version', 'mask3d configs', 'import mask3d', 'repeats'}


# ---- replication v4: the pre-registered analysis on hand-made per-seed JSON ----------------------------------

def _v4_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location('v4', REPO_ROOT / 'benchmarks' / 'replicate_v4_analysis.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_probe(root, arm, seed, abs_rel, delta1, angle, miou):
    run = root / 'probe' / arm / f'seed{seed}'
    run.mkdir(parents=True)
    (run / 'probe.json').write_text(json.dumps({'depth': {'abs_rel': abs_rel, 'delta1': delta1, 'rmse': 1.0},
                                                'normals': {'mean_angle_deg': angle},
                                                'semseg': {'miou': miou, 'object_miou': 0.0}}))


MARGINS = {'depth.abs_rel': 0.005, 'depth.delta1': 0.01, 'normals.mean_angle_deg': 0.5, 'semseg.miou': 0.01}


def test_v4_comparison_outcomes_by_hand():
    V = _v4_module()
    # lower-better endpoint: improvement = other - mask3d = 0.02, 0.03, 0.025 -> t = 0.025 / (0.005 / sqrt 3)
    c = V.compare({0: 0.20, 1: 0.21, 2: 0.205}, {0: 0.22, 1: 0.24, 2: 0.23}, False, 0.005)
    assert [round(d, 6) for d in c['improvements']] == [0.02, 0.03, 0.025]
    assert abs(c['t'] - 0.025 / (0.005 / 3 ** 0.5)) < 1e-6 and c['p_greater'] < 0.01 and c['outcome'] == 'better'
    # every seed worse and significant
    assert V.compare({0: 0.5, 1: 0.52, 2: 0.51}, {0: 0.6, 1: 0.61, 2: 0.615}, True, 0.01)['outcome'] == 'worse'
    # near zero and tight: an improvement of the margin is excluded
    near = V.compare({0: 0.501, 1: 0.499, 2: 0.5}, {0: 0.5, 1: 0.5, 2: 0.5}, True, 0.01)
    assert near['upper'] < 0.01 and near['outcome'] == 'below margin'
    # a large mean but one seed on the other side: unresolved
    assert V.compare({0: 0.6, 1: 0.45, 2: 0.6}, {0: 0.5, 1: 0.5, 2: 0.5}, True, 0.01)['outcome'] == 'unresolved'


def test_v4_verdict_per_endpoint_and_question_from_hand_made_json(tmp_path):
    """One study folder whose endpoints hit each verdict: depth AbsRel reproduced (better than both), delta1 not
    reproduced (worse than MAE), normals inconclusive (unresolved), mIoU not reproduced (below margin)."""
    V = _v4_module()
    for s, jitter in enumerate((0.0, 0.002, -0.002)):
        _write_probe(tmp_path, 'b_mask3d', s, 0.20 + jitter, 0.60 + jitter, 30.0 + [0, 2, -1][s], 0.100 + jitter / 4)
        _write_probe(tmp_path, 'b_mae', s, 0.23 + jitter, 0.65 + jitter, 30.5, 0.100)
        _write_probe(tmp_path, 'b_random', s, 0.25 + jitter, 0.55 + jitter, 31.0, 0.100 - jitter / 4)
    r = V.question_verdict(V.load_scores(tmp_path, ('b_mask3d', 'b_mae', 'b_random')), 'B', MARGINS)
    verdicts = {e: x['verdict'] for e, x in r['endpoints'].items()}
    assert verdicts == {'depth.abs_rel': 'reproduced', 'depth.delta1': 'not reproduced',
                        'normals.mean_angle_deg': 'inconclusive', 'semseg.miou': 'not reproduced'}
    assert r['endpoints']['depth.delta1']['comparisons']['b_mae']['outcome'] == 'worse'
    assert r['endpoints']['semseg.miou']['comparisons']['b_mae']['outcome'] == 'below margin'
    assert r['verdict'] == 'inconclusive'   # one endpoint reproduced, but Mask3D is worse than MAE on another
    # the command writes the same verdict from the same files
    margins = tmp_path / 'margins.json'
    margins.write_text(json.dumps({'noise': {e: {'margin': m} for e, m in MARGINS.items()}}))
    assert V.main(['--root', str(tmp_path), '--question', 'B', '--margins', str(margins)]) == 0
    assert json.loads((tmp_path / 'verdict_B.json').read_text())['verdict'] == 'inconclusive'
    assert '| depth.abs_rel |' in (tmp_path / 'verdict_B.md').read_text()


def test_v4_question_headlines():
    V = _v4_module()

    def scores(mask3d_delta):   # Mask3D's improvement over both comparators on every endpoint, per seed
        base = {'depth.abs_rel': 0.2, 'depth.delta1': 0.6, 'normals.mean_angle_deg': 30.0, 'semseg.miou': 0.1}
        sign = {'depth.abs_rel': -1, 'depth.delta1': 1, 'normals.mean_angle_deg': -1, 'semseg.miou': 1}
        return {'a_mask3d': {s: {e: v + sign[e] * d for e, v in base.items()} for s, d in enumerate(mask3d_delta)},
                'a_mae': {s: dict(base) for s in range(3)}, 'a_none': {s: dict(base) for s in range(3)}}
    big = dict.fromkeys(MARGINS, 1.0)
    assert V.question_verdict(scores([0.05, 0.06, 0.055]), 'A', MARGINS)['verdict'] == 'reproduced'
    assert V.question_verdict(scores([0.0001, -0.0001, 0.0]), 'A', big)['verdict'] == 'not reproduced'
    assert V.question_verdict(scores([0.05, -0.04, 0.06]), 'A', MARGINS)['verdict'] == 'inconclusive'


def test_v4_pilot_margins_and_power():
    V = _v4_module()
    pilot = {arm: {s: {e: 0.5 + off + 0.01 * s * (1 if arm != 'b_mae' else -1) for e in MARGINS}
                   for s in range(3)} for arm, off in (('b_mask3d', 0.0), ('b_mae', 0.1), ('b_random', 0.2))}
    noise = V.margins_from_pilot(pilot)
    e = 'semseg.miou'
    assert abs(noise[e]['sigma'] - 0.01) < 1e-9 and abs(noise[e]['margin'] - 0.03) < 1e-9   # 3 sigma > floor
    assert noise['normals.mean_angle_deg']['margin'] == 0.5                                   # the floor
    assert noise[e]['sigma_d'] >= 2 ** 0.5 * noise[e]['sigma'] - 1e-12
    assert V.power(5, 10.0, 1.0) > 0.99 and V.power(3, 0.0, 1.0) < 0.06   # about alpha under no effect
    assert V.power(3, 2.0, 1.0) < V.power(5, 2.0, 1.0)
    # every seed must be on one side: with a noisy difference more seeds can lower the power
    assert V.power(8, 1.0, 1.0) < V.power(4, 1.0, 1.0)
    check = V.power_check({e: {'margin': 1.0, 'sigma_d': 0.4}})
    assert check['reaches_target'] and check['seeds'] == min(n for n, p in check['power'].items() if p[e] >= 0.8)
    report = V.pilot_report({'noise': {e: dict(noise[e])}, 'power_check': check})
    assert '| semseg.miou |' in report and f"Seeds for the study: **{check['seeds']}**" in report
    weak = V.power_check({e: {'margin': 1.0, 'sigma_d': 1.0}})
    assert not weak['reaches_target'] and weak['min_power_at_seeds'] == max(p[e] for p in weak['power'].values())


def test_v4_seed_count_from_the_power_check(tmp_path):
    """Pre-registered: the pilot's power check picks n; pre-training steps scale by 5 / n (down to a multiple of
    50); explicit --seeds and the pilot itself are left alone."""
    import importlib
    sys.path.insert(0, str(REPO_ROOT / 'benchmarks'))
    v4 = importlib.import_module('replicate_v4_study')
    R = v4.R
    margins = tmp_path / 'margins.json'
    margins.write_text(json.dumps({'noise': {}, 'power_check': {'seeds': 6}}))
    b = v4.seeds_from_power_check(dict(R.BUDGETS['v4b']), margins, False)
    assert b['seeds'] == [0, 1, 2, 3, 4, 5] and b['pretrain_steps'] == 1250
    a = v4.seeds_from_power_check(dict(R.BUDGETS['v4a']), margins, False)
    assert a['pretrain_steps'] == 800 and a['stage1_steps'] == 1500
    assert v4.seeds_from_power_check(dict(R.BUDGETS['v4b']), margins, True)['seeds'] == [0, 1, 2, 3, 4]
    assert v4.seeds_from_power_check(dict(R.BUDGETS['v4pilot']), margins, False)['seeds'] == [0, 1, 2]
    assert v4.seeds_from_power_check(dict(R.BUDGETS['v4b']), tmp_path / 'none.json', False)['seeds'] == [0, 1, 2, 3, 4]


def test_v3_recheck_recomputes_the_numbers_docs_quote():
    """Issue 23: the v3 comparisons docs/results.md now quotes, recomputed from v3's committed per-seed numbers."""
    sys.path.insert(0, str(REPO_ROOT / 'benchmarks'))
    import importlib
    rows = importlib.import_module('replicate_v4_v3_recheck').recheck(
        json.loads((REPO_ROOT / 'benchmarks' / 'results' / 'replicate_v3' / 'results.json').read_text()))
    got = {(r['evaluation'], r['comparison'], r['metric']): r for r in rows}
    for key, mean, t, p in [(('probe', 'mask3d - mae', 'semseg.miou'), -0.0397, -17.54, 0.003),
                            (('probe', 'mask3d_paper - mae', 'semseg.object_miou'), -0.0073, -2.47, 0.132),
                            (('finetune', 'mask3d_paper - mae', 'object_miou'), -0.0135, -3.96, 0.058),
                            (('finetune', 'mask3d - scratch', 'object_miou'), -0.0117, -3.75, 0.064),
                            (('probe', 'mae - scratch', 'normals.mean_angle_deg'), -0.8879, -3.82, 0.062)]:
        r = got[key]
        assert round(r['mean'], 4) == mean and round(r['t'], 2) == t and round(r['p'], 3) == p, (key, r)


@pytest.mark.parametrize('question', ['A', 'B'])
def test_v4_verdict_recomputes_from_its_per_seed_files(question):
    """The committed v4 results (benchmarks/results/replicate_v4a, replicate_v4b): the pre-registered analysis, run
    on the per-seed probe.json files with the pilot's margins, gives exactly the committed verdict and statistics."""
    V = _v4_module()
    root = REPO_ROOT / 'benchmarks' / 'results' / f'replicate_v4{question.lower()}'
    pilot = REPO_ROOT / 'benchmarks' / 'results' / 'replicate_v4_pilot' / 'margins.json'
    margins = {e: v['margin'] for e, v in json.loads(pilot.read_text())['noise'].items()}
    arms = {'A': ('a_mask3d', 'a_mae', 'a_none'), 'B': ('b_mask3d', 'b_mae', 'b_random')}[question]
    scores = V.load_scores(root, arms)
    assert sorted(scores) == sorted(arms) and all(sorted(seeds) == [0, 1, 2, 3] for seeds in scores.values())
    recomputed = V.question_verdict(scores, question, margins)
    committed = json.loads((root / f'verdict_{question}.json').read_text())
    assert json.loads(json.dumps(recomputed)) == committed
    assert (root / f'verdict_{question}.md').read_text() == V.report(recomputed)
