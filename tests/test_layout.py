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
