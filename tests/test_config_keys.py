"""Every key of every config dataclass is validated (issue 21): each leaf field of the pre-training, fine-tuning and
probe configs, enumerated with ``dataclasses.fields``, refuses a value of the wrong type, and every float refuses NaN
and inf, with a one-line ConfigError naming the key (and, from a file, the file). A new key cannot go unvalidated:
it is enumerated here the day it is added, and it needs a range in the config's KNOBS table unless it is listed in
TYPE_ONLY below with the reason its type is all there is to check."""
import dataclasses
import typing
from pathlib import Path

import pytest

from mask3d.errors import ConfigError
from mask3d.training.pretrain.config import PretrainConfig, load_config
from mask3d.training.finetune.config import FinetuneConfig, load_finetune_config
from mask3d.training.probe.config import ProbeConfig, load_probe_config

LOADERS = {PretrainConfig: load_config, FinetuneConfig: load_finetune_config, ProbeConfig: load_probe_config}

# keys whose type is the whole rule: switches (true/false)
TYPE_ONLY = {'method.depth_input', 'data.skip_bad', 'optim.fused', 'train.deterministic', 'train.compile',
             'train.grad_checkpointing', 'train.export_at_end', 'model.pretrained', 'model.freeze_backbone',
             'eval.eigen_crop', 'eval.full_resolution', 'quick'}


