"""An export describes its own run: data, init, steps, licence, base model, probe metrics; nothing invented."""
import json

import torch

import mask3d
from conftest import tiny_kwargs
from mask3d.training.config import load_config
from mask3d.training.engine import export_encoder
from mask3d_cli.bundled import resolve_config


def _export(tmp_path, overrides, run_dir=None):
    cfg = load_config(resolve_config('synthetic_tiny', 'pretrain'), overrides)
    torch.manual_seed(0)
    encoder = mask3d.create_model(cfg.model.name, **tiny_kwargs())
    out = export_encoder(encoder, cfg, tmp_path / 'export', metrics={'step': 7, 'loss': 0.123456789},
                         run_dir=run_dir)
    card = (out / 'README.md').read_text()
    return card, json.loads((out / 'config.json').read_text())


def test_synthetic_run_export_says_synthetic(tmp_path):
    card, config = _export(tmp_path, [])
    meta = config['mask3d']
    assert meta['data_sources'] == ['synthetic'] and 'synthetic' in meta['training_data']
    assert meta['init'] == 'scratch' and meta['steps'] == 7 and meta['license'] == 'apache-2.0'
    assert 'ScanNet' not in card and 'ScanNet' not in config['pretrained_cfg']['description']
    assert 'synthetic' in config['pretrained_cfg']['description'] and '7 steps' in card
    assert 'license: apache-2.0' in card and 'base_model' not in card and 'origin_url' not in config['pretrained_cfg']
    assert '| loss | 0.123457 |' in card


def test_non_commercial_init_makes_the_export_non_commercial(tmp_path):
    card, config = _export(tmp_path, ['model.init=vit_base_patch16_224.mae'])
    meta = config['mask3d']
    assert meta['init_license'] == 'cc-by-nc-4.0' and meta['license'] == 'cc-by-nc-4.0'
    assert config['pretrained_cfg']['license'] == 'cc-by-nc-4.0'
    assert 'license: cc-by-nc-4.0' in card and 'base_model: timm/vit_base_patch16_224.mae' in card


def test_unknown_init_licence_is_not_guessed(tmp_path):
    weights = tmp_path / 'someone_elses.safetensors'
    weights.write_bytes(b'')
    card, config = _export(tmp_path, [f'model.init={weights}'])
    assert config['mask3d']['license'] == 'other' and 'licence of the init weights' in card


def test_probe_metrics_of_the_run_are_included(tmp_path):
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'probe.json').write_text(json.dumps({'metrics': {'depth/rmse': 0.5, 'depth/delta1': 0.61}}))
    card, config = _export(tmp_path, ['data.source=synthetic'], run_dir=run)
    assert config['mask3d']['metrics']['probe/depth/rmse'] == 0.5 and '| probe/depth/delta1 | 0.61 |' in card
