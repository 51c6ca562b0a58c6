"""Loading weights: fake Hugging Face cache (offline), local files, local-dir, round trips, timm interchange."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import timm
import torch
from safetensors.torch import save_file

import mask3d
from conftest import tiny_kwargs
from mask3d import loading as loading_mod
from mask3d.manifest import Release, sha256_file

PLANNED_REPO = 'mask3d/mask3d_vit_tiny_patch16.scannet'  # the manifest's repo for mask3d_vit_tiny_patch16.scannet

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
    assert 'library_name: timm' in card and 'import mask3d' not in card and 'hou2023mask3d' in card
    cfg = json.loads((out / 'config.json').read_text())
    # plain timm's stock ViT, dynamic size, 240x320 default input; mask3d's own record beside it
    assert cfg['architecture'] == 'vit_tiny_patch16_224' and cfg['model_args']['depth'] == 2
    assert cfg['model_args']['dynamic_img_size'] is True and cfg['pretrained_cfg']['input_size'] == [3, 240, 320]
    assert cfg['mask3d']['sha256'] == sha256_file(out / 'model.safetensors')
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
    repo = 'someone/my-mask3d-tiny'  # a user's repo (official ids: tests/test_pinned_release.py)
    _fake_hub_repo(offline_hub, repo, _export_bytes(tiny, tmp_path))
    loaded = mask3d.create_model(f'hf-hub:{repo}', pretrained=True).eval()
    x = torch.randn(1, 3, 240, 320)
    assert torch.equal(loaded(x), tiny(x))
    loaded_rev = mask3d.create_model(f'hf-hub:{repo}@{COMMIT}', pretrained=True).eval()
    assert torch.equal(loaded_rev(x), tiny(x))


def test_fake_hub_cache_official_tag_loads_only_when_pinned(tiny, tmp_path, offline_hub, monkeypatch):
    """Files in the cache under the planned repo load as the official tag only if the manifest pins them."""
    files = _export_bytes(tiny, tmp_path)
    _fake_hub_repo(offline_hub, PLANNED_REPO, files)
    with pytest.raises(mask3d.WeightsNotPublishedError):
        timm.create_model('mask3d_vit_tiny_patch16.scannet', pretrained=True, **tiny_kwargs())
    entry = Release(name='mask3d_vit_tiny_patch16.scannet', repo_id=PLANNED_REPO, status='published',
                    license='apache-2.0', init='scratch', training_config='x', training_data='x', revision=COMMIT,
                    sha256=hashlib.sha256(files['model.safetensors']).hexdigest())
    monkeypatch.setattr(loading_mod, 'manifest_entry', lambda repo_id: entry if repo_id == PLANNED_REPO else None)
    x = torch.randn(1, 3, 240, 320)
    for name in ('mask3d_vit_tiny_patch16.scannet', 'mask3d_vit_tiny.scannet'):
        loaded = timm.create_model(name, pretrained=True, **tiny_kwargs()).eval()
        assert torch.equal(loaded(x), tiny(x))


def _not_found(*args, **kwargs):
    from huggingface_hub.errors import RepositoryNotFoundError
    raise RepositoryNotFoundError('404 Client Error. Repository Not Found',
                                  response=mock.Mock(status_code=404, headers={}, url='https://huggingface.co'))


def test_unpinned_official_names_are_not_published_without_asking_the_hub(monkeypatch):
    """"Not published yet" comes from the manifest; the Hub (mocked: repo not found) decides only for user repos."""
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, 'hf_hub_download', _not_found)
    for call in (lambda: timm.create_model('mask3d_vit_base.scannet', pretrained=True),
                 lambda: mask3d.create_model('mask3d_vit_large_patch16', pretrained=True),
                 lambda: mask3d.create_model('hf-hub:mask3d/mask3d_vit_base_patch16.in1k_scannet', pretrained=True)):
        with pytest.raises(mask3d.WeightsNotPublishedError) as e:
            call()
        msg = _one_line(e)
        assert 'is not published yet' in msg and 'local-dir:' in msg and 'checkpoint_path=' in msg
        assert 'no download is tried' in msg
    with pytest.raises(mask3d.WeightsDownloadError) as e:  # a repo the manifest does not know: just not found
        mask3d.create_model('hf-hub:someone/typo', pretrained=True)
    assert 'repository not found' in _one_line(e)


def _corrupt(tiny, tmp_path) -> dict:
    """An export whose model.safetensors was replaced by other valid weights after its sha256 was recorded."""
    files = _export_bytes(tiny, tmp_path)
    sd = {k: v.clone() for k, v in tiny.state_dict().items()}
    sd['norm.weight'][0] += 1
    save_file(sd, str(tmp_path / 'other.safetensors'))
    return {**files, 'model.safetensors': (tmp_path / 'other.safetensors').read_bytes()}


def test_sha256_mismatch_is_refused(tiny, tmp_path, offline_hub, monkeypatch):
    files = _corrupt(tiny, tmp_path)
    _fake_hub_repo(offline_hub, 'someone/corrupt', files)
    with pytest.raises(mask3d.InvalidWeightsFileError) as e:  # against the sha256 in the repo's config.json
        mask3d.create_model('hf-hub:someone/corrupt', pretrained=True)
    msg = _one_line(e)
    assert 'hf-hub:someone/corrupt model.safetensors' in msg and "config.json" in msg and 'sha256' in msg
    folder = tmp_path / 'local'
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with pytest.raises(mask3d.InvalidWeightsFileError) as e:
        mask3d.create_model(f'local-dir:{folder}', pretrained=True)
    assert str(folder / 'model.safetensors') in _one_line(e)
    # against the release manifest's sha256, for an official tag (the weights themselves are intact)
    _fake_hub_repo(offline_hub, PLANNED_REPO, _export_bytes(tiny, tmp_path))
    entry = Release(name='mask3d_vit_tiny_patch16.scannet', repo_id=PLANNED_REPO, status='published',
                    license='apache-2.0', init='scratch', training_config='x', training_data='x', revision=COMMIT,
                    sha256='0' * 64)
    monkeypatch.setattr(loading_mod, 'manifest_entry', lambda repo_id: entry if repo_id == PLANNED_REPO else None)
    with pytest.raises(mask3d.InvalidWeightsFileError) as e:
        timm.create_model('mask3d_vit_tiny.scannet', pretrained=True, **tiny_kwargs())
    msg = _one_line(e)
    assert f'hf-hub:{PLANNED_REPO}@{COMMIT} model.safetensors' in msg and 'release manifest' in msg


_PLAIN_TIMM = """
import socket, sys
class NoNetwork(socket.socket):  # everything must come from the cache
    def __init__(self, family=socket.AF_INET, *args, **kwargs):
        if family in (socket.AF_INET, socket.AF_INET6):
            raise RuntimeError('network access attempted')
        super().__init__(family, *args, **kwargs)
