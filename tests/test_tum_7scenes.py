"""TUM RGB-D and 7-Scenes read as published: byte-exact generated sequences and the real frames in
../shared/data/rgbd (skipped where absent)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from mask3d.cli import main
from mask3d.errors import DataError
from mask3d.training.data.inspect import detect_format
from mask3d.training.data.seven_scenes import SevenScenesFrames
from mask3d.training.data.tum import CAMERAS, TUMFrames, associate, camera_for

TUM_HEADER = "# color images\n# file: 'rgbd_dataset_freiburg2_desk.bag'\n# timestamp filename\n"


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _tum(root, rgb_stamps, depth_stamps, depth_value=12345, size=(6, 8)):
    """A sequence as TUM publishes it: rgb.txt / depth.txt with comment headers, rgb/ and depth/ named by stamp."""
    root.mkdir(parents=True)
    lines = {'rgb': [TUM_HEADER], 'depth': [TUM_HEADER.replace('color', 'depth')]}
    for kind, stamps in (('rgb', rgb_stamps), ('depth', depth_stamps)):
        for t in stamps:
            name = f'{kind}/{t:.6f}.png'
            lines[kind].append(f'{t:.6f} {name}\n')
            if kind == 'rgb':
                _png(root / name, np.full((*size, 3), int(t * 1000) % 251, np.uint8))
            else:
                d = np.full(size, depth_value, np.uint16)
                d[0, 0] = 0
                _png(root / name, d)
        (root / f'{kind}.txt').write_text(''.join(lines[kind]))
    return root


def _brute_force_associate(first, second, max_difference=0.02):
    """TUM associate.py's rule spelled out: all pairs closer than max_difference, best first, each stamp once."""
    candidates = sorted((abs(a - b), a, b) for a in first for b in second if abs(a - b) < max_difference)
    left_a, left_b, out = set(first), set(second), []
    for _, a, b in candidates:
        if a in left_a and b in left_b:
            left_a.discard(a)
            left_b.discard(b)
            out.append((a, b))
    return sorted(out)


def test_tum_association_is_best_first_and_uses_each_depth_once(tmp_path):
    # 1.015 is closer to depth 1.010 than 1.000 is, so 1.000 loses its only candidate; 2.0199 s pairs, 2.0201 s not
    root = _tum(tmp_path / 'rgbd_dataset_freiburg2_desk', [1.000, 1.015, 2.0, 3.0, 4.0],
                [1.010, 2.0199, 3.0201, 4.004, 9.0])
    ds = TUMFrames(root)
    assert ds.timestamps == [(1.015, 1.010), (2.0, 2.0199), (4.0, 4.004)]
    assert [p.name for p, _ in ds.frames] == ['1.015000.png', '2.000000.png', '4.000000.png']
    s = ds[1]
    assert s['rgb'].shape == (3, 6, 8) and s['depth'].dtype == np.float32
    assert s['depth'][0, 0, 0] == 0 and s['depth'][0, 1, 1] == np.float32(12345) / np.float32(5000)
    fx, fy, cx, cy = CAMERAS['fr2']
    assert np.allclose(s['intrinsics'], [[fx, 0, cx], [0, fy, cy], [0, 0, 1]])


def test_tum_association_matches_the_reference_rule_on_random_stamps():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = sorted(set(np.round(np.cumsum(rng.uniform(0.01, 0.05, 60)), 6).tolist()))
        b = sorted(set(np.round(np.cumsum(rng.uniform(0.01, 0.05, 60)) + rng.uniform(-0.02, 0.02), 6).tolist()))
        assert associate(a, b) == _brute_force_associate(a, b)


def test_tum_camera_from_the_sequence_name():
    assert camera_for('rgbd_dataset_freiburg1_xyz') == 'fr1'
    assert camera_for('rgbd_dataset_freiburg3_long_office_household') == 'fr3'
    assert camera_for('fr2_pioneer_360') == 'fr2'
    assert camera_for('my_capture') == 'ros' and CAMERAS['ros'] == (525.0, 525.0, 319.5, 239.5)


