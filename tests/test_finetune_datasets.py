"""The real-dataset fine-tuning configs: each loads, points at its reader, and fine-tunes + evaluates one step end
to end on byte-exact fixtures of the official formats (ScanNet 25k, NYUv2 .mat + sync frames, Cityscapes)."""
from pathlib import Path

import numpy as np
import pytest

from mask3d.training.data.writers import write_cityscapes_sample, write_nyu_mat, write_scannet25k_frame
from mask3d.training.finetune.config import load_finetune_config
from mask3d.training.finetune.data import build_task_frames
from mask3d.training.finetune.engine import finetune
from rgbd_formats import write_class_mapping_40, write_nyu_sync_frames

CONFIGS = Path(__file__).resolve().parents[1] / 'training' / 'configs' / 'finetune'
REAL = sorted(p.name for p in CONFIGS.glob('*.yaml') if not p.name.startswith('synthetic_'))
TINY = ['model.backbone=mask3d_vit_tiny_patch16', 'model.pretrained=false', 'model.model_args={depth: 4}',
        'model.head_channels=32', 'data.num_workers=0', 'data.batch_size=2', 'eval.batch_size=2',
        'train.steps=1', 'train.device=cpu', 'train.precision=fp32', 'optim.warmup_steps=0']


def test_real_configs_cover_every_task_and_dataset():
    got = {(load_finetune_config(CONFIGS / n).task, load_finetune_config(CONFIGS / n).data.source) for n in REAL}
    assert {('semseg', 'scannet-25k'), ('semseg', 'nyuv2'), ('semseg', 'cityscapes'), ('depth', 'nyu-raw'),
            ('instance', 'scannet-25k'), ('instance', 'nyuv2')} <= got
    for name in REAL:
        cfg = load_finetune_config(CONFIGS / name)
        assert cfg.model.backbone and cfg.data.root and cfg.data.image_size[0] % 16 == 0


