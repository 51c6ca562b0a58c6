"""Colour decoded on the device (data/device_decode.py) gives the worker path's batch.

Same (seed, epoch, index) -> same crops, flips, masks: depth, intrinsics, mask noise and skipped counts are
compared exactly, RGB in 8-bit levels: exactly equal where colour is stored at the depth size (both paths decode
with libjpeg-turbo, measured 0 difference), at most 1 level where colour is first resized onto the depth grid
(PIL's antialiased bilinear in the worker, torch's on the device: measured max 1 level on 0.11 % of the RGB values
of 8 real 7-Scenes frames upsampled to 1296x968, as ScanNet's exported colour, through crop + resize to 240x320).
The CUDA test uses torchvision's own nvjpeg-vs-libjpeg bound.
"""
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from mask3d.errors import DataError
from mask3d.training.data.device_decode import (DeferredColourError, check_shards_deferrable, collate_deferred,
                                                decode_colour, decode_shard_frame_deferred, defer_colour)
from mask3d.training.data.folder import RGBDFolder
from mask3d.training.data.mixture import MixtureFrames
from mask3d.training.data.pretrain_data import EpochIndexSampler, PretrainSamples
from mask3d.training.data.scannet import ScanNetFrames
from mask3d.training.data.shards import ShardStream, open_shard_set, write_shards
from mask3d.training.data.synthetic import SyntheticRGBD, render_scene
from mask3d.training.data.transforms import JointTransform
from mask3d.training.data.writers import write_scannet25k_frame

SIZE = (32, 48)


def _write_jpeg_folder(root, frames):
    """``frames``: (rgb uint8 [3,H,W], depth metres [H,W]) -> ROOT/rgb/*.jpg, ROOT/depth/*.png (mm)."""
    (root / 'rgb').mkdir(parents=True)
    (root / 'depth').mkdir()
    for i, (rgb, depth) in enumerate(frames):
        Image.fromarray(rgb.transpose(1, 2, 0)).save(root / 'rgb' / f'{i:06d}.jpg', quality=90)
        Image.fromarray(np.round(depth * 1000).astype(np.uint16)).save(root / 'depth' / f'{i:06d}.png')
    np.savetxt(root / 'intrinsics.txt', [[50, 0, 32], [0, 50, 24], [0, 0, 1]])
    return root


def _write_scannet(root, frames, colour_size=None):
    """``scannet_frames_25k`` scenes of 3 frames; colour optionally resized to ``colour_size`` (w, h)."""
    K = np.array([[60, 0, 32], [0, 60, 24], [0, 0, 1]], np.float32)
    for i, (rgb, depth) in enumerate(frames):
        if colour_size:
            rgb = Image.fromarray(rgb.transpose(1, 2, 0)).resize(colour_size, Image.BILINEAR)
            rgb = np.array(rgb).transpose(2, 0, 1)
        none = np.zeros(depth.shape, np.int64)
        write_scannet25k_frame(root / f'scene000{i // 3}_00', i, rgb, np.round(depth * 1000).astype(np.uint16), none,
                               none, K)
    return root


def _synthetic(n):
    return [(f['rgb'], f['depth'][0]) for f in (render_scene(2, i, 48, 64) for i in range(n))]


@pytest.fixture(scope='module')
def jpeg_folder(tmp_path_factory):
    return _write_jpeg_folder(tmp_path_factory.mktemp('jpeg') / 'f', _synthetic(8))


@pytest.fixture(scope='module')
def scannet(tmp_path_factory):
    """Colour twice the depth size (96x128 onto 48x64), so the device resizes onto the depth grid first."""
    return _write_scannet(tmp_path_factory.mktemp('scannet') / 's', _synthetic(6), colour_size=(128, 96))


def _real(rgbd_data, n):
    seven = rgbd_data / 'tsdf-fusion-python-7scenes' / 'data'
    out = []
    for p in sorted(seven.glob('*.color.jpg'))[:n]:
        with Image.open(p) as im:
            rgb = np.array(im.convert('RGB')).transpose(2, 0, 1)
        with Image.open(p.with_name(p.name.replace('color.jpg', 'depth.png'))) as im:
            depth = np.array(im).astype(np.float32) / 1000
        out.append((rgb, np.where(depth > 60, 0, depth)))  # 65535 = invalid in 7-Scenes
    return out


def _batches(samples, deferred, *, batch_size=4, epoch=1):
    sampler = EpochIndexSampler(len(samples), seed=0)
    sampler.set_epoch(epoch)
    return list(DataLoader(samples, batch_size=batch_size, sampler=sampler, drop_last=True,
                           collate_fn=collate_deferred if deferred else None))


def _levels(a, b, transform):
    """|a - b| of normalised RGB in 8-bit levels."""
    return (a.cpu() - b.cpu()).abs() * transform.std * 255


def _assert_same(worker, device_batches, transform, max_levels):
    assert len(worker) == len(device_batches) > 0
    for w, d in zip(worker, device_batches):
        assert w.keys() == d.keys()
        for key in w:
            if key != 'rgb':
                assert torch.equal(w[key], d[key]), key
        assert _levels(w['rgb'], d['rgb'], transform).max() <= max_levels + 1e-3


