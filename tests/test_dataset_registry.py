"""One dataset registry (issue 24; mask3d/training/data/registry.py): every entry point opens its data through it,
the config rules take their ``data.source`` values from it, and the labelled NYUv2 .mat has one name (``nyuv2``)
that ``nyu`` and ``nyu-mat`` still reach."""
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from mask3d.errors import ConfigError
from mask3d.training.pretrain.config import PretrainConfig, load_config
from mask3d.training.data import registry
from mask3d.training.data.inspect import FORMATS, open_dataset
from mask3d.training.data.registry import Dataset, get, names
from mask3d.training.finetune.config import FinetuneConfig, load_finetune_config
from mask3d.training.probe.config import ProbeConfig, load_probe_config

CONFIGS = Path(__file__).resolve().parents[1] / 'training' / 'configs'
CONFIG_USES = {PretrainConfig: 'pretrain', FinetuneConfig: 'finetune', ProbeConfig: 'probe'}

# what each entry point opened before the registry (issue 24), under the canonical names
BEFORE = {'pretrain': {'mixture', 'nyu-raw', 'sunrgbd', 'synthetic', 'folder', 'scannet', 'tum', '7scenes', 'shards'},
          'finetune': {'synthetic', 'scannet', 'scannet-25k', 'nyuv2', 'nyu-raw', 'cityscapes', 'folder'},
          'probe': {'synthetic', 'folder', 'nyuv2', 'scannet', '7scenes'},
          'inspect': {'scannet-sens', 'scannet', 'scannet-25k', 'nyuv2', 'nyu-raw', 'sunrgbd', 'cityscapes', 'tum',
                      '7scenes', 'folder', 'synthetic', 'shards'}}
# the names the configs and `--format` took before, each still accepted
OLD_NAMES = {'pretrain': BEFORE['pretrain'],
             'finetune': BEFORE['finetune'],
             'probe': {'synthetic', 'folder', 'nyu', 'scannet', '7scenes'},
             'inspect': {'scannet-sens', 'scannet-frames', 'scannet-25k', 'nyu-mat', 'nyu-raw', 'sunrgbd',
                         'cityscapes', 'tum', '7scenes', 'folder', 'synthetic', 'shards'}}


def test_the_three_nyu_names_are_one_dataset():
    nyu = get('nyuv2', 'finetune')
    assert get('nyu', 'probe') is nyu and get('nyu-mat', 'inspect') is nyu and get('nyu', 'finetune') is nyu
    assert nyu.name == 'nyuv2' and set(nyu.aliases) == {'nyu', 'nyu-mat'}
    assert get('scannet-frames', 'inspect') is get('scannet', 'pretrain')


@pytest.mark.parametrize('use', list(registry.USES))
def test_each_use_lists_the_sources_that_worked_before(use):
    assert set(names(use)) == BEFORE[use]
    assert OLD_NAMES[use] <= set(names(use, aliases=True))
    for name in names(use, aliases=True):
        assert callable(get(name, use).opener(use)), name  # every opener imports and is a function


def test_an_unknown_name_or_use_is_one_line_naming_it_and_what_is_allowed():
    with pytest.raises(ConfigError) as e:
        get('kinect', 'probe')
    message = str(e.value)
    assert '\n' not in message and "'kinect'" in message and 'probe' in message
    assert 'nyuv2 (also nyu, nyu-mat)' in message and 'synthetic' in message and 'cityscapes' not in message
    with pytest.raises(ConfigError, match=r"^probe data.source 'cityscapes' is not available \(it serves finetune, "
                                          r"inspect\); one of synthetic, folder"):
        get('cityscapes', 'probe')
    with pytest.raises(ConfigError, match="unknown dataset use 'train'"):
        get('synthetic', 'train')


def test_register_refuses_a_taken_name_and_a_dataset_without_a_use():
    with pytest.raises(ConfigError, match="the name 'nyu' is taken by 'nyuv2'"):
        registry.register(Dataset('my-nyu', aliases=('nyu',), probe='open_nyuv2'))
    with pytest.raises(ConfigError, match='serves no use'):
        registry.register(Dataset('nothing'))
    assert registry.canonical('my-nyu') is None and registry.canonical('nothing') is None


@pytest.mark.parametrize('cls', list(CONFIG_USES), ids=lambda c: c.__name__)
def test_the_config_rules_allow_exactly_the_registry_names(cls):
    use = CONFIG_USES[cls]
    rule = cls.KNOBS['data.source']
    for name in names(use, aliases=True):
        assert rule.ok(name), name
    for name in set(names('inspect', aliases=True)) - set(names(use, aliases=True)) | {'bogus', None, 3}:
        assert not rule.ok(name), name
    assert all(n in rule.allowed for n in names(use, aliases=True))


