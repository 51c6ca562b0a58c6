import subprocess
import sys

import pytest

import mask3d
from mask3d.cli import main


def test_models_lists_weights_and_status(capsys):
    assert main(['models']) == 0
    out = capsys.readouterr().out
    assert 'mask3d_vit_base_patch16' in out and 'in1k_scannet: not-yet-published' in out
    assert 'mask3d/mask3d_vit_base_patch16.scannet' in out and 'mask3d_vit_base ' in out
    assert 'without contacting the Hub' in out


@pytest.mark.e2e
def test_console_script_entry_point():
    out = subprocess.run([sys.executable, '-m', 'mask3d', 'models', '*tiny*'], capture_output=True, text=True)
    assert out.returncode == 0 and 'mask3d_vit_tiny_patch16' in out.stdout and 'base' not in out.stdout


# `mask3d push`: tests/test_push.py


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
    from mask3d_resources import configs_root, resolve_config
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
    import mask3d_resources
    (tmp_path / 'training' / 'configs' / 'probe').mkdir(parents=True)
    (tmp_path / 'training' / 'configs' / 'probe' / 'nyu_depth_probe.yaml').write_text('# a probe\n')
    monkeypatch.setattr(mask3d_resources, '_REPOSITORY', tmp_path)  # a clone's layout: read in place
    assert mask3d_resources.resolve_config('nyu_depth_probe', 'probe') == \
        tmp_path / 'training' / 'configs' / 'probe' / 'nyu_depth_probe.yaml'
    assert list(mask3d_resources.list_configs('probe')) == ['probe/nyu_depth_probe']
