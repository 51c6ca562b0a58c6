"""Official names load only a release the manifest pins (Hub commit + sha256); a squatter's repo is never loaded.

The `mask3d` organisation on the Hub is not ours: whatever a repo under the planned id holds, in the cache or online,
must not load as `mask3d_vit_tiny_patch16.scannet` unless the manifest pins exactly that commit and file.
"""
import hashlib
from pathlib import Path

import pytest
import timm
import torch
import yaml

import mask3d
import mask3d_resources
from conftest import tiny_kwargs
from mask3d.manifest import sha256_file

NAME = 'mask3d_vit_tiny_patch16.scannet'
PLANNED_REPO = 'mask3d/mask3d_vit_tiny_patch16.scannet'
PINNED = '1' * 40
OTHER = '2' * 40


def plant_repo(cache: Path, repo_id: str, commit: str, files: dict, main: bool = True) -> Path:
    """A repo laid out as huggingface_hub caches it: blobs/, refs/main, snapshots/<commit>/ symlinks."""
    org, name = repo_id.split('/')
    root = cache / f'models--{org}--{name}'
    (root / 'refs').mkdir(parents=True, exist_ok=True)
    if main:
        (root / 'refs' / 'main').write_text(commit)
    snap = root / 'snapshots' / commit
    snap.mkdir(parents=True)
    (root / 'blobs').mkdir(exist_ok=True)
    for fname, data in files.items():
        blob = root / 'blobs' / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / fname).symlink_to(Path('..') / '..' / 'blobs' / blob.name)
    return snap


def _export(seed: int, tmp_path: Path) -> dict:
    torch.manual_seed(seed)
    model = mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs()).eval()
    out = mask3d.save_pretrained(model, tmp_path / f'export{seed}')
    return {n: (out / n).read_bytes() for n in ('model.safetensors', 'config.json')}


def _pin(tmp_path, monkeypatch, sha256: str, revision: str = PINNED) -> None:
    """Use a manifest whose tiny release is published at ``revision`` with ``sha256``."""
    data = yaml.safe_load(mask3d_resources.manifest_path().read_text())
    for entry in data['weights']:
        if entry['name'] == NAME:
            entry.update(status='published', revision=revision, sha256=sha256)
    path = tmp_path / 'manifest.yaml'
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setattr(mask3d_resources, 'manifest_path', lambda: path)


@pytest.fixture
def no_hub_calls(monkeypatch):
    """Fail if anything asks the Hub (or its cache) for a file."""
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise AssertionError(f'the Hub was asked for {args}')
    monkeypatch.setattr(huggingface_hub, 'hf_hub_download', refuse)


def _loads(name: str):
    return (lambda: timm.create_model(name, pretrained=True, **tiny_kwargs()),
            lambda: mask3d.create_model(name, pretrained=True, **tiny_kwargs()))


@pytest.mark.parametrize('offline', [True, False])
def test_squatter_under_the_planned_repo_id_is_not_loaded(tmp_path, offline_hub, no_hub_calls, monkeypatch, offline):
    """Unpinned: "not published yet" from the manifest alone, online or offline, whatever the cache holds."""
    import huggingface_hub.constants as hf_constants
    monkeypatch.setattr(hf_constants, 'HF_HUB_OFFLINE', offline)
    plant_repo(offline_hub, PLANNED_REPO, OTHER, _export(1, tmp_path))
    calls = [*_loads(NAME), *_loads('mask3d_vit_tiny.scannet'),
             lambda: mask3d.create_model(f'hf-hub:{PLANNED_REPO}', pretrained=True),
             lambda: mask3d.create_model('mask3d_vit_large_patch16', pretrained=True),
             lambda: timm.create_model(NAME, pretrained=True, features_only=True, **tiny_kwargs()),
             lambda: timm.create_model('mask3d_vit_tiny_patch16', pretrained=True, **tiny_kwargs(),
                                       pretrained_cfg_overlay=dict(hf_hub_id=PLANNED_REPO))]
    for call in calls:
        with pytest.raises(mask3d.WeightsNotPublishedError) as e:
            call()
        msg = str(e.value)
        assert '\n' not in msg and 'is not published yet' in msg and 'REPO' not in msg
        assert 'local-dir:' in msg and 'mask3d pretrain' in msg
    assert f'`{NAME}` is not published yet' in str(pytest.raises(mask3d.WeightsNotPublishedError, _loads(NAME)[0]).value)


