"""mask3d probe: hand-checked geometry and metrics, then the command end to end on tiny data (and real frames)."""
import json
import math

import numpy as np
import pytest
import torch

from mask3d.cli import main
from mask3d.training.data.synthetic import render_views
from mask3d.training.probe.correspondence import correspondence_recall, ground_truth_matches, match, pair_errors
from mask3d.training.probe.geometry import back_project, transform
from mask3d.training.probe.metrics import NormalMetrics, ProbeDepthMetrics, ProbeSegmentationMetrics
from mask3d.training.probe.normals import normals_from_depth

K = torch.tensor([[50.0, 0, 31.0], [0, 52.0, 23.0], [0, 0, 1]])


def _plane_depth(n, c, h=48, w=64, K=K):
    """z-depth of the plane n . X = c seen through pixel centres."""
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing='ij')
    rays = torch.stack([(u + 0.5 - K[0, 2]) / K[0, 0], (v + 0.5 - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
    return c / (rays @ torch.as_tensor(n, dtype=torch.float64))


def test_normals_of_a_plane_are_exact():
    n = torch.tensor([0.3, -0.4, -0.8], dtype=torch.float64)
    n = n / n.norm()
    depth = _plane_depth(n, -2.0)
    assert (depth > 0).all()
    normals, valid = normals_from_depth(depth.float(), K)
    assert valid[1:-1, 1:-1].all() and not valid[0].any() and not valid[:, -1].any()
    err = (normals[:, valid] - n.float()[:, None]).abs().max()
    assert err < 1e-4, err
    metrics = NormalMetrics()
    metrics.update(normals[None], normals[None], valid[None])
    assert metrics.compute()['mean_angle_deg'] < 0.05 and metrics.compute()['within_11_25'] == 100.0


def test_normals_stop_at_depth_edges_and_holes():
    depth = torch.full((20, 30), 2.0)
    depth[:, 15:] = 4.0
    depth[5, 5] = 0
    _, valid = normals_from_depth(depth, K)
    assert not valid[:, 14:16].any() and not valid[4:7, 5].any() and valid[10, 8] and valid[10, 20]


def test_depth_metrics_match_numpy_by_hand():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 8, size=(3, 1, 12, 16))
    gt[0, 0, :2] = 0  # invalid
    pred = gt * rng.uniform(0.7, 1.4, size=gt.shape) + 0.1
    m = ProbeDepthMetrics()
    m.update(torch.tensor(pred, dtype=torch.float32), torch.tensor(gt, dtype=torch.float32))
    out = m.compute()
    rows = []
    for p, g in zip(pred.astype(np.float32).astype(np.float64), gt.astype(np.float32).astype(np.float64)):
        v = g > 0
        p, g = np.clip(p[v], 1e-3, 10.0), g[v]  # the protocol clips predictions to [min_depth, max_depth]
        rows.append([np.mean(np.abs(p - g) / g), np.sqrt(np.mean((p - g) ** 2)),
                     np.mean(np.maximum(p / g, g / p) < 1.25)])
    ref = np.mean(rows, axis=0)
    assert out['abs_rel'] == pytest.approx(ref[0], rel=1e-5)
    assert out['rmse'] == pytest.approx(ref[1], rel=1e-5)
    assert out['delta1'] == pytest.approx(ref[2], rel=1e-5)
    # aligned variants: a prediction off by a scale (and a shift) is perfect once aligned, not before
    m = ProbeDepthMetrics()
    g = torch.tensor(gt, dtype=torch.float32)
    m.update(0.5 * g, g)
    out = m.compute()
    assert out["abs_rel"] == pytest.approx(0.5, rel=1e-5)
    assert out['scale_aligned']['abs_rel'] < 1e-5 and out['scale_shift_aligned']['abs_rel'] < 1e-5
    m = ProbeDepthMetrics()
    m.update(0.5 * g + 1.0, g)
    out = m.compute()
    assert out['scale_aligned']['abs_rel'] > 0.01 and out['scale_shift_aligned']['abs_rel'] < 1e-4


def test_object_miou_leaves_out_wall_floor_ceiling():
    names = ('wall', 'floor', 'ceiling', 'table', 'chair')
    gt = torch.tensor([[0, 1, 2, 3, 4, 4]])
    pred = torch.tensor([[0, 1, 2, 3, 3, 4]])
    m = ProbeSegmentationMetrics(names)
    m.update(pred, gt)
    out = m.compute()
    # table: TP 1, FP 1 -> 1/2; chair: TP 1, FN 1 -> 1/2; layout classes: 1
    assert out['object_miou'] == pytest.approx(0.5) and out['miou'] == pytest.approx((3 + 1) / 5)


def test_ground_truth_of_a_known_rigid_motion():
    """Fronto-parallel wall at 2 m, camera B moved 0.1 m to the right: every pixel moves f * 0.1 / 2 px left."""
    depth = torch.full((48, 64), 2.0)
    pose_a, pose_b = torch.eye(4), torch.eye(4)
    pose_b[0, 3] = 0.1
    uv_a, uv_b = ground_truth_matches(depth, K, pose_a, depth, K, pose_b)
    shift = K[0, 0] * 0.1 / 2.0
    assert len(uv_a) == (64 - math.ceil(shift)) * 48  # the strip leaving the image has no match
    assert torch.allclose(uv_b[:, 0], uv_a[:, 0] - shift, atol=1e-4) and torch.allclose(uv_b[:, 1], uv_a[:, 1])
    # an object in front of the wall in B hides the wall there: those pixels are occluded, not matched
    occluded = depth.clone()
    occluded[:, :20] = 1.0
    uv_a2, uv_b2 = ground_truth_matches(depth, K, pose_a, occluded, K, pose_b)
    assert (uv_b2[:, 0] >= 20).all() and len(uv_a2) < len(uv_a)


def _world_features(frame, freqs):
    """'Perfect' features: random Fourier features of each pixel's world point (unit norm, equal for a point
    seen from any view)."""
    d = torch.as_tensor(frame['depth'][0])
    world = transform(back_project(d, torch.as_tensor(frame['intrinsics'])), torch.as_tensor(frame['pose']))
    phase = world.float() @ freqs
    return torch.cat([phase.cos(), phase.sin()], -1).permute(2, 0, 1) / math.sqrt(freqs.shape[1])


def test_perfect_features_recall_every_correspondence_of_rendered_views():
    a, b = render_views(5, 3, views=2, height=48, width=64, sensor_noise=False)
    assert not np.allclose(a['pose'], b['pose'])
    frame = lambda f: {k: torch.as_tensor(f[k]) for k in ('depth', 'intrinsics', 'pose')}  # noqa: E731
    fa_, fb_ = frame(a), frame(b)
    uv_a, _ = ground_truth_matches(fa_['depth'], fa_['intrinsics'], fa_['pose'], fb_['depth'], fb_['intrinsics'],
                                   fb_['pose'])
    assert len(uv_a) > 0.3 * 48 * 64
    freqs = torch.randn(3, 256, generator=torch.Generator().manual_seed(0)) * 4
    fa, fb = _world_features(a, freqs), _world_features(b, freqs)
    errors = pair_errors(fa, fb, frame(a), frame(b), max_queries=400, stride=1)
    r = correspondence_recall(errors, [1, 2, 5])
    assert r['recall_2px'] > 0.97 and r['recall_5px'] == 1.0, r
    # features that ignore geometry (noise) do not find the matches
    noise = torch.randn(2, 64, 48, 64, generator=torch.Generator().manual_seed(1))
    r = correspondence_recall(pair_errors(noise[0], noise[1], frame(a), frame(b), max_queries=400, stride=1), [5])
    assert r['recall_5px'] < 0.2


def test_match_is_nearest_neighbour_on_the_candidate_grid():
    feats = torch.eye(16).view(16, 4, 4)  # one-hot per pixel of a 4x4 image
    uv = torch.tensor([[2.5, 1.5], [0.5, 3.5]])
    assert torch.equal(match(feats, feats, uv, (4, 4), stride=1), uv)


TINY = ['model.backbone=mask3d_vit_tiny_patch16', 'model.pretrained=false', 'model.model_args={depth: 2}',
        'features.blocks=[0, 1]', 'data.image_size=[32, 48]', 'train.steps=4', 'train.batch_size=2',
        'figure_samples=2', 'correspondence.max_pairs=2']


def _run(tmp_path, *extra):
    out = tmp_path / 'probe'
    args = ['probe', '--config', 'training/configs/probe/synthetic.yaml', '--output', str(out)]
    for item in TINY + list(extra):
        args += ['--set', item]
    assert main(args) == 0
    return out, json.loads((out / 'probe.json').read_text())


@pytest.mark.e2e
def test_probe_command_end_to_end_on_synthetic_rooms(tmp_path):
    out, result = _run(tmp_path, 'data.train_frames=4', 'data.test_frames=2')
    for task, keys in (('depth', ('abs_rel', 'delta1', 'rmse')), ('normals', ('mean_angle_deg', 'within_11_25')),
                       ('semseg', ('miou', 'object_miou')), ('correspondence', ('recall_5px', 'recall_10px'))):
        for key in keys:
            assert isinstance(result[task][key], float), (task, key)
    assert set(result['depth']['scale_aligned']) >= {'abs_rel', 'delta1', 'rmse'}
    assert result['backbone']['blocks'] == [0, 1] and not result['backbone']['pretrained_weights']
    assert result['config']['data']['source'] == 'synthetic' and result['correspondence']['pairs'] == 2
    for png in ('probe_predictions.png', 'probe_pca.png'):
        assert (out / png).stat().st_size > 1000


@pytest.mark.e2e
def test_probe_on_a_synth_folder_with_poses_and_skips_what_it_lacks(tmp_path):
    from mask3d.training.data.cli import write_synthetic
    train = write_synthetic(tmp_path / 'train', 3, seed=0, image_size=(32, 48), progress=False)
    test = write_synthetic(tmp_path / 'test', 2, seed=9, image_size=(32, 48), progress=False, views=2)
    assert len(list((test / 'pose').glob('*.txt'))) == 4
    _, result = _run(tmp_path, 'data.source=folder', f'data.train_root={train}', f'data.test_root={test}')
    assert result['correspondence']['pairs'] == 2 and result['semseg']['miou'] >= 0
    # no labels, no intrinsics, no poses: those probes are skipped with a reason, depth still runs
    for sub in ('semantic', 'intrinsics', 'pose'):
        for f in (test / sub).iterdir():
            f.unlink()
    (test / 'classes.json').unlink()
    _, result = _run(tmp_path, 'data.source=folder', f'data.train_root={train}', f'data.test_root={test}')
    assert set(result['skipped']) == {'normals', 'semseg', 'correspondence'} and 'abs_rel' in result['depth']


def test_probe_config_errors_name_the_key(tmp_path, capsys):
    from mask3d.errors import ConfigError
    from mask3d.training.probe.config import load_probe_config
    with pytest.raises(ConfigError, match='tasks'):
        load_probe_config(None, ['tasks=[depth, pose]'])
    with pytest.raises(ConfigError, match='train_root'):
        load_probe_config(None, ['data.source=folder'])
    args = ['probe', '--config', 'training/configs/probe/synthetic.yaml', '--output', str(tmp_path / 'x')]
    for item in TINY + ['features.blocks=[5]']:
        args += ['--set', item]
    assert main(args) == 2
    assert 'features.blocks: block 5 does not exist in a 2-block backbone' in capsys.readouterr().err


@pytest.mark.e2e
def test_real_seven_scenes_pairs(rgbd_data, tmp_path):
    """Real posed frames: the ground truth agrees with the 7-Scenes poses, and the probe runs on them."""
    src = rgbd_data / 'tsdf-fusion-python-7scenes' / 'data'
    seq = tmp_path / 'seq'
    seq.mkdir()
    for i in range(9):
        for kind in ('color.jpg', 'depth.png', 'pose.txt'):
            (seq / f'frame-{i:06d}.{kind}').symlink_to(src / f'frame-{i:06d}.{kind}')
    (seq / 'camera-intrinsics.txt').symlink_to(src / 'camera-intrinsics.txt')
    out, result = _run(tmp_path, 'data.source=7scenes', f'data.root={seq}', 'data.image_size=[48, 64]',
                       'tasks=[depth, normals, semseg, correspondence]', 'data.pair_gap=2')
    assert result['frames'] == {'train': 6, 'test': 3} and 'semseg' in result['skipped']
    assert result['correspondence']['matches'] > 100 and result['normals']['mean_angle_deg'] > 0
    # consecutive frames overlap: most pixels with depth reproject inside the other view and agree with its depth
    from mask3d.training.data.folder import read_depth
    d = [torch.as_tensor(read_depth(src / f'frame-{i:06d}.depth.png', 1000)) for i in (0, 2)]
    P = [torch.as_tensor(np.loadtxt(src / f'frame-{i:06d}.pose.txt')) for i in (0, 2)]
    Kr = torch.as_tensor(np.loadtxt(src / 'camera-intrinsics.txt'))
    uv_a, _ = ground_truth_matches(d[0], Kr, P[0], d[1], Kr, P[1])
    assert len(uv_a) > 0.6 * int((d[0] > 0).sum())


@pytest.mark.e2e
def test_seven_scenes_sequence_layout(tmp_path):
    """A 7-Scenes sequence folder written from rendered posed views (frame-%06d.color.jpg, .depth.png in mm,
    .pose.txt camera-to-world, camera-intrinsics.txt): the probe reads it, splits it 4 + 2 and pairs the test frames."""
    from PIL import Image
    seq = tmp_path / 'seq'
    seq.mkdir()
    views = render_views(0, 0, views=6, height=48, width=64, sensor_noise=False)
    for i, v in enumerate(views):
        Image.fromarray(np.ascontiguousarray(v['rgb'].transpose(1, 2, 0))).save(seq / f'frame-{i:06d}.color.jpg')
        Image.fromarray(np.round(v['depth'][0] * 1000).astype(np.uint16)).save(seq / f'frame-{i:06d}.depth.png')
        np.savetxt(seq / f'frame-{i:06d}.pose.txt', v['pose'])
    np.savetxt(seq / 'camera-intrinsics.txt', views[0]['intrinsics'])
    _, result = _run(tmp_path, 'data.source=7scenes', f'data.root={seq}', 'tasks=[depth, correspondence]')
    assert result['frames'] == {'train': 4, 'test': 2} and result['correspondence']['pairs'] == 1
    assert result['correspondence']['matches'] > 100 and 0 < result['depth']['abs_rel'] < 5


def test_heads_learn_from_informative_features():
    """A linear probe on features that encode the class reaches ~100 % pixel accuracy in 40 steps (the schedule
    really trains: a scheduler stuck at its warm-up lr would not)."""
    from mask3d.training.probe.config import load_probe_config
    from mask3d.training.probe.engine import _predict, _train_head
    from mask3d.training.probe.heads import LinearProbe
    cfg = load_probe_config(None, ['data.image_size=[8, 8]', 'train.steps=40', 'train.batch_size=4', 'optim.lr=0.1'])
    labels = torch.randint(0, 3, (12, 8, 8), generator=torch.Generator().manual_seed(0))
    feats = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float()[:, None]  # [N, 1 block, 3, 8, 8]
    head, last = _train_head(LinearProbe(3, 3), feats.half(), [labels], torch.nn.CrossEntropyLoss(), cfg,
                             torch.device('cpu'), 'test')
    assert last < 0.5 and (_predict(head, feats, cfg, torch.device('cpu')).argmax(1) == labels).float().mean() > 0.99


@pytest.mark.e2e
def test_real_nyu_frame_through_the_nyu_source(rgbd_data, tmp_path):
    """The real labelled NYU frame 1407 in the .mat layout (test split; two flipped copies as the train split):
    depth, normals and the 40-class linear probe run on it, correspondence is skipped (no poses)."""
    from PIL import Image
    from scipy.io import savemat

    from mask3d.training.data.nyu import load_class_mapping_40
    from mask3d.training.data.writers import write_nyu_mat
    demo, meta = rgbd_data / 'rcnn-depth' / 'demo-data', rgbd_data / 'ankurhanda-nyuv2-meta-data'
    rgb = np.array(Image.open(demo / 'images.png').convert('RGB')).transpose(2, 0, 1)
    depth = np.array(Image.open(demo / 'depth.png')).astype(np.float32) / 1000
    label40 = np.array(Image.open(rgbd_data / 'h-0-0-nyuv2-meta-data' / 'test_labels_40' /
                                  'new_nyu_class40_1407.png'))[45:470, 40:600]
    lut = load_class_mapping_40(meta / 'classMapping40.mat')
    raw_of = {int(c): int(np.flatnonzero(lut == c)[0]) for c in np.unique(label40) if c > 0}
    raw = np.vectorize(lambda c: raw_of.get(int(c), 0))(label40).astype(np.uint16)
    flip = lambda a: np.ascontiguousarray(a[..., ::-1])  # noqa: E731
    rgbs, depths, labels = [flip(rgb), flip(rgb), rgb], [flip(depth), flip(depth), depth], [flip(raw), flip(raw), raw]
    mat = write_nyu_mat(tmp_path / 'nyu.mat', rgbs, depths, depths, labels, [np.zeros_like(raw)] * 3)
    savemat(tmp_path / 'splits.mat', {'trainNdxs': np.array([[1], [2]]), 'testNdxs': np.array([[3]])})
    _, result = _run(tmp_path, 'data.source=nyu', f'data.root={mat}',
                     f'data.class_mapping={meta / "classMapping40.mat"}', f'data.splits_mat={tmp_path / "splits.mat"}',
                     'data.image_size=[48, 64]')
    assert result['frames'] == {'train': 2, 'test': 1} and 'correspondence' in result['skipped']
    assert 0 < result['depth']['abs_rel'] < 5 and 0 < result['normals']['mean_angle_deg'] < 180
    assert len(result['semseg']['iou']) == 40 and result['semseg']['class_names'][0] == 'wall'


@pytest.mark.e2e
def test_nyu_source_on_a_generated_mat(tmp_path):
    """The .mat layout with a generated classMapping40.mat and splits.mat (frames 1, 2 train; 3 test): raw ids
    21, 11, 5 arrive as wall, floor, chair; correspondence is skipped (no poses)."""
    from mask3d.training.data.writers import write_nyu_mat
    from rgbd_formats import room_depth, write_class_mapping_40, write_splits_mat
    raw = np.full((48, 64), 21, np.uint16)
    raw[32:] = 11
    raw[10:30, 20:40] = 5
    rng = np.random.default_rng(0)
    rgbs = [rng.integers(0, 255, (3, 48, 64), dtype=np.uint8) for _ in range(3)]
    depths = [room_depth(48, 64, seed=i, holes=0) for i in range(3)]
    mat = write_nyu_mat(tmp_path / 'nyu.mat', rgbs, depths, depths, [raw] * 3, [np.zeros_like(raw)] * 3)
    mapping = write_class_mapping_40(tmp_path / 'classMapping40.mat')
    splits = write_splits_mat(tmp_path / 'splits.mat', train=[1, 2], test=[3])
    _, result = _run(tmp_path, 'data.source=nyu', f'data.root={mat}', f'data.class_mapping={mapping}',
                     f'data.splits_mat={splits}')
    assert result['frames'] == {'train': 2, 'test': 1} and 'correspondence' in result['skipped']
    iou = result['semseg']['iou']
    assert len(iou) == 40 and result['semseg']['class_names'][:5] == ['wall', 'floor', 'cabinet', 'bed', 'chair']
    assert not any(math.isnan(iou[c]) for c in (0, 1, 4))  # wall, floor and chair are in the test frame


def test_frozen_backbone_from_a_weights_file_and_a_timm_name(tmp_path):
    """Fine-tuning's backbone resolution: a weights file (+ arch) loads its weights; any timm ViT works; all frozen."""
    from safetensors.torch import save_file

    import mask3d
    from mask3d.training.probe.config import ProbeModelConfig
    from mask3d.training.probe.features import build_frozen_backbone
    vit = mask3d.create_model('mask3d_vit_tiny_patch16', depth=2)
    save_file(vit.state_dict(), str(tmp_path / 'w.safetensors'))
    net, recipe = build_frozen_backbone(ProbeModelConfig(backbone=str(tmp_path / 'w.safetensors'),
                                                         arch='mask3d_vit_tiny_patch16', model_args={'depth': 2}),
                                        [-1])
    assert recipe['pretrained_weights'] and recipe['blocks'] == [1] and not net.training
    assert torch.equal(net.model.state_dict()['blocks.1.mlp.fc2.weight'], vit.state_dict()['blocks.1.mlp.fc2.weight'])
    assert not any(p.requires_grad for p in net.parameters())
    net, recipe = build_frozen_backbone(ProbeModelConfig(backbone='vit_tiny_patch16_224', pretrained=False), [-4, -1])
    assert recipe['blocks'] == [8, 11] and not recipe['pretrained_weights']
    maps = net(torch.zeros(1, 3, 32, 48))
    assert [tuple(m.shape) for m in maps] == [(1, 192, 2, 3)] * 2


def test_render_views_keeps_view_zero_and_synth_writes_poses(tmp_path):
    from mask3d.training.data.synthetic import render_scene
    views = render_views(2, 4, views=3, height=24, width=48)
    single = render_scene(2, 4, 24, 48)
    assert all(np.array_equal(views[0][k], single[k]) for k in single)
    assert np.allclose(views[1]['intrinsics'], single['intrinsics']) and not np.allclose(views[1]['pose'],
                                                                                         views[2]['pose'])
    R = views[1]['pose'][:3, :3]
    assert np.allclose(R.T @ R, np.eye(3), atol=1e-5) and np.isclose(np.linalg.det(R), 1, atol=1e-5)
    assert main(['data', 'synth', '--out', str(tmp_path / 's'), '--frames', '1', '--views', '2',
                 '--image-size', '16', '48']) == 0
    assert sorted(p.name for p in (tmp_path / 's' / 'pose').iterdir()) == ['000000_00.txt', '000000_01.txt']
    assert np.allclose(np.loadtxt(tmp_path / 's' / 'pose' / '000000_01.txt'),
                       render_views(0, 0, 2, 16, 48)[1]['pose'], atol=1e-5)


@pytest.mark.e2e
def test_scannet_exported_scenes_pair_posed_frames(tmp_path):
    """ScanNet layout (color/, depth/ mm, pose/, intrinsics): consecutive frames of a scene pair up; a frame whose
    pose is -inf (lost tracking) is left out of the pairs."""
    from mask3d.training.data.writers import write_scannet25k_frame
    for scene, seed in (('scene0000_00', 0), ('scene0001_00', 7)):
        frames = render_views(seed, 0, views=3, height=48, width=64, sensor_noise=False)
        for i, f in enumerate(frames):
            d = tmp_path / 'scans' / scene
            write_scannet25k_frame(d, i, f['rgb'], np.round(f['depth'][0] * 1000), f['semantic'], f['instance'],
                                   f['intrinsics'])
            pose = f['pose'] if not (scene == 'scene0001_00' and i == 2) else np.full((4, 4), -np.inf)
            np.savetxt(d / 'pose' / f'{i:06d}.txt', pose)
    (tmp_path / 'train.txt').write_text('scene0000_00\n')
    (tmp_path / 'test.txt').write_text('scene0001_00\n')
    _, result = _run(tmp_path, 'data.source=scannet', f'data.root={tmp_path / "scans"}',
                     f'data.train_split={tmp_path / "train.txt"}', f'data.test_split={tmp_path / "test.txt"}',
                     'tasks=[depth, correspondence]', 'correspondence.max_pairs=8')
    assert result['frames'] == {'train': 3, 'test': 3} and result['correspondence']['pairs'] == 1
    assert result['correspondence']['matches'] > 100


def test_folder_normals_come_from_the_clean_depth(tmp_path):
    """Synthetic pools carry sensor noise in depth/; the normals ground truth is differentiated from the noise-free
    depth_clean/ the writer stores beside it (issue 23), while the depth probe keeps the sensor depth."""
    from types import SimpleNamespace

    from mask3d.training.data.cli import write_synthetic
    from mask3d.training.data.synthetic import render_scene
    from mask3d.training.probe.data import _folder
    from mask3d.training.probe.tasks import ground_truth_normals
    write_synthetic(tmp_path / 'pool', 2, 7, (48, 64), progress=False)
    d = SimpleNamespace(depth_scale=1000.0, image_size=(48, 64), pair_gap=1)
    split = _folder(tmp_path / 'pool', d, (0.5,) * 3, (0.5,) * 3, 'read')
    assert split.depth_clean is not None and not torch.equal(split.depth_clean, split.depth)
    normals, valid = ground_truth_normals(split)
    clean = render_scene(7, 1, 48, 64, sensor_noise=False)
    expected, expected_valid = normals_from_depth(torch.from_numpy(clean['depth'][0]), split.intrinsics[1])
    assert torch.equal(valid[1], expected_valid) and torch.allclose(normals[1], expected, atol=1e-5)
    noisy, noisy_valid = normals_from_depth(split.depth[1, 0], split.intrinsics[1])
    both = noisy_valid & expected_valid
    angle = torch.rad2deg(torch.acos((noisy * expected).sum(0)[both].clamp(-1, 1))).mean()
    assert angle > 1.0  # the sensor depth's normals differ from the clean ones: the bug this guards against
    # a pool written without depth_clean/ (or a real sensor folder) falls back to the sensor depth
    write_synthetic(tmp_path / 'plain', 1, 7, (48, 64), progress=False, clean_depth=False)
    assert _folder(tmp_path / 'plain', d, (0.5,) * 3, (0.5,) * 3, 'read').depth_clean is None