def _compare_readers(frames, transform, max_levels, device='cpu'):
    worker = PretrainSamples(frames, transform, patch_size=16, seed=7)
    deferred = PretrainSamples(defer_colour(frames, 'test source'), transform, patch_size=16, seed=7)
    got = [decode_colour(b, transform, device) for b in _batches(deferred, True)]
    _assert_same(_batches(worker, False), got, transform, max_levels)
    return got


def test_jpeg_folder_decodes_to_the_worker_batch_exactly(jpeg_folder):
    transform = JointTransform(SIZE)
    got = _compare_readers(RGBDFolder(jpeg_folder), transform, max_levels=0)
    assert got[0]['rgb'].shape == (4, 3, *SIZE)


def test_scannet_colour_resized_onto_the_depth_grid_within_one_level(scannet):
    _compare_readers(ScanNetFrames(scannet), JointTransform(SIZE), max_levels=1)


def test_colour_jitter_and_mixtures(jpeg_folder, scannet):
    mixture = MixtureFrames([(RGBDFolder(jpeg_folder), 1.0), (ScanNetFrames(scannet), 1.0)], length=12, seed=1)
    _compare_readers(mixture, JointTransform(SIZE, color_jitter=0.4), max_levels=1)


@pytest.mark.parametrize('source', ['folder', 'scannet'])
def test_shards_decode_to_the_worker_batch(source, jpeg_folder, scannet, tmp_path):
    frames = RGBDFolder(jpeg_folder) if source == 'folder' else ScanNetFrames(scannet)
    write_shards(frames, tmp_path / 'sh', 2, source_format=source, progress=False)
    shard_set = open_shard_set(str(tmp_path / 'sh'))
    check_shards_deferrable(shard_set.urls, 'shards')
    transform = JointTransform(SIZE)
    prepare = PretrainSamples((), transform, patch_size=16, seed=7).prepare
    batches = {}
    for deferred in (False, True):
        kw = dict(decode=decode_shard_frame_deferred) if deferred else {}
        stream = ShardStream(shard_set, prepare, batch_size=2, seed=3, shuffle_buffer=4, **kw)
        stream.set_epoch(1)
        batches[deferred] = list(DataLoader(stream, batch_size=2, collate_fn=collate_deferred if deferred else None))
    got = [decode_colour(b, transform, 'cpu') for b in batches[True]]
    _assert_same(batches[False], got, transform, max_levels=0 if source == 'folder' else 1)


@pytest.mark.e2e
def test_real_frames(rgbd_data, tmp_path):
    """Real 7-Scenes frames: as a JPEG folder (exact) and as ScanNet's exported 1296x968 colour (<= 1 level)."""
    frames = _real(rgbd_data, 4)
    transform = JointTransform((240, 320))
    _compare_readers(RGBDFolder(_write_jpeg_folder(tmp_path / 'f', frames)), transform, max_levels=0)
    _compare_readers(ScanNetFrames(_write_scannet(tmp_path / 's', frames, colour_size=(1296, 968))), transform,
                     max_levels=1)


def test_sources_that_cannot_defer_say_so(tmp_path):
    from mask3d.training.data.cli import write_synthetic
    png = write_synthetic(tmp_path / 'png', frames=2, seed=0, image_size=(48, 64), progress=False)
    with pytest.raises(DeferredColourError, match=r'data.source=folder: colour file .*000000.png is not JPEG'):
        defer_colour(RGBDFolder(png), 'data.source=folder')
    with pytest.raises(DeferredColourError, match=r'data.source=synthetic \(SyntheticRGBD\) cannot defer'):
        defer_colour(SyntheticRGBD(length=2, image_size=(48, 64)), 'data.source=synthetic')
    write_shards(RGBDFolder(png), tmp_path / 'sh', 1, source_format='folder', progress=False)
    urls = open_shard_set(str(tmp_path / 'sh')).urls
    with pytest.raises(DeferredColourError, match=r'shard-000000.tar stores colour as 000000000.rgb.png'):
        check_shards_deferrable(urls, 'data.source=shards')
    with pytest.raises(DeferredColourError, match=r'#000000000.rgb.png: the shards store PNG colour'):
        decode_shard_frame_deferred({'meta.json': b'{"depth_scale": 1000.0, "resize_rgb_to_depth": false, '
                                                  b'"intrinsics": [[1,0,0],[0,1,0],[0,0,1]]}',
                                     'rgb.png': b'', 'depth.png': b''}, 'x.tar#000000000')


def test_a_jpeg_corrupt_past_its_header_is_named_when_decoded(jpeg_folder, tmp_path):
    import shutil
    root = shutil.copytree(jpeg_folder, tmp_path / 'f')
    bad = root / 'rgb' / '000003.jpg'
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 2])  # header intact: the worker cannot tell
    transform = JointTransform(SIZE)
    samples = PretrainSamples(defer_colour(RGBDFolder(root), 'folder'), transform, patch_size=16, seed=7)
    batch = collate_deferred([samples[0, i] for i in range(len(samples))])
    with pytest.raises(DataError, match=r'000003.jpg: cannot decode JPEG on cpu'):
        decode_colour(batch, transform, 'cpu')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA (nvjpeg)')
