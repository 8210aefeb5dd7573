"""The interactive notebook's app: pick a pair, move the paper's knobs, run, watch, stop, compare, save.

:func:`build_app` returns an :class:`App`: ipywidgets for the pair, alpha,
beta (log scale), gamma, theta_s, the mask mode (gold / hard / soft / none)
and the post-process; Run and Stop buttons, a progress bar over the run's
loss evaluations, a status line, an output area, a before / after view
(content, style, result) whose result shows the optimised image live every
few evaluations, a Save button (the result as PNG plus its metadata JSON),
and a strip of the last few runs with their knob values, side by side.
Runs go through :func:`photostyle_lib.experiments.runs.run_cached` with the same cache
as the notebook suite, so moving a slider back to a setting already run
shows its result at once, and the defaults reuse the suite's ``full`` runs.

Threads. Widget callbacks run in the kernel's thread: a run computed there
would hold the kernel, and a click on Stop would wait behind it. The Run
button therefore calls :meth:`App.start`, which runs :meth:`App.run` in a
background thread; Stop (:meth:`App.stop`) sets an event that the run's
per-evaluation callback turns into :class:`photostyle_lib.engine.config.StopRun`,
so the engine ends cleanly with the best image so far (stop reason
"stopped by user"). ``run_cached`` keeps such a run under
``interrupted/<key>``, never as a finished run: the same setting run again
computes in full.

Everything works without a browser: tests and headless runs (papermill,
``auto_run=True``) call :meth:`App.run` (synchronous, in the calling
thread), :meth:`App.stop` and :meth:`App.save` directly, or click the
buttons and :meth:`App.wait`, and read ``app.record`` / ``app.history`` /
``app.output.outputs``. A setting that cannot run (alpha and gamma both 0,
gold masks for a pair without them, a cutoff that leaves no label, ...)
writes one line to the output area and the status line instead of raising.

Defaults are small (160 px, 50 iterations) so a CPU gives a result in about
a minute; the sliders start at the paper's values (alpha 1, beta 1e7,
gamma 3, theta_s 0.2).
"""

from __future__ import annotations

import dataclasses
import html
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

import torch

from photostyle_lib.checks import check_int
from photostyle_lib.doors.app_widgets import (MASK_CHOICES, POSTPROCESS_CHOICES, PREVIEW_EVERY, STRIP_SIZE,
                                              THUMBNAIL_PX, StripEntry, arrange, banner_html, evaluations_of, knob_caption,
                                              make_widgets, png_bytes, round_knob)
from photostyle_lib.engine.config import STOPPED_BY_USER, StopRun
from photostyle_lib.engine.presets import get_preset
from photostyle_lib.errors import PhotostyleError, require_extra
from photostyle_lib.experiments import recipes
from photostyle_lib.experiments.runs import RunRecord, RunSpec, run_cached
from photostyle_lib.experiments.settings import Settings
from photostyle_lib.io.data import get_pair, list_pairs
from photostyle_lib.io.metadata import base_metadata
from photostyle_lib.io.results import write_result_files
from photostyle_lib.plots import figures
from photostyle_lib.semantic.cut import DEFAULT_THETA_S


