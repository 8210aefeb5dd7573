"""The optimisation loop: eq. (10) minimised over the output image, with its records and stops.

:func:`optimise` runs the config's optimiser (:data:`~photostyle_lib.engine.config.OPTIMIZERS`)
on an :class:`~photostyle_lib.engine.objective.Objective` from a starting image. One
iteration is one loss evaluation, as the paper's code counts (rejected line-search trials
included). Every evaluation is recorded (a row of the losses table), shown to the
callbacks, and checked:

* divergence guard: the paper reports that "the loss will suddenly increase to a huge
  value" on some images and cut their iteration counts by hand. Here a NaN/inf loss, or a
  loss above ``divergence_factor`` times the best seen for ``divergence_patience``
  evaluations in a row, ends the run ("diverged: ...");
* the budget: ``iterations`` evaluations ("iterations");
* the plateau stop, when ``plateau_window > 0`` ("plateau",
  :func:`photostyle_lib.engine.schedule.plateaued`);
* a :class:`~photostyle_lib.engine.config.StopRun` from a callback
  (:data:`~photostyle_lib.engine.config.STOPPED_BY_USER`), Ctrl-C ("interrupted"), and for
  the plain L-BFGS three steps in a row that made at most one evaluation ("converged").

The best iterate (lowest loss seen) is what the run keeps, whatever stopped it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import pandas as pd
import torch
from tqdm.auto import tqdm

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.engine.config import STOPPED_BY_USER, StopRun, TransferConfig
from photostyle_lib.engine.lbfgs import LBFGS, projected_lbfgs
from photostyle_lib.engine.objective import Objective
from photostyle_lib.engine.schedule import plateaued

#: Columns of ``TransferResult.losses`` (a term a run does not use reads 0).
LOSS_COLUMNS = ("iteration", "total", "content", "style", "similarity", "regularization", "tv", "seconds")


@dataclass(frozen=True)
class Optimised:
    """What :func:`optimise` returns.

    Attributes
    ----------
    best_image : tensor (1, 3, H, W) float32, on the run's device
        The iterate of the lowest loss seen, as evaluated: the projected optimiser keeps it
        in [0, 1], the others are clamped before each evaluation (``clamp_iterates`` with
        ``clamp_at="evaluation"``); with ``clamp_at="step"`` (clamped after each step) or
        without ``clamp_iterates`` the values may leave [0, 1], and the caller clamps the
        image it returns.
    best_iteration : int >= 1
        Its evaluation number.
    stop_reason : str
        See the module docstring.
    losses : pandas.DataFrame
        One row per evaluation, columns :data:`LOSS_COLUMNS`; seconds since the loop started.
    seconds : float
        Wall time of the loop.
    """

    best_image: torch.Tensor
    best_iteration: int
    stop_reason: str
    losses: pd.DataFrame
    seconds: float


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _NoGrad:
    """The optimiser interface the closure calls (zero_grad) for optimisers that live outside torch."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.params = params

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None