def test_tum_errors_name_the_file_and_line(tmp_path):
    root = _tum(tmp_path / 'seq', [1.0, 2.0], [1.0, 2.0])
    (root / 'depth' / '2.000000.png').unlink()
    with pytest.raises(DataError, match=r'depth/2.000000.png: listed in .*depth.txt \(frame 2.000000\) but '
                                              r'missing'):
        TUMFrames(root)
    (root / 'rgb.txt').write_text(TUM_HEADER + '1.000000 rgb/1.000000.png\nnot-a-stamp rgb/x.png\n')
    with pytest.raises(DataError, match=r'rgb.txt: line 5: expected "timestamp filename"'):
        TUMFrames(root)
    (root / 'rgb.txt').write_text(TUM_HEADER + '7.0 rgb/1.000000.png\n')
    with pytest.raises(DataError, match='no colour/depth timestamps within 20 ms'):
        TUMFrames(root)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DataError, match='not a TUM RGB-D sequence'):
        TUMFrames(tmp_path / 'empty')


def _seven_scene(root, frames=(0, 1, 2), seqs=(1, 2)):
    """A scene as Microsoft publishes it: seq-XX/frame-NNNNNN.{color.png, depth.png, pose.txt}, split files."""
    for s in seqs:
        for i in frames:
            stem = root / f'seq-{s:02d}' / f'frame-{i:06d}'
            _png(stem.with_name(stem.name + '.color.png'), np.full((6, 8, 3), 10 * i + s, np.uint8))
            d = np.full((6, 8), 1500 + i, np.uint16)
            d[0, :2] = (0, 65535)  # both mean "no depth"
            _png(stem.with_name(stem.name + '.depth.png'), d)
            pose = np.eye(4)
            pose[:3, 3] = (i, s, 0.5)
            # 7-Scenes writes tab-separated scientific notation with trailing tabs
            stem.with_name(stem.name + '.pose.txt').write_text(
                ''.join('\t'.join(f'{v:.7e}' for v in row) + '\t\n' for row in pose))
    (root / 'TrainSplit.txt').write_text('sequence1\n')
    (root / 'TestSplit.txt').write_text('sequence2\n')
    return root


def test_seven_scenes_layout_depth_poses_and_splits(tmp_path):
    scene = _seven_scene(tmp_path / 'chess')
    ds = SevenScenesFrames(scene)
    assert len(ds) == 6 and [p.parent.name for p, _ in ds.frames] == ['seq-01'] * 3 + ['seq-02'] * 3
    s = ds[4]  # seq-02, frame 1
    assert s['depth'][0, 0, 0] == 0 and s['depth'][0, 0, 1] == 0  # 0 and 65535 are invalid
    assert s['depth'][0, 1, 1] == np.float32(1501) / np.float32(1000)
    assert np.allclose(s['pose'][:3, 3], (1, 2, 0.5)) and np.allclose(s['intrinsics'], [[585, 0, 320],
                                                                                      [0, 585, 240], [0, 0, 1]])
    assert [p.parent.name for p, _ in SevenScenesFrames(scene, split='test').frames] == ['seq-02'] * 3
    assert len(SevenScenesFrames(tmp_path)) == 6  # a folder of scenes
    assert len(SevenScenesFrames(scene / 'seq-01')) == 3  # one sequence


def test_seven_scenes_errors_name_the_file(tmp_path):
    scene = _seven_scene(tmp_path / 'chess', seqs=(1,))
    (scene / 'seq-01' / 'frame-000001.depth.png').unlink()
    with pytest.raises(DataError, match=r'frame-000001.color.png: frame frame-000001 without a colour/depth '
                                              r'partner'):
        SevenScenesFrames(scene)
    scene = _seven_scene(tmp_path / 'heads', seqs=(1,))
    seq = scene / 'seq-01'
    (seq / 'frame-000002.color.jpg').write_bytes((seq / 'frame-000002.color.png').read_bytes())
    with pytest.raises(DataError, match='two colour files for frame frame-000002: frame-000002.color.jpg and '
                                              'frame-000002.color.png'):
        SevenScenesFrames(scene)
    scene = _seven_scene(tmp_path / 'fire', seqs=(1,))
    (scene / 'seq-01' / 'frame-000000.pose.txt').write_text('1 0 0\n0 1 0\n')
    with pytest.raises(DataError, match=r'frame-000000.pose.txt: pose must be 4x4 \(16 values\), found 6'):
        SevenScenesFrames(scene)[0]
    with pytest.raises(DataError, match=r'ValSplit|split must be'):
        SevenScenesFrames(scene, split='val')