socket.socket = NoNetwork
import timm, torch
from safetensors.torch import save_file
x = torch.load(sys.argv[2], weights_only=True)
model = timm.create_model(sys.argv[1], pretrained=True).eval()
pyramid = timm.create_model(sys.argv[1], pretrained=True, features_only=True, out_indices=(0, 1)).eval()
with torch.no_grad():
    out = {'tokens': model.forward_features(x), **{f'map{i}': m for i, m in enumerate(pyramid(x))}}
assert 'mask3d' not in sys.modules, 'plain timm must not need mask3d'
save_file({k: v.contiguous() for k, v in out.items()}, sys.argv[3])
print(model.pretrained_cfg['input_size'], type(model).__name__)
"""


def test_plain_timm_loads_an_export_from_the_hub_cache(tiny, tmp_path, offline_hub):
    """A process that never imports mask3d loads the export via hf-hub: offline, features equal to mask3d's."""
    from safetensors.torch import load_file
    repo = 'someone/mask3d-tiny-export'
    _fake_hub_repo(offline_hub, repo, _export_bytes(tiny, tmp_path))
    x = torch.randn(1, 3, 240, 320)
    torch.save(x, tmp_path / 'x.pt')
    env = {**os.environ, 'HF_HUB_CACHE': str(offline_hub), 'HF_HUB_OFFLINE': '1', 'PYTHONPATH': ''}
    result = subprocess.run([sys.executable, '-c', _PLAIN_TIMM, f'hf-hub:{repo}', str(tmp_path / 'x.pt'),
                             str(tmp_path / 'out.safetensors')], capture_output=True, text=True, env=env,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '(3, 240, 320) VisionTransformer' in result.stdout
    got = load_file(str(tmp_path / 'out.safetensors'))
    pyramid = mask3d.create_model(f'hf-hub:{repo}', pretrained=True, features_only=True, out_indices=(0, 1)).eval()
    with torch.no_grad():
        assert torch.equal(got['tokens'], tiny.forward_features(x))
        for i, m in enumerate(pyramid(x)):
            assert torch.equal(got[f'map{i}'], m)


# ---- errors: one line, saying what to do --------------------------------------------------------------------

def _one_line(excinfo):
    msg = str(excinfo.value)
    assert '\n' not in msg
    return msg


def test_unknown_model_suggests_close_matches():
    with pytest.raises(mask3d.UnknownModelError) as e:
        mask3d.create_model('mask3d_vit_bsae_patch16')
    assert 'mask3d_vit_base_patch16' in _one_line(e)
    with pytest.raises(mask3d.UnknownModelError) as e:
        mask3d.create_model('mask3d_vit_base_patch16.imagenet')
    assert 'scannet' in _one_line(e)


def test_offline_not_cached_names_repo():
    with pytest.raises(mask3d.WeightsNotPublishedError) as e:  # offline or not: the manifest pins nothing
        mask3d.create_model('mask3d_vit_tiny_patch16.scannet', pretrained=True)
    msg = _one_line(e)
    assert '`mask3d_vit_tiny_patch16.scannet` is not published yet' in msg and 'REPO' not in msg
    with pytest.raises(mask3d.WeightsNotCachedError) as e:
        mask3d.create_model('hf-hub:someone/not-cached@v1', pretrained=True)
    msg = _one_line(e)
    assert 'offline' in msg and 'hf download someone/not-cached model.safetensors config.json --revision v1' in msg
    assert 'REPO' not in msg and 'local-dir:' in msg


@pytest.mark.parametrize('name', ['hf-hub:', 'hf-hub:a/b/c', 'hf-hub:bad id/x', 'hf-hub:org/name@', 'local-dir:',
                                  'local-dir:/no/such/folder'])
def test_malformed_ids_are_one_line_errors_naming_the_id(name):
    with pytest.raises(mask3d.InvalidWeightsFileError) as e:
        mask3d.create_model(name, pretrained=True)
    assert repr(name) in _one_line(e)


@pytest.mark.parametrize('text', ['{not json', '[1, 2]', '{"pretrained_cfg": {}}', '{"architecture": "x", "mask3d": 3}'])
def test_malformed_config_json_is_a_one_line_error_naming_the_file(tiny, tmp_path, text):
    out = mask3d.save_pretrained(tiny, tmp_path / 'm')
    (out / 'config.json').write_text(text)
    for name in (f'local-dir:{out}',):
        with pytest.raises(mask3d.InvalidWeightsFileError) as e:
            mask3d.create_model(name, pretrained=True)
        assert str(out / 'config.json') in _one_line(e)
    with pytest.raises(mask3d.InvalidWeightsFileError) as e:  # the sha256 check reads it too
        mask3d.create_model('mask3d_vit_tiny_patch16', checkpoint_path=out / 'model.safetensors', **tiny_kwargs())
    assert str(out / 'config.json') in _one_line(e)


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
        mask3d.create_model(f'hf-hub:{repo}', pretrained=True,
                            pretrained_cfg_overlay=dict(hf_hub_filename='pytorch_model.bin'))
    assert 'refusing' in _one_line(e)
    with pytest.raises(mask3d.InvalidWeightsFileError) as e:  # a registered name pointed at the pickle
        timm.create_model('mask3d_vit_tiny_patch16', pretrained=True,
                          pretrained_cfg_overlay=dict(hf_hub_id=repo, hf_hub_filename='pytorch_model.bin'))
    assert 'refusing' in _one_line(e)


def test_user_pickle_loads_only_with_weights_only(tmp_path, tiny):
    class Evil:
        def __reduce__(self):
            return (print, ('pwned',))
    path = tmp_path / 'evil.pt'
    torch.save({'model': Evil()}, path)
    with pytest.raises(mask3d.InvalidWeightsFileError) as e:
        mask3d.create_model('mask3d_vit_tiny_patch16', checkpoint_path=path)
    msg = _one_line(e)
    assert 'refused' in msg and '(print)' in msg and 'never unpickles' in msg
    assert 'weights_only=False' not in msg and 'trust the source' not in msg  # no hint to unpickle


def test_local_dir_without_config(tmp_path):
    with pytest.raises(mask3d.InvalidWeightsFileError) as e:
        mask3d.create_model(f'local-dir:{tmp_path}', pretrained=True)
    assert 'config.json' in _one_line(e)


def test_a_timm_classifier_file_initialises_the_backbone(tmp_path):
    """Any timm ViT file, head included (num_classes=1000), loads into the head-less backbone: the head is dropped."""
    torch.manual_seed(0)
    vit = timm.create_model('vit_tiny_patch16_224', depth=2).eval()
    path = tmp_path / 'vit_tiny_in1k.safetensors'
    save_file(vit.state_dict(), str(path))
    model = mask3d.create_model('mask3d_vit_tiny_patch16', checkpoint_path=path, **tiny_kwargs()).eval()
    x = torch.randn(1, 3, 224, 224)
    assert torch.equal(model.forward_features(x), vit.forward_features(x))
    with_head = mask3d.create_model('mask3d_vit_tiny_patch16', checkpoint_path=path, num_classes=1000, **tiny_kwargs())
    assert torch.equal(with_head.eval()(x), vit(x))


def test_timm_loads_the_snapshot_that_was_verified(tiny, tmp_path, offline_hub, monkeypatch):
    """``hf-hub:REPO`` is verified, then handed to timm as ``hf-hub:REPO@COMMIT`` of that snapshot."""
    _fake_hub_repo(offline_hub, 'someone/moving', _export_bytes(tiny, tmp_path))
    names = []
    real = timm.create_model
    monkeypatch.setattr(timm, 'create_model', lambda name, **kw: names.append(name) or real(name, **kw))
    mask3d.create_model('hf-hub:someone/moving', pretrained=True)
    assert names == [f'hf-hub:someone/moving@{COMMIT}']