class App:
    """The widgets, their layout and the buttons' methods. Build it with :func:`build_app`.

    Attributes
    ----------
    settings
        the Settings the app runs under (data, cache,
        weights, segmenter, device, output folder).
    widgets
        by name -- "pair", "alpha", "beta", "gamma", "theta_s",
        "masks", "postprocess", "size", "iterations", "run", "stop",
        "progress" (loss evaluations done / planned), "status", "banner",
        "content", "style", "result" (live during a run), "save_path",
        "overwrite", "save", "strip".
    output
        the output area (progress bars of a run in the kernel thread; messages).
    container
        the whole app, for display.
    record
        the last run (finished, or stopped by the user; None before the first).
    record_values
        the widgets' values that run used (the sliders may have moved since).
    message
        the last message shown for a setting that could not run (None after a success).
    history
        the strip's runs, newest first, at most ``strip_size``.
    background
        whether the Run button runs in a background thread (:meth:`start`).
    preview_every
        the live preview's period, in loss evaluations.
    preview_iteration
        the evaluation the "result" widget shows while a run computes
        (None once it shows a run's final result).
    """

    def __init__(self, settings: Settings, widgets: dict[str, Any], output: Any, container: Any, *,
                 background: bool = True, preview_every: int = PREVIEW_EVERY, strip_size: int = STRIP_SIZE) -> None:
        self.settings = settings
        self.widgets = widgets
        self.output = output
        self.container = container
        self.background = background
        self.preview_every = preview_every
        self.strip_size = strip_size
        self.record: RunRecord | None = None
        self.record_values: dict[str, Any] | None = None
        self.message: str | None = None
        self.history: list[StripEntry] = []
        self.preview_iteration: int | None = None
        self._stop = threading.Event()
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None
        widgets["run"].on_click(lambda _button: self.start())
        widgets["stop"].on_click(lambda _button: self.stop())
        widgets["save"].on_click(lambda _button: self._save_clicked())
        widgets["masks"].observe(lambda _change: self._sync_theta(), names="value")
        self._sync_theta()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.container._repr_mimebundle_(**kwargs)

    def _sync_theta(self) -> None:
        # theta_s only acts on soft masks; greying it out says so.
        self.widgets["theta_s"].disabled = self.widgets["masks"].value != "soft"

    def values(self) -> dict[str, Any]:
        """The widgets' current values (rounded as they enter the run)."""
        w = self.widgets
        return {"pair_id": int(w["pair"].value), "alpha": round_knob(w["alpha"].value), "beta": round_knob(w["beta"].value),
                "gamma": round_knob(w["gamma"].value), "theta_s": round_knob(w["theta_s"].value, 4),
                "masks": w["masks"].value, "postprocess": w["postprocess"].value,
                "size": int(w["size"].value), "iterations": int(w["iterations"].value)}

    def spec(self, values: dict[str, Any] | None = None) -> RunSpec:
        """The run ``values`` (default: the widgets') describe: the full model with their overrides, canonical.

        Parameters
        ----------
        values : dict, optional
            As :meth:`values` returns them (default: the widgets' current values).

        Returns
        -------
        RunSpec
            ``Settings.spec(pair, "full", masks, extra=post-process choice)`` of
            :meth:`settings_for`: the same canonical spec (and cache key) a
            notebook gets for the same parameters.

        Raises
        ------
        PhotostyleError
            A combination that cannot give a meaningful run (alpha and gamma both
            0, beta 0, gold masks for a pair without them, an unknown post-process).
        """
        v = self.values() if values is None else values
        if v["alpha"] == 0 and v["gamma"] == 0:
            raise PhotostyleError("alpha and gamma are both 0: nothing ties the result to the content; "
                                  "raise alpha (content) or gamma (similarity)")
        if v["beta"] <= 0:
            raise PhotostyleError("beta is 0: there is no style to transfer; raise beta")
        if v["masks"] == "gold":
            pair = get_pair(v["pair_id"], self.settings.data_dir)
            if pair.content_mask is None or pair.style_mask is None:
                raise PhotostyleError(f"pair {v['pair_id']} has no gold masks in the data directory; "
                                      "choose soft, hard or none")
        if v["postprocess"] not in POSTPROCESS_CHOICES:
            raise PhotostyleError(f"unknown post-process {v['postprocess']!r}; "
                                  f"choose one of {', '.join(POSTPROCESS_CHOICES)}")
        return self.settings_for(v).spec(v["pair_id"], "full", v["masks"],
                                         extra=POSTPROCESS_CHOICES[v["postprocess"]])

    def settings_for(self, values: dict[str, Any]) -> Settings:
        """The app's :class:`Settings` with the sliders' size, iterations, alpha, beta, gamma and theta_s.

        :meth:`spec` asks it for the run, so the app and the notebooks turn the
        paper's symbols into overrides in one place (``Settings.spec``, through
        :mod:`photostyle_lib.engine.symbols`).
        """
        return dataclasses.replace(self.settings, size=values["size"], iterations=values["iterations"],
                                   theta_s=values["theta_s"], alpha=values["alpha"], beta=values["beta"],
                                   gamma=values["gamma"])

    # ------------------------------------------------------------------ running

    @property
    def running(self) -> bool:
        """True while a run computes (in any thread)."""
        return self._busy.locked()

    def start(self) -> None:
        """What the Run button calls: :meth:`run` in a background thread (``background``), else in this one."""
        if not self.background:
            self.run()
            return
        if self.running or (self._thread is not None and self._thread.is_alive()):
            self._say("a run is in progress: press Stop, or wait for it")
            return
        self._thread = threading.Thread(target=self._run_guarded, name="photostyle-interactive-run", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> RunRecord | None:
        """Wait for the background run (if any) to end; return :attr:`record`."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.record

    def stop(self) -> bool:
        """What the Stop button calls: end the current run at its next loss evaluation.

        The run keeps its best image so far (stop reason "stopped by user")
        and is not cached as finished. Safe from any thread, including the
        run's own callbacks. Returns False when nothing runs.
        """
        if not self.running:
            return False
        self._stop.set()
        self.widgets["status"].value = html.escape("stopping at the next loss evaluation ...")
        return True

    def _run_guarded(self) -> None:
        # A background thread's exception would vanish: show it instead.
        try:
            self._run(capture=False)
        except Exception as exc:  # noqa: BLE001 -- anything a run raises is shown, not lost
            self._fail(f"the run failed ({type(exc).__name__}: {exc})")

    def run(self) -> RunRecord | None:
        """Run the widgets' setting in this thread (from the cache when already computed) and show it.

        Returns the run's record (a run ended by :meth:`stop` too: its
        ``metadata["stop_reason"]`` says so), or None when the setting cannot
        run: then the reason is in :attr:`message`, the status line and the output area.
        """
        return self._run(capture=True)

    def _run(self, *, capture: bool) -> RunRecord | None:
        if not self._busy.acquire(blocking=False):
            self._say("a run is in progress: press Stop, or wait for it")
            return None
        try:
            return self._run_locked(capture)
        finally:
            self._busy.release()
            self.widgets["run"].disabled = False
            self.widgets["stop"].disabled = True

    def _run_locked(self, capture: bool) -> RunRecord | None:
        w = self.widgets
        self._stop.clear()
        w["run"].disabled, w["stop"].disabled = True, False
        self.output.outputs = ()
        self.message = None
        t0 = time.perf_counter()
        values = self.values()  # read once: a slider moved during the run changes the next run
        try:
            w["status"].value = "checking the settings"
            spec = self.spec(values)
        except PhotostyleError as exc:
            self._fail(str(exc))
            return None
        total = evaluations_of(spec)
        bar = w["progress"]
        bar.max, bar.value, bar.bar_style, bar.description = total, 0, "", f"0/{total}"
        w["status"].value = html.escape(f"running: {spec.method}, masks {spec.mask_mode() or 'none'}, "
                                        f"{spec.size} px, {total} evaluations")
        record, error = self._compute(spec, total, capture)
        if error is not None:
            self._fail(str(error))
            return None
        self._show(record, values, time.perf_counter() - t0)
        return record

    def _compute(self, spec: RunSpec, total: int, capture: bool) -> tuple[RunRecord | None, Exception | None]:
        """run_cached with the progress / stop callback and the live preview; (record, None) or (None, error)."""
        s = self.settings
        kwargs = dict(cache_dir=s.cache, data_dir=s.data_dir, device=s.device,
                      callback=self._evaluation_callback(total), image_callback=self._preview_callback())
        try:
            if not capture:
                # An Output context captures only the kernel thread's output reliably: a
                # background run reports through the progress bar alone.
                return run_cached(spec, progress=False, **kwargs), None
            # The error is caught inside the block: an exception leaving an Output
            # context is drawn there as a traceback in a live kernel.
            with self.output:
                try:
                    return run_cached(spec, progress=s.progress, **kwargs), None
                except PhotostyleError as exc:
                    return None, exc
        except PhotostyleError as exc:
            return None, exc

    def _evaluation_callback(self, total: int) -> Callable[[int, dict[str, float]], None]:
        """Per evaluation: the progress bar, the status line (every ~2%), and the Stop button's request."""
        bar, status = self.widgets["progress"], self.widgets["status"]
        step = max(1, total // 50)

        def update(iteration: int, terms: dict[str, float]) -> None:
            bar.value = min(iteration, bar.max)
            bar.description = f"{iteration}/{total}"
            if iteration % step == 0 or iteration == total:
                status.value = html.escape(f"running: iteration {iteration}/{total}, "
                                           f"loss {terms.get('total', float('nan')):.4g}")
            if self._stop.is_set():
                raise StopRun
        return update

    def _preview_callback(self) -> Callable[[int, torch.Tensor], None]:
        """The live preview: the optimised image (before post-processing) every ``preview_every`` evaluations."""
        result, every = self.widgets["result"], self.preview_every

        def preview(iteration: int, image: torch.Tensor) -> None:
            if iteration == 1 or iteration % every == 0:
                self.preview_iteration = iteration
                result.value = png_bytes(image.to("cpu", torch.float32))
        return preview

    def _show(self, record: RunRecord, values: dict[str, Any], elapsed: float) -> None:
        """A run's images, banner, progress and status; its entry in the strip."""
        w = self.widgets
        self.record, self.record_values = record, values
        md = record.metadata
        w["banner"].value = banner_html(record.weights_warning)
        w["content"].value = png_bytes(record.content())
        w["style"].value = png_bytes(record.style())
        image = record.image()
        self.preview_iteration = None
        w["result"].value = png_bytes(image)
        bar = w["progress"]
        done = int(md.get("evaluations") or 0) if record.spec.uses_engine else bar.max
        bar.value = min(done, bar.max)
        bar.description = f"{done}/{bar.max}"
        stop = md.get("stop_reason")
        if stop == STOPPED_BY_USER:
            bar.bar_style = "warning"
            w["status"].value = html.escape(
                f"stopped by user after {done} of {bar.max} evaluations in {elapsed:.1f} s: the best image "
                f"(evaluation {md.get('best_iteration')}) is shown; kept in {record.directory}, "
                "not cached as a finished run")
        else:
            bar.bar_style = "success"
            w["status"].value = html.escape(f"done in {elapsed:.1f} s (run {record.key}{', ' + stop if stop else ''})")
        self._remember(StripEntry(record.key, values, knob_caption(values, stop, done), stop,
                                  png_bytes(image, max_size=THUMBNAIL_PX)))

    def _remember(self, entry: StripEntry) -> None:
        """Put ``entry`` first in the strip (the same run pressed twice stays one entry); redraw the strip."""
        W = require_extra("ipywidgets", "notebooks", "the interactive app")

        if self.history and self.history[0].key == entry.key and self.history[0].stop_reason == entry.stop_reason:
            self.history[0] = entry
        else:
            self.history.insert(0, entry)
        del self.history[self.strip_size:]
        self.widgets["strip"].children = tuple(
            W.VBox([W.Image(value=e.thumbnail, format="png", layout=W.Layout(max_width=f"{THUMBNAIL_PX}px")),
                    W.HTML(f"<small>{html.escape(e.caption)}</small>",
                           layout=W.Layout(width=f"{THUMBNAIL_PX + 32}px"))])
            for e in self.history)

    def _say(self, text: str) -> None:
        self.widgets["status"].value = html.escape(text)

    def _fail(self, message: str) -> None:
        self.message = message
        self.widgets["status"].value = (f"<span style='color:#b00020'><b>Cannot run:</b> "
                                        f"{html.escape(message)}</span>")
        self.output.append_stdout(f"Cannot run: {message}\n")
        self.widgets["progress"].value = 0

    # ------------------------------------------------------------------ figures and saving

    def figure(self) -> recipes.FigureOutput:
        """The last run as a figure: content, style, before post-processing, result.

        Returns
        -------
        recipes.FigureOutput
            The 1 x 4 comparison grid with the run's knob values as a note and its weights banner.

        Raises
        ------
        PhotostyleError
            If nothing has run yet (press Run first).
        """
        rec = self.record
        if rec is None:
            raise PhotostyleError("nothing to show yet: press Run first")
        label = f"pair {rec.spec.pair_id}"
        v = self.record_values or self.values()
        grid = figures.comparison_grid(
            "interactive", f"Interactive run ({label})",
            [(label, {"content": rec.content(), "style": rec.style(), "before": rec.raw_image(),
                      "result": rec.image()})],
            [("content", "Content (before)"), ("style", "Style"), ("before", "Before post-processing"),
             ("result", "Result (after)")],
            sources={(label, "before"): rec.key, (label, "result"): rec.key}, weights_warning=rec.weights_warning,
            notes=[f"alpha {v['alpha']:g}, beta {v['beta']:g}, gamma {v['gamma']:g}, theta_s {v['theta_s']:g}, "
                   f"masks {v['masks']}, post-process {v['postprocess']}"])
        return recipes.grid_output(grid, [rec], caption="The last run of the interactive notebook.")

    def save(self, path: str | os.PathLike | None = None, *, overwrite: bool = False) -> Path:
        """Save the last run; return the metadata file's path.

        ``path`` None: the before / after figure, its panels and metadata.json in
        the settings' output folder (what the notebook suite keeps).
        ``path`` given: the result image there (PNG; its text chunk carries the
        weights banner, images.weights_text) and its metadata in ``path + '.json'``
        (the run's provenance, the knob values, the image's sha256), as the
        CLI's ``transfer`` writes a result (``io.results.write_result_files``): both staged and
        renamed together; an existing file is refused unless ``overwrite``; a
        path that is one of the pair's input files is refused always.

        Parameters
        ----------
        path : str, os.PathLike or None
            Where the result image goes (must end in .png); None: the settings' output folder.
        overwrite : bool
            Replace an existing image / metadata file at ``path``.

        Returns
        -------
        Path
            The metadata file written (``path + '.json'``, or the folder's metadata.json).

        Raises
        ------
        PhotostyleError
            If nothing has run yet, ``path`` does not end in .png, ``path`` or its ``.json`` is
            one of the pair's input files, or either exists and ``overwrite`` is False.
        """
        rec = self.record
        if rec is None:
            raise PhotostyleError("nothing to save yet: press Run first")
        if path is None:
            return recipes.save_outputs(self.settings, [self.figure()],
                                            extra={"widgets": self.record_values or self.values()})
        out = Path(path).expanduser()
        if out.suffix.lower() != ".png":
            raise PhotostyleError(f"save path {out} must end in .png")
        pair = get_pair(rec.spec.pair_id, self.settings.data_dir)
        md = base_metadata()
        md.update({"widgets": self.record_values, "run_key": rec.key, "run_directory": str(rec.directory),
                   "cached_as_finished": rec.metadata.get("stop_reason") != STOPPED_BY_USER,
                   "stop_reason": rec.metadata.get("stop_reason"), "random_weights": rec.random_weights,
                   "run": rec.metadata})
        _, meta = write_result_files(rec.image(), out, md, weights_warning=rec.weights_warning, overwrite=overwrite,
                                     inputs={"content": pair.content, "style": pair.style,
                                             "content mask": pair.content_mask, "style mask": pair.style_mask},
                                     flag="overwrite (tick it, or save(..., overwrite=True))")
        return meta

    def _save_clicked(self) -> None:
        """The Save button: :meth:`save` to the path box; a refusal is a status line, not a traceback."""
        w = self.widgets
        try:
            meta = self.save(w["save_path"].value, overwrite=bool(w["overwrite"].value))
        except PhotostyleError as exc:
            self.message = str(exc)
            w["status"].value = f"<span style='color:#b00020'><b>Cannot save:</b> {html.escape(str(exc))}</span>"
            return
        banner = f" [{self.record.weights_warning}]" if self.record.weights_warning else ""
        self._say(f"saved {w['save_path'].value} and {meta.name}{banner}")


def build_app(data_dir: str | os.PathLike | None = None, *, pair_id: int | None = None, size: int = 160,
              iterations: int = 50, weights: str = "auto", segmenter: str | None = None, device: str = "auto",
              alpha: float | None = None, beta: float | None = None, gamma: float | None = None,
              theta_s: float | None = None,
              masks: str = "soft", postprocess: str | None = None, cache_dir: str | os.PathLike | None = None,
              output_dir: str | os.PathLike | None = None, profile: str = "custom", seed: int = 0,
              progress: bool = True, auto_run: bool = False, background: bool = True,
              preview_every: int = PREVIEW_EVERY, strip_size: int = STRIP_SIZE) -> App:
    """Build the interactive app (widgets + callbacks); nothing runs unless ``auto_run``.

    Parameters
    ----------
    data_dir : str, os.PathLike or None
        The Luan et al. set (None: ``$PHOTOSTYLE_DATA`` or data/luan2017).
    pair_id : int or None
        The pair selected first (default: the first available).
    size, iterations : int
        Initial image size (long side, px) and loss evaluations.
    weights : str
        VGG weights (vgg.NAMED_WEIGHTS or a file): "auto" (default: torchvision's VGG-19
        when cached or downloadable, else the original VGG-19 "imagenet-vgg19-caffe", which
        works offline); "hed-vgg16", the trained stand-in; "random" for tests. With any
        weights but torchvision's the app shows their banner above its controls (red for
        random or stand-in weights; after each run: the run's own banner).
    segmenter : str or None
        ADE20K segmenter for hard / soft masks (None: the default checkpoint;
        "random-tiny" for tests).
    device : str
        "auto", "cpu", "cuda", ...
    alpha, beta, gamma : float or None
        Initial slider values (None: the full preset's for the
        weights -- the paper's 1, 1e7, 3, or the network's from presets.NETWORK_WEIGHTS).
    theta_s : float or None
        The soft cutoff slider's initial value (None: the masks' default, 0.2); the run's
        mask request carries it (RunSpec override -> RunSpec.mask_request).
    masks : str
        Initial mask mode, "soft" (the paper's), "hard", "gold" or "none".
    postprocess : str or None
        Initial post-process (a key of :data:`POSTPROCESS_CHOICES`;
        None: the recursive filter with the library's default sigma_r, 100/255).
    cache_dir, output_dir, profile
        As :class:`Settings` (notebook "00_interactive").
    seed : int
        Random seed of the runs.
    progress : bool
        Show the runs' tqdm progress bars in the output area (runs in the kernel
        thread: :meth:`App.run`, ``auto_run``; a background run has the app's own bar).
    auto_run : bool
        Run once with the initial values, in this thread, and save the figure and
        metadata (what the notebook suite does).
    background : bool
        The Run button runs in a background thread, so Stop can be clicked
        (False: in the kernel thread, as :meth:`App.run`).
    preview_every : int
        The live preview's period, in loss evaluations (>= 1).
    strip_size : int
        How many earlier runs the strip shows (>= 1).

    Returns
    -------
    App
        The app; display it in a notebook.

    Raises
    ------
    PhotostyleError
        If ipywidgets (the ``[notebooks]`` extra) is missing, ``preview_every`` or ``strip_size``
        is < 1, the data folder holds no pairs, ``pair_id`` is not among them, or ``masks`` /
        ``postprocess`` is not one of its choices.
    """
    W = require_extra("ipywidgets", "notebooks", "the interactive app")
    preview_every = check_int("preview_every", preview_every, low=1)
    strip_size = check_int("strip_size", strip_size, low=1)
    knobs = _initial_knobs(weights, alpha=alpha, beta=beta, gamma=gamma, theta_s=theta_s, masks=masks,
                           postprocess=postprocess)
    settings = Settings("00_interactive", profile=profile, data_dir=None if data_dir is None else str(data_dir),
                        output_dir=None if output_dir is None else str(output_dir),
                        cache_dir=None if cache_dir is None else str(cache_dir),
                        pair_ids=(pair_id if pair_id is not None else 1,), size=size, iterations=iterations,
                        weights=weights, segmenter=segmenter, device=device, seed=seed, progress=progress,
                        theta_s=knobs["theta_s"], alpha=knobs["alpha"], beta=knobs["beta"], gamma=knobs["gamma"])
    pairs, pair_id = _pairs_and_first(settings, pair_id)
    w = make_widgets(W, settings, pairs, pair_id, knobs)
    output = W.Output()
    app = App(settings, w, output, arrange(W, w, output), background=background, preview_every=preview_every,
              strip_size=strip_size)
    if auto_run:
        if app.run() is None:
            raise PhotostyleError(f"the initial settings cannot run: {app.message}")
        app.save()
    return app


def _pairs_and_first(settings: Settings, pair_id: int | None) -> tuple[list[int], int]:
    """The data folder's pairs and the one selected first (``pair_id``, else the first); checked."""
    pairs = list_pairs(settings.data_dir)
    if not pairs:
        raise PhotostyleError(f"no pairs found in {settings.data_dir}")
    pair_id = pairs[0] if pair_id is None else int(pair_id)
    if pair_id not in pairs:
        raise PhotostyleError(f"pair {pair_id} is not in {settings.data_dir} (available: {pairs[0]}..{pairs[-1]})")
    return pairs, pair_id


def _initial_knobs(weights: str, *, alpha: float | None, beta: float | None, gamma: float | None,
                   theta_s: float | None, masks: str, postprocess: str | None) -> dict[str, Any]:
    """The sliders' first values: those given, else the full preset's for ``weights`` and the masks' theta_s."""
    full = get_preset("full", weights=weights)  # the network's own loss weights (presets.NETWORK_WEIGHTS)
    if masks not in MASK_CHOICES:
        raise PhotostyleError(f"masks must be one of {', '.join(MASK_CHOICES)}, got {masks!r}")
    postprocess = postprocess or next(iter(POSTPROCESS_CHOICES))
    if postprocess not in POSTPROCESS_CHOICES:
        raise PhotostyleError(f"postprocess must be one of {', '.join(map(repr, POSTPROCESS_CHOICES))}, "
                              f"got {postprocess!r}")
    return {"alpha": full.content_weight if alpha is None else alpha,
            "beta": full.style_weight if beta is None else beta,
            "gamma": full.similarity_weight if gamma is None else gamma,
            "theta_s": DEFAULT_THETA_S if theta_s is None else theta_s,  # a setting of the masks, not of the config
            "masks": masks, "postprocess": postprocess}