def test_pinned_release_loads_exactly_the_pinned_file(tmp_path, offline_hub, monkeypatch):
    genuine = _export(0, tmp_path)
    plant_repo(offline_hub, PLANNED_REPO, PINNED, genuine)
    _pin(tmp_path, monkeypatch, hashlib.sha256(genuine['model.safetensors']).hexdigest())
    torch.manual_seed(0)
    reference = mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs()).eval()
    x = torch.randn(1, 3, 240, 320)
    for call in (*_loads(NAME), lambda: mask3d.create_model(f'hf-hub:{PLANNED_REPO}', pretrained=True,
                                                            **tiny_kwargs())):
        assert torch.equal(call().eval()(x), reference(x))


def test_a_different_revision_under_the_planned_id_is_not_loaded(tmp_path, offline_hub, monkeypatch):
    """The cache's main points at a squatter's commit; the download asks for the pinned one, which is not there."""
    genuine = _export(0, tmp_path)
    plant_repo(offline_hub, PLANNED_REPO, OTHER, _export(1, tmp_path))
    _pin(tmp_path, monkeypatch, hashlib.sha256(genuine['model.safetensors']).hexdigest())
    for call in _loads(NAME):
        with pytest.raises(mask3d.WeightsNotCachedError) as e:
            call()
        assert f'{PLANNED_REPO}@{PINNED}' in str(e.value) and f'--revision {PINNED}' in str(e.value)
    with pytest.raises(mask3d.WeightsDownloadError) as e:  # asking for the squatter's commit by name
        mask3d.create_model(f'hf-hub:{PLANNED_REPO}@{OTHER}', pretrained=True)
    assert f'pins ({PINNED})' in str(e.value)


def test_a_tampered_file_at_the_pinned_revision_is_refused_before_loading(tmp_path, offline_hub, monkeypatch):
    genuine = _export(0, tmp_path)
    tampered = {**genuine, 'model.safetensors': _export(1, tmp_path)['model.safetensors']}
    snap = plant_repo(offline_hub, PLANNED_REPO, PINNED, tampered)
    _pin(tmp_path, monkeypatch, hashlib.sha256(genuine['model.safetensors']).hexdigest())
    import safetensors.torch
    opened = []
    monkeypatch.setattr(safetensors.torch, 'load_file', lambda *a, **k: opened.append(a))
    for call in _loads(NAME):
        with pytest.raises(mask3d.InvalidWeightsFileError) as e:
            call()
        msg = str(e.value)
        assert f'hf-hub:{PLANNED_REPO}@{PINNED} model.safetensors' in msg and 'release manifest' in msg
        assert 'was not loaded' in msg and sha256_file(snap / 'model.safetensors') in msg
    assert opened == []


def test_published_entry_without_a_pin_is_refused_by_the_manifest(tmp_path):
    from mask3d.manifest import load_manifest
    data = yaml.safe_load(mask3d_resources.manifest_path().read_text())
    data['weights'][0].update(status='published', revision='main', sha256='0' * 64)
    path = tmp_path / 'manifest.yaml'
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(mask3d.Mask3DError, match="does not pin it: revision must be a 40-hex Hub commit id .got 'main'"):
        load_manifest(path)


def test_planned_repo_id_in_another_case_is_the_same_official_repo(tmp_path, offline_hub, no_hub_calls):
    """Hub repo ids are case-insensitive: `Mask3D/...` serves the planned repo, so it is refused like it."""
    variant = 'Mask3D/mask3d_vit_tiny_patch16.scannet'
    plant_repo(offline_hub, variant, OTHER, _export(1, tmp_path))
    for call in (lambda: mask3d.create_model(f'hf-hub:{variant}', pretrained=True),
                 lambda: timm.create_model('mask3d_vit_tiny_patch16', pretrained=True, **tiny_kwargs(),
                                           pretrained_cfg_overlay=dict(hf_hub_id=variant))):
        with pytest.raises(mask3d.WeightsNotPublishedError, match=f'`{NAME}` is not published yet'):
            call()
