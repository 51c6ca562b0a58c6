"""An export describes its own run truthfully: data, init, steps, config, code version, stated licence, results."""
import json

import pytest
import torch

import mask3d
from conftest import tiny_kwargs
from mask3d.training.pretrain.config import load_config
from mask3d.training.pretrain.engine import export_encoder
from mask3d_resources import resolve_config


def _export(tmp_path, overrides, run_dir=None):
    cfg = load_config(resolve_config('synthetic_tiny', 'pretrain'), overrides)
    torch.manual_seed(0)
    encoder = mask3d.create_model(cfg.model.name, **tiny_kwargs())
    out = export_encoder(encoder, cfg, tmp_path / 'export', metrics={'step': 7, 'loss': 0.123456789},
                         run_dir=run_dir)
    card = (out / 'README.md').read_text()
    return card, json.loads((out / 'config.json').read_text())


def _front_matter(card: str) -> dict:
    from huggingface_hub import ModelCard
    return ModelCard(card).data.to_dict()


def test_synthetic_run_export_says_synthetic(tmp_path):
    card, config = _export(tmp_path, [])
    meta = config['mask3d']
    assert meta['data_sources'] == ['synthetic'] and 'synthetic' in meta['training_data']
    assert meta['init'] == 'scratch' and meta['steps'] == 7 and meta['objective'] == 'mask3d'
    assert meta['mask3d_version'] == mask3d.__version__ and meta['training_config']['data']['source'] == 'synthetic'
    assert meta['license'] is None and 'license' not in _front_matter(card) and 'Not stated' in card
    assert 'ScanNet' not in card and 'ScanNet' not in config['pretrained_cfg']['description']
    assert 'synthetic' in config['pretrained_cfg']['description'] and '- steps: 7' in card
    assert 'base_model' not in card and 'origin_url' not in config['pretrained_cfg']
    assert '| loss | 0.123457 |' in card and 'telemetry, not a result' in card
    assert '## Limitations' in card and 'synthetic rooms' in card and 'No downstream result' in card
    assert '## Results\n\nNone measured.' in card and 'Mask3D objective' in card


def test_non_commercial_init_makes_the_export_non_commercial(tmp_path):
    card, config = _export(tmp_path, ['model.init=vit_base_patch16_224.mae'])
    meta = config['mask3d']
    assert meta['init_license'] == 'cc-by-nc-4.0' and meta['license'] == 'cc-by-nc-4.0'
    assert config['pretrained_cfg']['license'] == 'cc-by-nc-4.0'
    assert _front_matter(card)['license'] == 'cc-by-nc-4.0'
    assert _front_matter(card)['base_model'] == 'timm/vit_base_patch16_224.mae' and 'inherited' in card


def test_unknown_init_licence_is_not_guessed(tmp_path):
    weights = tmp_path / 'someone_elses.safetensors'
    weights.write_bytes(b'')
    card, config = _export(tmp_path, [f'model.init={weights}'])
    assert config['mask3d']['license'] == 'other' and 'licence of the init weights' in card


def test_probe_metrics_of_the_run_are_results_with_their_command(tmp_path):
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'probe.json').write_text(json.dumps({'metrics': {'depth/rmse': 0.5, 'depth/delta1': 0.61}}))
    card, config = _export(tmp_path, ['data.source=synthetic'], run_dir=run)
    assert config['mask3d']['metrics']['probe/depth/rmse'] == 0.5
    results = card.split('## Results')[1].split('## Training')[0]
    assert '| probe/depth/delta1 | 0.61 |' in results and 'mask3d probe' in results and 'loss' not in results


