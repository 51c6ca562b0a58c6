import json
import subprocess
import sys
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
import yaml

import mask3d
from conftest import tiny_kwargs
from mask3d.cli import main
from mask3d.manifest import sha256_file


def test_models_lists_weights_and_status(capsys):
    assert main(['models']) == 0
    out = capsys.readouterr().out
    assert 'mask3d_vit_base_patch16' in out and 'in1k_scannet: not-yet-published' in out
    assert 'mask3d/mask3d_vit_base_patch16.scannet' in out and 'mask3d_vit_base ' in out


@pytest.mark.e2e
def test_console_script_entry_point():
    out = subprocess.run([sys.executable, '-m', 'mask3d', 'models', '*tiny*'], capture_output=True, text=True)
    assert out.returncode == 0 and 'mask3d_vit_tiny_patch16' in out.stdout and 'base' not in out.stdout


@pytest.fixture
def exported(tmp_path):
    torch.manual_seed(0)
    return mask3d.save_pretrained(mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs()), tmp_path / 'exp')


def _manifest(tmp_path, sha, license='apache-2.0'):
    entry = dict(name='mask3d_vit_tiny_patch16.scannet', repo_id='mask3d/mask3d_vit_tiny_patch16.scannet',
                 revision=None, sha256=sha, status='not-yet-published', license=license, init='scratch',
                 training_config='x.yaml', training_data='synthetic', metrics={})
    path = tmp_path / 'manifest.yaml'
    path.write_text('# comments survive\n' + yaml.safe_dump({'org': 'mask3d', 'weights': [entry]}, sort_keys=False))
    return path


def test_push_dry_run_lists_files_and_verifies_sha(exported, tmp_path, capsys):
    sha = sha256_file(exported / 'model.safetensors')
    manifest = _manifest(tmp_path, sha)
    rc = main(['push', str(exported), '--repo-id', 'mask3d/mask3d_vit_tiny_patch16.scannet', '--manifest',
               str(manifest), '--dry-run'])
    out = capsys.readouterr().out
    assert rc == 0
    assert 'would upload' in out and 'model.safetensors' in out and 'config.json' in out and 'README.md' in out
    assert sha in out and 'verification OK' in out


def test_push_refuses_sha_mismatch_and_unknown_repo(exported, tmp_path, capsys):
    manifest = _manifest(tmp_path, '0' * 64)
    rc = main(['push', str(exported), '--repo-id', 'mask3d/mask3d_vit_tiny_patch16.scannet', '--manifest',
               str(manifest), '--dry-run'])
    assert rc == 1 and 'verification FAILED' in capsys.readouterr().out
    # a real push with a mismatch stops before any network call (sockets are blocked anyway)
    rc = main(['push', str(exported), '--repo-id', 'mask3d/mask3d_vit_tiny_patch16.scannet', '--manifest',
               str(manifest)])
    assert rc == 1 and 'not pushing' in capsys.readouterr().err
    rc = main(['push', str(exported), '--repo-id', 'someone/else', '--manifest', str(manifest), '--dry-run'])
    assert rc == 1 and 'no entry with repo_id someone/else' in capsys.readouterr().err


def test_push_rejects_incomplete_or_invalid_folder(exported, tmp_path, capsys):
    manifest = _manifest(tmp_path, None)
    (exported / 'model.safetensors').write_bytes(b'garbage')
    rc = main(['push', str(exported), '--repo-id', 'mask3d/mask3d_vit_tiny_patch16.scannet', '--manifest',
               str(manifest), '--dry-run'])
    assert rc == 1 and 'not a valid safetensors file' in capsys.readouterr().err
    (exported / 'README.md').unlink()
    rc = main(['push', str(exported), '--repo-id', 'x/y', '--manifest', str(manifest), '--dry-run'])
    assert rc == 1 and 'missing README.md' in capsys.readouterr().err


def _fake_api(commit_id='c' * 40):
    api = mock.MagicMock()
    api.upload_folder.return_value = SimpleNamespace(oid=commit_id, pr_url=None,
                                                     commit_url=f'https://huggingface.co/x/commit/{commit_id}')
    return api


def test_push_uploads_and_records_the_commit_id(exported, tmp_path, capsys):
    manifest = _manifest(tmp_path, sha256_file(exported / 'model.safetensors'))
    api = _fake_api()
    with mock.patch('huggingface_hub.HfApi', return_value=api) as hf_api:
        rc = main(['push', str(exported), '--repo-id', 'mask3d/mask3d_vit_tiny_patch16.scannet', '--manifest',
                   str(manifest), '--private'])
    assert rc == 0
    hf_api.assert_called_once_with(token=None)  # huggingface_hub finds HF_TOKEN or the saved login itself
    api.create_repo.assert_called_once_with('mask3d/mask3d_vit_tiny_patch16.scannet', exist_ok=True, private=True)
    kwargs = api.upload_folder.call_args.kwargs
    assert kwargs['revision'] is None and kwargs['create_pr'] is False
    assert sorted(kwargs['allow_patterns']) == ['README.md', 'config.json', 'model.safetensors']
    text = manifest.read_text()
    assert text.startswith('# comments survive') and f"revision: {'c' * 40}" in text and 'status: published' in text
    assert mask3d.manifest.load_manifest(manifest)[0].published


