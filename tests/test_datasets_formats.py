"""NYUv2 .mat, SUN RGB-D, Cityscapes, ScanNet 25k, mixtures and `mask3d data inspect`, on byte-exact fixtures
and on the real frames in ../shared/data/rgbd."""
import json

import numpy as np
import pytest
from PIL import Image

from mask3d.cli import main
from mask3d.errors import DataError
from mask3d.training.data.cityscapes import CityscapesRGBD, disparity_to_depth, label_ids_to_train_ids
from mask3d.training.data.mixture import MixtureFrames
from mask3d.training.data.nyu import (NYU40_TO_13, NYUSyncFrames, NYUv2Labeled, load_class_mapping_40, load_splits,
                                      to_train_ids)
from mask3d.training.data.scannet import (ScanNet25kFrames, load_label_map, nyu40_to_scannet20, raw_to_nyu40)
from mask3d.training.data.sunrgbd import SUNRGBDFrames, decode_sunrgbd_depth, encode_sunrgbd_depth
from mask3d.training.data.synthetic import SyntheticRGBD
from mask3d.training.data.transforms import JointTransform
from mask3d.training.data.writers import (write_cityscapes_sample, write_nyu_mat, write_scannet25k_frame,
                                          write_sunrgbd_sample)
from rgbd_formats import (room_depth, write_class_mapping_40, write_nyu_sync_frames, write_scannet_label_tsv,
                          write_splits_mat, write_tum_frame)

H, W = 12, 16


@pytest.fixture
def nyu_meta(tmp_path):
    """classMapping40.mat and splits.mat generated in the official MATLAB 5 layout (train 3, 4, 5; test 1, 2)."""
    meta = tmp_path / 'nyuv2-meta-data'
    write_class_mapping_40(meta / 'classMapping40.mat')
    write_splits_mat(meta / 'splits.mat', train=[3, 4, 5], test=[1, 2])
    return meta


@pytest.fixture
def real_nyu_meta(rgbd_data):
    return rgbd_data / 'ankurhanda-nyuv2-meta-data'


def _nyu_mat(tmp_path, n=3):
    rng = np.random.default_rng(0)
    rgbs = [rng.integers(0, 255, (3, H, W), dtype=np.uint8) for _ in range(n)]
    depths = [rng.uniform(0.7, 9.9, (H, W)).astype(np.float32) for _ in range(n)]
    raw = [np.where(rng.random((H, W)) < 0.2, 0, d).astype(np.float32) for d in depths]
    labels = [rng.integers(0, 895, (H, W)).astype(np.uint16) for _ in range(n)]
    inst = [np.zeros((H, W), np.uint8) for _ in range(n)]
    labels[0][:4, :4] = 21   # raw 21 (a chair id in NYU's 894 list is looked up through mapClass)
    inst[0][:4, :4] = 1
    inst[0][5:8, 5:9] = 2
    labels[0][5:8, 5:9] = 21
    path = write_nyu_mat(tmp_path / 'nyu_depth_v2_labeled.mat', rgbs, depths, raw, labels, inst)
    return path, rgbs, depths, raw, labels


