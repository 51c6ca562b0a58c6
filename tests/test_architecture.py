"""Architecture checks (issue 24; docs/architecture.md).

The import graph of ``mask3d/`` has no circles: every ``import`` and ``from ... import``, at module level or inside
a function, read with ``ast``. A circle makes the import order matter and hides which module is the lower layer;
``training.config`` <-> ``training.pretrainer`` and ``loading`` <-> ``models.mask3d_vit`` were the last two. And no
function is longer than 60 lines. And the library does not import the command's package (``mask3d_cli``): the configs
and the release manifest come from the light ``mask3d_resources``, which both import. And ``mask3d.training`` keeps
its layers: the run machinery (``runtime/``) knows no method and no data reader, the config machinery and the shared
pieces know neither, and the three methods (``pretrain/``, ``finetune/``, ``probe/``) do not import each other."""
import ast
import sys
from pathlib import Path
from typing import Dict, List, Set

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / 'mask3d'


def _modules() -> Dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob('*.py'):
        parts = list(f.relative_to(REPO_ROOT).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts = parts[:-1]
        out['.'.join(parts)] = f
    return out


def import_graph() -> Dict[str, Set[str]]:
    """module -> the mask3d modules it imports (``from .x import y`` counts as ``x.y`` when that is a module)."""
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        package = name.split('.') if path.name == '__init__.py' else name.split('.')[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.ImportFrom):
                base = package[:len(package) - node.level + 1] if node.level else []
                target = '.'.join(base + ([node.module] if node.module else []))
                found = [f'{target}.{a.name}' if f'{target}.{a.name}' in mods else target for a in node.names]
            elif isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            else:
                continue
            for dep in found:
                while dep and dep not in mods:
                    dep = dep.rsplit('.', 1)[0] if '.' in dep else ''
                if dep and dep != name:
                    deps.add(dep)
        graph[name] = deps
    return graph


def circles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10000))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_the_checker_finds_a_circle():
    assert circles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
    assert circles({'a': {'b'}, 'b': set()}) == []


def test_mask3d_has_no_import_circles():
    graph = import_graph()
    assert 'mask3d.training.config_rules' in graph and 'mask3d.weights_fit' in graph['mask3d.loading']
    assert circles(graph) == []


def test_the_rule_table_depends_on_no_training_module():
    """Methods register their knobs (``pretrainer.METHOD_KNOBS``) against ``config_rules``, which imports only the
    error types: the pre-training config can import the method without the method importing the config back."""
    assert import_graph()['mask3d.training.config_rules'] == {'mask3d.errors'}
    assert 'mask3d.training.pretrain.config' not in import_graph()['mask3d.training.pretrain.pretrainer']


# ---- the layers of mask3d.training (docs/architecture.md, "The layers") ----

TRAINING = 'mask3d.training'
METHODS = tuple(f'{TRAINING}.{m}' for m in ('pretrain', 'finetune', 'probe'))
RUNTIME, DATA = f'{TRAINING}.runtime', f'{TRAINING}.data'
CONFIG = (f'{TRAINING}.config', f'{TRAINING}.config_rules')


def _within(module: str, packages) -> bool:
    return any(module == p or module.startswith(p + '.') for p in packages)


def crossings(graph: Dict[str, Set[str]], importers, imported, allowed=()) -> List[str]:
    """``a -> b`` for each module ``a`` of ``importers`` that imports a module ``b`` of ``imported`` (packages or
    modules, by dotted name), unless ``b`` is in ``allowed``."""
    return sorted(f'{a} -> {b}' for a in graph if _within(a, importers) for b in graph[a]
                  if _within(b, imported) and not _within(b, allowed))


def test_the_layer_checker_finds_a_crossing():
    graph = {'t.runtime.loop': {'t.pretrain.engine', 't.runtime.skips'}, 't.pretrain.engine': {'t.runtime.loop'}}
    assert crossings(graph, ['t.runtime'], ['t.pretrain']) == ['t.runtime.loop -> t.pretrain.engine']
    assert crossings(graph, ['t.runtime'], ['t'], allowed=['t.runtime', 't.pretrain']) == []