def make_optimizer(cfg: TransferConfig, x: torch.Tensor) -> torch.optim.Optimizer | _NoGrad:
    """The optimiser object for ``cfg.optimizer`` over the leaf ``x``.

    "lbfgs": torch.optim.LBFGS's algorithm at step ``lr``, 100 pairs, 20 iterations per
    step, no tolerance stops, its direction computed without waits for a GPU
    (:class:`~photostyle_lib.engine.lbfgs.LBFGS`); "adam": ``torch.optim.Adam`` at ``lr``;
    "projected_lbfgs": a stand-in whose only job is ``zero_grad`` (the optimiser is the
    function :func:`~photostyle_lib.engine.lbfgs.projected_lbfgs`).
    """
    if cfg.optimizer == "lbfgs":
        return LBFGS([x], lr=cfg.lr, max_iter=20, history_size=100, tolerance_grad=0.0, tolerance_change=0.0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam([x], lr=cfg.lr)
    return _NoGrad([x])


class _Evaluations:
    """The closure's state: the records, the best iterate and the guards (module docstring)."""

    def __init__(self, objective: Objective, x: torch.Tensor, cfg: TransferConfig, bar: tqdm,
                 callback: Callable[[int, dict[str, float]], None] | None,
                 image_callback: Callable[[int, torch.Tensor], None] | None) -> None:
        self.objective, self.x, self.cfg, self.bar = objective, x, cfg, bar
        self.callback, self.image_callback = callback, image_callback
        self.rows: list[dict[str, float]] = []
        self.bests: list[float] = []  # the best loss after each evaluation (plateau stop)
        self.high = 0  # consecutive evaluations far above the best (divergence guard)
        # the paper's code: x is clamped behind the optimiser's back (see the
        # "projected_lbfgs" optimizer for why that breaks L-BFGS's curvature pairs);
        # Luan et al.'s code leaves x unbounded (clamp_iterates=False)
        self.clamp = cfg.optimizer != "projected_lbfgs" and cfg.clamp_iterates and cfg.clamp_at == "evaluation"
        self.clamp_after_step = cfg.optimizer != "projected_lbfgs" and cfg.clamp_iterates and cfg.clamp_at == "step"
        self.best_loss, self.best_image, self.best_iteration = math.inf, x.detach().clone(), 0
        self.optimizer: torch.optim.Optimizer | _NoGrad | None = None
        self.t0 = time.perf_counter()

    def closure(self) -> torch.Tensor:
        """One evaluation: f(x) recorded and checked, then its gradient into ``x.grad``.

        Raises
        ------
        _Stop
            With the stop reason, when a guard, the budget or a callback ends the run.
        """
        cfg, x = self.cfg, self.x
        self.optimizer.zero_grad(set_to_none=True)
        if self.clamp:
            with torch.no_grad():
                x.clamp_(0.0, 1.0)
        total, terms = self.objective.evaluate(x)
        # all values in one transfer from the device (one wait on a GPU, not one per term)
        numbers = torch.stack([total.detach(), *(v.detach() for v in terms.values())]).tolist()
        value = numbers[0]
        it = len(self.rows) + 1
        row = {"iteration": it, "total": value, **dict(zip(terms, numbers[1:])),
               "seconds": time.perf_counter() - self.t0}
        self.rows.append(row)
        self.bar.update(1)
        if it % 10 == 0 or it == 1:
            self.bar.set_postfix(loss=f"{value:.4g}")
        stop_requested = False
        try:
            if self.callback is not None:
                self.callback(it, row)
            if self.image_callback is not None:
                self.image_callback(it, x.detach())
        except StopRun:
            stop_requested = True  # honoured below, once this evaluation has counted for the best image
        self._guard(value, it)
        if value < self.best_loss:
            self.best_loss, self.best_image, self.best_iteration = value, x.detach().clone(), it
        if stop_requested:
            raise _Stop(STOPPED_BY_USER)
        if cfg.plateau_window:
            self.bests.append(self.best_loss)
            if plateaued(self.bests, cfg.plateau_window, cfg.plateau_tol):
                raise _Stop("plateau")
        total.backward()
        if it >= cfg.iterations:
            raise _Stop("iterations")
        return total

    def _guard(self, value: float, it: int) -> None:
        """The divergence guard: raises _Stop("diverged: ...") on a non-finite loss or a long excursion."""
        cfg, best = self.cfg, self.best_loss
        if not math.isfinite(value):
            raise _Stop(f"diverged: loss became {value} at iteration {it}")
        if value > cfg.divergence_factor * best and best > 0:
            self.high += 1
            if self.high >= cfg.divergence_patience:
                raise _Stop(f"diverged: loss above {cfg.divergence_factor:.3g}x the best {best:.4g} for "
                            f"{self.high} evaluations (iteration {it}: {value:.4g})")
        else:
            self.high = 0


def optimise(objective: Objective, x: torch.Tensor, cfg: TransferConfig, *, progress: bool = True,
             callback: Callable[[int, dict[str, float]], None] | None = None,
             image_callback: Callable[[int, torch.Tensor], None] | None = None) -> Optimised:
    """Minimise ``objective`` over ``x`` with ``cfg.optimizer`` until a stop (module docstring).

    Parameters
    ----------
    objective : Objective
        Eq. (10) for this run (:func:`~photostyle_lib.engine.objective.build_objective`).
    x : tensor (1, 3, H, W) float32, contiguous leaf with ``requires_grad``
        The starting image (:func:`~photostyle_lib.engine.inputs.starting_image`); updated
        in place.
    cfg : TransferConfig
        ``optimizer``, ``lr``, ``lbfgs_history``, ``iterations``, the divergence and
        plateau settings.
    progress : bool
        Show a tqdm bar.
    callback : callable (iteration, row) or None
        Called after each evaluation with its row of the losses table.
    image_callback : callable (iteration, image) or None
        Called after each evaluation with the evaluated x, (1, 3, H, W) in [0, 1] (outside
        it only with ``clamp_iterates=False``) on the run's device: a view the optimiser goes on changing. Either callback may raise
        :class:`~photostyle_lib.engine.config.StopRun`.

    Returns
    -------
    Optimised

    Raises
    ------
    PhotostyleError
        When the first evaluation is not finite (nothing to keep).
    KeyboardInterrupt
        On Ctrl-C before the first evaluation finished; a later Ctrl-C ends the loop with
        stop reason "interrupted" instead.
    """
    bar = tqdm(total=cfg.iterations, desc="stylize", disable=not progress, leave=False)
    run = _Evaluations(objective, x, cfg, bar, callback, image_callback)
    run.optimizer = optimizer = make_optimizer(cfg, x)
    reason = "iterations"
    try:
        stalled = 0
        if cfg.optimizer == "projected_lbfgs":
            reason = projected_lbfgs(x, run.closure, history=cfg.lbfgs_history,
                                     line_search=cfg.line_search, curvature_cosine=cfg.curvature_cosine)
        while cfg.optimizer != "projected_lbfgs":
            before = len(run.rows)
            optimizer.step(run.closure)
            if run.clamp_after_step:  # the authors' final main.py: after each step, not each evaluation
                with torch.no_grad():
                    x.clamp_(0.0, 1.0)
            if cfg.optimizer == "lbfgs" and len(run.rows) - before <= 1:
                stalled += 1
                if stalled >= 3:
                    reason = "converged"
                    break
            else:
                stalled = 0
    except _Stop as stop:
        reason = stop.reason
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        bar.close()
    if run.clamp_after_step:  # their "last correction", also when a stop ends a step early
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
    seconds = time.perf_counter() - run.t0
    if run.best_iteration == 0:
        if reason == "interrupted":  # Ctrl-C before the first evaluation finished: nothing to return
            raise KeyboardInterrupt
        raise PhotostyleError("the first loss evaluation was not finite; check the inputs and the loss weights "
                              "(a weight of 1e30 overflows float32)")
    table = pd.DataFrame(run.rows, columns=list(LOSS_COLUMNS)).fillna(0.0)
    return Optimised(best_image=run.best_image, best_iteration=run.best_iteration, stop_reason=reason,
                     losses=table, seconds=seconds)