def test_push_to_a_branch_or_pull_request_records_revision_only(exported, tmp_path, capsys):
    manifest = _manifest(tmp_path, sha256_file(exported / 'model.safetensors'))
    api = _fake_api('d' * 40)
    with mock.patch('huggingface_hub.HfApi', return_value=api):
        assert main(['push', str(exported), '--repo-id', 'mask3d/mask3d_vit_tiny_patch16.scannet', '--manifest',
                     str(manifest), '--revision', 'v0.1', '--create-pr']) == 0
    kwargs = api.upload_folder.call_args.kwargs
    assert kwargs['revision'] == 'v0.1' and kwargs['create_pr'] is True
    text = manifest.read_text()
    assert f"revision: {'d' * 40}" in text and 'status: not-yet-published' in text


def test_push_refuses_a_licence_that_conflicts_with_the_init(exported, tmp_path, capsys):
    """Apache-2.0 on weights initialised from CC-BY-NC MAE weights is refused before any Hub call."""
    config = json.loads((exported / 'config.json').read_text())
    config['mask3d'].update(init='vit_base_patch16_224.mae', init_license='cc-by-nc-4.0')
    (exported / 'config.json').write_text(json.dumps(config))
    manifest = _manifest(tmp_path, sha256_file(exported / 'model.safetensors'))
    with mock.patch('huggingface_hub.HfApi') as hf_api:
        rc = main(['push', str(exported), '--repo-id', 'mask3d/mask3d_vit_tiny_patch16.scannet', '--manifest',
                   str(manifest)])
    err = capsys.readouterr().err
    assert rc == 1 and 'conflicts with the init weights' in err and 'cc-by-nc-4.0' in err
    hf_api.assert_not_called()


@pytest.mark.e2e
def test_version_help_and_configs_do_not_import_mask3d():
    code = ('import sys, contextlib, io\nfrom mask3d_cli import main\n'
            'for argv in (["--version"], ["--help"], ["configs"]):\n'
            '    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:\n'
            '        main(argv)\n'
            '    print(out.getvalue())\n'
            'assert "torch" not in sys.modules and "mask3d" not in sys.modules, sorted(sys.modules)\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f'mask3d {mask3d.__version__}' in result.stdout
    for name in ('pretrain/synthetic_tiny', 'pretrain/scannet_vit_base', 'finetune/synthetic_semseg'):
        assert name in result.stdout


def test_config_names_resolve_in_any_subfolder(tmp_path, monkeypatch):
    from mask3d_cli.bundled import configs_root, resolve_config
    root = configs_root()
    monkeypatch.chdir(tmp_path)  # outside a clone, a clone's relative path still names the bundled file
    assert resolve_config('synthetic_tiny', 'pretrain') == root / 'pretrain' / 'synthetic_tiny.yaml'
    assert resolve_config('scannet_vit_base.yaml', 'pretrain') == root / 'pretrain' / 'scannet_vit_base.yaml'
    assert resolve_config('synthetic_semseg', 'finetune') == root / 'finetune' / 'synthetic_semseg.yaml'
    assert resolve_config('training/configs/replicate/pretrain_mae.yaml') == root / 'replicate' / 'pretrain_mae.yaml'
    own = tmp_path / 'mine.yaml'
    own.write_text('{}')
    assert resolve_config(str(own)) == own
    with pytest.raises(mask3d.ConfigError) as e:
        resolve_config('synthetic_tyni', 'pretrain')
    assert 'synthetic_tyni' in str(e.value) and 'pretrain/synthetic_tiny' in str(e.value)


def test_new_config_files_are_found_without_listing_them(tmp_path, monkeypatch):
    from mask3d_cli import bundled
    (tmp_path / 'training' / 'configs' / 'probe').mkdir(parents=True)
    (tmp_path / 'training' / 'configs' / 'probe' / 'nyu_depth_probe.yaml').write_text('# a probe\n')
    monkeypatch.setattr(bundled, '_SOURCE_ROOT', tmp_path)
    assert bundled.resolve_config('nyu_depth_probe', 'probe') == \
        tmp_path / 'training' / 'configs' / 'probe' / 'nyu_depth_probe.yaml'
    assert list(bundled.list_configs('probe')) == ['probe/nyu_depth_probe']