def test_the_runtime_knows_no_method_and_no_data_reader():
    """The run machinery takes a config, a step and batches; it imports only itself and the config machinery (and
    never ``mask3d.training`` itself, whose ``__init__`` exports the pre-training method)."""
    graph = import_graph()
    assert len([m for m in graph if _within(m, [RUNTIME])]) >= 8  # the package is there (the test sees it)
    assert crossings(graph, [RUNTIME], [TRAINING], allowed=[RUNTIME, *CONFIG]) == []


def test_the_config_machinery_imports_no_runtime_and_no_method():
    """``config.py`` and ``config_rules.py`` sit below everything in training: each method's config builds on them."""
    graph = import_graph()
    assert crossings(graph, CONFIG, [TRAINING], allowed=CONFIG) == []
    assert graph[f'{TRAINING}.config'] <= {'mask3d.errors', f'{TRAINING}.config_rules'}


def test_the_methods_do_not_import_each_other():
    """Pre-training, fine-tuning and probing stand side by side; what two of them share (the silog loss, the dense
    metrics, the backbone's source, figure helpers) lives below them in ``mask3d/training/``."""
    graph = import_graph()
    for method in METHODS:
        assert crossings(graph, [method], [m for m in METHODS if m != method]) == []


def test_the_shared_pieces_and_the_data_readers_import_no_method():
    """Nothing climbs back up: the modules directly in ``mask3d/training/`` (apart from its ``__init__``, the public
    exports) and the data readers import no method; the shared modules import no runtime either. (The readers may
    use ``runtime/skips.py``, ``data.skip_bad``'s counting.)"""
    graph = import_graph()
    shared = [m for m in graph if m.startswith(TRAINING + '.') and m.count('.') == 2
              and not _within(m, [*METHODS, RUNTIME, DATA])]
    assert {f'{TRAINING}.metrics', f'{TRAINING}.depth_loss', f'{TRAINING}.visualize', *CONFIG} <= set(shared)
    assert crossings(graph, shared, [*METHODS, RUNTIME, DATA, TRAINING], allowed=shared) == []
    assert crossings(graph, [DATA], [TRAINING], allowed=[DATA, f'{RUNTIME}.skips', *shared]) == []


# Only the ways of running the command import it: ``python -m mask3d``, the ``mask3d.cli`` alias, and the fast path of
# ``python -m mask3d --version`` / ``configs`` at the top of ``mask3d/__init__.py``.
RUN_THE_COMMAND = {'mask3d/__init__.py', 'mask3d/__main__.py', 'mask3d/cli/__init__.py'}


def imports_of(package: str, path: Path) -> List[int]:
    """Line numbers of every import of ``package`` (or a module in it) in ``path``, inside functions too."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        if any(n.split('.')[0] == package for n in names):
            lines.append(node.lineno)
    return lines


def test_the_checker_finds_imports_inside_functions(tmp_path):
    f = tmp_path / 'm.py'
    f.write_text('import os\ndef f():\n    from mask3d_cli.bundled import x\n    import mask3d_cli\n'
                 'from .mask3d_cli import y\n')
    assert imports_of('mask3d_cli', f) == [3, 4]


def test_the_library_does_not_import_the_command_package():
    """``mask3d_cli`` is the layer above: a library module that imports it inverts the layers (it used to, for the
    config and manifest paths, via ``mask3d_cli.bundled``)."""
    found = [f'{rel}:{line}' for path in sorted(PACKAGE.rglob('*.py'))
             if (rel := path.relative_to(REPO_ROOT).as_posix()) not in RUN_THE_COMMAND
             for line in imports_of('mask3d_cli', path)]
    assert not found, f'the library imports mask3d_cli (read configs and the manifest via mask3d_resources): {found}'
    assert all(imports_of('mask3d_cli', REPO_ROOT / f) for f in RUN_THE_COMMAND)  # the list holds no stale entry


def test_no_function_in_mask3d_is_longer_than_60_lines():
    """Issue 24: long functions hid several concepts each (``_furnish`` was 151 lines, ``_pretrain`` 135)."""
    long = []
    for path in PACKAGE.rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f'{path.relative_to(REPO_ROOT)}:{node.lineno} {node.name} ({lines} lines)')
    assert not long, long
