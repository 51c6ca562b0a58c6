"""Smoke tests: every benchmark script runs on a tiny model and prints valid JSON (no timing is asserted)."""
import json
import os
import subprocess
import sys


from conftest import REPO_ROOT

TINY = ['--model', 'mask3d_vit_tiny_patch16', '--model-args', '{"depth": 1}']
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}


def _run(script, *args, timeout=300):
    out = subprocess.run([sys.executable, str(REPO_ROOT / 'benchmarks' / script), *args], capture_output=True,
                         text=True, env=ENV, timeout=timeout, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_pretrain_throughput_json():
    r = _run('pretrain_throughput.py', *TINY, '--image-size', '64', '96', '--batch-size', '2', '--decoder-depth', '1',
             '--decoder-dim', '64', '--iters', '1', '--warmup', '0', '--json')
    for key in ('model', 'image_size', 'batch_size', 'precision', 'device', 'mask3d_img_s', 'full_tokens_img_s',
                'visible_encoder_img_s', 'mask3d_gflops_per_img', 'full_tokens_gflops_per_img', 'peak_memory_mb'):
        assert key in r, key
    assert r['full_tokens_gflops_per_img'] > r['mask3d_gflops_per_img'] > 0


def test_inference_json():
    r = _run('inference.py', *TINY, '--timm-model', 'vit_tiny_patch16_224', '--image-size', '64', '96',
             '--batch-size', '2', '--out-indices', '0', '--iters', '1', '--warmup', '0', '--json')
    assert r['same_features'] and r['mask3d_img_s'] > 0 and r['mask3d_features_only_img_s'] > 0


def test_fast_paths_json():
    r = _run('fast_paths.py', *TINY, '--image-size', '64', '96', '--batch-size', '2', '--decoder-depth', '1',
             '--decoder-dim', '64', '--iters', '1', '--only', 'fused_attention', 'visible_gather', 'fused_adamw',
             'grad_checkpointing', '--json')
    assert [p['pair'] for p in r['pairs']] == ['fused_attention', 'visible_gather', 'fused_adamw', 'grad_checkpointing']
    assert 'alternative_step_memory_mb' in r['pairs'][-1]


def test_cost_scaling_json_and_plot(tmp_path):
    out = tmp_path / 'plot.png'
    raw = tmp_path / 'raw.json'
    subprocess.run([sys.executable, str(REPO_ROOT / 'benchmarks' / 'cost_scaling.py'), *TINY, '--batch-size', '1',
                    '--iters', '1', '--sizes', '32', '32', '64', '96', '--ratios', '0.5', '0.8', '--decoder-depth', '1',
                    '--decoder-dim', '64', '--out', str(out), '--json', str(raw)], check=True, capture_output=True,
                   env=ENV, cwd=REPO_ROOT, timeout=300)
    assert out.stat().st_size > 10_000 and len(json.loads(raw.read_text())['rows']) == 4


def test_loop_throughput_json():
    r = _run('loop_throughput.py', '--steps', '6', '--set', 'model.model_args={depth: 1}', '--set',
             'data.image_size=[64,96]', '--set', 'data.batch_size=2', '--set', 'data.num_workers=0', '--json')
    assert r['loop_img_s'] > 0 and r['step_only_img_s'] > 0 and r['generator_fps'] > 0


def test_data_throughput_json():
    r = _run('data_throughput.py', '--frames', '2', '--total', '8', '--json')
    assert r['synthetic_generator_fps_one_core'] > 0
    assert {'folder (synthetic PNGs)', 'scannet exported (.sens)', 'sunrgbd', 'cityscapes'} <= set(r['readers'])


def test_precision_loss_curve_json(tmp_path):
    r = _run('precision_loss_curve.py', '--steps', '3', '--set', 'model.model_args={depth: 1}', '--set',
             'data.image_size=[64,96]', '--set', 'data.batch_size=2', '--set', 'data.num_workers=0',
             '--out', str(tmp_path / 'c.png'), '--json')
    assert len(r['fp32']) == len(r['bf16']) == 3 and (tmp_path / 'c.png').is_file()


def test_replicate_smoke_end_to_end_and_reuses_finished_runs(tmp_path):
    def replicate():
        out = subprocess.run([sys.executable, str(REPO_ROOT / 'benchmarks' / 'replicate.py'), '--preset', 'smoke',
                              '--out', str(tmp_path), '--device', 'cpu', '--workers', '2'], capture_output=True,
                             text=True, env=ENV, timeout=600, cwd=REPO_ROOT)
        assert out.returncode == 0, out.stderr[-3000:]
    replicate()
    r = json.loads((tmp_path / 'results.json').read_text())
    assert set(r['table']['semseg']) == {'mask3d', 'mae', 'scratch'} and set(r['table']) == {'semseg', 'depth'}
    assert r['ablation']['no_depth_input']['depth'][0] > 0
    assert set(r['checks']['synthetic_linear_probe_miou']) == {'mask3d', 'mae', 'scratch'}
    for png in ('replication_bars.png', 'replication_curves.png'):
        assert (tmp_path / png).stat().st_size > 10_000
    assert '| mae |' in (tmp_path / 'results.md').read_text()
    mae_cfg = (tmp_path / 'pretrain' / 'mae' / 'seed0' / 'config.yaml').read_text()
    assert 'depth_input: false' in mae_cfg and 'rgb_loss_weight: 1.0' in mae_cfg
    summary = tmp_path / 'finetune' / 'semseg' / 'mask3d' / 'seed0' / 'summary.json'
    before = summary.stat().st_mtime
    replicate()
    assert summary.stat().st_mtime == before  # finished runs are kept, not re-run


def test_cli_startup_json():
    r = _run('cli_startup.py', '--repeats', '1', '--json')
    assert set(r) == {'mask3d --help', 'mask3d --version', 'mask3d configs', 'import mask3d', 'repeats'}
