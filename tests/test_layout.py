"""The package layout is the architecture: every import goes down the layers (docs/architecture.md).

Each module's imports of ``photostyle_lib`` (module level and inside functions, read from its
source with ``ast``, so lazy imports count too) are mapped to a layer; a module may import
its own layer or a lower one, never a higher one. A new module outside the declared places
fails the test until it is given a layer here and in the README's diagram. No two modules
import each other, directly or through others (no import cycle).

The package root (``photostyle_lib/__init__.py``) is in the lowest layer: it imports only the
error type, and re-exports the public API (``load_image``, ``stylize``, ...) by name only -- a
table of module paths as strings that its ``__getattr__`` resolves with
``importlib.import_module`` on first use -- so no import statement of it reaches up, and
``import photostyle_lib`` loads no torch.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "photostyle_lib"

#: Layers, lowest first. A key is a sub-package (every module in it) or a top-level module.
LAYERS: list[tuple[str, ...]] = [
    ("__init__", "errors", "checks"),      # the one error type, argument checks
    ("io",),                               # images, the dataset, provenance
    ("features", "losses"),                # VGG, fused loss nodes; the reference loss terms
    ("semantic", "photoreal"),             # masks and segmentation; matting and post-processes
    ("baselines",),                        # Reinhard, IDT (use photoreal's Poisson step)
    ("engine", "metrics", "plots"),        # the optimisation; scores; figure grids
    ("experiments",),                      # cached runs, recipes, sweeps, the run from files
    ("doors",),                            # CLI, batch, the notebook runner, the app, the report
]
RANK = {key: i for i, keys in enumerate(LAYERS) for key in keys}


def _key(module: str) -> str:
    """``photostyle_lib.engine.transfer`` -> ``engine``; ``photostyle_lib.doors.cli`` -> ``doors``."""
    parts = module.split(".")
    assert parts[0] == "photostyle_lib", module
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts)


def _imports(path: Path) -> set[str]:
    """Every ``photostyle_lib`` module the file imports (``from photostyle_lib.x import y`` -> x, and
    ``from photostyle_lib.x import sub`` -> x.sub when sub is a module)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "photostyle_lib")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "photostyle_lib":
            for a in node.names:
                sub = PACKAGE.parent.joinpath(*node.module.split("."), a.name)
                is_module = sub.with_suffix(".py").exists() or (sub / "__init__.py").exists()
                out.add(f"{node.module}.{a.name}" if is_module else node.module)
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    unplaced = [_module_name(p) for p in MODULES if _key(_module_name(p)) not in RANK]
    assert not unplaced, f"modules outside the declared layers: {unplaced}"


def test_layers_are_sub_packages_or_single_modules():
    for keys in LAYERS:
        for key in keys:
            assert (PACKAGE / f"{key}.py").exists() or (PACKAGE / key / "__init__.py").exists(), key


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_imports_go_down(path: Path):
    me = _module_name(path)
    upward = [m for m in sorted(_imports(path)) if RANK[_key(m)] > RANK[_key(me)]]
    assert not upward, f"{me} imports a higher layer: {upward}"


def _module_of(name: str) -> str:
    """An imported name as a module of the graph: a package stands for its ``__init__``."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    return f"{name}.__init__" if (path / "__init__.py").exists() else name


def import_graph(paths: list[Path] = MODULES) -> dict[str, set[str]]:
    """``{module: the photostyle_lib modules it imports}`` (module level and lazy), packages as ``pkg.__init__``."""
    names = {_module_name(p) for p in paths}
    graph = {_module_name(p): {_module_of(m) for m in _imports(p)} for p in paths}
    return {m: {d for d in deps if d in names and d != m} for m, deps in graph.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan's algorithm): the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycle():
    cycles = import_cycles(import_graph())
    assert not cycles, f"modules that import each other (directly or through others): {cycles}"


def test_the_cycle_finder_sees_a_lazy_cycle(tmp_path):
    """The finder itself: a cycle closed by an import inside a function is found; a chain is not a cycle."""
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    fake = tmp_path / "x.py"
    fake.write_text("def f():\n    from photostyle_lib.doors import cli\n")
    assert "photostyle_lib.doors.cli" in _imports(fake)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The checker itself: a function-level import of the engine from io is caught."""
    fake = tmp_path / "x.py"
    fake.write_text("def f():\n    from photostyle_lib.engine import transfer\n")
    found = _imports(fake)
    assert "photostyle_lib.engine.transfer" in found
    assert RANK[_key("photostyle_lib.engine.transfer")] > RANK[_key("photostyle_lib.io.images")]


#: Within ``semantic/``, lowest first: label tables, painted masks, mask stacks, the maths (merge, cut),
#: the model, its cache, controlled errors, and the request that ties them together.
SEMANTIC_ORDER = ("ade20k", "palette", "masks", "merge", "cut", "segmenter", "cache", "mask_errors", "request")


def test_semantic_modules_import_down_their_order():
    found = sorted(p.stem for p in (PACKAGE / "semantic").glob("*.py") if p.stem != "__init__")
    assert sorted(SEMANTIC_ORDER) == found, "give a new semantic/ module its place in SEMANTIC_ORDER"
    for i, name in enumerate(SEMANTIC_ORDER):
        deps = {m.split(".")[2] for m in _imports(PACKAGE / "semantic" / f"{name}.py")
                if m.startswith("photostyle_lib.semantic.")}
        higher = sorted(d for d in deps if SEMANTIC_ORDER.index(d) > i)
        assert not higher, f"semantic.{name} imports the higher semantic modules {higher}"