def test_the_source_lists_of_the_configs_and_the_cli_come_from_the_registry():
    from mask3d.training.pretrain import config
    from mask3d.training.finetune import config as finetune_config
    from mask3d.training.probe import config as probe_config
    from mask3d_cli import build_parser
    assert config.DATA_SOURCES == names('pretrain') and finetune_config.FINETUNE_SOURCES == names('finetune')
    assert probe_config.PROBE_SOURCES == names('probe') and FORMATS == ('auto',) + names('inspect', aliases=True)
    data = build_parser()._subparsers._group_actions[0].choices['data']
    commands = data._subparsers._group_actions[0].choices
    choices = {c: next(a.choices for a in commands[c]._actions if a.dest == 'format') for c in ('inspect', 'shard')}
    assert choices['inspect'] == FORMATS  # the CLI stays light (no torch): written out, checked here
    assert set(choices['shard']) == set(FORMATS) - {'shards'}


def _source_of(path: Path):
    return ((yaml.safe_load(path.read_text()) or {}).get('data') or {}).get('source')


@pytest.mark.parametrize('path', sorted(CONFIGS.rglob('*.yaml')), ids=lambda p: f'{p.parent.name}/{p.name}')
def test_every_shipped_config_names_a_registered_source(path):
    source = _source_of(path)
    if source is None:
        pytest.skip('no data.source (the default)')
    use = 'probe' if path.parent.name == 'probe' else (
        'finetune' if 'finetune' in path.name or path.parent.name == 'finetune' else 'pretrain')
    assert get(source, use).name in BEFORE[use]


def test_an_alias_reaches_the_same_opener_and_the_same_rules():
    with pytest.raises(ConfigError, match='data.source=nyu-mat needs data.root'):
        load_probe_config(None, ['data.source=nyu-mat'])
    cfg = load_finetune_config(None, ['data.source=nyu', 'data.root=/nowhere/nyu.mat'])
    from mask3d.training.finetune.data import build_task_frames
    with pytest.raises(ConfigError, match=r'data.class_mapping \(classMapping40.mat\) is required'):
        build_task_frames(cfg, 'train')  # the nyuv2 opener
    with pytest.raises(ConfigError, match="data.val_source must be one of .*got 'sunrgbd'"):
        load_finetune_config(None, ['data.source=synthetic', 'data.val_source=sunrgbd'])


def test_a_mixture_names_a_bad_part_and_records_canonical_names():
    from mask3d.training.pretrain.engine import data_sources
    with pytest.raises(ConfigError, match=r"data.mixture\[1\].source: unknown pre-training data.source 'kinect'"):
        load_config(None, ['data.source=mixture', 'data.mixture=[{source: synthetic}, {source: kinect, root: x}]'])
    with pytest.raises(ConfigError, match=r'data.mixture\[0\]: a mixture cannot contain shards'):
        load_config(None, ['data.source=mixture', 'data.mixture=[{source: shards, root: x}]'])
    cfg = load_config(None, ['data.source=mixture', 'data.mixture=[{source: synthetic}, {source: scannet-frames, '
                                                    'root: /data/scannet}]'])
    assert data_sources(cfg.data) == ['scannet', 'synthetic']  # licences go by the dataset, not the alias


def _scannet_scene(scene: Path) -> Path:
    (scene / 'color').mkdir(parents=True)
    (scene / 'depth').mkdir()
    buf = io.BytesIO()
    Image.fromarray(np.full((24, 32, 3), 80, np.uint8)).save(buf, format='JPEG')
    (scene / 'color' / '0.jpg').write_bytes(buf.getvalue())
    Image.fromarray(np.full((24, 32), 1200, np.uint16)).save(scene / 'depth' / '0.png')
    return scene


def test_inspect_opens_through_the_registry_under_the_names_it_reported_before(tmp_path):
    scene = _scannet_scene(tmp_path / 'scans' / 'scene0000_00')
    for path, fmt in ((tmp_path / 'scans', 'auto'), (scene, 'auto'), (scene, 'scannet'), (tmp_path / 'scans',
                                                                                         'scannet-frames')):
        dataset, class_names, reported = open_dataset(path, fmt)
        assert reported == 'scannet-frames' and len(dataset) == 1 and class_names is None
    assert open_dataset('synthetic')[2] == 'synthetic'
    with pytest.raises(ConfigError, match="unknown data inspect --format 'kinect'"):
        open_dataset(tmp_path, 'kinect')


def test_the_registry_opens_nothing_until_asked():
    """The config modules read the table without importing an opener's module or a heavy reader."""
    code = ('import sys, mask3d.training.pretrain.config, mask3d.training.finetune.config, '
            'mask3d.training.probe.config\n'
            "lazy = ['mask3d.training.pretrain.data', 'mask3d.training.finetune.data', 'mask3d.training.probe.data',"
            " 'mask3d.training.data.inspect', 'mask3d.training.data.tum', 'mask3d.training.data.seven_scenes',"
            " 'mask3d.training.data.cityscapes', 'mask3d.training.data.shards', 'h5py', 'scipy.io']\n"
            'print([m for m in lazy if m in sys.modules])')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '[]', out
