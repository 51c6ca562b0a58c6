"""The configuration machinery of pre-training, fine-tuning and probing: nested dataclasses loaded from YAML and
overridden with ``--set a.b=value`` (one loader), shared base sections, one validation table per config, and the
one list of keys that may change on ``--resume``. Each method's own config builds on it (``pretrain/config.py``,
``finetune/config.py``, ``probe/config.py``); this module imports no method and no runtime module.

Unknown keys, wrong types and out-of-range values are errors that name the key (and the file), raised before any
work starts. Every numeric and choice knob is a row of a table (``KNOBS``: key -> :class:`Rule`), so the rules and
their messages live in one place and a test can enumerate them; rules that tie two keys together are
:class:`Relation` rows. The image size is checked against the model's own patch size where the model is built.
"""
import copy
import dataclasses
import logging
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from ..errors import ConfigError
from .config_rules import (Relation, Rule, at_least, betas, in_unit, non_negative, non_negative_int, one_of,
                           positive_or_null, size_pair, unit_range, validate_config)

PRECISIONS = ('fp32', 'bf16', 'fp16')
DEVICES = ('auto', 'cpu', 'cuda')


# keys that may change between a run and its resumption: those that do not change the maths, and those a diverged
# run is advised to change before it resumes (the learning rate, clipping, precision;
# runtime.checkpoint.restore_training_state); a key a config does not have is simply never compared
RESUMABLE_CHANGES = ('train.steps', 'train.log_every', 'train.ckpt_every', 'train.figure_every', 'train.keep_every',
                     'train.eval_every', 'train.device', 'train.export_at_end', 'train.figure_samples',
                     'data.num_workers', 'data.decode_device', 'eval.batch_size', 'eval.max_frames',
                     'eval.figure_samples', 'optim.lr', 'optim.base_lr', 'optim.min_lr', 'optim.clip_grad',
                     'train.precision')


def ensure_valid(cfg) -> None:
    """``cfg.validate()`` unless this exact config passed already: the loaders validate what they load, and the
    training entry points (which also take configs built or edited in code) check again only what changed."""
    snapshot = cfg.to_dict()
    if getattr(cfg, '_validated', None) != snapshot:
        cfg.validate()
        cfg._validated = snapshot


def schedule_warning(cfg) -> Optional[str]:
    """A warning (not an error: smoke runs of a bundled config with ``--set train.steps=1`` are fine) when the
    warmup is as long as the run, so the lr never reaches ``optim.lr``; None otherwise."""
    optim, steps = getattr(cfg, 'optim', None), cfg.train.steps
    if optim is None or not optim.warmup_steps or optim.warmup_steps < steps:
        return None
    return (f'optim.warmup_steps ({optim.warmup_steps}) >= train.steps ({steps}): the whole run is warmup, the lr '
            f'never reaches its peak; lower optim.warmup_steps (or use optim.warmup_fraction) for a real run')


def check_image_size(image_size: Sequence[int], patch_size: int, model: str) -> None:
    """``data.image_size`` against the patch size of the model actually built."""
    if any(int(s) % patch_size for s in image_size):
        raise ConfigError(f'data.image_size {list(image_size)} must be [H, W], both divisible by the patch size '
                          f'{patch_size} of {model}')


# ---- shared sections ----

