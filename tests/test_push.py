"""Publishing: anyone's export to their own repo in one call (CLI or Python), and the maintainers' release path.

Every Hub call goes to a mocked ``huggingface_hub.HfApi``; sockets are blocked anyway (conftest.py).
"""
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
from mask3d.export import MASK3D_OBJECTIVE
from mask3d.manifest import load_manifest, sha256_file

OFFICIAL = 'mask3d/mask3d_vit_tiny_patch16.scannet'


@pytest.fixture
def exported(tmp_path):
    torch.manual_seed(0)
    return mask3d.save_pretrained(mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs()), tmp_path / 'exp')


def _scannet_run_export(tmp_path, data_sources=('scannet',), license='apache-2.0'):
    """An export whose provenance says: Mask3D pre-training of the tiny ViT from scratch on ``data_sources``."""
    torch.manual_seed(0)
    model = mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs())
    meta = {'objective': MASK3D_OBJECTIVE, 'architecture': 'mask3d_vit_tiny_patch16', 'init': 'scratch',
            'data_sources': list(data_sources), 'training_data': ', '.join(data_sources), 'steps': 7}
    return mask3d.save_pretrained(model, tmp_path / f"run_{'_'.join(data_sources)}", metadata=meta, license=license)


def _manifest(tmp_path, sha=None):
    entry = dict(name='mask3d_vit_tiny_patch16.scannet', repo_id=OFFICIAL, revision=None, sha256=sha,
                 status='not-yet-published', license='apache-2.0', init='scratch', training_config='x.yaml',
                 training_data='ScanNet', data_sources=['scannet'], init_weights=None, metrics={})
    path = tmp_path / 'manifest.yaml'
    path.write_text('# comments survive\n' + yaml.safe_dump({'org': 'mask3d', 'weights': [entry]}, sort_keys=False))
    return path


def _fake_api(commit_id='c' * 40):
    api = mock.MagicMock()
    api.create_commit.return_value = SimpleNamespace(oid=commit_id, pr_url=None,
                                                     commit_url=f'https://huggingface.co/x/commit/{commit_id}')
    return api


def _uploaded(api) -> dict:
    ops = api.create_commit.call_args.kwargs['operations']
    return {op.path_in_repo: op.path_or_fileobj for op in ops}


def test_cli_push_of_any_export_to_your_own_repo(exported, capsys):
    manifest_before = mask3d_cli_manifest_text()
    api = _fake_api()
    with mock.patch('huggingface_hub.HfApi', return_value=api) as hf_api:
        assert main(['push', str(exported), '--repo-id', 'you/my-tiny', '--private']) == 0
    hf_api.assert_called_once_with(token=None)  # huggingface_hub finds HF_TOKEN or the saved login itself
    api.create_repo.assert_called_once_with('you/my-tiny', exist_ok=True, private=True)
    kwargs = api.create_commit.call_args.kwargs
    assert kwargs['revision'] is None and kwargs['create_pr'] is False
    files = _uploaded(api)
    assert sorted(files) == ['README.md', 'config.json', 'model.safetensors']
    card = files['README.md'].decode()
    assert "'hf-hub:you/my-tiny'" in card and 'local-dir:PATH' not in card and '## Limitations' in card
    assert 'makes no claim' in card  # random weights: the card says what they are not
    out = capsys.readouterr().out
    assert "mask3d.create_model('hf-hub:you/my-tiny@" + 'c' * 40 in out
    assert mask3d_cli_manifest_text() == manifest_before  # a user's push never writes the manifest


def mask3d_cli_manifest_text():
    from mask3d_resources import manifest_path
    return manifest_path().read_text()


def test_python_push_to_hub_of_a_model_or_a_folder(exported):
    api = _fake_api('d' * 40)
    model = mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs())
    with mock.patch('huggingface_hub.HfApi', return_value=api):
        commit = mask3d.push_to_hub(model, 'you/from-python', private=True, revision='v1', create_pr=True,
                                    license='mit')
        assert commit.oid == 'd' * 40
        kwargs = api.create_commit.call_args.kwargs
        assert kwargs['revision'] == 'v1' and kwargs['create_pr'] is True
        card = _uploaded(api)['README.md'].decode()
        assert 'license: mit' in card and "'hf-hub:you/from-python'" in card
        api.create_branch.assert_not_called()  # a pull request targets the branch; nothing to create
        mask3d.push_to_hub(exported, 'you/from-folder', revision='dev')
    api.create_branch.assert_called_once_with('you/from-folder', branch='dev', exist_ok=True)
    assert _uploaded(api)['config.json'] == str(exported / 'config.json')
    assert "'hf-hub:you/from-folder'" in _uploaded(api)['README.md'].decode()


def test_push_checks_the_folder_before_any_hub_call(exported, tmp_path, capsys):
    with mock.patch('huggingface_hub.HfApi') as hf_api:
        (exported / 'model.safetensors').write_bytes(b'garbage')
        assert main(['push', str(exported), '--repo-id', 'you/x']) == 1
        assert 'sha256' in capsys.readouterr().err  # differs from the one config.json records
        (exported / 'config.json').unlink()
        assert main(['push', str(exported), '--repo-id', 'you/x', '--dry-run']) == 1
        assert 'missing config.json' in capsys.readouterr().err
    hf_api.assert_not_called()



