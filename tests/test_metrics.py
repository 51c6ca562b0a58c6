"""Downstream metrics against hand-computed cases and against torchmetrics on random predictions."""
import math

import pytest
import torch

from mask3d.training.metrics import DepthMetrics, SegmentationMetrics


def test_segmentation_hand_computed():
    m = SegmentationMetrics(3, ignore_index=255)
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    m.update(pred[None], target[None])
    r = m.compute()
    # class 0: TP 1, FP 1 (a 2 predicted 0), FN 1 -> 1/3; class 1: TP 2, FP 1, FN 0 -> 2/3; class 2: TP 1, FN 1 -> 1/2
    assert r['iou'] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert r['miou'] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert r['pixel_acc'] == pytest.approx(4 / 6)  # ignored pixels do not count, whatever was predicted there


def test_absent_class_is_nan_and_left_out():
    m = SegmentationMetrics(4)
    m.update(torch.tensor([[[0, 1]]]), torch.tensor([[[0, 1]]]))
    r = m.compute()
    assert math.isnan(r['iou'][2]) and math.isnan(r['iou'][3]) and r['miou'] == 1.0


def test_segmentation_matches_torchmetrics_on_random_predictions():
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex
    g = torch.Generator().manual_seed(0)
    c = 20
    ours = SegmentationMetrics(c)
    ref_iou = MulticlassJaccardIndex(num_classes=c, ignore_index=255, average='none')
    ref_acc = MulticlassAccuracy(num_classes=c, ignore_index=255, average='micro')
    for _ in range(4):
        target = torch.randint(0, c, (2, 24, 32), generator=g)
        target[torch.rand(target.shape, generator=g) < 0.2] = 255
        logits = torch.randn(2, c, 24, 32, generator=g)
        ours.update(logits, target)
        ref_iou.update(logits.argmax(1), target)
        ref_acc.update(logits.argmax(1), target)
    r = ours.compute()
    assert torch.allclose(torch.tensor(r['iou'], dtype=torch.float32), ref_iou.compute(), atol=1e-6)
    assert r['pixel_acc'] == pytest.approx(float(ref_acc.compute()), abs=1e-6)


def test_segmentation_rejects_bad_ids():
    m = SegmentationMetrics(3)
    with pytest.raises(ValueError, match='target class id 7 outside 0..2'):
        m.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 7))


def test_depth_hand_computed():
    gt = torch.tensor([[[1.0, 2.0], [4.0, 0.0]]])   # one invalid pixel
    pred = torch.tensor([[[2.0, 2.0], [2.0, 9.0]]])
    m = DepthMetrics()
    m.update(pred, gt)
    r = m.compute()
    assert r['abs_rel'] == pytest.approx((1 + 0 + 0.5) / 3)
    assert r['sq_rel'] == pytest.approx((1 / 1 + 0 + 4 / 4) / 3)
    assert r['rmse'] == pytest.approx(math.sqrt((1 + 0 + 4) / 3))
    assert r['rmse_log'] == pytest.approx(math.sqrt((math.log(2) ** 2 + 0 + math.log(2) ** 2) / 3))
    assert r['delta1'] == pytest.approx(1 / 3) and r['delta2'] == pytest.approx(1 / 3) and r['delta3'] == pytest.approx(1 / 3)  # 1.25^3 = 1.95 < 2


def test_depth_per_image_mean_cap_and_eigen_crop():
    m = DepthMetrics(max_depth=10.0)
    m.update(torch.full((1, 2, 2), 2.0), torch.full((1, 2, 2), 1.0))   # abs_rel 1
    m.update(torch.full((1, 2, 2), 1.0), torch.full((1, 2, 2), 1.0))   # abs_rel 0
    m.update(torch.full((1, 2, 2), 5.0), torch.zeros(1, 2, 2))          # no valid GT: skipped
    assert m.compute()['abs_rel'] == pytest.approx(0.5)
    crop = DepthMetrics(eigen_crop=True)
    gt = torch.full((1, 480, 640), 3.0)
    pred = gt.clone()
    pred[..., :45, :] = 100.0  # outside the crop: does not count
    crop.update(pred, gt)
    assert crop.compute()['abs_rel'] == pytest.approx(0.0)
    with pytest.raises(ValueError, match='480x640'):
        crop.update(torch.ones(1, 10, 10), torch.ones(1, 10, 10))


def test_instance_ap_through_pycocotools():
    pytest.importorskip('pycocotools')
    from mask3d.training.metrics import InstanceMetrics
    masks = torch.zeros(2, 32, 32, dtype=torch.bool)
    masks[0, 2:12, 2:12] = True
    masks[1, 16:30, 10:28] = True
    target = {'boxes': torch.tensor([[2.0, 2.0, 12.0, 12.0], [10.0, 16.0, 28.0, 30.0]]), 'labels': torch.tensor([1, 2]),
              'masks': masks}
    perfect = InstanceMetrics()
    perfect.update([dict(target, scores=torch.tensor([0.9, 0.8]), masks=masks.float()[:, None])], [target])
    r = perfect.compute()
    assert r['bbox_AP'] == pytest.approx(1.0) and r['segm_AP'] == pytest.approx(1.0) and r['segm_AP50'] == 1.0
    # one of two objects found (the other predicted with the wrong class): AP averages 1 and 0 over the 2 classes
    half = InstanceMetrics()
    wrong = dict(target, labels=torch.tensor([1, 3]), scores=torch.tensor([0.9, 0.8]), masks=masks.float()[:, None])
    half.update([wrong], [target])
    assert half.compute()['bbox_AP50'] == pytest.approx(0.5)