def test_inspect_detects_tum_and_seven_scenes(tmp_path, capsys):
    tum = _tum(tmp_path / 'rgbd_dataset_freiburg1_xyz', [1.0, 2.0], [1.001, 2.001])
    scene = _seven_scene(tmp_path / 'office')
    assert detect_format(tum) == 'tum' and detect_format(scene) == '7scenes'
    assert detect_format(scene / 'seq-01') == '7scenes'
    assert main(['data', 'inspect', str(tum), '--json']) == 0
    report = json.loads(capsys.readouterr().out)
    assert report['format'] == 'tum' and report['frames'] == 2 and report['problems'] == []
    assert np.isclose(report['depth_m']['median'], 12345 / 5000)
    assert main(['data', 'inspect', str(scene), '--json']) == 0
    report = json.loads(capsys.readouterr().out)
    assert report['format'] == '7scenes' and report['frames'] == 6 and np.isclose(report['depth_m']['max'], 1.502)


# ---- real frames ---------------------------------------------------------------------------------------------

def _real_tum(rgbd_data, root):
    """The real TUM frame (Open3D's test data) laid out as a published sequence: rgb.txt / depth.txt, stamped
    names 11 ms apart, as TUM's colour and depth streams are."""
    src = rgbd_data / 'open3d' / 'examples' / 'test_data' / 'RGBD' / 'other_formats'
    (root / 'rgb').mkdir(parents=True)
    (root / 'depth').mkdir()
    (root / 'rgb' / '1305031102.175304.png').symlink_to(src / 'TUM_color.png')
    (root / 'depth' / '1305031102.164051.png').symlink_to(src / 'TUM_depth.png')
    (root / 'rgb.txt').write_text(TUM_HEADER + '1305031102.175304 rgb/1305031102.175304.png\n')
    (root / 'depth.txt').write_text(TUM_HEADER + '1305031102.164051 depth/1305031102.164051.png\n')
    return root


def _real_seven_scenes(rgbd_data, scene, frames=6):
    """The real redkitchen frames laid out as published (scene/seq-01/...), colour kept as the copy's JPEG."""
    src = rgbd_data / 'tsdf-fusion-python-7scenes' / 'data'
    seq = scene / 'seq-01'
    seq.mkdir(parents=True)
    for i in range(frames):
        for kind in ('color.jpg', 'depth.png', 'pose.txt'):
            (seq / f'frame-{i:06d}.{kind}').symlink_to(src / f'frame-{i:06d}.{kind}')
    return scene


def test_real_tum_frame_as_a_sequence(rgbd_data, tmp_path):
    ds = TUMFrames(_real_tum(rgbd_data, tmp_path / 'tum_open3d'))
    s = ds[0]
    valid = s['depth'][0] > 0
    assert s['rgb'].shape == (3, 480, 640) and 0.75 < valid.mean() < 0.9  # README: 19 % holes
    assert 2.0 < np.median(s['depth'][0][valid]) < 2.8  # README: median 2.4 m
    assert np.allclose(s['intrinsics'][0, 0], 525.0)  # no Freiburg name: TUM's ROS default


def test_real_seven_scenes_as_published(rgbd_data, tmp_path):
    ds = SevenScenesFrames(_real_seven_scenes(rgbd_data, tmp_path / 'redkitchen'))
    assert len(ds) == 6
    s = ds[0]
    valid = s['depth'][0] > 0
    assert s['rgb'].shape == (3, 480, 640) and 0.85 < valid.mean() < 0.95 and s['depth'].max() < 10
    assert 1.5 < np.median(s['depth'][0][valid]) < 2.5  # README: median about 1.9 m
    src = rgbd_data / 'tsdf-fusion-python-7scenes' / 'data'
    assert np.allclose(s['pose'], np.loadtxt(src / 'frame-000000.pose.txt'))