def leaves(cls, prefix: str = ''):
    """(key, type) of every leaf field of a config dataclass."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from leaves(hints[f.name], f'{prefix}{f.name}.')
        else:
            yield f'{prefix}{f.name}', hints[f.name]


LEAVES = [(cls, key, hint) for cls in LOADERS for key, hint in leaves(cls)]
IDS = [f'{cls.__name__}:{key}' for cls, key, _ in LEAVES]


def _base(hint):
    """``Optional[X]`` -> X."""
    if typing.get_origin(hint) is typing.Union:
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def wrong_type(hint) -> str:
    """A YAML value of another type than ``hint``."""
    kind = typing.get_origin(_base(hint)) or _base(hint)
    return {bool: 'maybe', int: 'abc', float: 'abc', str: '12', list: 'abc', dict: '[1, 2]'}[kind]


def non_finite(hint):
    """NaN/inf YAML values for a float field (or a list of floats); [] for other types."""
    base = _base(hint)
    if base is float:
        return ['.nan', '.inf', '-.inf']
    if typing.get_origin(base) is list and typing.get_args(base) == (float,):
        return ['[.nan, 1.0]', '[1.0, .inf]']
    return []


def _refused(cls, key: str, value: str, tmp_path: Path) -> str:
    path = tmp_path / 'bad.yaml'
    section, _, name = key.rpartition('.')
    text = f'{name}: {value}\n'
    for part in reversed(section.split('.') if section else []):
        text = f'{part}:\n' + ''.join(f'  {line}\n' for line in text.splitlines())
    path.write_text(text)
    with pytest.raises(ConfigError) as from_file:
        LOADERS[cls](path)
    with pytest.raises(ConfigError) as from_set:
        LOADERS[cls](None, [f'{key}={value}'])
    for error in (from_file, from_set):
        message = str(error.value)
        assert '\n' not in message and key in message, message
    assert str(path) in str(from_file.value), str(from_file.value)
    return str(from_set.value)


@pytest.mark.parametrize('cls, key, hint', LEAVES, ids=IDS)
def test_every_key_refuses_a_value_of_the_wrong_type(cls, key, hint, tmp_path):
    message = _refused(cls, key, wrong_type(hint), tmp_path)
    assert 'must be' in message


@pytest.mark.parametrize('cls, key, hint', [leaf for leaf in LEAVES if non_finite(leaf[2])],
                         ids=[i for i, leaf in zip(IDS, LEAVES) if non_finite(leaf[2])])
def test_every_float_refuses_nan_and_inf(cls, key, hint, tmp_path):
    for value in non_finite(hint):
        message = _refused(cls, key, value, tmp_path)
        assert 'must be a finite number' in message


@pytest.mark.parametrize('cls', list(LOADERS), ids=lambda c: c.__name__)
def test_every_key_has_a_range_or_is_a_switch(cls):
    relations = {k for r in cls.RELATIONS for k in r.keys}
    unchecked = [key for key, _ in leaves(cls)
                 if key not in cls.KNOBS and key not in relations and key not in TYPE_ONLY]
    assert not unchecked, f'add a row to {cls.__name__}.KNOBS (or to TYPE_ONLY, with the reason) for {unchecked}'
    assert all(_base(hint) is bool for key, hint in leaves(cls) if key in TYPE_ONLY)


# ---- the file itself ----

@pytest.mark.parametrize('content, expected', [
    (b'', 'the config file is empty (0 bytes)'),
    (b'\n  \n', 'the config file is empty (4 bytes)'),
    (b'# only a comment\n', 'holds no settings'),
    (b'optim:\n  lr: 0.1\n  lr: 0.2\n', "line 3, column 3: duplicate key 'lr' (first given on line 2)"),
    (b'optim: {lr: 0.1, lr: 0.2}\n', "duplicate key 'lr'"),
    (b'optim:\n  lr: 0.1\nmodel:\n  name: x\noptim:\n  weight_decay: 0\n', "duplicate key 'optim'"),
    (b'model:\n  name: mask3d_vit_tiny\xe9\n', 'not UTF-8 text (byte 0xe9 on line 2)'),
    (b'\xff\xfeo\x00p\x00', 'not UTF-8 text (byte 0xff on line 1)'),
    (b'- a\n- b\n', 'section <root> must be a mapping'),
])
@pytest.mark.parametrize('loader', list(LOADERS.values()), ids=['pretrain', 'finetune', 'probe'])
def test_a_bad_config_file_is_one_line_naming_it(content, expected, loader, tmp_path):
    path = tmp_path / 'c.yaml'
    path.write_bytes(content)
    with pytest.raises(ConfigError) as e:
        loader(path)
    message = str(e.value)
    assert message.startswith(f'{path}: ') and expected in message and '\n' not in message, message


def test_yaml_merge_keys_may_still_override():
    from mask3d.training.config import strict_yaml_load
    assert strict_yaml_load('base: &b {x: 1, y: 2}\nmine:\n  <<: *b\n  y: 3\n')['mine'] == {'x': 1, 'y': 3}


@pytest.mark.parametrize('override, expected', [
    ('model.model_args={depth: 2, depth: 3}', "duplicate key 'depth'"),
    ('optim.weight_decay=.inf', 'optim.weight_decay must be a finite number (>= 0), got inf'),
    ('optim.lr=.nan', 'optim.lr must be a finite number (> 0 or null), got nan'),
    ('optim.betas=[0.9, 1.5]', 'optim.betas must be [beta1, beta2] with 0 <= beta < 1'),
    ('train.seed=-1', 'train.seed must be an integer in [0, 2**63)'),
    ('train.seed=1.5', 'train.seed must be an integer'),
    ('model.name=""', 'model.name must be a non-empty string'),
    ('model.init=12', 'model.init must be a string or null, got 12'),
    ('model.model_args=[1]', 'model.model_args must be a mapping'),
    ('data.root=[a]', 'data.root must be a string or null'),
    ('data.source=mixture', 'data.mixture must list at least one source'),
])
def test_pretrain_examples(override, expected):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert expected in str(e.value), str(e.value)


def test_a_mixture_weight_of_nan_is_refused():
    with pytest.raises(ConfigError, match=r'data.mixture\[0\].weight must be a finite number'):
        load_config(None, ['data.source=mixture', 'data.mixture=[{source: synthetic, weight: .nan}]'])


@pytest.mark.parametrize('override, expected', [
    ('model.out_indices=[]', 'model.out_indices must be a non-empty list of block indices or null'),
    ('model.out_indices=[1, x]', 'model.out_indices[1] must be a number (an integer)'),
    ('model.backbone=" "', 'model.backbone must be a non-empty string'),
    ('model.detector_args={"min size": 3}', 'model.detector_args must be a mapping of keyword arguments'),
])
def test_finetune_examples(override, expected):
    with pytest.raises(ConfigError) as e:
        load_finetune_config(None, [override])
    assert expected in str(e.value), str(e.value)


def test_a_warmup_as_long_as_the_run_is_a_warning_not_an_error():
    from mask3d.training.config import schedule_warning
    cfg = load_finetune_config(None, ['optim.warmup_steps=20', 'train.steps=5'])  # loads: smoke runs stay possible
    assert schedule_warning(cfg).startswith('optim.warmup_steps (20) >= train.steps (5): the whole run is warmup')
    assert schedule_warning(load_finetune_config(None, ['optim.warmup_steps=20', 'train.steps=21'])) is None
    assert schedule_warning(load_config(None, ['optim.warmup_steps=0', 'train.steps=1'])) is None


def test_the_probe_still_reads_its_old_train_lr_as_optim_lr(tmp_path, caplog):
    """The probe's learning rate and weight decay moved to ``optim.*`` (as in every other config); configs that say
    ``train.lr`` / ``train.weight_decay`` still load, with one warning line each, and give the same numbers."""
    path = tmp_path / 'old.yaml'
    path.write_text('train:\n  steps: 7\n  lr: 0.02\n  weight_decay: 0.0\n')
    with caplog.at_level('WARNING', logger='mask3d.training.config'):
        cfg = load_probe_config(path)
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.train.steps) == (0.02, 0.0, 7)
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [f'{path}: train.lr is deprecated, use optim.lr (read as optim.lr=0.02)',
                        f'{path}: train.weight_decay is deprecated, use optim.weight_decay (read as '
                        f'optim.weight_decay=0.0)']
    assert 'lr' not in cfg.to_dict()['train'] and cfg.to_dict()['optim'] == {'lr': 0.02, 'weight_decay': 0.0}
    assert load_probe_config(None, ['train.lr=0.1']).optim.lr == 0.1
    assert load_probe_config(None, ['train.lr=1e-3', 'optim.lr=0.001']).optim.lr == 1e-3  # the same value: fine
    assert load_probe_config(path, ['optim.lr=0.3']).optim.lr == 0.3  # --set overrides the file, either name
    with pytest.raises(ConfigError) as e:
        load_probe_config(None, ['train.lr=0.1', 'optim.lr=0.2'])
    assert str(e.value) == ('--set: train.lr=0.1 and optim.lr=0.2 are both given; train.lr is the old name of '
                            'optim.lr: keep only optim.lr')
    path.write_text('optim:\n  lr: 0.5\ntrain:\n  lr: .nan\n')
    with pytest.raises(ConfigError, match=f'^{path}: train.lr=nan and optim.lr=0.5 are both given'):
        load_probe_config(path)
    path.write_text('train:\n  lr: -1\n')
    with pytest.raises(ConfigError, match=f'^{path}: optim.lr must be > 0, got -1.0'):
        load_probe_config(path)
    with pytest.raises(AttributeError, match=r'train.lr is now optim.lr'):  # code setting the old name: not ignored
        cfg.train.lr = 0.1
