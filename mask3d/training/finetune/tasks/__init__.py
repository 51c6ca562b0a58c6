"""The fine-tuning tasks, one module each: semantic segmentation (``semseg``), depth (``depth``) and instance
segmentation (``instance``). A task is an object (:class:`~.base.Task`) that knows the dataset keys it trains on, the
model it builds around the backbone, its loss, metrics, predictions and figure; the data, model and engine code
call it instead of switching on the task's name.

The table names each task's class instead of importing it, as the dataset registry does (``data/registry.py``): the
fine-tuning config takes its allowed ``task`` values from here without importing the heads, metrics and readers
the tasks use.
"""
import importlib
from typing import Dict

from ....errors import ConfigError
from .base import Task

# name -> 'module:class' in this package; a new task is a module here and one row
TASKS = {'semseg': 'semseg:SemanticSegmentation',
         'depth': 'depth:DepthEstimation',
         'instance': 'instance:InstanceSegmentation'}

_LOADED: Dict[str, Task] = {}


def get_task(name: str) -> Task:
    """The task called ``name`` (one shared object per name: tasks hold no state); an unknown name is a one-line
    :class:`ConfigError` naming the tasks there are."""
    if not isinstance(name, str) or name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; the tasks are {', '.join(TASKS)}")
    if name not in _LOADED:
        module, cls = TASKS[name].split(':')
        _LOADED[name] = getattr(importlib.import_module(f'{__name__}.{module}'), cls)()
    return _LOADED[name]
