"""L-BFGS without line search, with its two-loop recursion kept on the tensors' device.

The engine's optimiser is L-BFGS as ``torch.optim.LBFGS(line_search_fn=None)``
defines it (the paper's code used Torch7's ``optim.lbfgs``, of which that is a
port): fixed step ``lr`` (the first step of a run scaled by
``min(1, 1 / |g|_1)``), initial Hessian ``(s^T y / y^T y) I`` from the newest
pair, a pair stored only when ``s^T y > 1e-10``, up to ``history_size`` pairs,
``max_iter`` iterations per :meth:`LBFGS.step` and the same stopping tests.

What differs is where the scalars of the two-loop recursion live. torch's
version passes each ``alpha_i = rho_i s_i^T q`` to ``Tensor.add_`` as a Python
number, which on a GPU waits for the device twice per stored pair: with 100
pairs, 200 waits per step, about 12 ms on an H200 for a 700 px image, more than
the network's forward and backward. Here they stay 0-dim tensors on the device
(``addcmul_`` takes them as tensors), so a step waits for the device a fixed
handful of times whatever the history length. On the CPU both cost the same.
The arithmetic is the same operations in the same order (tests compare the
iterates with torch's: equal to rounding in float64 and float32).

Only one parameter group; parameters may be several tensors (flattened
together, as torch does), all on one device and of one dtype.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

import torch

from photostyle_lib.errors import PhotostyleError

#: A pair (s, y) is stored only when its curvature s^T y exceeds this (as torch's L-BFGS).
CURVATURE_MIN = 1e-10


class LBFGS(torch.optim.Optimizer):
    """L-BFGS with a fixed step, as ``torch.optim.LBFGS(line_search_fn=None)``, synchronising less.

    Parameters
    ----------
    params : iterable of tensors
        The unknowns (the engine: one (1, 3, H, W) image). One device, one dtype.
    lr : float > 0
        Step length (the first step of a run is scaled by ``min(1, 1 / |g|_1)``).
    max_iter : int >= 1
        Iterations (each one loss evaluation after the first) per :meth:`step`.
    max_eval : int, optional
        Loss evaluations per :meth:`step`; default ``max_iter * 5 // 4``.
    tolerance_grad : float >= 0
        Stop when ``max |g| <= tolerance_grad``.
    tolerance_change : float >= 0
        Stop when the directional derivative, the step or the loss change is this small.
    history_size : int >= 1
        Stored (s, y) pairs (the paper's code: 100).
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1.0, max_iter: int = 20,
                 max_eval: int | None = None, tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 history_size: int = 100) -> None:
        if not lr > 0:
            raise PhotostyleError(f"L-BFGS lr must be > 0, got {lr}")
        if int(max_iter) < 1 or int(history_size) < 1:
            raise PhotostyleError(f"L-BFGS max_iter and history_size must be >= 1, got {max_iter}, {history_size}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=float(lr), max_iter=int(max_iter), max_eval=int(max_eval),
                        tolerance_grad=float(tolerance_grad), tolerance_change=float(tolerance_change),
                        history_size=int(history_size))
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise PhotostyleError("LBFGS takes one parameter group")
        self._params: list[torch.Tensor] = self.param_groups[0]["params"]
        if len({(p.device, p.dtype) for p in self._params}) > 1:
            raise PhotostyleError("LBFGS parameters must share one device and one dtype")

    # ----------------------------------------------------------------- flat views
    def _flat_grad(self) -> torch.Tensor:
        parts = [torch.zeros(p.numel(), device=p.device, dtype=p.dtype) if p.grad is None
                 else p.grad.reshape(-1) for p in self._params]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _add_step(self, t: float, d: torch.Tensor) -> None:
        offset = 0
        with torch.no_grad():
            for p in self._params:
                n = p.numel()
                p.add_(d[offset:offset + n].view_as(p), alpha=t)
                offset += n

    # ----------------------------------------------------------------- the algorithm
    @staticmethod
    def _direction(g: torch.Tensor, history: deque, h_diag: torch.Tensor | float) -> torch.Tensor:
        """-H g by the two-loop recursion over ``history`` of (s, y, rho), oldest first; no host syncs."""
        q = g.neg()
        alphas = []
        for s, y, rho in reversed(history):
            a = s.dot(q) * rho
            q.addcmul_(y, a, value=-1.0)
            alphas.append(a)
        r = q.mul_(h_diag)
        for (s, y, rho), a in zip(history, reversed(alphas)):
            b = y.dot(r) * rho
            r.addcmul_(s, a - b)
        return r

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """Up to ``max_iter`` iterations; ``closure`` clears the gradients, evaluates, backpropagates, returns the loss."""
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tol_grad, tol_change, history_size = group["tolerance_grad"], group["tolerance_change"], group["history_size"]
        closure = torch.enable_grad()(closure)
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        first_loss = closure()
        loss = float(first_loss)
        evals = 1
        state["func_evals"] += 1
        g = self._flat_grad()
        if g.abs().max() <= tol_grad:
            return first_loss

        d, t = state.get("d"), state.get("t")
        history: deque = state.setdefault("history", deque(maxlen=history_size))
        h_diag = state.get("h_diag", 1.0)
        prev_g, prev_loss = state.get("prev_g"), state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = g.neg()
                history.clear()
                h_diag = 1.0
            else:
                y = g.sub(prev_g)
                s = d.mul(t)
                ys = y.dot(s)
                if ys > CURVATURE_MIN:  # one host sync per iteration
                    history.append((s, y, ys.reciprocal()))
                    h_diag = ys / y.dot(y)
                d = self._direction(g, history, h_diag)

            if prev_g is None:
                prev_g = g.clone(memory_format=torch.contiguous_format)
            else:
                prev_g.copy_(g)
            prev_loss = loss

            # the first step's scale in g's dtype, then as a Python number (as torch's)
            t = float(min(1.0, 1.0 / g.abs().sum()) * lr) if state["n_iter"] == 1 else lr
            if g.dot(d) > -tol_change:  # not a descent direction
                break

            self._add_step(t, d)
            grad_small = False
            if n_iter != max_iter:
                loss = float(closure())
                g = self._flat_grad()
                grad_small = bool(g.abs().max() <= tol_grad)
                evals += 1
                state["func_evals"] += 1
            if n_iter == max_iter or evals >= max_eval or grad_small:
                break
            if d.mul(t).abs().max() <= tol_change or abs(loss - prev_loss) < tol_change:
                break

        state.update(d=d, t=t, h_diag=h_diag, prev_g=prev_g, prev_loss=prev_loss)
        return first_loss
