import subprocess
import sys

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
    assert 'mask3d_vit_base_patch16' in out and 'in1k_scannet: not yet published' in out
    assert 'mask3d/mask3d_vit_base_patch16.scannet' in out


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, '-m', 'mask3d', 'models', '*tiny*'], capture_output=True, text=True)
    assert out.returncode == 0 and 'mask3d_vit_tiny_patch16' in out.stdout and 'base' not in out.stdout


@pytest.fixture
def exported(tmp_path):
    torch.manual_seed(0)
    return mask3d.save_pretrained(mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs()), tmp_path / 'exp')


def _manifest(tmp_path, sha):
    entry = dict(name='mask3d_vit_tiny_patch16.scannet', repo_id='mask3d/mask3d_vit_tiny_patch16.scannet',
                 revision=None, sha256=sha, status='not-yet-published', license='apache-2.0', init='scratch',
                 training_config='x.yaml', training_data='synthetic', metrics={})
    path = tmp_path / 'manifest.yaml'
    path.write_text(yaml.safe_dump({'org': 'mask3d', 'weights': [entry]}))
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
    assert rc == 2 and 'not pushing' in capsys.readouterr().err
    rc = main(['push', str(exported), '--repo-id', 'someone/else', '--manifest', str(manifest), '--dry-run'])
    assert rc == 2 and 'no entry with repo_id someone/else' in capsys.readouterr().err


def test_push_rejects_incomplete_or_invalid_folder(exported, tmp_path, capsys):
    manifest = _manifest(tmp_path, None)
    (exported / 'model.safetensors').write_bytes(b'garbage')
    rc = main(['push', str(exported), '--repo-id', 'mask3d/mask3d_vit_tiny_patch16.scannet', '--manifest',
               str(manifest), '--dry-run'])
    assert rc == 2 and 'not a valid safetensors file' in capsys.readouterr().err
    (exported / 'README.md').unlink()
    rc = main(['push', str(exported), '--repo-id', 'x/y', '--manifest', str(manifest), '--dry-run'])
    assert rc == 2 and 'missing README.md' in capsys.readouterr().err
