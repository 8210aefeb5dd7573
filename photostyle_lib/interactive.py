"""The interactive notebook's app: pick a pair, move the paper's knobs, run, compare.

:func:`build_app` returns an :class:`App`: ipywidgets for the pair, alpha,
beta (log scale), gamma, theta_s, the mask mode (gold / hard / soft / none)
and the post-process, a Run button with a progress bar, a status line, an
output area, and a before / after view (content, style, result). Runs go
through :func:`photostyle_lib.runs.run_cached` with the same cache as the
notebook suite, so moving a slider back to a setting already run shows its
result at once, and the defaults reuse the suite's ``full`` runs.

Everything works without a browser: tests build the app, set the widgets'
``value``, call ``app.widgets["run"].click()`` (or ``app.run()``) and read
``app.record`` / ``app.output.outputs``. A setting that cannot run (alpha and
gamma both 0, gold masks for a pair without them, a cutoff that leaves no
label, ...) writes one line to the output area and the status line instead
of raising.

Defaults are small (160 px, 50 iterations) so a CPU gives a result in about
a minute; the sliders start at the paper's values (alpha 1, beta 1e7,
gamma 3, theta_s 0.2).
"""

from __future__ import annotations

import html
import io
import os
import time
from typing import Any

import numpy as np
from PIL import Image

from photostyle_lib import experiments, figures
from photostyle_lib.data import get_pair, list_pairs
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.presets import PRESETS, get_preset
from photostyle_lib.runs import RunRecord, RunSpec, run_cached

#: Post-process choices: label -> TransferConfig overrides.
POSTPROCESS_CHOICES: dict[str, dict[str, Any]] = {
    "recursive filter, \u03c3_r = 100/255 (paper's text)": {"postprocess": "recursive_filter",
                                                             "rf_sigma_r": experiments.SIGMA_R_TEXT},
    "recursive filter, \u03c3_r = 100 on [0, 1] (ablation)": {"postprocess": "recursive_filter",
                                                              "rf_sigma_r": experiments.SIGMA_R_PLAIN},
    "screened Poisson": {"postprocess": "screened_poisson"},
    "none": {"postprocess": "none"},
}
MASK_CHOICES = ("soft", "hard", "gold", "none")
#: Stages of a run shown by the progress bar.
_STAGES = ("checking the settings", "running (loading, masks, optimisation, post-process)", "done")


def _round(value: float, digits: int = 6) -> float:
    """Slider floats (0.30000000000000004, 10**7.000001) to ``digits`` significant digits: stable cache keys."""
    return float(f"{float(value):.{digits}g}")


