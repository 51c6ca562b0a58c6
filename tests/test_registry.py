import re

import pytest
import timm
import torch

import mask3d
from mask3d.manifest import load_manifest
from mask3d.models.mask3d_vit import default_cfgs
from mask3d_resources import manifest_path

SIZES = ['tiny', 'small', 'base', 'large']
ARCHS = [f'mask3d_vit_{s}_patch16' for s in SIZES]
ALIASES = [f'mask3d_vit_{s}' for s in SIZES]


def test_import_registers_all_sizes_in_timm():
    assert sorted(mask3d.list_models()) == sorted(ARCHS + ALIASES)
    for arch in ARCHS:
        assert timm.is_model(arch)
        assert 'mask3d_vit' in timm.list_modules()


def test_tags_and_hub_ids_are_data():
    tagged = set(mask3d.list_models(pretrained=True))
    for arch in ARCHS:
        assert f'{arch}.scannet' in tagged
    for arch in ('mask3d_vit_base_patch16', 'mask3d_vit_large_patch16'):
        assert f'{arch}.in1k_scannet' in tagged
    repos = {r.name: r.repo_id for r in load_manifest(manifest_path())}
    for arch, default in default_cfgs.items():
        for tag, cfg in default.cfgs.items():
            assert cfg.hf_hub_id == repos[f"{arch.replace('_patch16', '')}_patch16.{tag}"]  # from the manifest
            assert re.fullmatch(r'[\w.-]+/[\w.-]+', cfg.hf_hub_id)
            assert cfg.hf_hub_filename == 'model.safetensors'
            assert cfg.paper_ids == 'arXiv:2302.14746' and cfg.license
            assert cfg.input_size == (3, 240, 320) and cfg.num_classes == 0
            assert len(cfg.mean) == len(cfg.std) == 3


# Run in a fresh process: timm's registry before and after `import mask3d`, then after a deliberate collision
# (a module registering timm's own vit_tiny_patch16_224), which must show up as an overwritten entrypoint.
_COLLISION_PROBE = r"""
import json, sys, types, warnings
import timm
from timm.models import _registry

def overwritten(before, after):
    return sorted(name for name, fn in before.items() if after.get(name) is not fn)

def register_recording_warnings(action):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        action()
    return [str(w.message) for w in caught if 'Overwriting' in str(w.message)]

builtin = dict(_registry._model_entrypoints)
mask3d_warnings = register_recording_warnings(lambda: __import__('mask3d'))
after_mask3d = dict(_registry._model_entrypoints)
sys.modules['collider'] = types.ModuleType('collider')
def vit_tiny_patch16_224(pretrained=False, **kwargs):
    raise AssertionError('never built')
vit_tiny_patch16_224.__module__ = 'collider'
collider_warnings = register_recording_warnings(lambda: timm.models.register_model(vit_tiny_patch16_224))
print(json.dumps({'builtin': len(builtin), 'added': sorted(set(after_mask3d) - set(builtin)),
                  'overwritten_by_mask3d': overwritten(builtin, after_mask3d), 'mask3d_warnings': mask3d_warnings,
                  'overwritten_by_collider': overwritten(after_mask3d, dict(_registry._model_entrypoints)),
                  'collider_warnings': collider_warnings}))
"""


def test_no_name_collides_with_timm_builtin_models():
    import json
    import os
    import subprocess
    import sys
    out = subprocess.run([sys.executable, '-c', _COLLISION_PROBE], capture_output=True, text=True, timeout=120,
                         env={**os.environ, 'HF_HUB_OFFLINE': '1'})
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report['builtin'] > 1000  # timm's own models were registered before mask3d was imported
    assert report['added'] == sorted(ARCHS + ALIASES)
    assert report['overwritten_by_mask3d'] == [] and report['mask3d_warnings'] == []
    # the same check catches a real collision
    assert report['overwritten_by_collider'] == ['vit_tiny_patch16_224']
    assert len(report['collider_warnings']) == 1 and 'vit_tiny_patch16_224' in report['collider_warnings'][0]


@pytest.mark.parametrize('arch,dim,depth', [('mask3d_vit_tiny_patch16', 192, 12), ('mask3d_vit_small_patch16', 384, 12),
                                            ('mask3d_vit_base_patch16', 768, 12), ('mask3d_vit_large_patch16', 1024, 24)])
def test_architecture_sizes_match_timm_vits(arch, dim, depth):
    model = timm.create_model(arch)
    assert model.embed_dim == dim and len(model.blocks) == depth and model.num_classes == 0
    # stored on timm's 224 grid (strict interchange), resampled to any input grid at run time
    assert model.patch_embed.grid_size == (14, 14) and model.dynamic_img_size
    assert model.forward_features(torch.randn(1, 3, 240, 320)).shape[1] == 1 + 15 * 20


@pytest.mark.parametrize('size', SIZES)
def test_short_names_are_the_patch16_models_tags_included(size):
    short, full = f'mask3d_vit_{size}', f'mask3d_vit_{size}_patch16'
    assert timm.list_pretrained(f'{short}.*') == [n.replace(full, short) for n in timm.list_pretrained(f'{full}.*')]
    kwargs = dict(depth=2)  # the cfgs and weights layout do not depend on depth; keeps the test fast
    for tag in [n.split('.')[1] for n in timm.list_pretrained(f'{full}.*')]:
        a = timm.create_model(f'{short}.{tag}', **kwargs)
        b = timm.create_model(f'{full}.{tag}', **kwargs)
        cfg_a, cfg_b = dict(a.pretrained_cfg), dict(b.pretrained_cfg)
        assert cfg_a.pop('architecture') == short and cfg_b.pop('architecture') == full
        assert cfg_a == cfg_b and cfg_a['tag'] == tag
    b.load_state_dict(a.state_dict(), strict=True)  # same keys and shapes
    x = torch.randn(1, 3, 240, 320)
    assert torch.equal(a.eval().forward_features(x), b.eval().forward_features(x))
