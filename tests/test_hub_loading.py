"""Loading weights: fake Hugging Face cache (offline), local files, local-dir, round trips, timm interchange."""
import hashlib
import json
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

import mask3d
from conftest import tiny_kwargs
from mask3d import weights as weights_mod

COMMIT = 'a' * 40


def _fake_hub_repo(cache: Path, repo_id: str, files: dict) -> Path:
    """Lay out a repo exactly as huggingface_hub does: blobs/, refs/main, snapshots/<commit>/ symlinks."""
    org, name = repo_id.split('/')
    root = cache / f'models--{org}--{name}'
    (root / 'refs').mkdir(parents=True)
    (root / 'refs' / 'main').write_text(COMMIT)
    snap = root / 'snapshots' / COMMIT
    snap.mkdir(parents=True)
    (root / 'blobs').mkdir()
    for fname, data in files.items():
        blob = root / 'blobs' / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / fname).symlink_to(Path('..') / '..' / 'blobs' / blob.name)
    return snap


def _export_bytes(model, tmp_path) -> dict:
    out = mask3d.save_pretrained(model, tmp_path / 'export')
    return {n: (out / n).read_bytes() for n in ('model.safetensors', 'config.json')}


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return mask3d.create_model('mask3d_vit_tiny_patch16', **tiny_kwargs()).eval()


def test_save_pretrained_round_trip_local_dir(tiny, tmp_path):
    out = mask3d.save_pretrained(tiny, tmp_path / 'm')
    assert {p.name for p in out.iterdir()} == {'model.safetensors', 'config.json', 'README.md'}
    card = (out / 'README.md').read_text()
    assert card.index('import mask3d') < card.index('timm.create_model') and 'hou2023mask3d' in card
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['architecture'] == 'mask3d_vit_tiny_patch16' and cfg['model_args']['depth'] == 2
    loaded = mask3d.create_model(f'local-dir:{out}', pretrained=True).eval()
    x = torch.randn(2, 3, 240, 320)
    assert torch.equal(loaded.forward_features(x), tiny.forward_features(x))
    via_timm = timm.create_model(f'local-dir:{out}', pretrained=True).eval()
    assert torch.equal(via_timm(x), tiny(x))


def test_checkpoint_path_file(tiny, tmp_path):
    path = tmp_path / 'w.safetensors'
    save_file(tiny.state_dict(), str(path))
    loaded = mask3d.create_model('mask3d_vit_tiny_patch16', checkpoint_path=path, **tiny_kwargs()).eval()
    x = torch.randn(1, 3, 240, 320)
    assert torch.equal(loaded(x), tiny(x))
    # timm's own overlay path reads the same file
    overlay = timm.create_model('mask3d_vit_tiny_patch16', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)),
                                **tiny_kwargs()).eval()
    assert torch.equal(overlay(x), tiny(x))


def test_weights_move_to_timm_vit_and_back(tiny, tmp_path):
    x224 = torch.randn(2, 3, 224, 224)
    x = torch.randn(2, 3, 240, 320)
    # strict load into timm's stock ViT of the same size, same features
    vit = timm.create_model('vit_tiny_patch16_224', num_classes=0, depth=2).eval()
    vit.load_state_dict(tiny.state_dict(), strict=True)
    assert torch.equal(vit.forward_features(x224), tiny.forward_features(x224))
    vit_dyn = timm.create_model('vit_tiny_patch16_224', num_classes=0, depth=2, dynamic_img_size=True).eval()
    vit_dyn.load_state_dict(tiny.state_dict(), strict=True)
    assert torch.equal(vit_dyn.forward_features(x), tiny.forward_features(x))
    # the published safetensors file through timm's own pretrained path (strict)
    path = tmp_path / 'model.safetensors'
    save_file(tiny.state_dict(), str(path))
    vit_file = timm.create_model('vit_tiny_patch16_224', num_classes=0, depth=2, pretrained=True,
                                 pretrained_cfg_overlay=dict(file=str(path))).eval()
    assert torch.equal(vit_file.forward_features(x224), tiny.forward_features(x224))
    # and back: a timm ViT's weights initialise a mask3d backbone without conversion
    torch.manual_seed(1)
    other = timm.create_model('vit_tiny_patch16_224', num_classes=0, depth=2).eval()
    path2 = tmp_path / 'timm_vit.safetensors'
    save_file(other.state_dict(), str(path2))
    back = mask3d.create_model('mask3d_vit_tiny_patch16', checkpoint_path=path2, **tiny_kwargs()).eval()
    assert torch.equal(back(x224), other(x224))