def png_bytes(image: Any) -> bytes:
    """An image (tensor (1, 3, H, W) or array (H, W, 3) in [0, 1]) as PNG bytes (for widgets.Image)."""
    arr = figures.as_array(image)
    buf = io.BytesIO()
    Image.fromarray(np.round(arr * 255.0).astype(np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


class App:
    """The widgets, their layout and the run callback. Build it with :func:`build_app`.

    Attributes:
        settings: the experiments.Settings the app runs under (data, cache,
            weights, segmenter, device, output folder).
        widgets: by name -- "pair", "alpha", "beta", "gamma", "theta_s",
            "masks", "postprocess", "size", "iterations", "run", "progress",
            "status", "banner", "content", "style", "result".
        output: the output area (progress bars of a run; messages).
        container: the whole app, for display.
        record: the last successful run (None before the first).
        message: the last message shown for a setting that could not run (None after a success).
    """

    def __init__(self, settings: experiments.Settings, widgets: dict[str, Any], output: Any, container: Any) -> None:
        self.settings = settings
        self.widgets = widgets
        self.output = output
        self.container = container
        self.record: RunRecord | None = None
        self.message: str | None = None
        widgets["run"].on_click(lambda _button: self.run())
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
        return {"pair_id": int(w["pair"].value), "alpha": _round(w["alpha"].value), "beta": _round(w["beta"].value),
                "gamma": _round(w["gamma"].value), "theta_s": _round(w["theta_s"].value, 4),
                "masks": w["masks"].value, "postprocess": w["postprocess"].value,
                "size": int(w["size"].value), "iterations": int(w["iterations"].value)}

    def spec(self) -> RunSpec:
        """The run the widgets describe (the full model with their overrides, in canonical form).

        Raises:
            PhotostyleError: a combination that cannot give a meaningful run.
        """
        v = self.values()
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
        overrides = {"content_weight": v["alpha"], "style_weight": v["beta"], "similarity_weight": v["gamma"],
                     **POSTPROCESS_CHOICES[v["postprocess"]]}
        if v["masks"] == "soft":
            overrides["theta_s"] = v["theta_s"]
        s = self.settings
        spec = RunSpec(v["pair_id"], "full", masks=v["masks"], size=v["size"], iterations=v["iterations"],
                       weights=s.weights, segmenter=s.segmenter, overrides=tuple(overrides.items()), seed=s.seed)
        return experiments.canonical_spec(spec)

    def _stage(self, i: int, detail: str = "") -> None:
        bar = self.widgets["progress"]
        bar.value = i
        bar.description = f"{i}/{len(_STAGES) - 1}"
        self.widgets["status"].value = html.escape(f"{_STAGES[i]}{detail}")

    def _iteration_callback(self, total: int):
        """Updates the status line every few loss evaluations while a run computes."""
        status = self.widgets["status"]
        step = max(1, total // 50)

        def update(iteration: int, terms: dict[str, float]) -> None:
            if iteration % step == 0 or iteration == total:
                status.value = html.escape(f"{_STAGES[1]}: iteration {iteration}/{total}, "
                                           f"loss {terms.get('total', float('nan')):.4g}")
        return update

    def _fail(self, message: str) -> None:
        self.message = message
        self.widgets["status"].value = (f"<span style='color:#b00020'><b>Cannot run:</b> "
                                        f"{html.escape(message)}</span>")
        self.output.append_stdout(f"Cannot run: {message}\n")

    def run(self) -> RunRecord | None:
        """Run the widgets' setting (from the cache when already computed) and show it.

        Returns the run's record, or None when the setting cannot run: then
        the reason is in :attr:`message`, the status line and the output area.
        """
        button = self.widgets["run"]
        button.disabled = True
        self.output.outputs = ()
        self.message = None
        t0 = time.perf_counter()
        error: PhotostyleError | None = None
        try:
            self._stage(0)
            spec = self.spec()
            self._stage(1, f": {spec.method}, masks {spec.mask_mode() or 'none'}, {spec.size} px, "
                           f"{spec.iterations} iterations")
            # The error is caught inside the block: an exception leaving an Output
            # context is drawn there as a traceback in a live kernel.
            with self.output:
                try:
                    record = run_cached(spec, cache_dir=self.settings.cache, data_dir=self.settings.data_dir,
                                        device=self.settings.device, progress=self.settings.progress,
                                        callback=self._iteration_callback(spec.iterations))
                except PhotostyleError as exc:
                    error = exc
        except PhotostyleError as exc:
            error = exc
        finally:
            button.disabled = False
        if error is not None:
            self._fail(str(error))
            self.widgets["progress"].value = 0
            return None
        self.record = record
        self.widgets["banner"].value = _banner_html(record.weights_warning)
        self.widgets["content"].value = png_bytes(record.content())
        self.widgets["style"].value = png_bytes(record.style())
        self.widgets["result"].value = png_bytes(record.image())
        elapsed = time.perf_counter() - t0
        stop = record.metadata.get("stop_reason")
        self._stage(2, f" in {elapsed:.1f} s (run {record.key}{', ' + stop if stop else ''})")
        return record

    def figure(self) -> experiments.FigureOutput:
        """The last run as a figure: content, style, before post-processing, result."""
        rec = self.record
        if rec is None:
            raise PhotostyleError("nothing to show yet: press Run first")
        label = f"pair {rec.spec.pair_id}"
        v = self.values()
        grid = figures.comparison_grid(
            "interactive", f"Interactive run ({label})",
            [(label, {"content": rec.content(), "style": rec.style(), "before": rec.raw_image(),
                      "result": rec.image()})],
            [("content", "Content (before)"), ("style", "Style"), ("before", "Before post-processing"),
             ("result", "Result (after)")],
            sources={(label, "before"): rec.key, (label, "result"): rec.key}, weights_warning=rec.weights_warning,
            notes=[f"alpha {v['alpha']:g}, beta {v['beta']:g}, gamma {v['gamma']:g}, theta_s {v['theta_s']:g}, "
                   f"masks {v['masks']}, post-process {v['postprocess']}"])
        return experiments.grid_output(grid, [rec], caption="The last run of the interactive notebook.")

    def save(self) -> Any:
        """Write the last run's figure, panels and metadata.json to the settings' output folder."""
        return experiments.save_outputs(self.settings, [self.figure()], extra={"widgets": self.values()})


def _banner_html(weights_warning: str | None) -> str:
    """The app's banner line: the weights warning in red, bold; empty for the paper's network."""
    if not weights_warning:
        return ""
    return f"<b style='color:{figures.WARNING_COLOUR}'>{html.escape(weights_warning)}</b>"


def build_app(data_dir: str | os.PathLike | None = None, *, pair_id: int | None = None, size: int = 160,
              iterations: int = 50, weights: str = "imagenet", segmenter: str | None = None, device: str = "auto",
              alpha: float | None = None, beta: float | None = None, gamma: float | None = None,
              theta_s: float | None = None,
              masks: str = "soft", postprocess: str | None = None, cache_dir: str | os.PathLike | None = None,
              output_dir: str | os.PathLike | None = None, profile: str = "custom", seed: int = 0,
              progress: bool = True, auto_run: bool = False) -> App:
    """Build the interactive app (widgets + callbacks); nothing runs unless ``auto_run``.

    Args:
        data_dir: the Luan et al. set (None: ``$PHOTOSTYLE_DATA`` or data/luan2017).
        pair_id: the pair selected first (default: the first available).
        size, iterations: initial image size (long side, px) and loss evaluations.
        weights: VGG weights (vgg.NAMED_WEIGHTS or a file: "imagenet"; "hed-vgg16", the trained
            stand-in; "random" for tests). With random or stand-in weights the app shows the
            banner above its controls (after each run: the run's own banner).
        segmenter: ADE20K segmenter for hard / soft masks (None: the default checkpoint;
            "random-tiny" for tests).
        device: "auto", "cpu", "cuda", ...
        alpha, beta, gamma, theta_s: initial slider values (None: the full preset's for the
            weights -- the paper's 1, 1e7, 3 and 0.2, or the network's from presets.NETWORK_WEIGHTS).
        masks: initial mask mode, "soft" (the paper's), "hard", "gold" or "none".
        postprocess: initial post-process (a key of :data:`POSTPROCESS_CHOICES`;
            None: the recursive filter with the library's default sigma_r, 100/255).
        cache_dir, output_dir, profile: as :class:`experiments.Settings` (notebook "00_interactive").
        progress: show the runs' tqdm progress bars in the output area.
        auto_run: run once with the initial values and save the figure and metadata
            (what the notebook suite does).
    """
    import ipywidgets as W

    full = get_preset("full", weights=weights)  # the network's own loss weights (presets.NETWORK_WEIGHTS)
    alpha = full.content_weight if alpha is None else alpha
    beta = full.style_weight if beta is None else beta
    gamma = full.similarity_weight if gamma is None else gamma
    theta_s = full.theta_s if theta_s is None else theta_s
    settings = experiments.Settings("00_interactive", profile=profile, data_dir=None if data_dir is None else str(data_dir),
                                    output_dir=None if output_dir is None else str(output_dir),
                                    cache_dir=None if cache_dir is None else str(cache_dir),
                                    pair_ids=(pair_id if pair_id is not None else 1,), size=size,
                                    iterations=iterations, weights=weights, segmenter=segmenter, device=device,
                                    theta_s=theta_s, alpha=alpha, beta=beta, gamma=gamma, seed=seed,
                                    progress=progress)
    pairs = list_pairs(settings.data_dir)
    if not pairs:
        raise PhotostyleError(f"no pairs found in {settings.data_dir}")
    pair_id = pairs[0] if pair_id is None else int(pair_id)
    if pair_id not in pairs:
        raise PhotostyleError(f"pair {pair_id} is not in {settings.data_dir} (available: {pairs[0]}..{pairs[-1]})")
    if masks not in MASK_CHOICES:
        raise PhotostyleError(f"masks must be one of {', '.join(MASK_CHOICES)}, got {masks!r}")
    postprocess = postprocess or next(iter(POSTPROCESS_CHOICES))
    if postprocess not in POSTPROCESS_CHOICES:
        raise PhotostyleError(f"postprocess must be one of {', '.join(map(repr, POSTPROCESS_CHOICES))}, "
                              f"got {postprocess!r}")
    style = {"description_width": "150px"}
    layout = W.Layout(width="460px")
    w: dict[str, Any] = {
        "pair": W.Dropdown(options=[(f"pair {p}", p) for p in pairs], value=pair_id, description="example",
                           style=style, layout=layout),
        "alpha": W.FloatSlider(value=alpha, min=0.0, max=20.0, step=0.1, description="alpha (content)",
                               style=style, layout=layout),
        "beta": W.FloatLogSlider(value=beta, base=10, min=0, max=10, step=0.1, description="beta (style)",
                                 readout_format=".2e", style=style, layout=layout),
        "gamma": W.FloatSlider(value=gamma, min=0.0, max=20.0, step=0.1, description="gamma (similarity)",
                               style=style, layout=layout),
        "theta_s": W.FloatSlider(value=theta_s, min=0.01, max=1.0, step=0.01, description="theta_s (soft cutoff)",
                                 style=style, layout=layout),
        "masks": W.ToggleButtons(options=list(MASK_CHOICES), value=masks, description="masks", style=style),
        "postprocess": W.Dropdown(options=list(POSTPROCESS_CHOICES), value=postprocess, description="post-process",
                                  style=style, layout=layout),
        "size": W.BoundedIntText(value=settings.size, min=32, max=2048, description="size (px)", style=style),
        "iterations": W.BoundedIntText(value=settings.iterations, min=1, max=5000, description="iterations",
                                       style=style),
        "run": W.Button(description="Run", icon="play", button_style="primary"),
        "progress": W.IntProgress(value=0, min=0, max=len(_STAGES) - 1, description=""),
        "status": W.HTML(value="press Run"),
        "banner": W.HTML(value=_banner_html(settings.weights_warning)),
        "content": W.Image(format="png", layout=W.Layout(max_width="320px")),
        "style": W.Image(format="png", layout=W.Layout(max_width="320px")),
        "result": W.Image(format="png", layout=W.Layout(max_width="320px")),
    }
    output = W.Output()

    def column(title: str, image: Any) -> Any:
        return W.VBox([W.HTML(f"<b>{title}</b>"), image])

    controls = W.VBox([w["pair"], w["alpha"], w["beta"], w["gamma"], w["theta_s"], w["masks"], w["postprocess"],
                       W.HBox([w["size"], w["iterations"]]), W.HBox([w["run"], w["progress"], w["status"]])])
    view = W.HBox([column("Before (content)", w["content"]), column("Style", w["style"]),
                   column("After (result)", w["result"])])
    container = W.VBox([w["banner"], controls, view, output])
    app = App(settings, w, output, container)
    if auto_run:
        if app.run() is None:
            raise PhotostyleError(f"the initial settings cannot run: {app.message}")
        app.save()
    return app
