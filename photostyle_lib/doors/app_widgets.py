"""The interactive app's parts that hold no state: its choices, its widgets and their layout, captions.

:mod:`photostyle_lib.doors.app` builds the :class:`~photostyle_lib.doors.app.App` from
:func:`make_widgets` and :func:`arrange`; :func:`knob_caption` and :func:`png_bytes` draw
its strip of earlier runs.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from photostyle_lib.engine.config import STOPPED_BY_USER
from photostyle_lib.experiments import recipes
from photostyle_lib.experiments.runs import RunSpec
from photostyle_lib.experiments.settings import Settings
from photostyle_lib.io.images import as_image_array
from photostyle_lib.plots import figures

#: Post-process choices: label -> TransferConfig overrides.
POSTPROCESS_CHOICES: dict[str, dict[str, Any]] = {
    "recursive filter, \u03c3_r = 100/255 (paper's text)": {"postprocess": "recursive_filter",
                                                             "rf_sigma_r": recipes.SIGMA_R_TEXT},
    "recursive filter, \u03c3_r = 100 on [0, 1] (ablation)": {"postprocess": "recursive_filter",
                                                              "rf_sigma_r": recipes.SIGMA_R_PLAIN},
    "screened Poisson": {"postprocess": "screened_poisson"},
    "none": {"postprocess": "none"},
}
#: Short names of the post-process choices, for the strip's captions.
POSTPROCESS_SHORT = dict(zip(POSTPROCESS_CHOICES, ("RF \u03c3_r 100/255", "RF \u03c3_r 100", "Poisson", "no post")))
MASK_CHOICES = ("soft", "hard", "gold", "none")
#: How many earlier runs the comparison strip shows by default.
STRIP_SIZE = 6
#: Default: the live preview shows the optimised image every this many loss evaluations.
PREVIEW_EVERY = 5
#: Long side (px) of the strip's thumbnails.
THUMBNAIL_PX = 128

def round_knob(value: float, digits: int = 6) -> float:
    """Slider floats (0.30000000000000004, 10**7.000001) to ``digits`` significant digits: stable cache keys."""
    return float(f"{float(value):.{digits}g}")




def png_bytes(image: Any, *, max_size: int | None = None) -> bytes:
    """An image (tensor (1, 3, H, W) or array (H, W, 3) in [0, 1]) as PNG bytes (for widgets.Image).

    ``max_size``: shrink (never enlarge) so the long side is at most this many pixels (thumbnails).
    """
    arr = as_image_array("preview", image.detach().clamp(0, 1) if isinstance(image, torch.Tensor) else image)
    im = Image.fromarray(np.round(arr * 255.0).astype(np.uint8), "RGB")
    if max_size is not None and max(im.size) > max_size:
        im.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()

def evaluations_of(spec: RunSpec) -> int:
    """Loss evaluations a run of ``spec`` makes at most: ``iterations``, twice for a two-stage config.

    stylize numbers the second stage's evaluations after the first's (its
    callbacks see iteration + the first stage's count), so one bar from 0 to
    this number covers both stages.
    """
    cfg = spec.config()
    return spec.iterations * (2 if cfg.two_stage and cfg.use_regularization else 1)


def knob_caption(values: dict[str, Any], stop_reason: str | None = None, evaluations: int | None = None) -> str:
    """The strip's caption of one run: its knobs (theta_s only for soft masks), masks, post-process, stop.

    ``values``: as :meth:`App.values`. E.g. "α 1 · β 1e+07 · γ 3 · θs 0.2 | soft masks, RF σ_r 100/255".
    """
    knobs = [f"\u03b1 {values['alpha']:g}", f"\u03b2 {values['beta']:.3g}", f"\u03b3 {values['gamma']:g}"]
    if values["masks"] == "soft":
        knobs.append(f"\u03b8s {values['theta_s']:g}")
    text = (" \u00b7 ".join(knobs) + f" | {values['masks']} masks, "
            f"{POSTPROCESS_SHORT.get(values['postprocess'], values['postprocess'])}")
    if stop_reason == STOPPED_BY_USER:
        text += f" | stopped at {evaluations}" if evaluations is not None else " | stopped"
    return text


@dataclass(frozen=True)
class StripEntry:
    """One earlier run in the comparison strip.

    Attributes
    ----------
    key
        the run's cache key.
    values
        the widgets' values it ran with (:meth:`App.values`).
    caption
        :func:`knob_caption` of them.
    stop_reason
        the run's stop reason ("iterations", "stopped by user", ...).
    thumbnail
        the result as PNG bytes, long side at most :data:`THUMBNAIL_PX`.
    """

    key: str
    values: dict[str, Any]
    caption: str
    stop_reason: str | None
    thumbnail: bytes = field(repr=False)


def banner_html(weights_warning: str | None) -> str:
    """The app's banner line: a weights warning in red, bold; the original VGG-19's note in plain
    bold; empty for torchvision's network (the paper's)."""
    if not weights_warning:
        return ""
    colour = f" style='color:{figures.WARNING_COLOUR}'" if figures.is_caution(weights_warning) else ""
    return f"<b{colour}>{html.escape(weights_warning)}</b>"



def make_widgets(W: Any, settings: Settings, pairs: list[int], pair_id: int, knobs: dict[str, Any]) -> dict[str, Any]:
    """The app's widgets by name (see ``App.widgets``), at ``knobs``' values.

    ``W``: the ipywidgets module; ``knobs``: ``alpha``, ``beta``, ``gamma``, ``theta_s`` (in (0, 1]),
    ``masks`` (one of :data:`MASK_CHOICES`) and ``postprocess`` (a key of :data:`POSTPROCESS_CHOICES`).
    """
    style = {"description_width": "150px"}
    layout = W.Layout(width="460px")
    return {
        "pair": W.Dropdown(options=[(f"pair {p}", p) for p in pairs], value=pair_id, description="example",
                           style=style, layout=layout),
        "alpha": W.FloatSlider(value=knobs["alpha"], min=0.0, max=20.0, step=0.1, description="alpha (content)",
                               style=style, layout=layout),
        "beta": W.FloatLogSlider(value=knobs["beta"], base=10, min=0, max=10, step=0.1, description="beta (style)",
                                 readout_format=".2e", style=style, layout=layout),
        "gamma": W.FloatSlider(value=knobs["gamma"], min=0.0, max=20.0, step=0.1, description="gamma (similarity)",
                               style=style, layout=layout),
        "theta_s": W.FloatSlider(value=knobs["theta_s"], min=0.01, max=1.0, step=0.01,
                                 description="theta_s (soft cutoff)", style=style, layout=layout),
        "masks": W.ToggleButtons(options=list(MASK_CHOICES), value=knobs["masks"], description="masks", style=style),
        "postprocess": W.Dropdown(options=list(POSTPROCESS_CHOICES), value=knobs["postprocess"],
                                  description="post-process", style=style, layout=layout),
        "size": W.BoundedIntText(value=settings.size, min=32, max=2048, description="size (px)", style=style),
        "iterations": W.BoundedIntText(value=settings.iterations, min=1, max=5000, description="iterations",
                                       style=style),
        "run": W.Button(description="Run", icon="play", button_style="primary"),
        "stop": W.Button(description="Stop", icon="stop", button_style="danger", disabled=True,
                         tooltip="end the run now, keeping its best image (not cached as finished)"),
        "progress": W.IntProgress(value=0, min=0, max=settings.iterations, description=""),
        "status": W.HTML(value="press Run"),
        "banner": W.HTML(value=banner_html(settings.weights_warning)),
        "content": W.Image(format="png", layout=W.Layout(max_width="320px")),
        "style": W.Image(format="png", layout=W.Layout(max_width="320px")),
        "result": W.Image(format="png", layout=W.Layout(max_width="320px")),
        "save_path": W.Text(value=str(settings.out / "interactive_result.png"), description="save as",
                            style={"description_width": "60px"}, layout=W.Layout(width="460px")),
        "overwrite": W.Checkbox(value=False, description="overwrite", indent=False),
        "save": W.Button(description="Save", icon="save", tooltip="the result (PNG) and its metadata (PNG.json)"),
        "strip": W.HBox([], layout=W.Layout(flex_flow="row wrap")),
    }


def arrange(W: Any, w: dict[str, Any], output: Any) -> Any:
    """The app's layout: banner, controls, the before / after view, saving, the strip, the output area."""
    def column(title: str, image: Any) -> Any:
        return W.VBox([W.HTML(f"<b>{title}</b>"), image])

    controls = W.VBox([w["pair"], w["alpha"], w["beta"], w["gamma"], w["theta_s"], w["masks"], w["postprocess"],
                       W.HBox([w["size"], w["iterations"]]),
                       W.HBox([w["run"], w["stop"], w["progress"], w["status"]])])
    view = W.HBox([column("Before (content)", w["content"]), column("Style", w["style"]),
                   column("After (result; live while it runs)", w["result"])])
    saving = W.HBox([w["save_path"], w["overwrite"], w["save"]])
    return W.VBox([w["banner"], controls, view, saving, W.HTML("<b>Earlier runs</b> (newest first)"),
                   w["strip"], output])
