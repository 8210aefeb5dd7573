"""Packaging: the extras match the imports, the library works without them, and a wheel runs on its own.

* pyproject.toml's extras and :data:`photostyle_lib.errors.EXTRAS` name the same packages, and no
  optional package is a core dependency;
* with every optional package hidden (``sys.modules[name] = None`` in a fresh interpreter, which
  makes ``import name`` fail as if it were not installed) every module still imports, a tiny
  ``photostyle transfer`` runs on the numpy / torch fallbacks of the numba kernels, and each optional
  feature stops with one line naming its extra;
* (slow) a non-editable wheel, installed into a fresh virtual environment, runs ``photostyle transfer``
  from a scratch working directory, writes only where ``-o`` says, and records a git revision
  although it is not a git checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photostyle_lib.errors import EXTRAS, PhotostyleError, require_extra

ROOT = Path(__file__).resolve().parents[1]

#: Every package that an extra (or the test suite) provides; hidden together in the no-extras interpreter.
OPTIONAL_MODULES = ("numba", "dask", "distributed", "transformers", "huggingface_hub", "papermill", "nbformat",
                    "ipywidgets", "jupyter_client", "ipykernel", "jupyterlab")


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    """'dask[distributed]>=2023.6' -> 'dask'; names normalised as PEP 503 does (- _ . alike, lower case)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)).lower()


def _env_without_checkout_on_path() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env.pop("PYTHONPATH", None)
    return env


def _write_pair(d: Path) -> dict[str, Path]:
    """A 40 x 60 content ramp, a 50 x 50 seeded-noise style and two-colour masks (blue / black), as PNGs."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:40, 0:60]
    files = {"content": d / "c.png", "style": d / "s.png", "content_mask": d / "cm.png", "style_mask": d / "sm.png"}
    Image.fromarray(np.stack([y * 6, x * 4, (x + y) * 2], -1).clip(0, 255).astype(np.uint8)).save(files["content"])
    Image.fromarray(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)).save(files["style"])
    cm = np.zeros((40, 60, 3), np.uint8)
    cm[:20] = (0, 0, 255)
    sm = np.zeros((50, 50, 3), np.uint8)
    sm[:, :25] = (0, 0, 255)
    Image.fromarray(cm).save(files["content_mask"])
    Image.fromarray(sm).save(files["style_mask"])
    return files


def _transfer_args(files: dict[str, Path], out: Path | str) -> list[str]:
    return ["transfer", str(files["content"]), str(files["style"]), "-o", str(out),
            "--content-mask", str(files["content_mask"]), "--style-mask", str(files["style_mask"]),
            "--weights", "random", "--size", "32", "--iterations", "3", "--device", "cpu", "--no-progress"]


# --------------------------------------------------------------------------- the declared extras


def test_extras_declare_what_the_library_imports():
    project = _pyproject()["project"]
    extras = {k: {_name(r) for r in v} for k, v in project["optional-dependencies"].items()}
    module_to_dist = {"distributed": "dask"}  # dask[distributed] provides the module distributed
    for extra, modules in EXTRAS.items():
        assert extra in extras, f"errors.EXTRAS names [{extra}], pyproject.toml does not"
        for module in modules:
            assert _name(module_to_dist.get(module, module)) in extras[extra], (extra, module)
    assert extras["fast"] == {"numba"}
    core = {_name(r) for r in project["dependencies"]}
    optional = {_name(module_to_dist.get(m, m)) for m in OPTIONAL_MODULES}
    assert not core & optional, f"optional packages among the core dependencies: {core & optional}"
    # the test suite needs every extra: [test] pulls the others in
    pulled = {e for r in project["optional-dependencies"]["test"] if _name(r) == "photostyle"
              for e in re.search(r"\[(.*)\]", r).group(1).split(",")}
    assert pulled == {"notebooks", "segmentation", "dask", "fast"}
    assert project["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "photostyle contributors" in (ROOT / "LICENSE").read_text()


def test_require_extra_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now fails
    with pytest.raises(PhotostyleError) as info:
        require_extra("transformers", "segmentation", "the ADE20K segmenter")
    assert str(info.value) == ("the ADE20K segmenter needs transformers, which is not installed: "
                               "pip install 'photostyle[segmentation]'")
    assert require_extra("json", "none", "x") is json  # an importable module comes back as it is


# --------------------------------------------------------------------------- without any extra

_WITHOUT_EXTRAS = textwrap.dedent("""
    import contextlib, importlib, io, json, pkgutil, sys
    from pathlib import Path
    HIDDEN = {hidden!r}
    for name in HIDDEN:
        sys.modules[name] = None  # `import name` raises ModuleNotFoundError, as when not installed
    import photostyle_lib
    modules = [m.name for m in pkgutil.walk_packages(photostyle_lib.__path__, "photostyle_lib.")]
    for m in modules:
        importlib.import_module(m)
    from photostyle_lib.doors import cli
    from photostyle_lib.errors import PhotostyleError
    from photostyle_lib.features import kernels
    from photostyle_lib.photoreal import image_kernels, local_affine
    report = {{"modules": len(modules), "numba": [kernels.AVAILABLE, image_kernels.AVAILABLE,
                                                  local_affine._HAVE_NUMBA]}}
    report["transfer"] = cli.main({transfer!r})
    errors = {{}}
    def attempt(key, fn):
        try:
            fn()
            errors[key] = "no error"
        except PhotostyleError as exc:
            errors[key] = str(exc)
    from photostyle_lib.semantic import segmenter
    from photostyle_lib.doors import app as interactive, runner
    from photostyle_lib.experiments import executors
    attempt("segmentation", lambda: segmenter.ADE20KSegmenter("random-tiny", device="cpu"))
    attempt("notebooks", lambda: runner.declared_parameters(Path("any.ipynb")))
    attempt("notebooks_kernel", lambda: runner.ensure_kernel(install=False))
    attempt("notebooks_app", lambda: interactive.build_app())
    def dask():
        with executors.make_executor("dask", workers=1):
            pass
    attempt("dask", dask)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        report["cli_segmenter"] = cli.main({segment!r})
    errors["segmentation_cli"] = stderr.getvalue()
    report["errors"] = errors
    report["still_hidden"] = all(sys.modules.get(n, 0) is None for n in HIDDEN)
    print("REPORT " + json.dumps(report))
