"""Heads wrap a features_only backbone without changing it, and give the right shapes at several input sizes."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from mask3d.heads import (SimpleFeaturePyramid, build_backbone, build_depth_model, build_mask_rcnn,
                          build_segmentation_model, default_out_indices)

KW = dict(depth=4)


@pytest.fixture(scope='module')
def backbone():
    torch.manual_seed(0)
    return build_backbone('mask3d_vit_tiny_patch16', **KW)


def test_default_out_indices():
    assert default_out_indices(12) == (2, 5, 8, 11) and default_out_indices(24) == (5, 11, 17, 23)
    with pytest.raises(ValueError):
        default_out_indices(2)


@pytest.mark.parametrize('size', [(240, 320), (224, 224), (160, 96)])
@pytest.mark.parametrize('head', ['upernet', 'linear'])
def test_segmentation_shapes(backbone, size, head):
    model = build_segmentation_model(backbone, num_classes=7, head=head, channels=32).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, *size)).shape == (2, 7, *size)


@pytest.mark.parametrize('size', [(240, 320), (128, 192)])
def test_depth_shapes_and_range(backbone, size):
    model = build_depth_model(backbone, max_depth=10.0, channels=32).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 1, *size) and (out > 0).all() and (out < 10).all()


def test_heads_do_not_change_the_backbone(backbone):
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    model = build_segmentation_model(backbone, num_classes=3, channels=32)
    assert set(k[len('backbone.'):] for k in model.state_dict() if k.startswith('backbone.')) == set(before)
    assert model.backbone is backbone
    assert all(torch.equal(v, backbone.state_dict()[k]) for k, v in before.items())


def test_instance_model_train_and_eval(backbone):
    torch.manual_seed(0)
    model = build_mask_rcnn(backbone, num_classes=3, min_size=96, max_size=128)
    images = [torch.rand(3, 96, 128), torch.rand(3, 96, 128)]
    masks = torch.zeros(1, 96, 128, dtype=torch.uint8)
    masks[0, 20:60, 30:90] = 1
    targets = [{'boxes': torch.tensor([[30.0, 20.0, 90.0, 60.0]]), 'labels': torch.tensor([2]), 'masks': masks}] * 2
    model.train()
    losses = model(images, targets)
    assert {'loss_classifier', 'loss_box_reg', 'loss_mask', 'loss_objectness', 'loss_rpn_box_reg'} <= set(losses)
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2 and {'boxes', 'labels', 'scores', 'masks'} <= set(out[0])


def test_one_pyramid_for_dense_heads_and_mask_rcnn(backbone):
    seg = build_segmentation_model(backbone, num_classes=3, channels=32)
    rcnn = build_mask_rcnn(backbone, num_classes=3, channels=32)
    assert isinstance(seg.head.pyramid, SimpleFeaturePyramid) and isinstance(rcnn.backbone.pyramid,
                                                                             SimpleFeaturePyramid)
    maps = SimpleFeaturePyramid([192] * 4, 32)([torch.randn(1, 192, 6, 8)] * 4)
    assert [tuple(m.shape[-2:]) for m in maps] == [(24, 32), (12, 16), (6, 8), (3, 4)]


# timm itself imports torchvision, so blocking it for the whole process would block timm too: the guard refuses
# every torchvision import made by a mask3d module, which is what the slim install promise is about.
_TORCH_ONLY = textwrap.dedent("""
    import builtins
    real_import = builtins.__import__

    def guarded(name, globals=None, locals=None, fromlist=(), level=0):
        importer = (globals or {}).get('__name__', '')
        if level == 0 and name.split('.')[0] == 'torchvision' and importer.split('.')[0] == 'mask3d':
            raise ImportError(f'{importer} imports {name}')
        return real_import(name, globals, locals, fromlist, level)
    builtins.__import__ = guarded

    import torch
    import mask3d
    from mask3d.heads import UPerNetHead, build_backbone, build_mask_rcnn
    torch.manual_seed(0)
    backbone = build_backbone('mask3d_vit_tiny_patch16', depth=4).eval()
    head = UPerNetHead(backbone.feature_info.channels(), 5, channels=32).eval()
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        print('upernet', tuple(head(backbone(x), x.shape[-2:]).shape))
    try:
        build_mask_rcnn(backbone, 3)
    except ImportError as e:
        print('mask-rcnn blocked:', e)
""")


def test_heads_need_no_torchvision_until_mask_rcnn():
    """UPerNet on a mask3d backbone with every torchvision import from mask3d refused; only Mask R-CNN needs it."""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, '-c', _TORCH_ONLY], capture_output=True, text=True, cwd=root,
                         env={'PYTHONPATH': str(root), 'PATH': '/usr/bin:/bin'}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'upernet (1, 5, 96, 128)' in out.stdout
    assert 'mask-rcnn blocked: mask3d.heads.mask_rcnn imports torchvision' in out.stdout