def test_mae_checkpoint_initialises_mask3d(tmp_path):
    """An ImageNet MAE checkpoint (vit_*_patch16_224.mae layout: 224 grid, encoder + decoder keys) loads."""
    torch.manual_seed(0)
    mae_encoder = timm.create_model('vit_tiny_patch16_224', num_classes=0, global_pool='', depth=2)
    ckpt = {'model': {**mae_encoder.state_dict(), 'mask_token': torch.zeros(1, 1, 128),
                      'decoder_embed.weight': torch.zeros(128, 192), 'decoder_pos_embed': torch.zeros(1, 197, 128)}}
    path = tmp_path / 'mae_pretrain_vit_tiny.pth'
    torch.save(ckpt, path)
    model = mask3d.create_model('mask3d_vit_tiny_patch16', checkpoint_path=path, **tiny_kwargs()).eval()
    assert torch.equal(model.blocks[1].mlp.fc2.weight, mae_encoder.blocks[1].mlp.fc2.weight)
    assert torch.equal(model.pos_embed, mae_encoder.pos_embed)
    x = torch.randn(1, 3, 224, 224)
    assert torch.equal(model.forward_features(x), mae_encoder.eval().forward_features(x))


def test_fake_hub_cache_hf_hub_name(tiny, tmp_path, offline_hub):
    repo = f'{weights_mod.HF_HUB_ORG}/mask3d_vit_tiny_patch16.scannet'
    _fake_hub_repo(offline_hub, repo, _export_bytes(tiny, tmp_path))
    loaded = mask3d.create_model(f'hf-hub:{repo}', pretrained=True).eval()
    x = torch.randn(1, 3, 240, 320)
    assert torch.equal(loaded(x), tiny(x))
    loaded_rev = mask3d.create_model(f'hf-hub:{repo}@{COMMIT}', pretrained=True).eval()
    assert torch.equal(loaded_rev(x), tiny(x))


def test_fake_hub_cache_published_tag(tiny, tmp_path, offline_hub, monkeypatch):
    repo = f'{weights_mod.HF_HUB_ORG}/mask3d_vit_tiny_patch16.scannet'
    _fake_hub_repo(offline_hub, repo, _export_bytes(tiny, tmp_path))
    monkeypatch.setattr(weights_mod, 'PUBLISHED_TAGS', frozenset({'mask3d_vit_tiny_patch16.scannet'}))
    loaded = timm.create_model('mask3d_vit_tiny_patch16.scannet', pretrained=True, **tiny_kwargs()).eval()
    x = torch.randn(1, 3, 240, 320)
    assert torch.equal(loaded(x), tiny(x))


# ---- errors: one line, saying what to do --------------------------------------------------------------------

def _one_line(excinfo):
    msg = str(excinfo.value)
    assert '\n' not in msg
    return msg


def test_unpublished_tag_says_so():
    with pytest.raises(mask3d.WeightsNotPublishedError) as e:
        timm.create_model('mask3d_vit_base_patch16.scannet', pretrained=True)
    msg = _one_line(e)
    assert 'not published yet' in msg and 'local-dir:' in msg and 'checkpoint_path=' in msg
    with pytest.raises(mask3d.WeightsNotPublishedError):
        mask3d.create_model('mask3d_vit_large_patch16', pretrained=True)


def test_unknown_model_suggests_close_matches():
    with pytest.raises(mask3d.UnknownModelError) as e:
        mask3d.create_model('mask3d_vit_bsae_patch16')
    assert 'mask3d_vit_base_patch16' in _one_line(e)
    with pytest.raises(mask3d.UnknownModelError) as e:
        mask3d.create_model('mask3d_vit_base_patch16.imagenet')
    assert 'scannet' in _one_line(e)