#: A module is read in one sitting and a function against its equation: limits in lines,
#: docstrings and comments included (a function from its ``def`` line to its last line).
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100
#: Known to exceed the limits (none today). A module is named by its path under ``photostyle_lib/``,
#: a function as ``path::qualname``.
OVER_THE_LIMITS_ALLOWED: frozenset[str] = frozenset()


def _functions(tree: ast.AST, prefix: str = ""):
    """(qualified name, node) of every function and method, nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def _over_the_limits() -> dict[str, int]:
    """Every module over :data:`MAX_MODULE_LINES` and function over :data:`MAX_FUNCTION_LINES`: name -> lines."""
    found: dict[str, int] = {}
    for path in MODULES:
        rel = path.relative_to(PACKAGE).as_posix()
        source = path.read_text()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            found[rel] = len(source.splitlines())
        for name, node in _functions(ast.parse(source, filename=str(path))):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                found[f"{rel}::{name}"] = lines
    return found


def test_no_module_or_function_is_too_long():
    """Modules up to 600 lines, functions up to 100 (split a longer one into named steps)."""
    over = {k: v for k, v in _over_the_limits().items() if k not in OVER_THE_LIMITS_ALLOWED}
    assert not over, f"over {MAX_MODULE_LINES} lines (module) or {MAX_FUNCTION_LINES} (function): {over}"


def test_the_allowed_exceptions_still_exceed_the_limits():
    """An entry that no longer exceeds a limit is stale: remove it, so the list shows what is left to split."""
    stale = sorted(OVER_THE_LIMITS_ALLOWED - set(_over_the_limits()))
    assert not stale, f"no longer over the limits, remove from OVER_THE_LIMITS_ALLOWED: {stale}"


def test_the_length_checker_sees_a_long_function_and_a_nested_one():
    body = "\n".join("        x = 1" for _ in range(MAX_FUNCTION_LINES))
    tree = ast.parse(f"def outer():\n    def inner():\n{body}\n    return 1\n")
    lengths = {name: node.end_lineno - node.lineno + 1 for name, node in _functions(tree)}
    assert lengths == {"outer": MAX_FUNCTION_LINES + 3, "outer.inner": MAX_FUNCTION_LINES + 1}


def private_reaches(path: Path) -> set[str]:
    """The ``_private`` names of other ``photostyle_lib`` modules that a file uses: imported by name
    (``from photostyle_lib.x import _y``) or read off an imported module (``mod._y``). Dunders are public."""
    tree = ast.parse(path.read_text(), filename=str(path))
    private = (lambda name: name.startswith("_") and not name.startswith("__"))
    modules: dict[str, str] = {}
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "photostyle_lib":
            for a in node.names:
                sub = PACKAGE.parent.joinpath(*node.module.split("."), a.name)
                if sub.with_suffix(".py").exists() or (sub / "__init__.py").exists():
                    modules[a.asname or a.name] = f"{node.module}.{a.name}"
                elif private(a.name):
                    found.add(f"{node.module}.{a.name}")
        elif isinstance(node, ast.Import):
            modules.update({a.asname: a.name for a in node.names
                            if a.asname and a.name.split(".")[0] == "photostyle_lib"})
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and private(node.attr)):
            found.add(f"{modules[node.value.id]}.{node.attr}")
    return found


#: Private names still reached from outside their module (none today).
KNOWN_PRIVATE_REACHES: set[str] = set()
SCRIPTS = sorted([*(PACKAGE.parent / "studies").glob("*.py"), *(PACKAGE.parent / "benchmarks").glob("*.py")])


@pytest.mark.parametrize("path", MODULES + SCRIPTS, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_module_reaches_another_modules_private_names(path: Path):
    reached = private_reaches(path) - KNOWN_PRIVATE_REACHES
    assert not reached, f"{path.name} uses private names of other modules: {sorted(reached)}; make them public"


def test_the_private_reach_finder_sees_both_forms(tmp_path):
    fake = tmp_path / "x.py"
    fake.write_text("from photostyle_lib.experiments import sweep\nfrom photostyle_lib.io.data import _holds_pairs\n"
                    "sweep._gold_masks(1, None)\nsweep.__name__\n")
    assert private_reaches(fake) == {"photostyle_lib.experiments.sweep._gold_masks", "photostyle_lib.io.data._holds_pairs"}


def test_tests_mirror_the_sub_packages():
    """Each layer of the package has its tests in a folder of the same name (tests/<layer>/), and no such
    folder names a layer that does not exist; project-wide checks (layout, docs, packaging) stay in tests/."""
    tests = Path(__file__).resolve().parent
    layers = {key for keys in LAYERS for key in keys} - {"__init__", "errors", "checks"}
    folders = {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}
    assert folders == layers, f"tests/ folders {sorted(folders)} do not mirror the layers {sorted(layers)}"
    for folder in folders:
        assert any((tests / folder).glob("test_*.py")), f"tests/{folder}/ holds no test file"
