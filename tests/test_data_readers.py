"""Readers on byte-exact fixtures and on the real frames in ../shared/data/rgbd (skipped where absent)."""
import numpy as np
import pytest
import torch
from PIL import Image

from mask3d.cli import main
from mask3d.errors import DataError
from mask3d.training.data.folder import RGBDFolder, read_depth
from mask3d.training.data.pretrain_data import EpochIndexSampler, PretrainSamples
from mask3d.training.data.scannet import ScanNetFrames
from mask3d.training.data.scannet_sens import SensFormatError, SensReader, extract_sens, write_sens
from mask3d.training.data.synthetic import CLASS_NAMES, SyntheticRGBD, render_scene
from mask3d.training.data.transforms import JointTransform

K_DEPTH = np.array([[577.87, 0, 319.5, 0], [0, 577.87, 239.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]], np.float32)
K_COLOR = np.array([[1170.19, 0, 647.75, 0], [0, 1170.19, 483.75, 0], [0, 0, 1, 0], [0, 0, 0, 1]], np.float32)


def _sens(tmp_path, n=3, color_hw=(48, 64), depth_hw=(24, 32)):
    rng = np.random.default_rng(0)
    colors = [np.full((*color_hw, 3), 40 * i + 20, np.uint8) for i in range(n)]
    depths = [rng.integers(0, 5000, size=depth_hw).astype(np.uint16) for _ in range(n)]
    poses = [np.eye(4, dtype=np.float32) * (i + 1) for i in range(n)]
    path = write_sens(tmp_path / 'scene0000_00.sens', colors, depths, poses, intrinsic_color=K_COLOR,
                      intrinsic_depth=K_DEPTH)
    return path, colors, depths, poses


def test_sens_round_trip_decodes_values_and_units(tmp_path):
    path, colors, depths, poses = _sens(tmp_path)
    reader = SensReader(path)
    h = reader.header
    assert (h.version, h.color_width, h.color_height, h.depth_width, h.depth_height) == (4, 64, 48, 32, 24)
    assert h.depth_shift == 1000.0 and len(reader) == 3 and h.sensor_name == 'StructureSensor'
    assert np.allclose(h.intrinsic_depth, K_DEPTH)
    frames = list(reader.frames())
    for f, c, d, p in zip(frames, colors, depths, poses):
        assert np.array_equal(f.depth_mm(h), d)
        assert np.allclose(f.depth_m(h), d / 1000.0)
        assert np.abs(f.color().astype(int) - c).max() <= 2  # JPEG
        assert np.array_equal(f.camera_to_world, p)
    assert [f.index for f in reader.frames(every=2)] == [0, 2]


def test_extract_sens_writes_standard_layout_and_reads_back(tmp_path, capsys):
    path, colors, depths, poses = _sens(tmp_path)
    out = tmp_path / 'scans_exported' / 'scene0000_00'
    assert main(['data', 'extract-sens', str(path), '--out', str(out), '--every', '1']) == 0
    assert sorted(p.name for p in (out / 'color').iterdir()) == ['0.jpg', '1.jpg', '2.jpg']
    assert np.array_equal(np.array(Image.open(out / 'depth' / '1.png')), depths[1])
    assert np.allclose(np.loadtxt(out / 'pose' / '2.txt'), poses[2])
    assert np.allclose(np.loadtxt(out / 'intrinsic' / 'intrinsic_depth.txt'), K_DEPTH, atol=1e-3)
    ds = ScanNetFrames(out.parent)
    sample = ds[1]
    assert sample['rgb'].shape == (3, 24, 32)  # colour resized to the depth grid
    assert np.allclose(sample['depth'][0], depths[1] / 1000.0)
    assert np.allclose(sample['intrinsics'], K_DEPTH[:3, :3], atol=1e-3)


def test_sens_bad_input(tmp_path):
    path, *_ = _sens(tmp_path)
    data = path.read_bytes()
    bad = tmp_path / 'v3.sens'
    bad.write_bytes((3).to_bytes(4, 'little') + data[4:])
    with pytest.raises(SensFormatError, match='version 3'):
        SensReader(bad)
    cut = tmp_path / 'cut.sens'
    cut.write_bytes(data[:-100])
    with pytest.raises(SensFormatError, match=r'cut.sens: truncated while reading frame 2 of 3'):
        list(SensReader(cut).frames())
    with pytest.raises(SensFormatError, match='not found'):
        SensReader(tmp_path / 'missing.sens')