""")


def test_library_and_transfer_work_without_any_extra(tmp_path):
    files = _write_pair(tmp_path)
    out = tmp_path / "out" / "result.png"
    no_masks = _transfer_args(files, tmp_path / "seg.png")[:5] + _transfer_args(files, "x")[9:]
    script = _WITHOUT_EXTRAS.format(hidden=OPTIONAL_MODULES, transfer=_transfer_args(files, out), segment=no_masks)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.split("REPORT ", 1)[1])
    assert report["modules"] >= 40 and report["still_hidden"]
    assert report["numba"] == [False, False, False]  # the run below used the fallbacks
    assert report["transfer"] == 0 and Image.open(out).size == (32, 21)
    md = json.loads(out.with_name("result.png.json").read_text())
    assert md["evaluations"] == 3 and isinstance(md["git_revision"], str) and md["git_revision"]
    assert report["cli_segmenter"] == 2
    for key, message in report["errors"].items():
        extra = key.split("_")[0]
        assert message.count("\n") <= 1 and message.strip().endswith(f"pip install 'photostyle[{extra}]'"), \
            (key, message)
    assert report["errors"]["segmentation_cli"].startswith("photostyle: error: preset 'full' without --content-mask")
    assert not (tmp_path / "seg.png").exists()


# --------------------------------------------------------------------------- a wheel on its own


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime_ns) of every file under folder."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _project_site_packages() -> list[str]:
    return [p for p in dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
            if Path(p).is_dir()]


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    """Build the wheel (no network: --no-build-isolation, --no-index), install it with --no-deps into a
    fresh environment that sees this environment's packages (torch, ...) but not this checkout, and run
    the console script from a scratch directory."""
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools (the [test] extra)")
    t0 = time.perf_counter()
    src = tmp_path / "src"  # a clean copy: no stale build/ folder of the checkout goes into the wheel
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "photostyle_lib", src / "photostyle_lib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))
    env = _env_without_checkout_on_path()

    def run(*cmd, cwd=tmp_path):
        proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout

    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
        "-w", tmp_path / "dist", src)
    (wheel,) = (tmp_path / "dist").glob("photostyle-*.whl")

    # venv --system-site-packages from a venv's python sees the *base* interpreter's packages, not this
    # environment's; a .pth line puts this environment's site-packages after the new one's own.
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv)
    py = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "--quiet", wheel)
    site = Path(run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    # (after the install: pip would otherwise see this environment's editable photostyle as installed)
    (site / "_photostyle_test_base.pth").write_text("\n".join(_project_site_packages()) + "\n")

    where = json.loads(run(py, "-c", "import json, photostyle_lib, photostyle_lib.io.data as d, "
                                     "photostyle_lib.io.metadata as m; print(json.dumps([photostyle_lib.__file__, "
                                     "str(d.SOURCE_ROOT), m.git_revision()]))", cwd=tmp_path))
    assert Path(where[0]).resolve().is_relative_to(site.resolve()), where
    assert where[1] == "None" and where[2] == "unknown (not a git checkout)"

    work = tmp_path / "work"
    files = _write_pair(work / "inputs")
    before_site, before_work = _snapshot(site), set(_snapshot(work))
    out = run(venv / "bin" / "photostyle", *_transfer_args(files, "results/out.png"), cwd=work)
    assert "wrote results/out.png" in out
    result, meta = work / "results" / "out.png", work / "results" / "out.png.json"
    assert Image.open(result).size == (32, 21)
    md = json.loads(meta.read_text())
    assert md["git_revision"] == "unknown (not a git checkout)" and md["random_weights"] is True
    assert md["versions"]["photostyle"] == "0.1.0"
    assert set(_snapshot(work)) - before_work == {"results/out.png", "results/out.png.json"}
    after_site = _snapshot(site)
    # numba's on-disk cache of compiled kernels (cache=True) lands in __pycache__ beside the source
    # when that is writable, as Python's bytecode does; nothing else may appear or change.
    changed = {p for p in set(before_site) | set(after_site) if before_site.get(p) != after_site.get(p)}
    caches = {p for p in changed if Path(p).parent.name == "__pycache__" and Path(p).suffix in (".nbi", ".nbc", ".pyc")}
    assert not changed - caches, f"the run wrote inside site-packages: {sorted(changed - caches)}"
    print(f"wheel build + install + transfer: {time.perf_counter() - t0:.1f} s")
