"""The validation tables of the three configs (issue 13 item 1): every knob refuses a value outside its range with a
one-line ConfigError naming the key and the allowed range, and the defaults pass."""
from pathlib import Path

import pytest
import yaml

from mask3d.errors import ConfigError
from mask3d.training.pretrain.config import PretrainConfig, load_config
from mask3d.training.finetune.config import FinetuneConfig, load_finetune_config
from mask3d.training.probe.config import ProbeConfig, load_probe_config

CONFIGS = Path(__file__).resolve().parents[1] / 'training' / 'configs'
LOADERS = {PretrainConfig: lambda sets: load_config(None, sets),
           FinetuneConfig: lambda sets: load_finetune_config(None, sets),
           ProbeConfig: lambda sets: load_probe_config(None, sets)}
KNOBS = [(cls, key, rule) for cls in LOADERS for key, rule in cls.KNOBS.items()]
RELATIONS = [(cls, relation) for cls in LOADERS for relation in cls.RELATIONS]


@pytest.mark.parametrize('cls', list(LOADERS), ids=lambda c: c.__name__)
def test_defaults_pass(cls):
    cls().validate()
    assert LOADERS[cls]([]) == cls()


@pytest.mark.parametrize('cls, key, rule', KNOBS, ids=[f'{c.__name__}:{k}' for c, k, _ in KNOBS])
def test_each_knob_refuses_a_bad_value_naming_key_and_range(cls, key, rule):
    assert not rule.ok(rule.bad) and rule.ok(_default(cls(), key)), 'the default must pass, the bad value must not'
    with pytest.raises(ConfigError) as e:
        LOADERS[cls]([f'{key}={yaml.safe_dump(rule.bad, default_flow_style=True).strip().removesuffix("...").strip()}'])
    message = str(e.value)
    assert '\n' not in message and key in message and rule.allowed in message, message


@pytest.mark.parametrize('cls, relation', RELATIONS, ids=[f'{c.__name__}:{"+".join(r.keys)}' for c, r in RELATIONS])
def test_each_relation_refuses_its_counter_example(cls, relation):
    with pytest.raises(ConfigError) as e:
        LOADERS[cls](list(relation.bad))
    message = str(e.value)
    assert '\n' not in message and any(k.split('.')[-1] in message for k in relation.keys), message


def test_the_issue_examples_read_as_promised():
    with pytest.raises(ConfigError, match=r'^optim.clip_grad must be > 0 or null, got -3$'):
        load_config(None, ['optim.clip_grad=-3'])
    with pytest.raises(ConfigError, match=r'^optim.min_lr \(0.01\) must be <= optim.lr \(0.001\)$'):
        load_finetune_config(None, ['optim.min_lr=0.01', 'optim.lr=0.001'])
    with pytest.raises(ConfigError, match=r'^optim.min_lr \(0.01\) must be <= optim.lr \(0.001\)$'):
        load_config(None, ['optim.min_lr=0.01', 'optim.lr=0.001'])
    with pytest.raises(ConfigError, match=r"train.precision must be one of \('fp32', 'bf16', 'fp16'\)"):
        load_config(None, ['train.precision=fp8'])


def test_image_size_is_checked_against_the_models_patch_size():
    from mask3d.training.config import check_image_size
    check_image_size([224, 224], 14, 'vit_small_patch14')
    with pytest.raises(ConfigError, match=r'divisible by the patch size 14 of vit_small_patch14'):
        check_image_size([240, 320], 14, 'vit_small_patch14')


def _default(cfg, key):
    for part in key.split('.'):
        cfg = getattr(cfg, part)
    return cfg


@pytest.mark.parametrize('path', sorted(CONFIGS.rglob('*.yaml')), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_shipped_yaml_still_loads(path):
    """Shipped YAMLs load and validate; those that name a dataset on the user's disk get its root by --set."""
    kind = yaml.safe_load(path.read_text())
    kind = 'finetune' if 'task' in kind else 'probe' if 'features' in kind or 'tasks' in kind or 'probe' in path.parts \
        else 'pretrain'
    load = {'pretrain': load_config, 'finetune': load_finetune_config, 'probe': load_probe_config}[kind]
    try:
        load(path)
    except ConfigError as e:
        assert 'root' in str(e), e  # only a missing dataset location may stop it
        load(path, ['data.root=/data/x', 'data.train_root=/data/x', 'data.test_root=/data/x'] if kind == 'probe'
             else ['data.root=/data/x'])