def test_scannet_split_and_every(tmp_path):
    path, *_ = _sens(tmp_path, n=4)
    for scene in ('scene0000_00', 'scene0001_00'):
        extract_sens(path, tmp_path / 'root' / scene, progress=False)
    (tmp_path / 'train.txt').write_text('scene0001_00\n')
    assert len(ScanNetFrames(tmp_path / 'root', split=tmp_path / 'train.txt', every=2)) == 2
    (tmp_path / 'empty.txt').write_text('\n')
    with pytest.raises(DataError, match='empty split'):
        ScanNetFrames(tmp_path / 'root', split=tmp_path / 'empty.txt')
    (tmp_path / 'bad.txt').write_text('scene0099_00\n')
    with pytest.raises(DataError, match='scene0099_00'):
        ScanNetFrames(tmp_path / 'root', split=tmp_path / 'bad.txt')


# ---- generic folder ------------------------------------------------------------------------------------------

def _folder(tmp_path, depth_scale_units=1000):
    (tmp_path / 'rgb').mkdir()
    (tmp_path / 'depth').mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'rgb' / 'a.png')
    d = np.full((8, 8), 2 * depth_scale_units, np.uint16)
    d[0, 0] = 0
    Image.fromarray(d).save(tmp_path / 'depth' / 'a.png')
    return tmp_path


def test_folder_depth_scales_and_formats(tmp_path):
    root = _folder(tmp_path, 5000)
    sample = RGBDFolder(root, depth_scale=5000)[0]
    assert sample['depth'].shape == (1, 8, 8) and sample['depth'][0, 0, 0] == 0
    assert np.allclose(sample['depth'][0, 1:, :], 2.0)
    np.save(root / 'm.npy', np.full((4, 4), 1.5, np.float32))
    assert np.allclose(read_depth(root / 'm.npy', 1000), 1.5)
    Image.fromarray(np.full((4, 4), 2.25, np.float32)).save(root / 't.tif')
    assert np.allclose(read_depth(root / 't.tif', 1000), 2.25)


def test_folder_bad_input_names_the_file(tmp_path):
    root = _folder(tmp_path)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / 'depth8.png')
    with pytest.raises(DataError, match=r'depth8.png: depth PNG must be 16-bit'):
        read_depth(root / 'depth8.png', 1000)
    np.save(root / 'int.npy', np.zeros((4, 4), np.int32))
    with pytest.raises(DataError, match='int.npy: .npy depth must be float'):
        read_depth(root / 'int.npy', 1000)
    (root / 'trunc.png').write_bytes((root / 'depth' / 'a.png').read_bytes()[:40])
    with pytest.raises(DataError, match='trunc.png: cannot read depth'):
        read_depth(root / 'trunc.png', 1000)
    Image.fromarray(np.zeros((8, 8), np.uint16)).save(root / 'depth' / 'a.png')
    with pytest.raises(DataError, match='no valid depth pixel'):
        RGBDFolder(root)[0]
    Image.fromarray(np.ones((4, 8), np.uint16)).save(root / 'depth' / 'a.png')
    with pytest.raises(DataError, match=r'depth is \(4, 8\), colour a.png is \(8, 8\)'):
        RGBDFolder(root)[0]
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / 'rgb' / 'lonely.png')
    with pytest.raises(DataError, match='without a colour/depth partner'):
        RGBDFolder(root)


def test_skip_bad_logs_and_counts(tmp_path, caplog):
    root = _folder(tmp_path)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / 'rgb' / 'b.png')
    (root / 'depth' / 'b.png').write_bytes(b'broken')
    frames = RGBDFolder(root)
    transform = JointTransform((16, 16))
    strict = PretrainSamples(frames, transform, patch_size=16, seed=0)
    with pytest.raises(DataError, match='b.png'):
        strict[(0, 1)]
    lenient = PretrainSamples(frames, transform, patch_size=16, seed=0, skip_bad=True)
    out = lenient[(0, 1)]
    assert out['skipped'].item() == 1 and 'b.png' in caplog.text


# ---- synthetic -----------------------------------------------------------------------------------------------

def test_synthetic_frames_are_deterministic_and_physical():
    a, b = render_scene(3, 7), render_scene(3, 7)
    assert all(np.array_equal(a[k], b[k]) for k in ('rgb', 'depth', 'semantic', 'instance'))
    assert not np.array_equal(render_scene(3, 8)['depth'], a['depth'])
    assert a['rgb'].shape == (3, 240, 320) and a['rgb'].dtype == np.uint8
    assert a['depth'].shape == (1, 240, 320) and a['depth'].dtype == np.float32
    valid = a['depth'] > 0
    assert 0.5 < valid.mean() <= 1.0 and a['depth'][valid].max() <= 10.0 and a['depth'][valid].min() > 0.05
    assert a['semantic'].max() < len(CLASS_NAMES) and a['intrinsics'].shape == (3, 3)
    ds = SyntheticRGBD(length=5, seed=3, image_size=(64, 96))
    assert len(ds) == 5 and ds[4]['rgb'].shape == (3, 64, 96)