@pytest.fixture
def scannet25k(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / 'scannet_frames_25k'
    K = np.array([[577.87, 0, 319.5], [0, 577.87, 239.5], [0, 0, 1]])
    for scene in ('scene0000_00', 'scene0001_00'):
        for i in range(2):
            nyu40 = np.full((48, 64), 1, np.uint8)   # wall
            nyu40[30:] = 2                            # floor
            nyu40[10:30, 10:30] = 5                   # chair
            nyu40[5:25, 40:60] = 7                    # table
            inst = np.zeros((48, 64), np.uint16)
            inst[10:30, 10:30] = 5 * 1000 + 1
            inst[5:25, 40:60] = 7 * 1000 + 2
            write_scannet25k_frame(root / scene, i * 100, rng.integers(0, 255, (3, 48, 64), dtype=np.uint8),
                                   np.full((48, 64), 1500 + 100 * i), nyu40, inst, K)
    (tmp_path / 'train.txt').write_text('scene0000_00\n')
    (tmp_path / 'val.txt').write_text('scene0001_00\n')
    return ['data.root=' + str(root), f'data.train_split={tmp_path / "train.txt"}',
            f'data.val_split={tmp_path / "val.txt"}', 'data.image_size=[48,64]', 'data.min_instance_pixels=10']


@pytest.fixture
def nyu_mat(tmp_path):
    """Two 480x640 frames in the labelled .mat layout; raw ids 11 (floor), 21 (wall) and 5 (chair), looked up
    through a generated classMapping40.mat that maps them as the official one does."""
    rng = np.random.default_rng(0)
    h, w = 480, 640
    rgbs = [rng.integers(0, 255, (3, h, w), dtype=np.uint8) for _ in range(2)]
    depths = [rng.uniform(0.7, 9.9, (h, w)).astype(np.float32) for _ in range(2)]
    labels = [np.full((h, w), 21, np.uint16) for _ in range(2)]
    inst = [np.zeros((h, w), np.uint8) for _ in range(2)]
    for lab, ins in zip(labels, inst):
        lab[400:] = 11
        lab[250:400, 100:300] = 5
        lab[250:400, 350:600] = 5
        ins[250:400, 100:300] = 1
        ins[250:400, 350:600] = 2
    path = write_nyu_mat(tmp_path / 'nyu_depth_v2_labeled.mat', rgbs, depths, depths, labels, inst)
    mapping = write_class_mapping_40(tmp_path / 'classMapping40.mat')
    return [f'data.root={path}', f'data.class_mapping={mapping}', 'data.splits_mat=null',
            'data.train_split=all', 'data.val_split=all', 'data.image_size=[96,128]']


@pytest.fixture
def cityscapes(tmp_path):
    camera = {'extrinsic': {'baseline': 0.209313}, 'intrinsic': {'fx': 2262.52, 'fy': 2265.30, 'u0': 64, 'v0': 32}}
    rng = np.random.default_rng(0)
    for split in ('train', 'val'):
        for frame in range(2):
            labels = np.full((64, 128), 7, np.uint8)  # road
            labels[:20] = 23                           # sky
            labels[30:40, 10:40] = 26                  # car
            write_cityscapes_sample(tmp_path / 'cs', split, 'aachen', 0, frame,
                                    rng.integers(0, 255, (3, 64, 128), dtype=np.uint8), labels,
                                    np.full((64, 128), 1 + 256 * 20, np.uint16), camera)
    return [f'data.root={tmp_path / "cs"}', 'data.image_size=[64,128]']


def _run(tmp_path, config, sets):
    cfg = load_finetune_config(CONFIGS / config, TINY + sets)
    train, val = build_task_frames(cfg, 'train'), build_task_frames(cfg, 'val')
    assert len(train) >= 2 and len(val) >= 1
    return cfg, finetune(cfg, tmp_path / 'run', progress=False)['val']


@pytest.mark.e2e
@pytest.mark.parametrize('config', ['scannet20_semseg_vit_base.yaml', 'scannet_instance_vit_base.yaml'])
def test_scannet_configs_train_and_evaluate(tmp_path, scannet25k, config):
    cfg, val = _run(tmp_path, config, scannet25k)
    if cfg.task == 'semseg':
        assert len(val['iou_per_class']) == 20 and 'chair' in val['iou_per_class']
        assert not np.isnan(val['iou_per_class']['chair'])  # present in the val ground truth
    else:
        assert set(val) >= {'bbox_AP50', 'segm_AP50'} and val['frames'] == 2


@pytest.mark.e2e
@pytest.mark.parametrize('config', ['nyu40_semseg_vit_base.yaml', 'nyu_instance_vit_base.yaml'])
def test_nyu_configs_train_and_evaluate(tmp_path, nyu_mat, config):
    cfg, val = _run(tmp_path, config, nyu_mat + ['data.min_instance_pixels=100'])
    if cfg.task == 'semseg':
        assert len(val['iou_per_class']) == 40 and val['frames'] == 2
        assert not np.isnan(val['iou_per_class']['floor']) and not np.isnan(val['iou_per_class']['chair'])
    else:
        frames = build_task_frames(cfg, 'val')
        # chair is thing class 2 of 9 in the 13-class protocol; its two instances survive the size filter
        assert frames.class_names[2] == 'chair' and frames[0]['instance_labels'].tolist() == [2, 2]
        assert set(val) >= {'bbox_AP50', 'segm_AP50'} and val['frames'] == 2


@pytest.mark.e2e
def test_nyu_depth_config_sync_frames_then_eigen_crop(tmp_path, nyu_mat):
    sync = write_nyu_sync_frames(tmp_path / 'nyu_demo', indices=(0, 50, 100), size=(480, 640))
    sets = nyu_mat[:2] + ['data.splits_mat=null', 'data.val_split=all', 'data.image_size=[96,128]',
                          f'data.root={sync}',
                          f'data.val_root={nyu_mat[0].split("=", 1)[1]}', 'data.batch_size=1']
    cfg, val = _run(tmp_path, 'nyu_depth_vit_base.yaml', sets)
    assert cfg.eval.eigen_crop and val['frames'] == 2 and 0 < val['delta3'] <= 1 and val['rmse'] > 0


@pytest.mark.e2e
def test_cityscapes_config_trains_and_evaluates(tmp_path, cityscapes):
    cfg, val = _run(tmp_path, 'cityscapes19_semseg_vit_base.yaml', cityscapes + ['data.batch_size=2'])
    assert len(val['iou_per_class']) == 19 and not np.isnan(val['iou_per_class']['road'])