def test_nyu_mat_decodes_transposed_arrays_and_labels(tmp_path, nyu_meta):
    path, rgbs, depths, raw, labels = _nyu_mat(tmp_path)
    assert path.read_bytes()[:10] == b'MATLAB 7.3'
    lut = load_class_mapping_40(nyu_meta / 'classMapping40.mat')
    assert lut.shape == (895,) and lut[0] == 0 and lut.max() == 40
    ds = NYUv2Labeled(path, class_mapping_40=nyu_meta / 'classMapping40.mat', depth='raw')
    s = ds[1]
    assert np.array_equal(s['rgb'], rgbs[1]) and s['rgb'].shape == (3, H, W)
    assert np.allclose(s['depth'][0], raw[1]) and (s['depth'][0] == 0).any()
    assert np.array_equal(s['semantic'], np.where(lut[labels[1]] > 0, lut[labels[1]] - 1, 255))
    filled = NYUv2Labeled(path, class_mapping_40=nyu_meta / 'classMapping40.mat', depth='filled')[1]
    assert np.allclose(filled['depth'][0], depths[1])
    s0 = ds[0]
    assert len(s0['instance_labels']) == 2 and s0['instance_masks'].shape == (2, H, W)
    assert s0['instance_boxes'].tolist()[0] == [0, 0, 4, 4]
    ds13 = NYUv2Labeled(path, class_mapping_40=nyu_meta / 'classMapping40.mat', classes=13)
    l40 = lut[labels[2]]
    assert np.array_equal(ds13[2]['semantic'], np.where(l40 > 0, NYU40_TO_13[np.maximum(l40 - 1, 0)] - 1, 255))


def test_nyu_builtin_40_to_13_table_matches_class13mapping(real_nyu_meta):
    from scipy.io import loadmat
    m = loadmat(real_nyu_meta / 'class13Mapping.mat', squeeze_me=True, struct_as_record=False)['classMapping13']
    assert np.array_equal(np.asarray(m.labels13).ravel(), NYU40_TO_13)


def test_real_nyu_splits_and_class_mapping(real_nyu_meta):
    splits = load_splits(real_nyu_meta / 'splits.mat')
    assert len(splits['train']) == 795 and len(splits['test']) == 654
    assert splits['train'][:3].tolist() == [2, 3, 4] and splits['test'][:3].tolist() == [0, 1, 8]
    assert 1406 in splits['test']  # frame 1407 (1-based) is a test frame
    lut = load_class_mapping_40(real_nyu_meta / 'classMapping40.mat')
    assert lut.shape == (895,) and lut[0] == 0 and lut.max() == 40
    assert [lut[raw] for raw in (5, 11, 21)] == [5, 2, 1]  # the raw ids the generated mapping keeps: chair, floor, wall


def test_nyu_splits_and_bad_input(tmp_path, nyu_meta):
    splits = load_splits(nyu_meta / 'splits.mat')
    assert splits['train'].tolist() == [2, 3, 4] and splits['test'].tolist() == [0, 1]  # 1-based -> 0-based
    path, *_ = _nyu_mat(tmp_path)
    assert len(NYUv2Labeled(path, class_mapping_40=nyu_meta / 'classMapping40.mat', split='test',
                            splits_mat=nyu_meta / 'splits.mat')) == 2
    with pytest.raises(DataError, match='split index 5 > 3 frames'):
        NYUv2Labeled(path, class_mapping_40=nyu_meta / 'classMapping40.mat', split='train',
                     splits_mat=nyu_meta / 'splits.mat')
    with pytest.raises(DataError, match='outside the 894-class mapping'):
        to_train_ids(np.array([[900]]), load_class_mapping_40(nyu_meta / 'classMapping40.mat'), 40, 'x')
    bogus = tmp_path / 'bogus.mat'
    bogus.write_bytes(b'not hdf5 at all')
    with pytest.raises(DataError, match='bogus.mat: not a MATLAB v7.3'):
        NYUv2Labeled(bogus, class_mapping_40=nyu_meta / 'classMapping40.mat')


def test_real_nyu_frame_1407_labels(rgbd_data, real_nyu_meta):
    l40 = np.array(Image.open(rgbd_data / 'h-0-0-nyuv2-meta-data' / 'test_labels_40' / 'new_nyu_class40_1407.png'))
    l13 = np.array(Image.open(real_nyu_meta / 'test_labels_13' / 'new_nyu_class13_1407.png'))
    mapped = np.where(l40 > 0, NYU40_TO_13[np.maximum(l40.astype(int) - 1, 0)], 0)
    assert np.array_equal(mapped, l13)  # README: mapping 40 -> 13 reproduces the 13-class file exactly
    assert set(np.unique(l40).tolist()) == {0, 1, 2, 3, 5, 6, 7, 8, 11, 15, 22, 26, 37, 40}
    depth = np.array(Image.open(rgbd_data / 'rcnn-depth' / 'demo-data' / 'rawdepth.png')) / 1000.0
    assert depth.shape == (425, 560) and 0.15 < (depth == 0).mean() < 0.18
    assert l40[45:470, 40:600].shape == depth.shape  # the documented crop lines labels up with the demo image