def test_synthetic_depth_matches_geometry():
    # floor pixels: depth follows the pinhole model for a horizontal plane below the camera
    f = render_scene(0, 1, sensor_noise=False)
    sem, depth = f['semantic'], f['depth'][0]
    floor = (sem == CLASS_NAMES.index('floor'))
    assert floor.any()
    rows = np.nonzero(floor.any(1))[0]
    # deeper rows (closer to the bottom of the image) see the floor nearer: depth decreases downwards
    means = [depth[r][floor[r]].mean() for r in rows[::10]]
    assert all(x >= y - 1e-3 for x, y in zip(means, means[1:]))


def test_transforms_keep_alignment_and_depth_values():
    f = render_scene(0, 2, sensor_noise=True)
    t = JointTransform((240, 320), scale=(0.3, 0.6), hflip=0.0)
    out = t(f, np.random.default_rng(0))
    d = out['depth'].numpy()
    originals = set(np.unique(f['depth']).tolist())
    assert set(np.unique(d).tolist()) <= originals  # nearest: no blended (fake) depths, holes stay 0
    assert out['rgb'].shape == (3, 240, 320) and out['rgb'].dtype == torch.float32
    K = out['intrinsics'].numpy()
    assert K[0, 0] > 1.2 * f['intrinsics'][0, 0]  # a crop of at most 60 % of the area, zoomed back: longer focal


K_OFF_CENTRE = np.array([[300, 0, 150], [0, 310, 110], [0, 0, 1]], np.float32)


def _frame_with_pixel_ids(height=240, width=320):
    """Depth that names its source pixel: 1 m + (row * width + col) * 10 um (exact in float32)."""
    ids = np.arange(height * width, dtype=np.float64).reshape(1, height, width)
    return {'rgb': np.zeros((3, height, width), np.uint8), 'depth': (1 + ids * 1e-5).astype(np.float32),
            'intrinsics': K_OFF_CENTRE.copy()}


def test_fixed_crop_moves_the_principal_point(monkeypatch):
    """Rows 30-149, columns 40-199 of a 240x320 frame, resized back to 240x320: lengths double, and the principal
    point (150, 110) moves to ((150 - 40) * 2, (110 - 30) * 2) = (220, 160); a flip mirrors it to 320 - 220 = 100."""
    from mask3d.training.data import transforms
    monkeypatch.setattr(transforms, 'random_resized_crop_params', lambda rng, h, w, scale, ratio: (30, 40, 120, 160))
    f = _frame_with_pixel_ids()
    K = JointTransform((240, 320), hflip=0.0)(f, np.random.default_rng(0))['intrinsics'].numpy()
    assert np.allclose(K, [[600, 0, 220], [0, 620, 160], [0, 0, 1]])
    K = JointTransform((240, 320), hflip=1.0)(f, np.random.default_rng(0))['intrinsics'].numpy()
    assert np.allclose(K, [[600, 0, 100], [0, 620, 160], [0, 0, 1]])


@pytest.mark.parametrize('seed,hflip', [(0, 0.0), (1, 0.0), (2, 1.0), (3, 1.0)])
def test_random_crop_intrinsics_project_onto_the_same_content(seed, hflip):
    """Through every output pixel, the ray of the new intrinsics lands, under the old intrinsics, on the source pixel
    whose depth the crop copied there (within one source pixel: nearest resampling rounds down)."""
    f = _frame_with_pixel_ids()
    out = JointTransform((240, 320), scale=(0.3, 0.6), hflip=hflip)(f, np.random.default_rng(seed))
    K = out['intrinsics'].numpy().astype(np.float64)
    ids = np.round((out['depth'][0].numpy().astype(np.float64) - 1) * 1e5).astype(int)
    src_v, src_u = np.divmod(ids, 320)
    v, u = np.mgrid[0:240, 0:320] + 0.5
    x, y = (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]  # the ray through each output pixel centre
    if hflip:
        x = -x  # a flipped image is a mirrored scene: x points the other way in the source camera
    u_old, v_old = x * K_OFF_CENTRE[0, 0] + K_OFF_CENTRE[0, 2], y * K_OFF_CENTRE[1, 1] + K_OFF_CENTRE[1, 2]
    assert np.abs(u_old - (src_u + 0.5)).max() <= 1.0 and np.abs(v_old - (src_v + 0.5)).max() <= 1.0


def test_sampler_shards_the_same_global_order():
    one = EpochIndexSampler(20, num_replicas=1, rank=0, seed=1)
    two = [EpochIndexSampler(20, num_replicas=2, rank=r, seed=1) for r in range(2)]
    for s in [one, *two]:
        s.set_epoch(3)
    global_order = [i for _, i in one]
    assert sorted(i for s in two for _, i in s) == sorted(global_order)
    one.set_epoch(3, start=5)
    assert [i for _, i in one] == global_order[5:]


# ---- real frames ---------------------------------------------------------------------------------------------

