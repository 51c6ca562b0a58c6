"""The pre-training frames of each ``data.source``: the ``pretrain`` openers of the dataset registry
(``training/data/registry.py``), each ``(data_cfg, seed) -> frames``, and :func:`open_shards` for the streamed shards.
"""
from ...errors import ConfigError
from .config import mixture_parts
from ..data.folder import RGBDFolder
from ..data.mixture import MixtureFrames
from ..data.nyu import NYUSyncFrames
from ..data.pretrain_data import PretrainSamples
from ..data.registry import get
from ..data.scannet import ScanNetFrames
from ..data.sunrgbd import SUNRGBDFrames
from ..data.synthetic import SyntheticRGBD


def open_frames(d, seed: int):
    """The frames of ``d.source`` (a ``DataConfig``), indexed by frame."""
    dataset = get(d.source, 'pretrain')
    if dataset.streamed:
        raise ConfigError(f'data.source={d.source} is streamed, not indexed by frame')
    return dataset.opener('pretrain')(d, seed)


def open_mixture(d, seed: int):
    return MixtureFrames([(open_frames(part, seed), weight) for part, weight in mixture_parts(d)],
                         length=d.mixture_length, seed=seed)


def open_synthetic(d, seed: int):
    # rendered at the training size; the random resized crop then zooms in like on real frames
    return SyntheticRGBD(length=d.synthetic_length, seed=d.synthetic_seed, image_size=tuple(d.image_size))


def open_folder(d, seed: int):
    return RGBDFolder(d.root, depth_scale=d.depth_scale, skip_bad=d.skip_bad)


def open_scannet(d, seed: int):
    return ScanNetFrames(d.root, split=d.split, every=d.every, skip_bad=d.skip_bad)


def open_nyu_raw(d, seed: int):
    return NYUSyncFrames(d.root, depth_scale=d.depth_scale, skip_bad=d.skip_bad)


def open_sunrgbd(d, seed: int):
    return SUNRGBDFrames(d.root, skip_bad=d.skip_bad)


def open_tum(d, seed: int):
    from ..data.tum import TUMFrames
    return TUMFrames(d.root, skip_bad=d.skip_bad)


def open_seven_scenes(d, seed: int):
    from ..data.seven_scenes import SevenScenesFrames
    return SevenScenesFrames(d.root, split=d.split, skip_bad=d.skip_bad)


def open_shards(cfg, state, info, transform, patch_size: int, colour):
    """(stream, stream) for ``data.source: shards``: the stream is both the dataset and what ``set_epoch`` moves."""
    from ..data.shards import ShardStream, open_shard_set
    d = cfg.data
    if state is not None and state['config']['data']['num_workers'] != d.num_workers:
        raise ConfigError(f"--resume with data.source=shards: data.num_workers {state['config']['data']['num_workers']}"
                          f' -> {d.num_workers} would deal the shards differently; keep it unchanged')
    prep = PretrainSamples((), transform, patch_size=patch_size, seed=cfg.train.seed)  # only its prepare()
    shards = open_shard_set(d.root, d.shard_index)
    stream = ShardStream(shards, prep.prepare, batch_size=d.batch_size, rank=info.rank, world_size=info.world_size,
                         num_workers=d.num_workers, seed=cfg.train.seed, shuffle_buffer=d.shuffle_buffer,
                         skip_bad=d.skip_bad, decode=colour.shard_decoder(shards.urls))
    return stream, stream