def test_random_weights_card_claims_nothing(tmp_path):
    torch.manual_seed(0)
    model = mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs())
    out = mask3d.save_pretrained(model, tmp_path / 'random')
    card = (out / 'README.md').read_text()
    meta = json.loads((out / 'config.json').read_text())['mask3d']
    assert 'license' not in _front_matter(card) and 'apache' not in card.lower().split('## licence')[1].split('(')[0]
    assert 'makes no claim' in card and 'carry 3D priors' not in card and 'Mask3D objective' not in card
    assert meta['objective'] is None and meta['init'] == 'not recorded' and meta['steps'] is None
    assert meta['license'] is None and 'license' not in json.loads((out / 'config.json').read_text())['pretrained_cfg']
    assert 'unknown origin' in card and '## Limitations' in card
    assert not {'self-supervised', 'rgb-d'} & set(_front_matter(card)['tags'])  # training claims, none recorded
    stated = mask3d.save_pretrained(model, tmp_path / 'stated', license='mit')
    assert _front_matter((stated / 'README.md').read_text())['license'] == 'mit'


def test_non_finite_weights_are_never_written(tmp_path):
    model = mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs())
    with torch.no_grad():
        model.blocks[0].mlp.fc1.weight[0, 0] = float('nan')
    with pytest.raises(mask3d.Mask3DError) as e:
        mask3d.save_pretrained(model, tmp_path / 'nan')
    assert 'blocks.0.mlp.fc1.weight' in str(e.value) and '\n' not in str(e.value)
    assert not (tmp_path / 'nan').exists()


def test_files_mask3d_did_not_write_are_not_overwritten(tmp_path):
    folder = tmp_path / 'theirs'
    folder.mkdir()
    (folder / 'README.md').write_text('my notes')
    with pytest.raises(mask3d.Mask3DError, match='not written by mask3d'):
        mask3d.save_pretrained(mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs()), folder)
    assert (folder / 'README.md').read_text() == 'my notes'


def test_licence_conflicting_with_the_init_is_refused(tmp_path):
    model = mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs())
    with pytest.raises(mask3d.Mask3DError, match="license='apache-2.0': licence apache-2.0 conflicts"):
        mask3d.save_pretrained(model, tmp_path / 'x', license='apache-2.0',
                               metadata={'init': 'vit_base_patch16_224.mae', 'init_license': 'cc-by-nc-4.0'})


def test_stated_licence_is_set_on_an_existing_export(tmp_path):
    from mask3d.export import restate_license
    card, config = _export(tmp_path, [])
    restate_license(tmp_path / 'export', 'apache-2.0')
    config = json.loads((tmp_path / 'export' / 'config.json').read_text())
    assert config['mask3d']['license'] == config['pretrained_cfg']['license'] == 'apache-2.0'
    assert _front_matter((tmp_path / 'export' / 'README.md').read_text())['license'] == 'apache-2.0'


def test_a_real_probe_json_becomes_results_with_the_probe_command(tmp_path):
    """``mask3d probe`` writes per-task sections; each scalar is a result, timing and figures are not."""
    run = tmp_path / 'run'
    run.mkdir()
    probe = {'backbone': {'label': str(run), 'blocks': [1, 3]}, 'config': {'quick': True},
             'depth': {'rmse': 0.41, 'delta1': 0.7, 'scale_aligned': {'rmse': 0.3}},
             'semseg': {'miou': 0.25, 'iou': [0.1, 0.4]}, 'skipped': {'normals': 'no normals'},
             'figures': {'pca': 'x.png'}, 'seconds': 20.7}
    (run / 'probe.json').write_text(json.dumps(probe))
    card, config = _export(tmp_path, [], run_dir=run)
    metrics = config['mask3d']['metrics']
    assert metrics['probe/depth/rmse'] == 0.41 and metrics['probe/depth/scale_aligned/rmse'] == 0.3
    assert metrics['probe/semseg/miou'] == 0.25 and not any('seconds' in k or 'pca' in k for k in metrics)
    results = card.split('## Results')[1].split('## Training')[0]
    assert '| probe/depth/delta1 | 0.7 |' in results and f'mask3d probe --backbone {run}' in results
    assert 'No downstream result' not in card


def test_training_tags_only_for_the_mask3d_objective(tmp_path):
    card, config = _export(tmp_path, [])
    assert config['mask3d']['objective'] is not None
    assert {'self-supervised', 'rgb-d'} <= set(_front_matter(card)['tags'])
