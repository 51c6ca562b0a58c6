"""Heads wrap a features_only backbone without changing it, and give the right shapes at several input sizes."""
import pytest
import torch

from mask3d.training.finetune.models import (build_backbone, build_depth_model, build_instance_model,
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
    model = build_instance_model(backbone, num_classes=3, min_size=96, max_size=128)
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
