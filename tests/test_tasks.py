"""Tasks as objects (issue 24): the fine-tuning task registry and each task's facts, the probe's dense tasks, and no
string switch on a task's name left in the fine-tuning or probe code."""
import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import REPO_ROOT
from mask3d.errors import ConfigError
from mask3d.training.finetune.config import FINETUNE_KNOBS, load_finetune_config
from mask3d.training.finetune.tasks import TASKS, Task, get_task
from mask3d.training.finetune.tasks.things import SCANNET18_NAMES, SYNTHETIC_THINGS

FACTS = {  # name: (target keys, full-resolution target, primary metric, higher is better, has classes)
    'semseg': (('semantic',), 'full_semantic', 'miou', True, True),
    'depth': (('depth',), 'full_depth', 'abs_rel', False, False),
    'instance': (('instance_masks', 'instance_labels'), None, 'segm_AP50', True, True),
}


def test_the_registry_lists_each_task_once_and_returns_one_object_per_name():
    assert tuple(TASKS) == ('semseg', 'depth', 'instance')
    for name in TASKS:
        task = get_task(name)
        assert isinstance(task, Task) and task.name == name and get_task(name) is task


@pytest.mark.parametrize('name', list(FACTS))
def test_each_task_knows_its_keys_metric_and_classes(name):
    task = get_task(name)
    keys, full, metric, higher, classes = FACTS[name]
    assert (task.target_keys, task.full_target, task.primary_metric, task.higher_is_better, task.has_classes) == \
        (keys, full, metric, higher, classes)


@pytest.mark.parametrize('bad', ['bogus', 'Semseg', '', None, ['semseg']])
def test_an_unknown_task_is_one_line_naming_the_tasks(bad):
    with pytest.raises(ConfigError) as err:
        get_task(bad)
    assert str(err.value) == f'unknown task {bad!r}; the tasks are semseg, depth, instance'


def test_the_config_rule_takes_its_tasks_from_the_registry():
    rule = FINETUNE_KNOBS['task']
    assert rule.allowed == f'one of {tuple(TASKS)}' and all(rule.ok(n) for n in TASKS) and not rule.ok('normals')
    with pytest.raises(ConfigError, match=r"task must be one of \('semseg', 'depth', 'instance'\), got 'normals'"):
        load_finetune_config(None, ['task=normals'])


def test_task_facts_drive_the_config_relations():
    """num_classes is checked only for tasks with classes; UperNet's BatchNorm needs two images (semseg only)."""
    assert load_finetune_config(None, ['task=depth', 'model.num_classes=0']).model.num_classes == 0
    with pytest.raises(ConfigError, match='model.num_classes must be >= 1'):
        load_finetune_config(None, ['task=instance', 'model.num_classes=0'])
    assert load_finetune_config(None, ['task=depth', 'data.batch_size=1']).data.batch_size == 1
    assert load_finetune_config(None, ['model.head=linear', 'data.batch_size=1']).data.batch_size == 1
    with pytest.raises(ConfigError, match='batch_size >= 2 or model.head=linear'):
        load_finetune_config(None, ['data.batch_size=1'])


def test_the_instance_task_wraps_only_sources_with_instances():
    cfg = SimpleNamespace(data=SimpleNamespace(nyu_classes=40, min_instance_pixels=0))
    task = get_task('instance')
    assert task.wrap_frames([], 'synthetic', cfg).class_names == SYNTHETIC_THINGS  # no wall, floor, ceiling
    assert task.wrap_frames([], 'nyuv2', cfg).class_names == SCANNET18_NAMES
    cfg.data.nyu_classes = 13
    assert len(task.wrap_frames([], 'nyuv2', cfg).class_names) == 9
    with pytest.raises(ConfigError, match='data.source=cityscapes has no instance annotations'):
        task.wrap_frames([], 'cityscapes', cfg)
    frames = SimpleNamespace(class_names=('a', 'b'))
    assert get_task('semseg').wrap_frames(frames, 'synthetic', cfg) is frames  # the dense tasks read frames as they are


def test_the_class_count_check_names_the_task_and_the_fix():
    cfg = SimpleNamespace(model=SimpleNamespace(num_classes=3))
    frames = SimpleNamespace(class_names=('wall', 'floor'), num_classes=None)
    with pytest.raises(ConfigError, match=r'num_classes=3 but x has 2 classes for semseg \(wall, floor\); '
                                          r'set model.num_classes=2'):
        get_task('semseg').check_classes(frames, 'x', cfg)
    assert get_task('depth').check_classes(frames, 'x', cfg) is frames and frames.num_classes is None
    cfg.model.num_classes = 2
    assert get_task('semseg').check_classes(frames, 'x', cfg).num_classes == 2  # the reader checks label ids


def test_the_probe_dense_tasks_are_the_probe_config_tasks_in_order():
    from mask3d.training.probe.config import PROBE_TASKS
    from mask3d.training.probe.tasks import DENSE_TASKS
    assert tuple(t.name for t in DENSE_TASKS) == ('depth', 'normals', 'semseg')
    assert set(t.name for t in DENSE_TASKS) | {'correspondence'} == set(PROBE_TASKS)


# ---- no string switches on a task's name ----

def _mentions_task(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == 'task') or (isinstance(node, ast.Attribute)
                                                                  and node.attr == 'task')


def _is_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(_is_literal(e) for e in node.elts)


def task_switches(source: str):
    """Line numbers where ``task`` / ``x.task`` is compared with a string literal (``==``, ``!=``, ``in``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left] + node.comparators
            if any(_mentions_task(s) for s in sides) and any(_is_literal(s) for s in sides):
                found.append(node.lineno)
    return found


def test_the_checker_finds_a_switch():
    code = ("if cfg.task == 'semseg':\n    pass\nx = task != 'depth'\ny = cfg.task in ('semseg', 'instance')\n"
            "z = cfg.task == other.task\nw = 'correspondence' in cfg.tasks\n")
    assert task_switches(code) == [1, 3, 4]


def test_no_finetune_or_probe_module_switches_on_a_task_name():
    """The task object answers instead (tasks/*.py, probe/tasks.py): a new task is a module, not an edit of every
    ``if cfg.task == ...``."""
    training = REPO_ROOT / 'mask3d' / 'training'
    files = sorted((training / 'finetune').rglob('*.py')) + sorted((training / 'probe').rglob('*.py'))
    assert len(files) > 10
    found = [f'{Path(f).relative_to(REPO_ROOT)}:{line}' for f in files
             for line in task_switches(f.read_text(encoding='utf-8'))]
    assert not found, f'string switches on the task name (ask the task object instead): {found}'
