"""Schedules of runs: Luan et al.'s two stages, the coarse-to-fine pyramid, and the plateau stop.

A schedule is a sequence of single-level runs of one function, ``run``, with the signature
and the meaning of :func:`photostyle_lib.engine.transfer.stylize` (which passes itself):
the schedule decides the sizes, the budgets and where each run starts, and joins their
results into one :class:`~photostyle_lib.engine.config.TransferResult`. Taking ``run`` as an
argument keeps this module below the one that defines ``stylize``.

* :func:`two_stage`: Luan et al.'s schedule (``two_stage=True`` with the regularisation): a
  run without the regularisation, then one with it from that result.
* :func:`coarse_to_fine`: this project's (``pyramid_levels > 1``), octaves from coarse to
  full size (:func:`pyramid_sizes`); not in the paper, nor in Luan et al.'s code.
* :func:`plateaued`: the stop on a plateau of the best loss (``plateau_window > 0``),
  checked after every evaluation by :mod:`photostyle_lib.engine.optimise`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import pandas as pd
import torch

from photostyle_lib.checks import check_int
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.features.vgg import VGGFeatures
from photostyle_lib.io.images import resize_tensor
from photostyle_lib.semantic.masks import SemanticMasks
from photostyle_lib.engine.config import STOPPED_BY_USER, TransferConfig, TransferResult
from photostyle_lib.engine.inputs import initial_image
from photostyle_lib.engine.postprocess_chain import apply_postprocess

#: The single-level run a schedule repeats: ``stylize``'s signature.
Run = Callable[..., TransferResult]


def plateaued(best_losses: list[float], window: int, tol: float) -> bool:
    """The plateau stop: has the best loss fallen by at most ``tol`` of itself over the last ``window`` evaluations?

    With ``b = best_losses`` the rule is ``b[-window-1] - b[-1] <= tol * |b[-window-1]|``: a
    relative change, so it does not depend on the loss's units (which change with the weights,
    the network and the image size). Not in the paper (its runs have a fixed count); rejected
    line-search trials count as evaluations.

    Parameters
    ----------
    best_losses : list of float
        ``best_losses[i]`` is the lowest loss of evaluations 1..i+1 (non-increasing).
    window : int >= 0
        W evaluations; 0 turns the stop off.
    tol : float >= 0
        Relative decrease that still counts as progress.

    Returns
    -------
    bool
        False while fewer than ``window + 1`` values are known.
    """
    if window <= 0 or len(best_losses) <= window:
        return False
    before, now = best_losses[-window - 1], best_losses[-1]
    return before - now <= tol * abs(before)


def pyramid_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """(H, W) of each level of the coarse-to-fine schedule, coarsest first.

    Level k of L (k = 0 the coarsest) has the long side ``round(long / 2^(L-1-k))`` -- octaves
    from 1/2^(L-1) of the long side -- and the short side scaled by the same factor (rounded,
    at least 1); the last level is (height, width) itself.

    Parameters
    ----------
    height, width : int
        The full size, pixels.
    levels : int >= 1
        L.

    Returns
    -------
    list of (int, int)
        L sizes in pixels.

    Raises
    ------
    PhotostyleError
        When ``levels`` is not an integer >= 1.
    """
    check_int("pyramid_levels", levels, low=1)
    return [_scaled((height, width), 0.5 ** (levels - 1 - k)) for k in range(levels)]


def _scaled(size: tuple[int, ...], factor: float) -> tuple[int, int]:
    h, w = int(size[0]), int(size[1])
    if factor == 1.0:
        return h, w
    long_side = max(h, w)
    s = max(1, round(long_side * factor)) / long_side
    return max(1, round(h * s)), max(1, round(w * s))


def _shifted(fn: Callable[[int, Any], None] | None, offset: int) -> Callable[[int, Any], None] | None:
    """A callback that sees iterations numbered across levels (or stages): ``it + offset``."""
    return None if fn is None else (lambda it, value: fn(it + offset, value))


def _upsampled(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(1, 3, h, w) in [0, 1] -> (1, 3, H, W), bilinear (half-pixel centres), still in [0, 1]."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return torch.nn.functional.interpolate(image, size=size, mode="bilinear", align_corners=False).clamp_(0.0, 1.0)


def level_start(coarse_result: torch.Tensor, content: torch.Tensor, coarse_size: tuple[int, int],
                mode: str = "bilinear") -> torch.Tensor:
    """Where a coarse-to-fine level starts: the coarser level's result brought to this level's size.

    With ``U`` bilinear upsampling to this level's (H, W) and ``D`` the antialiased resize
    to the coarser level's size (the one that made the coarser level's content):

    * ``"bilinear"``: ``x0 = U(coarse_result)``;
    * ``"content_detail"``: ``x0 = U(coarse_result) + (content - U(D(content)))``, clamped to
      [0, 1]: the content's band above the coarser level's resolution (the detail layer of
      a Laplacian pyramid) added back, so the level starts as sharp as the content
      instead of as blurred as the upsampling, and spends its evaluations on the style.
      Where the coarse result equals ``D(content)`` (no style change) it gives
      ``content`` itself, up to the clamp.

    Not in the paper (one level) nor in Luan et al.'s code.

    Parameters
    ----------
    coarse_result : tensor (1, 3, h, w) float32 in [0, 1]
        The coarser level's kept image.
    content : tensor (1, 3, H, W) float32 in [0, 1]
        The content at this level's size.
    coarse_size : (int, int)
        (h, w), the coarser level's size in pixels.
    mode : str
        One of :data:`~photostyle_lib.engine.config.LEVEL_STARTS`.

    Returns
    -------
    tensor (1, 3, H, W) float32 in [0, 1]

    Raises
    ------
    PhotostyleError
        When ``mode`` is not one of LEVEL_STARTS.
    """
    size = tuple(content.shape[-2:])
    x = _upsampled(coarse_result, size)
    if mode == "bilinear":
        return x
    if mode != "content_detail":
        raise PhotostyleError(f"level_start must be one of bilinear, content_detail, got {mode!r}")
    detail = content - _upsampled(resize_tensor(content, coarse_size), size)
    return (x + detail).clamp_(0.0, 1.0)


def two_stage(run: Run, content: torch.Tensor, style: torch.Tensor, cfg: TransferConfig, *,
              masks: SemanticMasks | None, extractor: VGGFeatures | None, progress: bool,
              init: torch.Tensor | None, callback: Callable[[int, dict[str, float]], None] | None,
              image_callback: Callable[[int, torch.Tensor], None] | None) -> TransferResult:
    """Luan et al.'s schedule: ``iterations`` evaluations without the regularisation, then as many with it.

    The second stage starts from the first's kept image; iterations are numbered across both
    (callbacks too). A first stage ended by :class:`~photostyle_lib.engine.config.StopRun`
    runs no second stage: its image is post-processed and returned.

    Parameters
    ----------
    run : callable
        The single-level run (``stylize``).
    content, style : tensor (1, 3, H, W), (1, 3, Hs, Ws) float32 in [0, 1]
    cfg : TransferConfig
        With ``two_stage`` and ``use_regularization`` set.
    masks, extractor, progress, init, callback, image_callback
        As ``stylize``'s (masks already checked).

    Returns
    -------
    TransferResult
        The second stage's, its losses table with a ``stage`` column (1, 2), its timings the
        sums of both, ``config`` the two-stage config, and the note "stage 1 stopped: <reason>".
    """
    first = run(content, style, cfg.replace(use_regularization=False, two_stage=False, postprocess="none"),
                masks=masks, extractor=extractor, progress=progress, init=init, callback=callback,
                image_callback=image_callback)
    if first.stop_reason == STOPPED_BY_USER:
        return dataclasses.replace(first, image=apply_postprocess(first.raw_image, content.to("cpu"), cfg,
                                                                  style=style, masks=masks),
                                   losses=first.losses.assign(stage=1), config=cfg,
                                   notes=first.notes + ("stage 2 not run: stopped by user in stage 1",))
    offset = len(first.losses)
    second = run(content, style, cfg.replace(two_stage=False), masks=masks, extractor=extractor,
                 progress=progress, init=first.raw_image, callback=_shifted(callback, offset),
                 image_callback=_shifted(image_callback, offset))
    timings = {k: first.timings.get(k, 0.0) + second.timings.get(k, 0.0) for k in second.timings}
    timings["per_step"] = timings["optimise"] / max(offset + len(second.losses), 1)
    table = pd.concat([first.losses.assign(stage=1),
                       second.losses.assign(stage=2, iteration=second.losses["iteration"] + offset)],
                      ignore_index=True)
    return dataclasses.replace(second, losses=table, timings=timings, config=cfg,
                               best_iteration=second.best_iteration + offset,
                               notes=second.notes + (f"stage 1 stopped: {first.stop_reason}",))


def coarse_to_fine(run: Run, content: torch.Tensor, style: torch.Tensor, cfg: TransferConfig, *,
                   masks: SemanticMasks | None, extractor: VGGFeatures | None, progress: bool,
                   init: torch.Tensor | None, callback: Callable[[int, dict[str, float]], None] | None,
                   image_callback: Callable[[int, torch.Tensor], None] | None,
                   notes: tuple[str, ...] = ()) -> TransferResult:
    """The coarse-to-fine schedule: ``cfg.pyramid_levels`` octaves, each one single-level ``run``.

    Level k optimises the content and the style resized by the level's factor (``pyramid_sizes``;
    antialiased bilinear, ``images.resize_tensor``) with the masks area-averaged to those sizes,
    so the style targets, the layer masks and (with the regularisation) the matting Laplacian are
    built at that level. The coarsest level starts from the requested start (``init``, else
    ``cfg.init``'s image) downsampled; every later one from the previous level's kept image
    brought up by :func:`level_start` (``cfg.level_start``: upsampled bilinearly, or with the
    content's finer band added back). ``cfg.level_iterations[k]`` evaluations per level (default ``iterations``),
    each level with its own plateau and divergence stops. The post-process runs once, on the last
    level's image at full size.

    Parameters
    ----------
    run : callable
        The single-level run (``stylize``).
    content, style : tensor (1, 3, H, W), (1, 3, Hs, Ws) float32 in [0, 1]
    cfg : TransferConfig
        ``pyramid_levels``, ``level_iterations``, ``level_start``.
    masks, extractor, progress, init, callback, image_callback
        As ``stylize``'s (masks already checked).
    notes : tuple of str
        The notes of the input checks, kept first.

    Returns
    -------
    TransferResult
        Like ``stylize``'s: iterations numbered across levels (the losses table gains a
        ``level`` column, 1 = the coarsest; ``seconds`` count from the schedule's start), the
        best iteration that of the last level (losses at other sizes are not comparable), the
        last level's stop reason (earlier ones in ``notes``). A Ctrl-C in a coarse level skips
        the rest: the image kept so far is upsampled to full size and post-processed (stop
        reason "interrupted"). Callbacks see the full run's iteration numbers;
        ``image_callback`` images have the level's size.

    Raises
    ------
    PhotostyleError
        When the coarsest level would be below 16x16 px, or ``init``'s shape is not the content's.

    Notes
    -----
    Not in the paper (one level at full size), nor in Luan et al.'s code.
    """
    t_start = time.perf_counter()
    full = tuple(content.shape[-2:])
    levels = cfg.pyramid_levels
    budgets = cfg.level_iterations or (cfg.iterations,) * levels
    sizes, style_sizes = _level_sizes(full, tuple(style.shape[-2:]), levels)
    if init is not None and tuple(init.shape) != tuple(content.shape):
        raise PhotostyleError(f"init has shape {tuple(init.shape)} but content {tuple(content.shape)}")
    start = init if init is not None else initial_image(content, style, cfg, masks)
    x = resize_tensor(start.detach().to("cpu", torch.float32).clamp(0, 1), sizes[0])
    level_cfg = cfg.replace(pyramid_levels=1, level_iterations=None, postprocess="none")
    tables, results, offsets = [], [], []
    offset = 0
    for k, (size, style_size, budget) in enumerate(zip(sizes, style_sizes, budgets)):
        level_content = resize_tensor(content, size)
        if k:
            x = level_start(results[-1].raw_image, level_content.to("cpu", torch.float32), sizes[k - 1],
                            cfg.level_start)
        t_level = time.perf_counter() - t_start
        r = run(level_content, resize_tensor(style, style_size), level_cfg.replace(iterations=budget),
                masks=None if masks is None else masks.resized(size, style_size, "avg"), extractor=extractor,
                progress=progress, init=x, callback=_shifted(callback, offset),
                image_callback=_shifted(image_callback, offset))
        tables.append(r.losses.assign(iteration=r.losses["iteration"] + offset, level=k + 1,
                                      seconds=r.losses["seconds"] + t_level + r.timings["setup"]))
        results.append(r)
        offsets.append(offset)
        offset += len(r.losses)
        if r.stop_reason in ("interrupted", STOPPED_BY_USER):
            break
    last = results[-1]
    raw = _upsampled(last.raw_image, full)
    t_post = time.perf_counter()
    final = apply_postprocess(raw, content.to("cpu"), cfg, style=style, masks=masks)
    t_post = time.perf_counter() - t_post
    timings = _schedule_timings(results, t_post, t_start, offset)
    level_notes = [f"level {k + 1} ({h}x{w} px, {len(r.losses)} evaluations) stopped: {r.stop_reason}"
                   for k, (r, (h, w)) in enumerate(zip(results[:-1], sizes))]
    if len(results) < levels:
        level_notes.append(f"levels {len(results) + 1}-{levels} skipped: {last.stop_reason}")
    inner = [n for r in results for n in r.notes if n not in notes]
    return dataclasses.replace(last, image=final, raw_image=raw, losses=pd.concat(tables, ignore_index=True),
                               best_iteration=last.best_iteration + offsets[-1], timings=timings, config=cfg,
                               notes=tuple(notes) + tuple(dict.fromkeys(inner)) + tuple(level_notes))


def _level_sizes(full: tuple[int, int], style_hw: tuple[int, int],
                 levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(content sizes, style sizes) of :func:`coarse_to_fine`'s levels, coarsest first, (H, W) in px.

    The style is scaled by each level's factor of the content (its own size at the finest level).

    Raises
    ------
    PhotostyleError
        When the coarsest level would bring the content or the style below 16x16 px.
    """
    sizes = pyramid_sizes(*full, levels)
    style_sizes = [_scaled(style_hw, max(hw) / max(full)) if hw != full else style_hw for hw in sizes]
    for name, (h, w) in (("content", sizes[0]), ("style", style_sizes[0])):
        if min(h, w) < 16:
            raise PhotostyleError(f"pyramid_levels={levels} brings the {name} to {h}x{w} px at the coarsest level; "
                                  f"every level needs at least 16x16 px: use fewer levels or larger images")
    return sizes, style_sizes


def _schedule_timings(results: list[TransferResult], t_post: float, t_start: float,
                      evaluations: int) -> dict[str, float]:
    """The schedule's timings in seconds: the levels' setup and optimisation summed, the post-process,
    the total since ``t_start`` (a ``time.perf_counter`` value), per evaluation, and each level's optimisation."""
    timings = {key: sum(r.timings[key] for r in results) for key in ("setup", "optimise")}
    timings.update({"postprocess": t_post, "total": time.perf_counter() - t_start,
                    "per_step": timings["optimise"] / max(evaluations, 1)})
    timings.update({f"optimise_level{k + 1}": r.timings["optimise"] for k, r in enumerate(results)})
    return timings