def test_real_nyu_sync_frames(rgbd_data):
    ds = NYUSyncFrames(rgbd_data / 'metric3d' / 'data' / 'nyu_demo')
    assert len(ds) == 3
    s = ds[0]
    valid = s['depth'] > 0
    assert s['rgb'].shape == (3, 480, 640) and 0.6 < valid.mean() < 0.8 and s['depth'].max() < 10
    assert np.isclose(s['intrinsics'][0, 0], 518.8579)


def test_nyu_sync_frames_bts_layout(tmp_path):
    root = write_nyu_sync_frames(tmp_path / 'nyu_demo', indices=(0, 50, 100), size=(48, 64))
    ds = NYUSyncFrames(root)
    assert len(ds) == 3
    s = ds[1]
    assert s['rgb'].shape == (3, 48, 64) and np.allclose(s['depth'][0], room_depth(48, 64, seed=1), atol=5e-4)
    assert np.isclose(s['intrinsics'][0, 0], 518.8579)  # the NYU Kinect intrinsics
    (root / 'rgb' / 'rgb_00050.jpg').unlink()
    with pytest.raises(DataError, match='sync_depth_00050.png: no matching rgb_00050.jpg'):
        NYUSyncFrames(root)


def test_sunrgbd_bit_rotation_fixture(tmp_path):
    mm = np.array([[0, 1, 2000, 8000], [9000, 65535 >> 3, 123, 4567]], np.uint16)
    png = encode_sunrgbd_depth(mm)
    assert png[0, 2] == 16000 and np.array_equal(decode_sunrgbd_depth(png), np.minimum(mm / 1000.0, 8.0).astype(np.float32))
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 38, (H, W))
    write_sunrgbd_sample(tmp_path / 'kv1' / 'NYUdata' / 'NYU0001', rng.integers(0, 255, (3, H, W), dtype=np.uint8),
                         np.full((H, W), 2500, np.uint16), np.array([[518.9, 0, 284.6], [0, 519.5, 208.7], [0, 0, 1]]),
                         labels)
    s = SUNRGBDFrames(tmp_path)[0]
    assert np.allclose(s['depth'], 2.5) and np.isclose(s['intrinsics'][1, 1], 519.5)
    assert np.array_equal(s['semantic'], np.where(labels > 0, labels - 1, 255))


def test_real_sunrgbd_depth_file(rgbd_data):
    real = np.array(Image.open(rgbd_data / 'open3d' / 'examples' / 'test_data' / 'RGBD' / 'other_formats' / 'SUN_depth.png'))
    d = decode_sunrgbd_depth(real)
    valid = d > 0
    assert 0.78 < valid.mean() < 0.86 and 2.4 < np.median(d[valid]) < 3.0  # README: median 2.7 m, 18 % invalid


