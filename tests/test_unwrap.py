"""One place finds the ViT inside a model (issue 24: the unwrap code existed four times)."""
from pathlib import Path

import pytest
from torch import nn

import mask3d
from mask3d.unwrap import vit_inside

ARGS = dict(img_size=32, embed_dim=24, depth=4, num_heads=2)


def test_a_plain_vit_is_its_own_vit():
    vit = mask3d.create_model('mask3d_vit_tiny_patch16', **ARGS)
    assert vit_inside(vit) == (vit, '')


def test_a_features_only_wrapper_gives_its_vit_and_the_prefix_of_its_parameters():
    net = mask3d.create_model('mask3d_vit_tiny_patch16', features_only=True, out_indices=(1, 3), **ARGS)
    vit, prefix = vit_inside(net)
    assert vit is net.model and prefix == 'model.'
    names = dict(net.named_parameters())
    assert all(f'{prefix}{k}' in names for k, _ in vit.named_parameters())


def test_a_model_without_a_vit_is_returned_as_is():
    head = nn.Linear(2, 2)
    assert vit_inside(head) == (head, '')


def test_no_other_module_looks_for_the_vit_itself():
    root = Path(mask3d.__file__).parent
    others = [str(p.relative_to(root)) for p in root.rglob('*.py')
              if p.name != 'unwrap.py' and "'patch_embed')" in p.read_text(encoding='utf-8')]
    assert others == []
