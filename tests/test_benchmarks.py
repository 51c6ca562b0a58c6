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


def _replicate_dry_run(preset: str, device: str, out_dir) -> str:
    """``replicate.py --preset P --dry-run``: validates every config of the plan; returns its stdout."""
    out = subprocess.run([sys.executable, str(REPO_ROOT / 'benchmarks' / 'replicate.py'), '--preset', preset,
                          '--dry-run', '--device', device, '--out', str(out_dir)], capture_output=True, text=True,
                         env=ENV, timeout=300, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert not any(out_dir.iterdir())   # nothing ran, nothing written
    return out.stdout


@pytest.mark.bench
def test_replicate_gpu_preset_dry_run_validates_every_config(tmp_path):
    assert 'dry run (gpu): 9 pre-training runs x 800 steps, 12 probes, 20 fine-tuning runs' in \
        _replicate_dry_run('gpu', 'cuda', tmp_path)


@pytest.mark.bench
def test_replicate_long_preset_uses_the_measured_knob_arm(tmp_path):
    assert 'dry run (long): 9 pre-training runs x 2000 steps' in _replicate_dry_run('long', 'cpu', tmp_path)
    R = _replicate_module()
    budget = R.BUDGETS['long']
    assert R.arm_config('mask3d', budget) == 'pretrain_mask3d_measured.yaml'
    assert R.arm_config('mask3d', R.BUDGETS['default']) == 'pretrain_mask3d_reasoned.yaml'   # v2, as it ran
    from mask3d.training.config import load_config
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