def test_offline_not_cached_names_repo(monkeypatch):
    monkeypatch.setattr(weights_mod, 'PUBLISHED_TAGS', frozenset({'mask3d_vit_tiny_patch16.scannet'}))
    with pytest.raises(mask3d.WeightsNotCachedError) as e:
        mask3d.create_model('mask3d_vit_tiny_patch16.scannet', pretrained=True)
    msg = _one_line(e)
    assert 'mask3d/mask3d_vit_tiny_patch16.scannet' in msg and 'offline' in msg and 'local-dir:' in msg
    with pytest.raises(mask3d.WeightsNotCachedError):
        mask3d.create_model('hf-hub:someone/not-cached', pretrained=True)


def test_checkpoint_mismatch_lists_keys(tiny, tmp_path):
    sd = tiny.state_dict()
    sd.pop('norm.weight')
    sd['extra.weight'] = torch.zeros(3)
    sd['blocks.0.attn.qkv.weight'] = torch.zeros(10, 10)
    path = tmp_path / 'bad.safetensors'
    save_file(sd, str(path))
    with pytest.raises(mask3d.CheckpointMismatchError) as e:
        mask3d.create_model('mask3d_vit_tiny_patch16', checkpoint_path=path, **tiny_kwargs())
    msg = _one_line(e)
    assert 'missing: norm.weight' in msg and 'unexpected: extra.weight' in msg
    assert 'blocks.0.attn.qkv.weight (10, 10) vs model (576, 192)' in msg


def test_invalid_safetensors_file(tmp_path):
    path = tmp_path / 'model.safetensors'
    path.write_bytes(b'this is not safetensors')
    with pytest.raises(mask3d.InvalidWeightsFileError) as e:
        mask3d.create_model('mask3d_vit_tiny_patch16', checkpoint_path=path)
    assert str(path) in _one_line(e)
    with pytest.raises(mask3d.InvalidWeightsFileError):
        mask3d.create_model('mask3d_vit_tiny_patch16', checkpoint_path=tmp_path / 'missing.safetensors')


def test_pickle_from_hub_is_refused(tiny, tmp_path, offline_hub):
    # a Hub repo holding only a pickle: mask3d asks for model.safetensors and never unpickles the .bin
    repo = 'someone/pickled-vit'
    cfg = json.loads(_export_bytes(tiny, tmp_path)['config.json'])
    import io
    buf = io.BytesIO()
    torch.save(tiny.state_dict(), buf)
    _fake_hub_repo(offline_hub, repo, {'config.json': json.dumps(cfg).encode(), 'pytorch_model.bin': buf.getvalue()})
    with pytest.raises((mask3d.WeightsNotCachedError, mask3d.WeightsDownloadError)) as e:
        mask3d.create_model(f'hf-hub:{repo}', pretrained=True)
    assert 'model.safetensors' in _one_line(e)
    with pytest.raises(mask3d.InvalidWeightsFileError) as e:
        timm.create_model(f'hf-hub:{repo}', pretrained=True, pretrained_cfg_overlay=dict(hf_hub_filename='pytorch_model.bin'))
    assert 'refusing' in _one_line(e)


def test_user_pickle_loads_only_with_weights_only(tmp_path, tiny):
    class Evil:
        def __reduce__(self):
            return (print, ('pwned',))
    path = tmp_path / 'evil.pt'
    torch.save({'model': Evil()}, path)
    with pytest.raises(mask3d.InvalidWeightsFileError) as e:
        mask3d.create_model('mask3d_vit_tiny_patch16', checkpoint_path=path)
    assert 'weights_only=True' in _one_line(e)


def test_local_dir_without_config(tmp_path):
    with pytest.raises(mask3d.InvalidWeightsFileError) as e:
        mask3d.create_model(f'local-dir:{tmp_path}', pretrained=True)
    assert 'config.json' in _one_line(e)