def test_cityscapes_tree(tmp_path):
    label_ids = np.full((H, W), 7, np.uint8)      # road
    label_ids[:3] = 23                            # sky
    label_ids[3:5, :4] = 26                       # car
    label_ids[5, :] = 0                           # unlabeled -> ignore
    label_ids[6, :] = 29                          # caravan -> ignore
    disp = np.zeros((H, W), np.uint16)
    disp[6:] = 1 + 256 * 20                       # 20 px disparity
    disp[8, :] = 1                                # zero disparity: invalid
    camera = {'extrinsic': {'baseline': 0.209313, 'pitch': 0.038, 'roll': 0, 'yaw': 0.0195, 'x': 1.7, 'y': 0.1, 'z': 1.2},
              'intrinsic': {'fx': 2262.52, 'fy': 2265.30, 'u0': 1096.98, 'v0': 513.137}}
    rgb = np.zeros((3, H, W), np.uint8)
    write_cityscapes_sample(tmp_path, 'train', 'aachen', 0, 19, rgb, label_ids, disp, camera)
    ds = CityscapesRGBD(tmp_path, split='train')
    s = ds[0]
    assert s['semantic'][0, 0] == 10 and s['semantic'][3, 0] == 13 and s['semantic'][7, 0] == 0
    assert (s['semantic'][5] == 255).all() and (s['semantic'][6] == 255).all()
    expected = 0.209313 * 2262.52 / 20.0
    assert np.allclose(s['depth'][0, 6], expected, rtol=1e-5) and (s['depth'][0, :6] == 0).all()
    assert (s['depth'][0, 8] == 0).all()
    assert np.isclose(s['intrinsics'][0, 2], 1096.98)
    assert label_ids_to_train_ids(np.array([33, 31, 4])).tolist() == [18, 16, 255]
    with pytest.raises(DataError, match='baseline'):
        disparity_to_depth(disp, {'intrinsic': {'fx': 1}}, 'x.png')
    with pytest.raises(DataError, match='not a Cityscapes tree'):
        CityscapesRGBD(tmp_path, split='val')


def test_scannet_label_chain_on_the_official_tsv(rgbd_data):
    lut = load_label_map(rgbd_data / 'scanrefer-scannet-meta' / 'data' / 'scannet' / 'meta_data' /
                         'scannetv2-labels.combined.tsv')
    assert raw_to_nyu40(np.array([1, 2, 3, 22, 99999]), lut).tolist() == [1, 5, 2, 23, 0]
    assert len(lut) == 1358 and lut.max() == 40  # 607 rows, raw ids up to 1357


def test_scannet_label_chain_on_a_generated_tsv(tmp_path):
    lut = load_label_map(write_scannet_label_tsv(tmp_path / 'scannetv2-labels.combined.tsv'))
    assert lut.tolist()[:4] == [0, 1, 5, 2] and lut[22] == 23 and lut[10] == 0  # ids not listed: 0
    assert raw_to_nyu40(np.array([1, 2, 3, 22, 99999]), lut).tolist() == [1, 5, 2, 23, 0]
    assert nyu40_to_scannet20(np.array([1, 2, 14, 39, 40, 0, 13])).tolist() == [0, 1, 12, 19, 255, 255, 255]
    with pytest.raises(DataError, match='outside 0..40'):
        nyu40_to_scannet20(np.array([41]), 'x')


def test_scannet_25k_labels_and_instances(tmp_path):
    nyu40 = np.full((H, W), 1, np.uint8)
    nyu40[6:, :] = 2
    nyu40[2:5, 2:6] = 5                           # chair
    nyu40[8:10, 8:12] = 40                        # otherprop: not a benchmark class
    inst = np.zeros((H, W), np.uint16)
    inst[2:5, 2:6] = 5 * 1000 + 1
    inst[0, 0] = 1 * 1000 + 1                     # wall instance: not an instance class
    K = np.array([[577.87, 0, 319.5], [0, 577.87, 239.5], [0, 0, 1]])
    write_scannet25k_frame(tmp_path / 'scene0000_00', 0, np.zeros((3, H, W), np.uint8), np.full((H, W), 1500),
                           nyu40, inst, K)
    s = ScanNet25kFrames(tmp_path)[0]
    assert s['semantic'][0, 0] == 0 and s['semantic'][7, 0] == 1 and s['semantic'][3, 3] == 4
    assert s['semantic'][9, 9] == 255
    assert s['instance_labels'].tolist() == [2]  # chair is class 2 of the 18
    assert s['instance_boxes'].tolist() == [[2, 2, 6, 5]] and np.allclose(s['depth'], 1.5)