class ValidatedConfig:
    """What the three top-level configs share: ``to_dict`` and ``validate`` against the table the class names
    (``class PretrainConfig(ValidatedConfig, knobs=..., relations=...)``), and the keys that moved (``renamed``:
    old dotted key -> new one; the loader still reads the old one, with a warning)."""
    KNOBS: Dict[str, Rule] = {}
    RELATIONS: Tuple[Relation, ...] = ()
    RENAMED: Dict[str, str] = {}

    def __init_subclass__(cls, knobs: Mapping[str, Rule] = None, relations: Sequence[Relation] = (),
                          renamed: Mapping[str, str] = None, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.KNOBS, cls.RELATIONS, cls.RENAMED = dict(knobs or {}), tuple(relations), dict(renamed or {})

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        validate_config(self, self.KNOBS, self.RELATIONS)


@dataclass
class BaseOptimConfig:
    """What every optimizer section has (pre-training and fine-tuning: AdamW, warmup, clipping, accumulation)."""
    min_lr: float = 0.0
    weight_decay: float = 0.05
    betas: List[float] = field(default_factory=lambda: [0.9, 0.95])
    warmup_steps: int = 0
    warmup_fraction: float = 0.05           # used when warmup_steps == 0
    clip_grad: Optional[float] = None
    accum_steps: int = 1
    fused: bool = True                      # fused AdamW kernel (CPU and CUDA)


@dataclass
class BaseTrainConfig:
    """What every training section has (the shared loop's knobs)."""
    steps: int = 1000                       # optimizer steps
    precision: str = 'bf16'
    device: str = 'auto'                    # auto | cpu | cuda
    seed: int = 0
    deterministic: bool = False
    log_every: int = 10
    ckpt_every: int = 500
    keep_every: int = 0                     # also keep step_N.pt every N steps (0: only last.pt)


@dataclass
class BaseDataConfig:
    """What every training data section has."""
    source: str = 'synthetic'
    image_size: List[int] = field(default_factory=lambda: [240, 320])
    batch_size: int = 64                    # per process
    num_workers: int = 4
    scale: List[float] = field(default_factory=lambda: [0.5, 1.0])  # random resized crop area range
    hflip: float = 0.5
    skip_bad: bool = False                  # training frames: log, count and leave out bad ones instead of stopping
                                            # (docs/troubleshooting.md, "Data"); evaluation never skips


OPTIM_KNOBS = {'optim.min_lr': non_negative(), 'optim.weight_decay': non_negative(), 'optim.betas': betas(),
               'optim.warmup_steps': non_negative(), 'optim.warmup_fraction': in_unit(high_open=True),
               'optim.clip_grad': positive_or_null(), 'optim.accum_steps': at_least(1)}
TRAIN_KNOBS = {'train.steps': at_least(1), 'train.seed': non_negative_int(), 'train.precision': one_of(PRECISIONS),
               'train.device': one_of(DEVICES),
               'train.log_every': at_least(1), 'train.ckpt_every': at_least(1), 'train.keep_every': non_negative()}
DATA_KNOBS = {'data.image_size': size_pair(), 'data.batch_size': at_least(1), 'data.num_workers': non_negative(),
              'data.scale': unit_range(), 'data.hflip': in_unit()}


def _merge(obj: Any, values: Dict[str, Any], where: str, prefix: str = '',
           origins: Optional[Dict[str, str]] = None) -> None:
    """Set ``values`` on the config ``obj`` (type-checked); ``origins`` records where each key was set (a file or
    --set), so a range error found later names the file."""
    if not isinstance(values, dict):
        raise ConfigError(f'{where}: section {prefix.rstrip(".") or "<root>"} must be a mapping, got {values!r}')
    if not prefix and getattr(obj, 'RENAMED', None):
        values = _renamed(obj.RENAMED, values, where)
    names = {f.name: f for f in dataclasses.fields(obj)}
    hints = typing.get_type_hints(type(obj))
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key '{prefix}{key}'; valid keys here: {', '.join(sorted(names))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, where, f'{prefix}{key}.', origins)
        else:
            setattr(obj, key, _coerce(hints[key], value, f'{prefix}{key}', where))
            if origins is not None:
                origins[f'{prefix}{key}'] = where


_log = logging.getLogger(__name__)


def _renamed(renamed: Mapping[str, str], values: Dict[str, Any], where: str) -> Dict[str, Any]:
    """A copy of ``values`` with each old key of ``renamed`` (old -> new, dotted) moved to its new place, with a
    warning line; the old and the new key given together (one file, or the --set list) must agree. A later source
    still overrides an earlier one, whichever spelling each uses."""
    values = copy.deepcopy(values)  # the caller's mapping (a checkpoint's config) stays as it was
    for old, new in renamed.items():
        (*old_path, old_key), (*new_path, new_key) = old.split('.'), new.split('.')
        old_section = _section(values, old_path)
        new_section = _section(values, new_path, create=True) if old_section and old_key in old_section else None
        if new_section is None:
            continue  # not given, or a section that is not a mapping (_merge names it)
        value = old_section.pop(old_key)
        if new_key in new_section and not _same_value(new_section[new_key], value):
            raise ConfigError(f'{where}: {old}={value!r} and {new}={new_section[new_key]!r} are both given; {old} is '
                              f'the old name of {new}: keep only {new}')
        new_section[new_key] = value
        _log.warning('%s: %s is deprecated, use %s (read as %s=%s)', where, old, new, new, value)
    return values


def _same_value(a: Any, b: Any) -> bool:
    """Equal, also as numbers (YAML reads ``1e-3`` without a dot as a string, ``_coerce`` makes it a number)."""
    try:
        return a == b or float(a) == float(b)
    except (TypeError, ValueError):
        return False


def _section(values: Dict[str, Any], path: Sequence[str], create: bool = False) -> Optional[Dict[str, Any]]:
    """The nested mapping at ``path`` of ``values`` (``create``: made when absent); None when it is not one."""
    for part in path:
        if create and part not in values:
            values[part] = {}
        values = values.get(part)
        if not isinstance(values, dict):
            return None
    return values


_TYPE_WORDS = {bool: 'true or false', int: 'an integer', float: 'a number', str: 'a string', list: 'a list',
               dict: 'a mapping'}


def _coerce(hint: Any, value: Any, key: str, where: str) -> Any:
    """``value`` as the field's declared type (``Optional[X]``, ``List[X]``, ``Dict[str, X]``, bool, int, float,
    str, Any), or a one-line :class:`ConfigError` naming the key and the type; ranges are checked later (KNOBS)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return None
        hint, origin, args = options[0], typing.get_origin(options[0]), typing.get_args(options[0])
        or_null = ' or null'
    else:
        or_null = ''
    if hint is Any:
        return value
    kind = origin or hint
    if kind in (bool, int, float):
        return _coerce_number(kind, value, key, where, or_null)
    if not isinstance(value, kind):
        raise ConfigError(f'{where}: {key} must be {_TYPE_WORDS.get(kind, kind.__name__)}{or_null}, got {value!r}')
    if kind is list and args:
        return [_coerce(args[0], v, f'{key}[{i}]', where) for i, v in enumerate(value)]
    if kind is dict and args and args[0] is str and any(not isinstance(k, str) for k in value):
        raise ConfigError(f'{where}: {key} must be a mapping with names as keys, got {value!r}')
    return value


def _coerce_number(kind: type, value: Any, key: str, where: str, or_null: str) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f'{where}: {key} must be true or false{or_null}, got {value!r}')
        return value
    if isinstance(value, str):  # YAML 1.1 reads '2e-3' (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f'{where}: {key} must be a number{" (an integer)" if kind is int else ""}{or_null}, '
                          f'got {value!r}')
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f'{where}: {key} must be an integer{or_null}, got {value!r}')
        return int(value)
    return value if or_null and isinstance(value, int) else float(value)  # as before: an optional float keeps an int


def yaml_problem(error: 'yaml.YAMLError') -> str:
    """``line 3, column 7: expected ...`` from a PyYAML error (its own text spans several lines)."""
    mark, problem = getattr(error, 'problem_mark', None), getattr(error, 'problem', None)
    where = f'line {mark.line + 1}, column {mark.column + 1}: ' if mark is not None else ''
    return where + (problem or next(line for line in str(error).splitlines() if line.strip()))


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error instead of last-wins."""


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, first: 'yaml.Mark', again: 'yaml.Mark'):
        super().__init__()
        self.problem_mark = again
        self.problem = f'duplicate key {key!r} (first given on line {first.line + 1}); give each key once'


