"""``mask3d_resources``: the configs and the release manifest for the library and the command, without torch.

A wheel holds them as package data (``mask3d_resources/configs/``, ``mask3d_resources/hub/manifest.yaml``); a clone,
an editable install or a bare source tree reads ``training/configs`` and ``hub/manifest.yaml`` in place. The wheel and
the editable install are built and installed in tests/test_packaging.py.
"""
import subprocess
import sys
from types import SimpleNamespace

import mask3d_resources
from conftest import REPO_ROOT


def _light(code: str, *python_args: str) -> str:
    result = subprocess.run([sys.executable, *python_args, '-c', code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_a_bare_source_tree_reads_the_repository_files():
    """No install at all (``-S``: no site-packages, so no editable finder): the source tree on ``sys.path``."""
    out = _light('import sys, mask3d_resources as r\n'
                 'print(r.configs_root()); print(r.manifest_path()); print(len(r.list_configs()))\n'
                 'print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "timm", "yaml", "mask3d")))\n',
                 '-S').splitlines()
    assert out[:2] == [str(REPO_ROOT / 'training' / 'configs'), str(REPO_ROOT / 'hub' / 'manifest.yaml')]
    assert int(out[2]) == len(list((REPO_ROOT / 'training' / 'configs').rglob('*.yaml'))) > 0
    assert out[3] == '[]'  # the command lists configs before anything heavy loads


def test_in_a_clone_the_files_are_the_repository_ones():
    assert mask3d_resources.configs_root() == REPO_ROOT / 'training' / 'configs'
    assert mask3d_resources.manifest_path() == REPO_ROOT / 'hub' / 'manifest.yaml'
    assert mask3d_resources.PACKAGE_FOLDER == REPO_ROOT / 'mask3d_resources'


def test_the_installed_package_data_comes_first(tmp_path, monkeypatch):
    """The wheel's layout: ``configs/`` and ``hub/manifest.yaml`` inside the package folder are used even where a
    ``training/configs`` happens to lie beside the package (site-packages may hold another project's ``training``)."""
    installed = tmp_path / 'site-packages' / 'mask3d_resources'
    (installed / 'configs' / 'pretrain').mkdir(parents=True)
    (installed / 'configs' / 'pretrain' / 'only_in_wheel.yaml').write_text('# x\n')
    (installed / 'hub').mkdir()
    (installed / 'hub' / 'manifest.yaml').write_text('weights: []\n')
    (tmp_path / 'site-packages' / 'training' / 'configs').mkdir(parents=True)
    monkeypatch.setattr(mask3d_resources, 'files', lambda package: installed)
    monkeypatch.setattr(mask3d_resources, '_REPOSITORY', tmp_path / 'site-packages')
    assert mask3d_resources.configs_root() == installed / 'configs'
    assert mask3d_resources.manifest_path() == installed / 'hub' / 'manifest.yaml'
    assert mask3d_resources.list_configs() == {'pretrain/only_in_wheel': installed / 'configs' / 'pretrain' /
                                               'only_in_wheel.yaml'}
    assert mask3d_resources.resolve_config('only_in_wheel') == installed / 'configs' / 'pretrain' / 'only_in_wheel.yaml'


def test_a_release_is_not_recorded_in_the_installed_copy(tmp_path, capsys):
    """``mask3d push --release`` pins the commit in the manifest it read, unless that is the wheel's copy (it would be
    lost on the next install): then it prints what to record in hub/manifest.yaml."""
    from mask3d.publish import _pin
    installed = tmp_path / 'mask3d_resources'
    (installed / 'hub').mkdir(parents=True)
    manifest = installed / 'hub' / 'manifest.yaml'
    manifest.write_text('weights: []\n')
    _pin(manifest, SimpleNamespace(name='mask3d_vit_tiny_patch16.scannet'), 'a' * 40, 'b' * 64, True, installed, print)
    assert manifest.read_text() == 'weights: []\n'
    assert f"record `revision: {'a' * 40}`" in capsys.readouterr().out