def test_cuda_decode_matches_cpu(jpeg_folder, scannet):
    """nvjpeg vs libjpeg-turbo (different IDCTs) and torch's float resize on CUDA: mean difference under 2 levels,
    torchvision's own bound for its nvjpeg test; everything but RGB exact."""
    for frames in (RGBDFolder(jpeg_folder), ScanNetFrames(scannet)):
        transform = JointTransform(SIZE)
        samples = PretrainSamples(defer_colour(frames, 'cuda test'), transform, patch_size=16, seed=7)
        for batch in _batches(samples, True):
            cpu = decode_colour(dict(batch), transform, 'cpu')
            cuda = decode_colour(dict(batch), transform, 'cuda')
            assert cuda['rgb'].is_cuda and cuda['rgb'].shape == cpu['rgb'].shape
            assert _levels(cpu['rgb'], cuda['rgb'], transform).mean() < 2
            for key in cpu:
                if key != 'rgb':
                    assert torch.equal(cpu[key], cuda[key]), key


@pytest.mark.bench
@pytest.mark.shared_data  # real 7-Scenes frames where ../shared is present, else rendered rooms
def test_benchmark_script_prints_json():
    """benchmarks/device_decode_throughput.py runs end to end (tiny sizes; no timing asserted)."""
    import json
    import os
    import subprocess
    import sys

    from conftest import REPO_ROOT
    out = subprocess.run([sys.executable, str(REPO_ROOT / 'benchmarks' / 'device_decode_throughput.py'), '--rounds',
                          '1', '--frames', '4', '--per-core-frames', '2', '--batch-size', '2', '--decode-batches', '1',
                          '--workers', '0', '--json'], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
                         env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ('per_core_worker_full_scannet_25k_640x480', 'per_core_worker_deferred_scannet_exported_1296x968',
                'device_decode_scannet_25k_640x480_frames_s', 'end_to_end_device_0_workers'):
        assert r[key] > 0, key


TINY_RUN = {
    'model': {'name': 'mask3d_vit_tiny_patch16', 'model_args': {'depth': 1}},
    'method': {'depth_encoder_depth': 0, 'decoder_dim': 32, 'decoder_depth': 1, 'decoder_num_heads': 2},
    'data': {'source': 'folder', 'image_size': list(SIZE), 'batch_size': 2, 'num_workers': 0},
    'optim': {'lr': 1.0e-3, 'warmup_steps': 1},
    'train': {'steps': 3, 'precision': 'fp32', 'device': 'cpu', 'log_every': 1, 'ckpt_every': 3,
              'figure_every': 1000, 'export_at_end': False},
}


def _pretrain(tmp_path, name, *overrides):
    import yaml

    from mask3d.training.pretrain.config import load_config
    from mask3d.training.pretrain.engine import pretrain
    cfg_path = tmp_path / 'cfg.yaml'
    cfg_path.write_text(yaml.safe_dump(TINY_RUN))
    pretrain(load_config(cfg_path, list(overrides)), tmp_path / name, progress=False)
    return torch.load(tmp_path / name / 'checkpoints' / 'last.pt', map_location='cpu', weights_only=True)['model']


@pytest.mark.e2e
@pytest.mark.parametrize('source', ['folder', 'shards'])
def test_pretraining_with_colour_decoded_in_the_main_process_equals_the_worker_path(source, jpeg_folder, tmp_path):
    """data.decode_device=cpu: the same weights after 3 steps as decoding in the workers (folder: through a worker
    process, so the encoded colour crosses process boundaries)."""
    root = jpeg_folder
    if source == 'shards':
        root = write_shards(RGBDFolder(jpeg_folder), tmp_path / 'sh', 4, source_format='folder', progress=False)
    common = (f'data.source={source}', f'data.root={root}', f"data.num_workers={int(source == 'folder')}")
    a = _pretrain(tmp_path, 'worker', *common)
    b = _pretrain(tmp_path, 'deferred', *common, 'data.decode_device=cpu')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.e2e
def test_pretraining_refuses_what_cannot_be_decoded_on_the_device(tmp_path):
    from mask3d.errors import ConfigError
    from mask3d.training.data.cli import write_synthetic
    png = write_synthetic(tmp_path / 'png', frames=4, seed=0, image_size=(48, 64), progress=False)
    with pytest.raises(DeferredColourError, match=r'data.source=folder: colour file .*000000.png is not JPEG'):
        _pretrain(tmp_path, 'png', f'data.root={png}', 'data.decode_device=cpu')
    with pytest.raises(ConfigError, match=r'data.decode_device=cuda needs training on a GPU'):
        _pretrain(tmp_path, 'cuda', f'data.root={png}', 'data.decode_device=cuda')
    with pytest.raises(ConfigError, match=r'data.decode_device must be one of'):
        _pretrain(tmp_path, 'bogus', f'data.root={png}', 'data.decode_device=gpu')
