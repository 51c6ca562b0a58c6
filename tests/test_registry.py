import re

import pytest
import timm
import torch

import mask3d
from mask3d.manifest import load_manifest
from mask3d.models.mask3d_vit import default_cfgs
from mask3d_cli.bundled import manifest_path

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


def test_no_name_collides_with_timm_builtin_models():
    builtin = set(timm.list_models(module='vision_transformer'))
    assert not builtin & set(ARCHS)


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