@pytest.mark.parametrize('repo_id', ['bad id/x', 'a/b/c', 'you/'])
def test_malformed_repo_id_is_refused_even_in_a_dry_run(exported, capsys, repo_id):
    with mock.patch('huggingface_hub.HfApi') as hf_api:
        assert main(['push', str(exported), '--repo-id', repo_id, '--dry-run']) == 1
    err = capsys.readouterr().err
    assert f"--repo-id '{repo_id}': not a valid Hub repo id" in err and 'would upload' not in err
    hf_api.assert_not_called()


def test_hub_refusing_or_unreachable_is_one_line(exported, capsys):
    """A 403 from the Hub, or HF_HUB_OFFLINE, used to end in mask3d's 'internal error' traceback."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
    response = SimpleNamespace(status_code=403, headers={}, request=None)
    for error, expected in ((HfHubHTTPError('403 Forbidden: no write access', response=response),
                             'the Hub answered 403: 403 Forbidden: no write access (log in with `hf auth login`'),
                            (OfflineModeIsEnabled('offline'), 'HF_HUB_OFFLINE is set')):
        api = _fake_api()
        api.create_repo.side_effect = error
        with mock.patch('huggingface_hub.HfApi', return_value=api):
            assert main(['push', str(exported), '--repo-id', 'you/x']) == 1
        err = capsys.readouterr().err
        assert f'cannot push to hf-hub:you/x: {expected}' in err and 'internal error' not in err


def test_push_refuses_non_finite_weights(tmp_path, capsys):
    from safetensors.torch import save_file
    folder = mask3d.save_pretrained(mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs()), tmp_path / 'e')
    sd = {k: v.clone() for k, v in mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs()).state_dict().items()}
    sd['norm.weight'][0] = float('inf')
    save_file(sd, str(folder / 'model.safetensors'))
    config = json.loads((folder / 'config.json').read_text())
    config['mask3d']['sha256'] = sha256_file(folder / 'model.safetensors')
    (folder / 'config.json').write_text(json.dumps(config))
    with mock.patch('huggingface_hub.HfApi') as hf_api:
        assert main(['push', str(folder), '--repo-id', 'you/x']) == 1
    err = capsys.readouterr().err
    assert 'non-finite' in err and 'norm.weight' in err
    hf_api.assert_not_called()


def test_official_repo_ids_are_reserved_for_the_release_path(exported, capsys):
    with mock.patch('huggingface_hub.HfApi') as hf_api:
        assert main(['push', str(exported), '--repo-id', OFFICIAL]) == 1
    err = capsys.readouterr().err
    assert 'reserved for the official release mask3d_vit_tiny_patch16.scannet' in err and '--release' in err
    hf_api.assert_not_called()


def test_release_refuses_an_export_whose_provenance_does_not_match(exported, tmp_path, capsys):
    manifest = _manifest(tmp_path)
    synthetic = _scannet_run_export(tmp_path, data_sources=('synthetic',))
    with mock.patch('huggingface_hub.HfApi') as hf_api:
        for folder, why in ((synthetic, "trained on ['synthetic']"), (exported, 'no Mask3D pre-training run')):
            rc = main(['push', str(folder), '--repo-id', OFFICIAL, '--release', '--manifest', str(manifest)])
            assert rc == 1 and why in capsys.readouterr().err
        unstated = _scannet_run_export(tmp_path / 'u', license=None)
        assert main(['push', str(unstated), '--repo-id', OFFICIAL, '--manifest', str(manifest), '--dry-run']) == 1
        assert "licence None is not the release's 'apache-2.0'" in capsys.readouterr().out
        assert main(['push', str(exported), '--repo-id', 'you/x', '--release', '--manifest', str(manifest)]) == 1
        assert 'no entry with repo_id you/x' in capsys.readouterr().err
    hf_api.assert_not_called()
    assert load_manifest(manifest)[0].revision is None


def test_release_pushes_a_matching_export_and_pins_it(tmp_path, capsys):
    manifest = _manifest(tmp_path)
    folder = _scannet_run_export(tmp_path)
    sha = sha256_file(folder / 'model.safetensors')
    assert main(['push', str(folder), '--repo-id', OFFICIAL, '--release', '--manifest', str(manifest),
                 '--dry-run']) == 0
    assert 'provenance matches mask3d_vit_tiny_patch16.scannet' in capsys.readouterr().out
    api = _fake_api()
    with mock.patch('huggingface_hub.HfApi', return_value=api):
        assert main(['push', str(folder), '--repo-id', OFFICIAL, '--release', '--manifest', str(manifest)]) == 0
    text = manifest.read_text()
    assert text.startswith('# comments survive') and f"revision: {'c' * 40}" in text and f'sha256: {sha}' in text
    release = load_manifest(manifest)[0]
    assert release.published and release.pinned
    card = _uploaded(api)['README.md'].decode()
    assert f"'hf-hub:{OFFICIAL}'" in card and 'Mask3D objective' in card


def test_release_to_a_pull_request_pins_nothing_as_published(tmp_path):
    manifest = _manifest(tmp_path)
    folder = _scannet_run_export(tmp_path)
    api = _fake_api('e' * 40)
    with mock.patch('huggingface_hub.HfApi', return_value=api):
        assert main(['push', str(folder), '--repo-id', OFFICIAL, '--manifest', str(manifest), '--create-pr']) == 0
    assert 'status: not-yet-published' in manifest.read_text() and not load_manifest(manifest)[0].published


def test_export_help_and_licence_flag(tmp_path):
    out = subprocess.run([sys.executable, '-m', 'mask3d', 'export', '--help'], capture_output=True, text=True)
    assert out.returncode == 0 and '--license' in out.stdout and 'provenance' in out.stdout
    assert 'the run directory given to' in out.stdout
