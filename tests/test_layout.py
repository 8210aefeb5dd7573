"""The package layout is the architecture: every import goes down the layers (README, "Architecture").

Each module's imports of ``photostyle_lib`` (module level and inside functions, read from its
source with ``ast``, so lazy imports count too) are mapped to a layer; a module may import
its own layer or a lower one, never a higher one. A new module outside the declared places
fails the test until it is given a layer here and in the README's diagram.
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
    ("experiments",),                      # cached runs, recipes, the notebook runner, sweeps, app
    ("cli", "batch"),                      # the doors
]
RANK = {key: i for i, keys in enumerate(LAYERS) for key in keys}


def _key(module: str) -> str:
    """``photostyle_lib.engine.transfer`` -> ``engine``; ``photostyle_lib.cli`` -> ``cli``."""
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
#: Known to exceed the limits: being split on the doors branch (empty this after its merge).
#: A module is named by its path under ``photostyle_lib/``, a function as ``path::qualname``.
OVER_THE_LIMITS_ALLOWED: frozenset[str] = frozenset({
    "cli.py",
    "experiments/interactive.py",
    "experiments/runs.py",
    "experiments/interactive.py::build_app",
})


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