@pytest.mark.e2e
def test_real_tum_and_seven_scenes_pretrain_as_a_mixture(rgbd_data, tmp_path):
    """Both sources in one pre-training mixture, end to end through the engine (2 steps of a tiny model)."""
    from mask3d.training.pretrain.config import config_from_dict
    from mask3d.training.pretrain.engine import pretrain
    tum = _real_tum(rgbd_data, tmp_path / 'rgbd_dataset_freiburg1_real')
    scene = _real_seven_scenes(rgbd_data, tmp_path / 'redkitchen', frames=4)
    cfg = config_from_dict({
        'model': {'name': 'mask3d_vit_tiny_patch16', 'model_args': {'depth': 2}},
        'method': {'depth_encoder_depth': 1, 'decoder_dim': 32, 'decoder_depth': 1, 'decoder_num_heads': 2},
        'data': {'source': 'mixture', 'image_size': [64, 96], 'batch_size': 4, 'num_workers': 0,
                 'mixture_length': 8, 'mixture': [{'source': 'tum', 'root': str(tum), 'weight': 1},
                                                  {'source': '7scenes', 'root': str(scene), 'weight': 1}]},
        'optim': {'lr': 1.0e-3, 'warmup_steps': 0},
        'train': {'steps': 2, 'precision': 'fp32', 'device': 'cpu', 'log_every': 1, 'ckpt_every': 2,
                  'figure_every': 1000, 'export_at_end': False}})
    summary = pretrain(cfg, tmp_path / 'run', progress=False)
    assert summary['steps'] == 2 and np.isfinite(summary['final']['loss'])
    assert torch.load(tmp_path / 'run' / 'checkpoints' / 'last.pt', map_location='cpu', weights_only=True)


def test_seven_scenes_and_tum_shards_decode_to_the_reader_samples(tmp_path, capsys):
    """Shards keep the source's depth bytes; 7-Scenes' 65535 must still read as invalid from a shard."""
    from mask3d.training.data.shards import ShardFrames
    for src, n in ((_seven_scene(tmp_path / 'chess'), 6),
                   (_tum(tmp_path / 'rgbd_dataset_freiburg3_x', [1.0, 2.0], [1.001, 2.001]), 2)):
        out = tmp_path / f'shards_{src.name}'
        assert main(['data', 'shard', str(src), '--out', str(out), '--frames-per-shard', '4']) == 0
        reader, shards = (SevenScenesFrames(src) if n == 6 else TUMFrames(src)), ShardFrames(out)
        assert len(shards) == n
        for i in range(n):
            a, b = reader[i], shards[i]
            assert np.array_equal(a['rgb'], b['rgb']) and np.array_equal(a['depth'], b['depth'])
            assert np.allclose(a['intrinsics'], b['intrinsics'])
    assert SevenScenesFrames(tmp_path / 'chess')[0]['depth'][0, 0, 1] == 0


def test_seven_scenes_depth_stays_invalid_when_colour_is_decoded_on_the_device(tmp_path):
    """``data.decode_device``: workers decode only depth; 7-Scenes' 65535 must still come out as 0."""
    from mask3d.training.data.device_decode import defer_colour
    seq = tmp_path / 'chess' / 'seq-01'
    _seven_scene(tmp_path / 'chess', seqs=(1,))
    for png in seq.glob('*.color.png'):  # JPEG colour, as some 7-Scenes copies have it
        Image.open(png).save(png.with_suffix('.jpg'))
        png.unlink()
    frames = SevenScenesFrames(seq)
    deferred = defer_colour(frames, '7scenes')
    for i in range(len(frames)):
        assert np.array_equal(deferred[i]['depth'], frames[i]['depth'])
    assert deferred[0]['depth'][0, 0, 1] == 0
