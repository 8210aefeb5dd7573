"""The notebook suite: every ``notebooks/NN_*.ipynb`` executed with papermill under a profile.

The door is the command line, ``photostyle figures run --profile ci|paper``
(:mod:`photostyle_lib.doors.cli`); this module holds what it calls.
:func:`run_suite` executes the notebooks on the Jupyter kernel ``photostyle``,
injecting the profile's parameters (:data:`~photostyle_lib.experiments.settings.PROFILES`),
and writes ``<output>/<profile>/<notebook>/``: the executed notebook, the figure
PNGs, ``panels/*.png`` and ``metadata.json``. ``<output>`` is ``results/`` in the
current working directory unless given. Runs are cached in ``<output>/cache``
(shared across notebooks and profiles), so re-running the suite, or an
interrupted suite, computes only what is missing. A failing cell ends the suite
with one :class:`~photostyle_lib.errors.PhotostyleError` naming the notebook,
the cell and its error; the CLI prints it as one line and exits with status 2.

The notebooks are looked up in the project's ``notebooks/`` folder
(:data:`NOTEBOOKS_DIR`) unless another folder is given (``--notebooks-dir``).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photostyle_lib.errors import PhotostyleError, require_extra
from photostyle_lib.experiments.executors import available_cores, child_threads
from photostyle_lib.experiments.recipes import FIGURE_DPI_ENV, FIGURE_FORMAT_ENV, figure_options
from photostyle_lib.doors.report import RUN_STATUS_FILE
from photostyle_lib.experiments.settings import PROFILES, path_from_cwd, profile_parameters, results_dir
from photostyle_lib.io.data import PROJECT_ROOT, data_dir as resolve_data_dir
from photostyle_lib.io.metadata import base_metadata, write_json
from photostyle_lib.io.outputs import check_folder

#: Where the notebooks live: the project's notebooks/ folder.
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
#: The Jupyter kernel notebooks run on: the environment that has this project installed.
KERNEL_NAME = "photostyle"
KERNEL_DISPLAY_NAME = "Python (photostyle)"

_NOTEBOOK_NAME = re.compile(r"^\d\d_[A-Za-z0-9_-]+\.ipynb$")


def discover_notebooks(directory: str | Path | None = None) -> list[Path]:
    """Every ``NN_*.ipynb`` in ``directory``, sorted by name.

    Parameters
    ----------
    directory : path, optional
        The folder (relative: to the current directory); None: :data:`NOTEBOOKS_DIR`.

    Returns
    -------
    list of Path
        Possibly empty.

    Raises
    ------
    PhotostyleError
        The folder does not exist (the message names ``--notebooks-dir``).
    """
    d = path_from_cwd(directory, NOTEBOOKS_DIR)
    if not d.is_dir():
        raise PhotostyleError(f"notebook folder {d} does not exist; give the folder of the NN_*.ipynb "
                              "notebooks with --notebooks-dir")
    return sorted(p for p in d.iterdir() if p.is_file() and _NOTEBOOK_NAME.match(p.name))


def list_notebooks(profile: str, notebooks_dir: str | Path | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(name, the parameters ``profile`` injects) of every notebook, in suite order.

    Raises
    ------
    PhotostyleError
        An unknown profile, a missing folder, or a notebook without a ``parameters`` cell.
    """
    return [(nb.stem, profile_parameters(profile, nb.stem, declared_parameters(nb)))
            for nb in discover_notebooks(notebooks_dir)]


def select_notebooks(paths: Sequence[Path], only: Sequence[str] | None) -> list[Path]:
    """Notebooks named by ``only``: a full stem ("01_ablation"), its number ("01") or the rest ("ablation").

    Parameters
    ----------
    paths : sequence of Path
        The suite's notebooks (:func:`discover_notebooks`).
    only : sequence of str or None
        Names to pick (a ``.ipynb`` suffix is ignored); None or empty: every notebook.

    Returns
    -------
    list of Path
        The chosen notebooks, sorted, each once.

    Raises
    ------
    PhotostyleError
        A name matches no notebook (the message lists the available ones).
    """
    if not only:
        return list(paths)
    chosen: list[Path] = []
    for name in only:
        n = name.removesuffix(".ipynb")
        hits = [p for p in paths if n in (p.stem, p.stem[:2], p.stem[3:])]
        if not hits:
            raise PhotostyleError(f"no notebook matches {name!r}; available: "
                                  f"{', '.join(p.stem for p in paths) or 'none'}")
        chosen += [p for p in hits if p not in chosen]
    return sorted(chosen)


