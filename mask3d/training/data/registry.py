"""The one table of datasets: each dataset's name, the other names it answers to, and the function that opens it
for each use (pre-training, fine-tuning, the probe, ``mask3d data inspect``).

The config rules take their allowed ``data.source`` values from here (:func:`source_rule`), and every entry point
opens its data through :func:`get`, so a list of names cannot drift from what opens. An opener is named, not
imported: this module imports only the rule and error types, so config modules read the table without importing
the training code the openers live in (no import circle), and a heavy reader (h5py, scipy, torchvision) loads only
when its dataset is opened.
"""
import importlib
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from ...errors import ConfigError
from ..config_rules import Rule

# each use: the module its openers live in (an opener is a function name there, or a full 'module:function'),
# and the words an error message names it by
USES = {'pretrain': ('mask3d.training.pretrain.data', 'pre-training data.source'),
        'finetune': ('mask3d.training.finetune.data', 'fine-tuning data.source'),
        'probe': ('mask3d.training.probe.data', 'probe data.source'),
        'inspect': ('mask3d.training.data.inspect', 'data inspect --format')}


@dataclass(frozen=True)
class Dataset:
    """A dataset and its opener for each use it serves (None: not served). Call signatures, per use:

    - ``pretrain(data_cfg, seed) -> frames``; ``streamed``: ``(cfg, state, info, transform, patch_size, colour)
      -> (sampler, dataset)`` (not indexed by frame, so no mixture can contain it)
    - ``finetune(cfg, root, split, val, skip_bad) -> frames``
    - ``probe(cfg, mean, std) -> (train, test, pairs or None)``
    - ``inspect(path, options) -> (dataset, class names or None, format)``: ``format`` is what the report and a
      shard index record (the on-disk format, e.g. ``nyu-mat``)
    """
    name: str
    aliases: Tuple[str, ...] = ()
    pretrain: Optional[str] = None
    finetune: Optional[str] = None
    probe: Optional[str] = None
    inspect: Optional[str] = None
    streamed: bool = False

    @property
    def names(self) -> Tuple[str, ...]:
        return (self.name,) + self.aliases

    @property
    def uses(self) -> Tuple[str, ...]:
        return tuple(use for use in USES if getattr(self, use))

    def opener(self, use: str) -> Callable:
        """The function that opens this dataset for ``use``, imported now."""
        ref = getattr(self, use)
        module, function = ref.split(':') if ':' in ref else (USES[use][0], ref)
        return getattr(importlib.import_module(module), function)


_DATASETS: Dict[str, Dataset] = {}  # canonical name -> dataset
_CANONICAL: Dict[str, str] = {}     # every name and alias -> canonical name


def register(dataset: Dataset) -> Dataset:
    """Add ``dataset``; a name or alias already taken is a ConfigError (two datasets cannot share a name)."""
    taken = [n for n in dataset.names if n in _CANONICAL]
    if taken:
        raise ConfigError(f"dataset {dataset.name!r}: the name {taken[0]!r} is taken by {_CANONICAL[taken[0]]!r}")
    if not dataset.uses:
        raise ConfigError(f'dataset {dataset.name!r} serves no use; give an opener for one of {tuple(USES)}')
    _DATASETS[dataset.name] = dataset
    _CANONICAL.update({n: dataset.name for n in dataset.names})
    return dataset


def canonical(name) -> Optional[str]:
    """The canonical name of ``name`` (itself or an alias), or None when no dataset has it."""
    return _CANONICAL.get(name) if isinstance(name, str) else None


def names(use: str, aliases: bool = False) -> Tuple[str, ...]:
    """The datasets that serve ``use``, in registration order; ``aliases``: their other names too."""
    return tuple(n for d in _DATASETS.values() if use in d.uses for n in (d.names if aliases else (d.name,)))


def serves(name, use: str) -> bool:
    return canonical(name) is not None and use in _DATASETS[canonical(name)].uses


def allowed(use: str) -> str:
    """The names ``use`` accepts, for messages: ``synthetic, folder, scannet (also scannet-frames), ...``."""
    return ', '.join(d.name + (f" (also {', '.join(d.aliases)})" if d.aliases else '')
                     for d in _DATASETS.values() if use in d.uses)


def get(name: str, use: str) -> Dataset:
    """The dataset ``name`` (or an alias) for ``use``; a one-line ConfigError when unknown or not serving it."""
    if use not in USES:
        raise ConfigError(f'unknown dataset use {use!r}; one of {", ".join(USES)}')
    what = USES[use][1]
    if canonical(name) is None:
        raise ConfigError(f'unknown {what} {name!r}; one of {allowed(use)}')
    dataset = _DATASETS[canonical(name)]
    if use not in dataset.uses:
        raise ConfigError(f"{what} {name!r} is not available (it serves {', '.join(dataset.uses)}); one of "
                          f'{allowed(use)}')
    return dataset


def source_rule(use: str) -> Rule:
    """The config rule of ``data.source`` for ``use``: a name or alias of a dataset that serves it."""
    return Rule(f'one of {allowed(use)}', lambda v: serves(v, use), 'bogus')


# the built-in datasets; readers in mask3d/training/data/, openers in the use modules of USES
register(Dataset('synthetic', pretrain='open_synthetic', finetune='open_synthetic', probe='open_synthetic',
                 inspect='open_synthetic'))
register(Dataset('folder', pretrain='open_folder', finetune='open_folder', probe='open_folder',
                 inspect='open_folder'))
register(Dataset('scannet', aliases=('scannet-frames',), pretrain='open_scannet', finetune='open_scannet',
                 probe='open_scannet', inspect='open_scannet'))   # exported scenes: color/, depth/, intrinsic/
register(Dataset('scannet-sens', inspect='open_scannet_sens'))   # one .sens file
register(Dataset('scannet-25k', finetune='open_scannet_25k', inspect='open_scannet_25k'))
register(Dataset('nyuv2', aliases=('nyu', 'nyu-mat'), finetune='open_nyuv2', probe='open_nyuv2',
                 inspect='open_nyuv2'))                            # the labelled .mat
register(Dataset('nyu-raw', pretrain='open_nyu_raw', finetune='open_nyu_raw', inspect='open_nyu_raw'))
register(Dataset('sunrgbd', pretrain='open_sunrgbd', inspect='open_sunrgbd'))
register(Dataset('cityscapes', finetune='open_cityscapes', inspect='open_cityscapes'))
register(Dataset('tum', pretrain='open_tum', inspect='open_tum'))
register(Dataset('7scenes', pretrain='open_seven_scenes', probe='open_seven_scenes', inspect='open_seven_scenes'))
register(Dataset('shards', pretrain='open_shards', inspect='open_shards', streamed=True))
register(Dataset('mixture', pretrain='open_mixture'))             # data.mixture: several of the above, weighted