def test_joint_transform_keeps_labels_and_instances_aligned():
    s = {'rgb': np.zeros((3, 40, 60), np.uint8), 'depth': np.ones((1, 40, 60), np.float32),
         'semantic': np.zeros((40, 60), np.int64), 'intrinsics': np.eye(3, dtype=np.float32)}
    s['semantic'][10:20, 5:15] = 3
    s['rgb'][:, 10:20, 5:15] = 255
    s['instance_masks'] = (s['semantic'] == 3)[None]
    s['instance_labels'] = np.array([3])
    t = JointTransform((32, 48), scale=(1.0, 1.0), hflip=1.0, color_jitter=0.2)
    out = t(s, np.random.default_rng(0))
    sem = out['semantic'].numpy()
    assert set(np.unique(sem).tolist()) <= {0, 3}  # nearest: no invented class ids
    assert np.array_equal(out['instance_masks'][0].numpy(), sem == 3)
    x0, y0, x1, y1 = out['instance_boxes'][0].tolist()
    assert (sem[int(y0):int(y1), int(x0):int(x1)] == 3).all()
    bright = out['rgb'].mean(0).numpy() > 0
    assert np.array_equal(bright, sem == 3)  # flipped together


def test_mixture_is_deterministic_and_weighted():
    a, b = SyntheticRGBD(length=10, seed=1, image_size=(32, 48)), SyntheticRGBD(length=10, seed=2, image_size=(32, 48))
    mix = MixtureFrames([(a, 3.0), (b, 1.0)], length=4000, seed=0)
    picks = [mix.locate(i)[0] for i in range(4000)]
    assert 0.72 < picks.count(0) / 4000 < 0.78
    assert [mix.locate(i) for i in range(20)] == [MixtureFrames([(a, 3.0), (b, 1.0)], 4000, 0).locate(i) for i in range(20)]
    assert mix[0]['mixture_source'] in (0, 1)
    with pytest.raises(DataError, match='weights must be > 0'):
        MixtureFrames([(a, 0.0)], 10)