def test_real_tum_and_nyu_frames_through_the_folder_reader(rgbd_data, tmp_path):
    o3d = rgbd_data / 'open3d' / 'examples' / 'test_data' / 'RGBD' / 'other_formats'
    tum = read_depth(o3d / 'TUM_depth.png', 5000)
    valid = tum > 0
    assert 0.75 < valid.mean() < 0.9 and 2.0 < np.median(tum[valid]) < 2.8  # README: median 2.4 m, 19 % holes
    sync = rgbd_data / 'metric3d' / 'data' / 'nyu_demo' / 'depth' / 'sync_depth_00000.png'
    nyu = read_depth(sync, 1000)
    assert nyu.shape == (480, 640) and 0.6 < (nyu > 0).mean() < 0.8 and nyu.max() < 10


def test_real_seven_scenes_as_a_folder(rgbd_data, tmp_path):
    src = rgbd_data / 'tsdf-fusion-python-7scenes' / 'data'
    (tmp_path / 'rgb').mkdir()
    (tmp_path / 'depth').mkdir()
    for i in range(3):
        (tmp_path / 'rgb' / f'{i:06d}.jpg').symlink_to(src / f'frame-{i:06d}.color.jpg')
        (tmp_path / 'depth' / f'{i:06d}.png').symlink_to(src / f'frame-{i:06d}.depth.png')
    K = np.loadtxt(src / 'camera-intrinsics.txt')
    ds = RGBDFolder(tmp_path, depth_scale=1000, intrinsics=K)
    s = ds[0]
    valid = s['depth'] > 0
    assert s['rgb'].shape == (3, 480, 640) and 0.85 < valid.mean() < 0.95
    assert 1.5 < np.median(s['depth'][valid]) < 2.5  # README: median about 1.9 m
    assert np.allclose(s['intrinsics'][0, 0], 585)


def test_capture_with_named_folders_and_intrinsics(tmp_path):
    """The HoloLens / 7-Scenes-as-folder shape: images/ + depth/ (mm), K given by the caller; 20 frames."""
    from rgbd_formats import depth_png, room_depth
    (tmp_path / 'images').mkdir()
    for i in range(20):
        Image.fromarray(np.full((36, 54, 3), 10 * i, np.uint8)).save(tmp_path / 'images' / f'{i:03d}.png')
        depth_png(tmp_path / 'depth' / f'{i:03d}.png', room_depth(36, 54, seed=i, holes=0.3), 1000)
    K = np.array([[49.557, 0, 27], [0, 49.557, 18], [0, 0, 1]])
    ds = RGBDFolder(tmp_path, depth_scale=1000, rgb_dir='images', depth_dir='depth', intrinsics=K)
    assert len(ds) == 20
    s = ds[7]
    assert s['rgb'].shape == (3, 36, 54) and (s['rgb'] == 70).all()
    assert np.allclose(s['depth'][0], room_depth(36, 54, seed=7, holes=0.3), atol=5e-4)
    assert np.allclose(s['intrinsics'], K)
    with pytest.raises(DataError, match='expected ROOT/rgb/ and ROOT/depth/'):
        RGBDFolder(tmp_path)


def test_real_hololens_capture_as_a_folder(rgbd_data):
    root = rgbd_data / 'deep-video-mvs-hololens' / 'sample-data' / 'hololens-dataset' / '000'
    K = np.loadtxt(root / 'K.txt')
    ds = RGBDFolder(root, depth_scale=1000, rgb_dir='images', depth_dir='depth', intrinsics=K)
    assert len(ds) == 20
    s = ds[0]
    valid = s['depth'] > 0
    assert s['rgb'].shape == (3, 360, 540) and 0.6 < valid.mean() < 0.8  # README: 22-33 % holes
    assert 1.3 < np.median(s['depth'][valid]) < 2.2 and np.isclose(s['intrinsics'][0, 0], 495.57, atol=0.1)


def test_real_esanet_frame_depth_scale(rgbd_data):
    # README: value * 0.1 is about mm, median about 2.45 m -> depth_scale 10000 units per metre
    d = read_depth(rgbd_data / 'esanet' / 'samples' / 'sample_depth.png', 10000)
    valid = d > 0
    assert d.shape == (424, 512) and 0.85 < valid.mean() < 0.92 and 2.2 < np.median(d[valid]) < 2.7


def test_sens_random_access_matches_the_stream(tmp_path):
    path, colors, depths, poses = _sens(tmp_path, n=4)
    reader = SensReader(path)
    streamed = list(reader.frames())
    for i in (3, 0, 2):
        f = reader.frame(i)
        assert f.index == i and f.color_bytes == streamed[i].color_bytes and f.depth_bytes == streamed[i].depth_bytes
        assert np.array_equal(f.camera_to_world, poses[i])
    with pytest.raises(IndexError):
        reader.frame(4)