def declared_parameters(path: Path) -> dict[str, Any]:
    """The parameters a notebook's ``parameters`` cell declares (name -> papermill's description).

    Parameters
    ----------
    path : Path
        A notebook file.

    Returns
    -------
    dict
        Parameter name -> papermill's description (its inferred type, default, help).

    Raises
    ------
    PhotostyleError
        nbformat or papermill (the ``[notebooks]`` extra) is missing, or the notebook has no
        cell tagged ``parameters``.
    """
    nbformat = require_extra("nbformat", "notebooks", "running the notebooks")
    papermill = require_extra("papermill", "notebooks", "running the notebooks")

    nb = nbformat.read(str(path), as_version=4)
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        raise PhotostyleError(f"notebook {path.stem} has no cell tagged 'parameters'; tag the cell that "
                              "holds its parameters (View > Cell Toolbar > Tags)")
    return dict(papermill.inspect_notebook(str(path)))


def ensure_kernel(name: str = KERNEL_NAME, *, install: bool = True) -> Path:
    """The kernel spec folder of ``name``, registering it for this interpreter when missing.

    The kernel must run an interpreter that can import ``photostyle_lib``
    (the project's environment), checked by starting it once.

    Parameters
    ----------
    name : str
        The Jupyter kernel's name ("photostyle").
    install : bool
        Register a missing kernel for this interpreter (False: a missing kernel is an error).

    Returns
    -------
    Path
        The kernel spec's folder.

    Raises
    ------
    PhotostyleError
        (saying to run ``make install``) when jupyter_client (the ``[notebooks]`` extra) is
        missing, the kernel is missing and cannot be registered (or ``install`` is False), its
        interpreter does not exist or cannot be started, or it runs another environment (cannot
        import ``photostyle_lib``).
    """
    require_extra("jupyter_client", "notebooks", "running the notebooks")
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    fix = (f"run `make install` (it registers the kernel with `python -m ipykernel install --sys-prefix "
           f"--name {name}`) from the project's environment")
    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        if not install:
            raise PhotostyleError(f"Jupyter kernel {name!r} is not registered; {fix}") from None
        try:
            from ipykernel.kernelspec import install as install_kernel

            install_kernel(kernel_name=name, display_name=KERNEL_DISPLAY_NAME, prefix=sys.prefix)
            spec = KernelSpecManager().get_kernel_spec(name)
        except (ImportError, OSError, NoSuchKernel) as exc:
            raise PhotostyleError(f"Jupyter kernel {name!r} is not registered and registering it for "
                                  f"{sys.executable} failed ({type(exc).__name__}: {exc}); {fix}") from None
    python = shutil.which(spec.argv[0]) if spec.argv else None
    if python is None:
        raise PhotostyleError(f"Jupyter kernel {name!r} ({spec.resource_dir}) starts {spec.argv[:1]}, "
                              f"which does not exist; {fix}")
    try:
        probe = subprocess.run([python, "-c", "import photostyle_lib"], capture_output=True, text=True,
                               timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PhotostyleError(f"Jupyter kernel {name!r} runs {python}, which could not be started "
                              f"({type(exc).__name__}); {fix}") from None
    if probe.returncode != 0:
        raise PhotostyleError(f"Jupyter kernel {name!r} runs {python}, which cannot import photostyle_lib "
                              f"(another environment); {fix}")
    return Path(spec.resource_dir)


@dataclass(frozen=True)
class NotebookRun:
    """One executed notebook: where its outputs are and how long it took."""

    name: str
    source: Path
    executed: Path
    directory: Path
    seconds: float
    figures: tuple[str, ...]


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ARROW = re.compile(r"^-*>\s*\d+\s(.*)$")


def _failing_line(traceback: Sequence[str] | None, source: str, limit: int = 80) -> str:
    """The notebook line that raised: IPython's ``---->`` line of the cell's frame, else the cell's first line."""
    code = ""
    for entry in traceback or ():
        text = _ANSI.sub("", str(entry))
        if text.startswith("Cell In"):
            hits = [m.group(1).strip() for m in map(_ARROW.match, text.splitlines()) if m]
            if hits:
                code = hits[0]
                break
    if not code:
        lines = [ln.strip() for ln in str(source).splitlines() if ln.strip() and not ln.strip().startswith("#")]
        code = lines[0] if lines else ""
    return code if len(code) <= limit else code[:limit - 3] + "..."


def run_notebook(path: str | Path, profile: str, *, output_root: str | Path | None = None,
                 data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                 kernel_name: str = KERNEL_NAME, timeout: float | None = None,
                 progress: bool = False, weights: str | None = None) -> NotebookRun:
    """Execute one notebook with papermill under ``profile``; write ``<output_root>/<profile>/<name>/``.

    The executed notebook goes to ``<name>.ipynb`` in that folder; the
    notebook itself writes its figures, panels and metadata.json there; the
    runner adds a ``runner`` entry (wall time, kernel, injected parameters) to
    metadata.json, or writes a minimal one if the notebook did not.
    ``weights`` (e.g. "hed-vgg16" for the paper profile offline) replaces the
    profile's VGG weights in notebooks that declare a ``weights`` parameter.

    The folder's ``run_status.json`` (report.RUN_STATUS_FILE) says "running" while
    it runs, then "ok" or "failed" with the error, so ``photostyle report`` never
    shows the figures of an earlier run as this one's.

    Raises
    ------
    PhotostyleError
        The output folder cannot be made (a file in its place), a cell failed (naming the
        notebook, the cell and its error), the kernel could not start, or the parameters are wrong
        (also: papermill missing, or no ``parameters`` cell).
    """
    papermill = require_extra("papermill", "notebooks", "running the notebooks")
    from papermill.exceptions import PapermillException, PapermillExecutionError

    src = Path(path)
    name = src.stem
    root = path_from_cwd(output_root, results_dir())
    out_dir = root / profile / name
    cache = path_from_cwd(cache_dir, root / "cache")
    data = resolve_data_dir(data_dir)
    declared = declared_parameters(src)
    params = profile_parameters(profile, name, declared)
    if weights is not None and "weights" in declared:
        params["weights"] = weights
    runner_values = {"profile": profile, "notebook": name, "data_dir": str(data), "output_dir": str(out_dir),
                     "cache_dir": str(cache)}
    params.update({k: v for k, v in runner_values.items() if k in declared})
    check_folder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / f"{name}.ipynb"
    status = out_dir / RUN_STATUS_FILE
    write_json({"status": "running", "time": base_metadata()["created"]}, status)  # killed: stays "running"
    t0 = time.perf_counter()
    try:
        # The kernel's own log (a TCP-transport warning at start, an interrupt notice at
        # shutdown) would break the one-line output; cell errors come through papermill.
        # The kernel computes on the cores there are, its idle OpenMP threads asleep (executors.child_threads).
        with child_threads(available_cores()):
            papermill.execute_notebook(str(src), str(executed), parameters=params, kernel_name=kernel_name,
                                       progress_bar=progress, cwd=str(src.parent), execution_timeout=timeout,
                                       extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
    except PapermillExecutionError as exc:
        code = _failing_line(exc.traceback, exc.source)
        raise _failed(status, f"notebook {name} failed in cell [{exc.exec_count}] `{code}`: {exc.ename}: "
                              f"{_one_line(exc.evalue)} (executed notebook with the traceback: {executed})") from None
    except (PapermillException, RuntimeError, TimeoutError, KeyError) as exc:
        raise _failed(status, f"notebook {name} could not be run: {type(exc).__name__}: {_one_line(exc)} "
                              f"(partial output: {executed})") from None
    seconds = time.perf_counter() - t0
    meta_path = out_dir / "metadata.json"
    md = json.loads(meta_path.read_text()) if meta_path.exists() else {
        **base_metadata(), "notebook": name, "profile": profile, "parameters": params,
        "random_weights": str(params.get("weights", "")).startswith("random"), "figures": []}
    md["runner"] = {"profile": profile, "kernel": kernel_name, "executed_notebook": executed.name,
                    "wall_seconds": seconds, "injected_parameters": params}
    write_json(md, meta_path)
    write_json({"status": "ok", "time": base_metadata()["created"], "wall_seconds": seconds}, status)
    return NotebookRun(name, src, executed, out_dir, seconds, tuple(f["file"] for f in md.get("figures", [])))


def _failed(status: Path, message: str) -> PhotostyleError:
    """Record a failed run in the notebook folder's status file (the report shows it); the error to raise."""
    write_json({"status": "failed", "error": message, "time": base_metadata()["created"]}, status)
    return PhotostyleError(message)


def run_suite(profile: str, *, only: Sequence[str] | None = None, data_dir: str | Path | None = None,
              output_dir: str | Path | None = None, cache_dir: str | Path | None = None,
              notebooks_dir: str | Path | None = None, timeout: float | None = None, progress: bool = False,
              echo: Callable[[str], None] | None = None, weights: str | None = None,
              figure_format: str | None = None, dpi: int | None = None) -> list[NotebookRun]:
    """Run the notebooks (all, or those named by ``only``) under ``profile``; stop at the first failure.

    Parameters
    ----------
    profile : str
        A key of PROFILES ("ci", "paper").
    only : sequence of str, optional
        Notebooks to run (:func:`select_notebooks`: "01_ablation", "01" or "ablation").
    data_dir : path, optional
        The Luan et al. set (None: ``$PHOTOSTYLE_DATA`` or data/luan2017).
    output_dir : path, optional
        Results root (None: ``results/`` in the current directory; relative: to it).
    cache_dir : path, optional
        The run cache (None: ``<output_dir>/cache``).
    notebooks_dir : path, optional
        Folder of the notebooks (None: :data:`NOTEBOOKS_DIR`).
    timeout : float, optional
        Seconds allowed per cell.
    progress : bool
        Papermill's per-cell progress bar.
    echo : callable, optional
        Receives one line per notebook (e.g. ``print``).
    weights : str, optional
        Replaces the profile's VGG weights (:func:`run_notebook`).
    figure_format, dpi : optional
        "png", "pdf" or "svg" and dots per inch of every figure the notebooks save
        (passed to their kernels as :data:`FIGURE_FORMAT_ENV` / :data:`FIGURE_DPI_ENV`).

    Returns
    -------
    list of NotebookRun
        In suite order; ``<output_dir>/<profile>/suite.json`` lists them (seconds, figures).

    Raises
    ------
    PhotostyleError
        An unknown profile or notebook name, no notebooks, a bad figure format
        or dpi, a timeout that is not a number of seconds > 0, an output folder that is a
        file, a missing kernel, or a failing cell (:func:`run_notebook`).
    """
    if profile not in PROFILES:
        raise PhotostyleError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    notebooks = select_notebooks(discover_notebooks(notebooks_dir), only)
    if not notebooks:
        raise PhotostyleError(f"no NN_*.ipynb notebooks in {path_from_cwd(notebooks_dir, NOTEBOOKS_DIR)}; "
                              "give the folder that holds them with --notebooks-dir")
    saved = {k: os.environ.get(k) for k in (FIGURE_FORMAT_ENV, FIGURE_DPI_ENV)}
    if figure_format is not None:
        os.environ[FIGURE_FORMAT_ENV] = str(figure_format)
    if dpi is not None:
        os.environ[FIGURE_DPI_ENV] = str(dpi)
    try:
        figure_options()  # one clear line for a bad format or dpi, before any notebook starts
        root = path_from_cwd(output_dir, results_dir())
        check_folder(root / profile)  # --output-dir FILE: one line before any notebook starts
        if timeout is not None and not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            raise PhotostyleError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        data = resolve_data_dir(data_dir)
        ensure_kernel()
        done, t0 = _run_all(notebooks, profile, root, data, cache_dir, timeout, progress, weights, echo)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    write_json({**base_metadata(), "profile": profile, "seconds": time.perf_counter() - t0,
                "notebooks": [{"name": r.name, "seconds": r.seconds, "directory": str(r.directory),
                               "figures": list(r.figures)} for r in done]},
               root / profile / "suite.json")
    return done


def _run_all(notebooks: Sequence[Path], profile: str, root: Path, data: Path, cache_dir: str | Path | None,
             timeout: float | None, progress: bool, weights: str | None,
             echo: Callable[[str], None] | None) -> tuple[list[NotebookRun], float]:
    """:func:`run_suite`'s loop: the notebooks one after another; returns the runs and the start time."""
    done: list[NotebookRun] = []
    t0 = time.perf_counter()
    for i, nb in enumerate(notebooks, 1):
        run = run_notebook(nb, profile, output_root=root, data_dir=data, cache_dir=cache_dir, timeout=timeout,
                           progress=progress, weights=weights)
        done.append(run)
        if echo is not None:
            echo(f"[{i}/{len(notebooks)}] {run.name}: {run.seconds:.1f} s -> {run.directory} "
                 f"({', '.join(run.figures) or 'no figures'})")
    return done, t0


def suite_warnings(runs: Iterable[NotebookRun]) -> list[str]:
    """The distinct weights banners of the figures the notebooks wrote (their metadata.json), in order."""
    found: list[str] = []
    for r in runs:
        meta = r.directory / "metadata.json"
        md = json.loads(meta.read_text()) if meta.exists() else {}
        for fig in md.get("figures", []):
            w = fig.get("weights_warning")
            if w and w not in found:
                found.append(w)
    return found