def test_inspect_json_and_sheet(tmp_path, capsys):
    from mask3d.training.data.cli import write_synthetic
    root = write_synthetic(tmp_path / 'synth', frames=3, seed=0, image_size=(48, 64), progress=False)
    sheet = tmp_path / 'sheet.png'
    assert main(['data', 'inspect', str(root), '--json', '--sheet', str(sheet)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report['format'] == 'folder' and report['frames'] == 3 and report['image_size'] == [48, 64]
    assert 0 < report['depth_m']['min'] <= report['depth_m']['median'] <= report['depth_m']['max'] < 10
    assert 0.5 < report['depth_valid_fraction'] <= 1 and 'wall' in report['labels']
    assert sheet.stat().st_size > 5000
    assert main(['data', 'inspect', str(root)]) == 0
    assert 'median' in capsys.readouterr().out
    assert main(['data', 'inspect', str(tmp_path / 'nothing')]) == 1


def test_inspect_tum_frame(tmp_path, capsys):
    depth = room_depth(48, 64, seed=0, holes=0.25)
    write_tum_frame(tmp_path / 'tum', depth)
    assert main(['data', 'inspect', str(tmp_path / 'tum'), '--depth-scale', '5000', '--json']) == 0
    r = json.loads(capsys.readouterr().out)
    valid = depth[depth > 0]
    assert r['image_size'] == [48, 64] and r['depth_valid_fraction'] == pytest.approx((depth > 0).mean())
    assert r['depth_m']['median'] == pytest.approx(np.median(valid), abs=2e-4)
    assert r['depth_m']['max'] == pytest.approx(valid.max(), abs=2e-4)


def test_inspect_real_tum_frame(rgbd_data, tmp_path, capsys):
    o3d = rgbd_data / 'open3d' / 'examples' / 'test_data' / 'RGBD' / 'other_formats'
    (tmp_path / 'rgb').mkdir()
    (tmp_path / 'depth').mkdir()
    (tmp_path / 'rgb' / 'f.png').symlink_to(o3d / 'TUM_color.png')
    (tmp_path / 'depth' / 'f.png').symlink_to(o3d / 'TUM_depth.png')
    assert main(['data', 'inspect', str(tmp_path), '--depth-scale', '5000', '--json']) == 0
    r = json.loads(capsys.readouterr().out)
    assert r['image_size'] == [480, 640] and 2.0 < r['depth_m']['median'] < 2.8
    assert 0.78 < r['depth_valid_fraction'] < 0.84


def test_scannet_exported_scene_with_label_filt(tmp_path):
    from mask3d.training.data.scannet import ScanNetLabeledFrames
    from mask3d.training.data.scannet_sens import extract_sens, write_sens
    tsv = write_scannet_label_tsv(tmp_path / 'scannetv2-labels.combined.tsv')  # raw 1 wall, 2 chair, 3 floor
    K4 = np.eye(4)
    write_sens(tmp_path / 'a.sens', [np.zeros((24, 32, 3), np.uint8)], [np.full((12, 16), 2000, np.uint16)],
               [np.eye(4)], intrinsic_color=K4, intrinsic_depth=K4)
    scene = tmp_path / 'scans' / 'scene0000_00'
    extract_sens(tmp_path / 'a.sens', scene, progress=False)
    raw = np.full((24, 32), 1, np.uint16)        # raw 1 wall (colour resolution)
    raw[12:, :] = 3                              # raw 3 floor
    raw[2:8, 2:10] = 2                           # raw 2 chair
    (scene / 'label-filt').mkdir()
    Image.fromarray(raw).save(scene / 'label-filt' / '0.png')
    objects = np.zeros((24, 32), np.uint8)
    objects[2:8, 2:10] = 4                       # object id 3, +1
    (scene / 'instance-filt').mkdir()
    Image.fromarray(objects).save(scene / 'instance-filt' / '0.png')
    s = ScanNetLabeledFrames(tmp_path / 'scans', label_map=tsv)[0]
    assert s['semantic'].shape == (12, 16)
    assert s['semantic'][0, 15] == 0 and s['semantic'][10, 0] == 1 and s['semantic'][2, 2] == 4
    assert s['instance_labels'].tolist() == [2] and s['instance_boxes'].tolist() == [[1, 1, 5, 4]]
    (scene / 'label-filt' / '0.png').unlink()
    with pytest.raises(DataError, match='label-filt image missing'):
        ScanNetLabeledFrames(tmp_path / 'scans', label_map=tsv)[0]


def test_inspect_sens_and_nyu_mat(tmp_path, nyu_meta, capsys):
    from mask3d.training.data.scannet_sens import write_sens
    K4 = np.eye(4)
    depth = np.full((12, 16), 1500, np.uint16)
    depth[0] = 0
    sens = write_sens(tmp_path / 'x.sens', [np.zeros((24, 32, 3), np.uint8)] * 2, [depth] * 2, [np.eye(4)] * 2,
                      intrinsic_color=K4, intrinsic_depth=K4)
    assert main(['data', 'inspect', str(sens), '--json']) == 0
    r = json.loads(capsys.readouterr().out)
    assert r['format'] == 'scannet-sens' and r['frames'] == 2 and r['image_size'] == [12, 16]
    assert r['depth_m']['median'] == pytest.approx(1.5) and r['depth_valid_fraction'] == pytest.approx(11 / 12)
    path, *_ = _nyu_mat(tmp_path)
    assert main(['data', 'inspect', str(path), '--class-mapping', str(nyu_meta / 'classMapping40.mat'), '--json']) == 0
    r = json.loads(capsys.readouterr().out)
    assert r['format'] == 'nyu-mat' and r['frames'] == 3 and r['image_size'] == [H, W]
    assert sum(r['labels'].values()) == 3 * H * W
