"""The rule table every config is checked against: :class:`Rule` (one key's allowed values), :class:`Relation`
(between keys) and :func:`validate_config`. Imports nothing from the training runtime, so a method (the pre-training
method's ``method.*`` knobs in ``pretrainer.py``) can register its own rows without an import circle.
"""
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, Tuple

from ..errors import ConfigError

@dataclass(frozen=True)
class Rule:
    """One knob's allowed values: ``ok(value)``, described as ``allowed`` in the error message (``KEY must be
    ALLOWED, got VALUE``); ``bad`` is one value outside the range (the validation test uses it)."""
    allowed: str
    ok: Callable[[Any], bool]
    bad: Any


@dataclass(frozen=True)
class Relation:
    """A rule between keys: ``ok(cfg)``; ``message(cfg)`` names the keys and their values; ``bad`` is a set of
    ``--set`` overrides that breaks it (for the test)."""
    keys: Tuple[str, ...]
    ok: Callable[[Any], bool]
    message: Callable[[Any], str]
    bad: Tuple[str, ...]


def finite_number(v) -> bool:
    """A real, finite number (not a bool): NaN and inf never pass a range."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def at_least(n: int) -> Rule:
    return Rule(f'>= {n}', lambda v: finite_number(v) and v >= n, n - 1)


def positive(bad: Any = 0) -> Rule:
    return Rule('> 0', lambda v: finite_number(v) and v > 0, bad)


def positive_or_null() -> Rule:
    return Rule('> 0 or null', lambda v: v is None or (finite_number(v) and v > 0), -3)


def non_negative() -> Rule:
    return Rule('>= 0', lambda v: finite_number(v) and v >= 0, -1)


def in_unit(low_open: bool = False, high_open: bool = False) -> Rule:
    """A ratio in [0, 1], with either end open."""
    allowed = f"in {'(' if low_open else '['}0, 1{')' if high_open else ']'}"
    return Rule(allowed, lambda v: finite_number(v) and (0 < v if low_open else 0 <= v) and (v < 1 if high_open else v <= 1),
                1.5)


def one_of(choices: Sequence[str]) -> Rule:
    bad = 'bogus' if all(isinstance(c, str) for c in choices) else max(choices) + 1
    return Rule(f'one of {tuple(choices)}', lambda v: v in choices, bad)


def size_pair() -> Rule:
    return Rule('[H, W] with two positive integers', lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(
        finite_number(s) and int(s) == s and s > 0 for s in v), [0, 320])


def non_negative_int() -> Rule:
    return Rule('an integer in [0, 2**63)', lambda v: _int(v) and 0 <= v < 2 ** 63, -1)


def name(optional: bool = False) -> Rule:
    """A non-empty string (a model name, a path), or null when ``optional``."""
    return Rule('a non-empty string' + (' or null' if optional else ''), lambda v: (optional and v is None) or (
        isinstance(v, str) and bool(v.strip())), '' if not optional else ' ')


def betas() -> Rule:
    return Rule('[beta1, beta2] with 0 <= beta < 1', lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(
        finite_number(b) and 0 <= b < 1 for b in v), [0.9, 1.0])


def kwargs_mapping() -> Rule:
    return Rule('a mapping of keyword arguments (names as keys)', lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and k.isidentifier() for k in v), {'not a name': 2})


def block_indices(optional: bool = False) -> Rule:
    return Rule('a non-empty list of block indices' + (' or null' if optional else ''),
                lambda v: (optional and v is None) or (isinstance(v, list) and bool(v) and all(_int(b) for b in v)), [])


def positive_list() -> Rule:
    return Rule('a non-empty list of numbers > 0', lambda v: isinstance(v, list) and bool(v) and all(
        finite_number(t) and t > 0 for t in v), [0, 5])


def unit_range() -> Rule:
    return Rule('[min, max] with 0 < min <= max <= 1', lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and
                all(finite_number(s) for s in v) and 0 < v[0] <= v[1] <= 1, [0.8, 0.5])


def _get(cfg, key: str):
    for part in key.split('.'):
        cfg = getattr(cfg, part)
    return cfg


def min_lr_below_lr(lr_key: str = 'optim.lr') -> Relation:
    def lr(cfg):
        value = _get(cfg, lr_key)
        return value if value is not None else cfg.optim.base_lr  # pre-training: lr derived from base_lr
    name = lambda cfg: lr_key if _get(cfg, lr_key) is not None else 'optim.base_lr'  # noqa: E731
    return Relation(('optim.min_lr', lr_key), lambda cfg: cfg.optim.min_lr <= lr(cfg),
                    lambda cfg: f'optim.min_lr ({cfg.optim.min_lr}) must be <= {name(cfg)} ({lr(cfg)})',
                    ('optim.min_lr=0.01', f'{lr_key}=0.001'))


def validate_config(cfg, knobs: Mapping[str, Rule], relations: Sequence[Relation] = (), prefix: str = '') -> None:
    """No NaN or inf anywhere, then every row of the table, then the relations; the first violation is a one-line
    :class:`ConfigError`; a value that came from a file is named with the file."""
    origins = getattr(cfg, '_origins', None) or {}

    def source(key: str) -> str:
        origin = origins.get(key.split('[')[0])
        return f'{origin}: ' if origin and origin != '--set' else ''
    for key, value in _float_leaves(cfg):
        if not math.isfinite(value):
            rule = knobs.get(key.split('[')[0])
            raise ConfigError(f'{source(key)}{prefix}{key} must be a finite number' +
                              (f' ({rule.allowed})' if rule else '') + f', got {value!r}')
    for key, rule in knobs.items():
        value = _get(cfg, key)
        if not rule.ok(value):
            raise ConfigError(f'{source(key)}{prefix}{key} must be {rule.allowed}, got {value!r}')
    for relation in relations:
        if not relation.ok(cfg):
            raise ConfigError(source(next((k for k in relation.keys if source(k)), '')) + relation.message(cfg))


def _float_leaves(obj, prefix: str = ''):
    """(key, value) of every float in a config (lists included, e.g. ``optim.betas[1]``)."""
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            yield from _float_leaves(getattr(obj, f.name), f'{prefix}{f.name}.')
    elif isinstance(obj, float):
        yield prefix.rstrip('.'), obj
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _float_leaves(v, f'{prefix.rstrip(".")}[{i}].')
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _float_leaves(v, f'{prefix}{k}.')