def _construct_mapping(loader: yaml.SafeLoader, node: 'yaml.MappingNode', deep: bool = False) -> Dict[Any, Any]:
    seen: Dict[Any, 'yaml.Mark'] = {}
    for key_node, _ in node.value:
        if key_node.tag == 'tag:yaml.org,2002:merge':  # keys merged in with << may be overridden on purpose
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            if key in seen:
                raise DuplicateKeyError(key, seen[key], key_node.start_mark)
            seen[key] = key_node.start_mark
        except TypeError:  # an unhashable key: SafeLoader reports it
            break
    return loader.construct_mapping_default(node, deep=deep)


_StrictLoader.construct_mapping_default = yaml.SafeLoader.construct_mapping
_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def strict_yaml_load(text: str) -> Any:
    """``yaml.safe_load`` that refuses duplicate keys (raises a ``yaml.YAMLError`` naming the line)."""
    return yaml.load(text, Loader=_StrictLoader)


def read_config_text(path: Path) -> str:
    """The text of a config file: one-line errors for a missing, empty, unreadable or non-UTF-8 file."""
    if not path.is_file():
        raise ConfigError(f'{path}: config file not found')
    data = path.read_bytes()
    if not data.strip():
        raise ConfigError(f'{path}: the config file is empty ({len(data)} bytes); write the settings in it, or '
                          f'start from a bundled one (`mask3d configs`)')
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b'\n') + 1
        raise ConfigError(f'{path}: not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}); save the config as '
                          f'UTF-8') from None


def parse_overrides(overrides: Sequence[str]) -> Dict[str, Any]:
    """['optim.lr=1e-4', 'data.image_size=[224,224]'] -> nested dict (values parsed as YAML)."""
    nested: Dict[str, Any] = {}
    for item in overrides:
        if '=' not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.lr=1e-4")
        key, raw = item.split('=', 1)
        try:
            value = strict_yaml_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f'--set {item!r}: the value is not valid YAML ({yaml_problem(e)}); write lists as '
                              f'[a, b] and quote strings holding : or #') from e
        node = nested
        parts = key.strip().split('.')
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f'--set {item!r}: {part} was set to a value by an earlier --set, not a section')
        node[parts[-1]] = value
    return nested


def load_dataclass_config(cls, path: Optional[Union[str, os.PathLike]] = None, overrides: Sequence[str] = ()):
    """``cls()`` updated from a YAML file, then from ``--set`` overrides; unknown keys and wrong types are errors."""
    cfg, origins = cls(), {}
    if path is not None:
        path = Path(path)
        text = read_config_text(path)
        try:
            values = strict_yaml_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f'{path}: invalid YAML ({yaml_problem(e)})') from e
        if values is None:
            raise ConfigError(f'{path}: the config file holds no settings (only comments or blank lines); write the '
                              f'settings in it, or start from a bundled one (`mask3d configs`)')
        _merge(cfg, values, str(path), origins=origins)
    if overrides:
        _merge(cfg, parse_overrides(overrides), '--set', origins=origins)
    cfg._origins = origins  # validate_config names the file a bad value came from
    return cfg


def dataclass_config_from_dict(cls, values: Dict[str, Any], where: str = 'checkpoint config'):
    cfg = cls()
    _merge(cfg, values, where)
    return cfg
