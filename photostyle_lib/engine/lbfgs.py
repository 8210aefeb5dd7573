"""L-BFGS without line search, computing its direction without waiting for the device.

The engine's optimiser is L-BFGS as ``torch.optim.LBFGS(line_search_fn=None)``
defines it (the paper's code used Torch7's ``optim.lbfgs``, of which that is a
port): fixed step ``lr`` (the first step of a run scaled by
``min(1, 1 / |g|_1)``), initial inverse Hessian ``(s^T y / y^T y) I`` from the
newest pair, a pair stored only when ``s^T y > 1e-10``, up to ``history_size``
pairs, ``max_iter`` iterations per :meth:`LBFGS.step`, the same stopping tests.

What differs is how the direction -H g is computed from the stored pairs:

* ``"two-loop"`` (the default except on CUDA): the two-loop recursion, the same
  operations in the same order as torch's, except that each coefficient
  ``alpha_i = rho_i s_i^T q`` stays a 0-dim tensor (``addcmul_``) where torch
  passes it to ``add_`` as a Python number. On the CPU that is the fastest form
  (measured: torch's own dot / add kernels stream the history faster than a
  BLAS matrix-vector product does).
* ``"compact"`` (the default on CUDA GPUs): the compact representation
  (:class:`CompactHistory`): two matrix products over the stored vectors and
  two small triangular solves, a few dozen operations whatever the history
  length. On a GPU the two-loop's four small operations per pair are bound by
  launch latency (torch's version also waits for the device twice per pair):
  measured on an H200 at 700 px with 100 pairs, 9-14 ms per step for torch's,
  10 ms for the tensor-scalar two-loop -- more than the network's forward and
  backward -- and 1.7-2.1 ms for the compact form.

Both are tested against ``torch.optim.LBFGS``: iterates equal to rounding in
float64 and float32. Only one parameter group; parameters may be several
tensors (flattened together, as torch does), all on one device and one dtype.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable

import torch

from photostyle_lib.errors import PhotostyleError

#: A pair (s, y) is stored only when its curvature s^T y exceeds this (as torch's L-BFGS).
CURVATURE_MIN = 1e-10


class TwoLoopHistory:
    """The newest ``m`` pairs (s_i, y_i, rho_i = 1 / s_i^T y_i); ``direction`` by the two-loop recursion.

    As torch's two-loop, with the coefficients kept as 0-dim tensors on the
    vectors' device. Shapes: vectors (n,); up to m pairs.
    """

    def __init__(self, m: int) -> None:
        self.pairs: deque[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = deque(maxlen=int(m))

    def __len__(self) -> int:
        return len(self.pairs)

    def clear(self) -> None:
        """Forget every stored pair (after a restart of the search)."""
        self.pairs.clear()

    def append(self, s: torch.Tensor, y: torch.Tensor, ys: torch.Tensor) -> None:
        """Store a pair, dropping the oldest beyond ``m``.

        Parameters
        ----------
        s : torch.Tensor, (n,)
            Step x_{k+1} - x_k.
        y : torch.Tensor, (n,)
            Gradient change g_{k+1} - g_k.
        ys : torch.Tensor, 0-dim
            y^T s (> 0 for a pair worth keeping); rho = 1 / ys is stored.
        """
        self.pairs.append((s, y, ys.reciprocal()))

    def direction(self, g: torch.Tensor, gamma: torch.Tensor | float) -> torch.Tensor:
        """-H g with H_0 = gamma I, from the newest pair back to the oldest and forward again."""
        q = g.neg()
        alphas = []
        for s, y, rho in reversed(self.pairs):
            a = s.dot(q) * rho
            q.addcmul_(y, a, value=-1.0)
            alphas.append(a)
        r = q.mul_(gamma)
        for (s, y, rho), a in zip(self.pairs, reversed(alphas)):
            r.addcmul_(s, a - y.dot(r) * rho)
        return r


class CompactHistory:
    """The newest ``m`` pairs (s_i, y_i) of L-BFGS as rows of one buffer, with their inner products.

    ``direction(g)`` returns -H g for the L-BFGS inverse-Hessian approximation H
    with H_0 = gamma I, by the compact representation of Byrd, Nocedal and
    Schnabel (1994; their inverse-Hessian form): with S, Y the (n, k) matrices of the pairs (oldest
    first), R = triu(S^T Y), D = diag(S^T Y), a = S^T g, b = Y^T g,
    u = R^-1 a and p = R^-T ((D + gamma Y^T Y) u - gamma b),

        H g = gamma g + S p - gamma Y u,

    the same matrix as the two-loop recursion builds. Per call it reads the
    stored vectors twice, in two matrix products (the first also updating
    S^T Y and Y^T Y for a new pair), and solves two k x k triangular systems in
    float64: a few dozen operations whatever k, instead of the two-loop's four
    per pair, and no wait for the device.

    Shapes: vectors (n,), one dtype and device; buffer (2, m, n); k <= m pairs.
    """

    def __init__(self, m: int) -> None:
        self.m = int(m)
        self.count = 0          # pairs stored
        self.newest = -1        # buffer row of the newest pair
        self.buf: torch.Tensor | None = None
        self.sy: torch.Tensor | None = None   # (m, m) float64: sy[i, j] = s_i . y_j (buffer rows)
        self.yy: torch.Tensor | None = None   # (m, m) float64: yy[i, j] = y_i . y_j
        self._pending: dict[int, torch.Tensor] = {}   # buffer rows whose products are due: their s^T y

    def __len__(self) -> int:
        return self.count

    def clear(self) -> None:
        """Forget every stored pair (the buffers are kept for reuse)."""
        self.count, self.newest = 0, -1
        self._pending.clear()

    def append(self, s: torch.Tensor, y: torch.Tensor, ys: torch.Tensor) -> None:
        """Store a pair (the oldest is dropped when ``m`` are stored); products follow in :meth:`direction`."""
        if self.buf is None or self.buf.shape[2] != s.numel() or self.buf.dtype != s.dtype \
                or self.buf.device != s.device:
            self.buf = torch.empty(2, self.m, s.numel(), dtype=s.dtype, device=s.device)
            self.sy = torch.zeros(self.m, self.m, dtype=torch.float64, device=s.device)
            self.yy = torch.zeros_like(self.sy)
            self.count, self.newest = 0, -1
            self._pending.clear()
        self.newest = (self.newest + 1) % self.m
        self.buf[0, self.newest].copy_(s)
        self.buf[1, self.newest].copy_(y)
        self.count = min(self.count + 1, self.m)
        self._pending[self.newest] = ys  # (replaces a pending pair this one overwrote)

    def direction(self, g: torch.Tensor, gamma: torch.Tensor | float) -> torch.Tensor:
        """-H g (see the class); ``gamma``: H_0's scale s^T y / y^T y of the newest pair (1 before any)."""
        k = self.count
        if k == 0:
            return g.neg().mul_(gamma)
        rows = self.buf[:, :k].reshape(2 * k, -1)              # S rows, then Y rows (buffer order)
        # products of every stored vector with g and with each new pair (one per step in L-BFGS)
        new = list(self._pending.items())
        cols = [g] + [v for r, _ in new for v in (self.buf[1, r], self.buf[0, r])]
        prods = (rows @ torch.stack(cols, 1)).double()         # (2k, 1 + 2 * new pairs)
        for i, (r, ys) in enumerate(new):
            y_col, s_col = prods[:, 1 + 2 * i], prods[:, 2 + 2 * i]
            self.sy[:k, r] = y_col[:k]                         # s_i . y_new
            self.sy[r, :k] = s_col[k:]                         # s_new . y_j
            self.yy[:k, r] = y_col[k:]
            self.yy[r, :k] = y_col[k:]
        for r, ys in new:
            # R's diagonal from the same s^T y that passed the curvature test (> 1e-10), so that
            # rounding in the matrix product cannot make R singular
            self.sy[r, r] = ys.double() if isinstance(ys, torch.Tensor) else float(ys)
        self._pending.clear()
        ab = prods[:, 0]
        # chronological order: oldest first (the buffer is a ring once full)
        order = torch.arange(k, device=g.device)
        if k == self.m:
            order = (order + (self.newest + 1)) % k
        sy = self.sy[order][:, order]
        yy = self.yy[order][:, order]
        a, b = ab[:k][order], ab[k:][order]
        gam = gamma.double() if isinstance(gamma, torch.Tensor) \
            else torch.tensor(float(gamma), dtype=torch.float64, device=g.device)
        upper = torch.triu(sy)
        u = torch.linalg.solve_triangular(upper, a.unsqueeze(1), upper=True)
        rhs = torch.diagonal(sy).unsqueeze(1) * u + gam * (yy @ u) - gam * b.unsqueeze(1)
        p = torch.linalg.solve_triangular(upper.T, rhs, upper=False)
        coef = torch.empty(2 * k, dtype=torch.float64, device=g.device)
        coef[order] = p.squeeze(1)
        coef[k + order] = -gam * u.squeeze(1)
        hg = torch.addmv(g * gam.to(g.dtype), rows.T, coef.to(g.dtype))
        return hg.neg_()


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
    form : "auto", "two-loop" or "compact"
        How the direction is computed (module docstring); "auto": compact on
        CUDA devices, two-loop elsewhere (the compact form's small solves run
        in float64, which Apple's MPS lacks). Same iterates up to rounding.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1.0, max_iter: int = 20,
                 max_eval: int | None = None, tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 history_size: int = 100, form: str = "auto") -> None:
        if not lr > 0:
            raise PhotostyleError(f"L-BFGS lr must be > 0, got {lr}")
        if int(max_iter) < 1 or int(history_size) < 1:
            raise PhotostyleError(f"L-BFGS max_iter and history_size must be >= 1, got {max_iter}, {history_size}")
        if form not in ("auto", "two-loop", "compact"):
            raise PhotostyleError(f"L-BFGS form must be 'auto', 'two-loop' or 'compact', got {form!r}")
        self.form = form
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
    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """Up to ``max_iter`` iterations. ``closure`` clears the gradients, evaluates the loss,
        backpropagates and returns the loss (a scalar tensor); returns the first evaluation's."""
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        history_size = group["history_size"]
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
        if "history" not in state:
            form = self.form
            if form == "auto":
                form = "compact" if self._params[0].device.type == "cuda" else "two-loop"
            state["history"] = (TwoLoopHistory if form == "two-loop" else CompactHistory)(history_size)
        history: TwoLoopHistory | CompactHistory = state["history"]
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
                    history.append(s, y, ys)
                    h_diag = ys / y.dot(y)
                d = history.direction(g, h_diag)

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
                loss = float(closure().detach())
                g = self._flat_grad()
                grad_small = bool(g.abs().max() <= tol_grad)
                evals += 1
                state["func_evals"] += 1
            if n_iter == max_iter or evals >= max_eval or grad_small:
                break
            # max |d t| = max|d| |t| exactly (rounding is monotone), without two image-sized temporaries
            if d.abs().max() * abs(t) <= tol_change or abs(loss - prev_loss) < tol_change:
                break

        state.update(d=d, t=t, h_diag=h_diag, prev_g=prev_g, prev_loss=prev_loss)
        return first_loss


#: Line searches of :func:`projected_lbfgs`: (cut of a rejected trial, first trial of a quasi-Newton step).
#: "halve": halving, t = 1 (this project's first version); "interpolate": quadratic interpolation, t = 1;
#: "adaptive": quadratic interpolation, t = min(1, 2 t_prev) after a step that needed a cut.
#: Measured with the stand-in's trained features (full preset, 256 px, tuning pairs 1, 2, 5, 7, 9, 10, 16,
#: 500 evaluations): halving spends up to 80% of the evaluations on rejected trials where the Gram loss's
#: quartic growth makes full quasi-Newton steps overshoot 10-1000x; "adaptive" ends lower on 6 of the 7
#: pairs (docs/quality.md, "Line search").
LINE_SEARCHES = ("halve", "interpolate", "adaptive")


def backtrack_factor(rule: str, f0: float, slope: float, f_t: float) -> float:
    """The factor of the next trial step after a rejected one: t_next = factor * t.

    Parameters
    ----------
    rule : str
        "halve": 1/2 whatever the values. "interpolate" or "adaptive": the
        minimiser of the quadratic q through q(0) = f0, q'(0) t = slope and
        q(t) = f_t, i.e. -slope / (2 (f_t - f0 - slope)), safeguarded into
        [0.1, 0.5] (Nocedal & Wright, Numerical Optimization, 2nd ed., 3.5):
        a trial 1000x above f0 is cut tenfold in one evaluation, where halving
        takes three or four. A NaN or infinite trial, or slope >= 0, gives 0.1.
    f0 : float
        The loss at the current iterate.
    slope : float
        g^T (x(t) - x): the directional derivative times the trial step (< 0 for descent).
    f_t : float
        The loss at the rejected trial point.

    Returns
    -------
    float
        The factor, in [0.1, 0.5].
    """
    if rule == "halve":
        return 0.5
    if not (slope < 0.0 and math.isfinite(f_t)):
        return 0.1
    curvature = f_t - f0 - slope
    if curvature <= 0.0:
        return 0.5
    return min(0.5, max(0.1, -slope / (2.0 * curvature)))


def keeps_pair(s: torch.Tensor, y: torch.Tensor, ys: torch.Tensor | float, min_cosine: float) -> bool:
    """Whether a curvature pair is stored: s^T y > CURVATURE_MIN and s^T y > min_cosine |s| |y|.

    The second test bounds the cosine of the angle between the step and the
    gradient change. Each stored pair enters the inverse-Hessian update as
    H <- V^T H V + rho s s^T with V = I - rho y s^T, rho = 1 / s^T y, and
    ||V||_2 >= |s| |y| / s^T y = 1 / cos(s, y): a pair at cosine 7e-4 (measured
    with the stand-in's features: the first, tiny, half-clipped steepest-descent
    step of a run) amplifies some directions some 1400-fold and keeps every
    direction computed while it stays in the history (``history`` steps) pointing
    almost orthogonally to the gradient. ``min_cosine = 0`` is the plain test
    (torch's, and this project's first projected L-BFGS).

    Parameters
    ----------
    s, y : torch.Tensor, (n,)
        The step and the gradient change.
    ys : 0-dim tensor or float
        y^T s (already computed by the caller).
    min_cosine : float in [0, 1)
        The smallest cosine kept.

    Returns
    -------
    bool
    """
    ys = float(ys)
    if not ys > CURVATURE_MIN:
        return False
    return min_cosine <= 0.0 or ys > min_cosine * float(s.norm()) * float(y.norm())


def projected_lbfgs(x: torch.Tensor, closure: Callable[[], torch.Tensor], *, history: int = 100,
                    low: float = 0.0, high: float = 1.0, armijo: float = 1e-4, max_backtracks: int = 12,
                    max_steps: int | None = None, on_step: Callable[[float], None] | None = None,
                    line_search: str = "adaptive", curvature_cosine: float = 1e-2) -> str:
    """Minimise the closure's loss over ``x`` in the box [low, high]: projected L-BFGS with backtracking.

    The paper's code runs plain L-BFGS at a fixed step (lr 0.1, no line search)
    and clamps x into [0, 1] inside the closure, behind the optimiser's back:
    the curvature pairs (s, y) then describe steps that were not taken, and
    nothing rejects a step that raises the loss. With trained features the
    loss jumps by 1e3-1e5x mid-run (measured on pair 1) and pixels pinned at
    the bounds keep being pushed outward (the white blotches). Here, per step
    (the two-metric projection of Bertsekas 1982 with an L-BFGS metric, as in
    Schmidt, Kim & Sra's projected quasi-Newton methods):

    1. the free set: pixels not at a bound whose gradient pushes them outward;
    2. d = -H g on the free set (two-loop recursion, H_0 = (s^T y / y^T y) I),
       0 elsewhere; if d is no descent direction the history is cleared and
       d = -g (free set);
    3. backtracking along the projected path x(t) = clip(x + t d) until the
       Armijo condition f(x(t)) <= f(x) + armijo g^T (x(t) - x) holds
       (``line_search``, :data:`LINE_SEARCHES`): "adaptive" (the default) first
       tries t = min(1, 2 t_prev), t_prev the fraction of its first trial the
       previous step accepted, and cuts a rejected t by quadratic interpolation
       (:func:`backtrack_factor`); "interpolate" the same cuts from t = 1;
       "halve" t = 1, 1/2, 1/4, ... The first step after a reset is scaled as
       torch's, min(1, 1/|g|_1), and then cut the same way;
    4. the pair (x(t) - x, g(t) - g) is stored if its curvature is positive and
       its cosine above ``curvature_cosine`` (:func:`keeps_pair`).

    Every accepted iterate lies in the box and lowers the loss; rejected trial
    points are ordinary evaluations (the closure counts them). A step that
    finds no decrease clears the history once; a second in a row ends the run.

    Parameters
    ----------
    x
        the variable, any shape and device, updated in place (leaf tensor).
    closure
        evaluates the loss at x, back-propagates into ``x.grad`` and
        returns the loss (0-dim tensor); it may raise to stop the run.
    history
        pairs kept. low, high: the box. armijo: sufficient-decrease
        constant. max_backtracks: halvings per step. max_steps: optional
        bound on accepted steps (None: until the closure stops the run).
    on_step
        called with the loss of each accepted iterate.
    line_search
        "adaptive" | "interpolate" | "halve" (step 3; measured: :data:`LINE_SEARCHES`).
    curvature_cosine
        pairs with s^T y <= curvature_cosine |s| |y| are not stored (step 4,
        :func:`keeps_pair`); 0: only s^T y > 1e-10 (the earlier engine). Measured
        (full preset, 256 px): a single pair at cosine 7e-4 stalled a run for
        the 100 steps it stayed in the history (docs/quality.md, "Line search").

    Returns
    -------
    str
        a stop reason: "converged: ..." (no decrease possible, or the projected
        gradient is zero) or "steps" (max_steps reached).

    Raises
    ------
    PhotostyleError
        If ``line_search`` is not one of :data:`LINE_SEARCHES`, or ``curvature_cosine`` not in [0, 1).
    """
    _check_search_options(line_search, curvature_cosine)
    hist = TwoLoopHistory(history)
    flat = x.detach().view(-1)
    f = float(closure().detach())
    g = x.grad.detach().reshape(-1).clone()
    failures = 0
    steps = 0
    t_last = 1.0
    while max_steps is None or steps < max_steps:
        free = ~(((flat <= low) & (g > 0)) | ((flat >= high) & (g < 0)))                   # step 1
        gf = g * free
        if not bool(gf.any()):
            return "converged: projected gradient is zero"
        d, t = _search_direction(hist, g, gf, free, min(1.0, 2.0 * t_last) if line_search == "adaptive" else 1.0)
        trial = _projected_backtracking(closure, flat, d, t, f, g, low=low, high=high, armijo=armijo,
                                        max_backtracks=max_backtracks, line_search=line_search)  # step 3
        if trial is None:
            failures += 1
            if failures >= 2 or not len(hist):
                return "converged: no decrease along the projected direction"
            hist.clear()
            continue
        f_new, step, t_last = trial
        failures = 0
        steps += 1
        if on_step is not None:
            on_step(f_new)
        f, g = f_new, _store_pair(hist, x, g, step, curvature_cosine)                       # step 4
    return "steps"


def _check_search_options(line_search: str, curvature_cosine: float) -> None:
    """Raise the user-facing error for an unknown ``line_search`` or a ``curvature_cosine`` outside [0, 1)."""
    if line_search not in LINE_SEARCHES:
        raise PhotostyleError(f"line_search: {line_search!r} is not one of {', '.join(LINE_SEARCHES)}")
    if not 0.0 <= curvature_cosine < 1.0:
        raise PhotostyleError(f"curvature_cosine must be in [0, 1), got {curvature_cosine}")


def _search_direction(hist: TwoLoopHistory, g: torch.Tensor, gf: torch.Tensor, free: torch.Tensor,
                      t_first: float) -> tuple[torch.Tensor, float]:
    """Step 2 of :func:`projected_lbfgs`: the direction d and the first trial step t.

    ``d = -H gf`` on the free set (two-loop recursion, H_0 = (s^T y / y^T y) I) with
    ``t = t_first``; when the history is empty, or d is no descent direction (the
    history is then cleared), ``d = -gf`` with torch's first step min(1, 1/|gf|_1).
    g, gf, free: (N,) the gradient, the gradient on the free set, the free set (bool).
    """
    if len(hist):
        s_new, y_new, rho = hist.pairs[-1]
        d = hist.direction(gf, 1.0 / (rho * y_new.dot(y_new)))
        d.mul_(free)
        t = t_first
        if float(g.dot(d)) >= 0.0:
            hist.clear()
    if not len(hist):
        d = gf.neg()
        t = min(1.0, 1.0 / float(gf.abs().sum()))
    return d, t


def _store_pair(hist: TwoLoopHistory, x: torch.Tensor, g: torch.Tensor, step: torch.Tensor,
                curvature_cosine: float) -> torch.Tensor:
    """Step 4 of :func:`projected_lbfgs`: store (step, g_new - g) if :func:`keeps_pair`; return g_new (N,)."""
    g_new = x.grad.detach().reshape(-1).clone()
    y = g_new - g
    ys = y.dot(step)
    if keeps_pair(step, y, ys, curvature_cosine):
        hist.append(step, y, ys)
    return g_new


def _projected_backtracking(closure: Callable[[], torch.Tensor], flat: torch.Tensor, d: torch.Tensor, t: float,
                            f: float, g: torch.Tensor, *, low: float, high: float, armijo: float,
                            max_backtracks: int, line_search: str) -> tuple[float, torch.Tensor, float] | None:
    """Step 3 of :func:`projected_lbfgs`: backtrack along x(t) = clip(x + t d, low, high) until Armijo holds.

    ``flat`` (N,) is the variable's flat view, moved in place to each trial point;
    f, g: the loss and (N,) gradient at the start. Returns (f(x(t)), x(t) - x, t / t_first)
    for the accepted trial, or None (``flat`` restored) when none of the
    ``max_backtracks + 1`` trials lowers the loss.
    """
    start = flat.clone()
    t0 = t
    for _ in range(max_backtracks + 1):
        with torch.no_grad():
            torch.clamp(start + t * d, low, high, out=flat)
        f_new = float(closure().detach())
        step = flat - start
        slope = float(g.dot(step))
        if f_new <= f + armijo * slope and f_new < f:
            return f_new, step, t / t0
        t *= backtrack_factor(line_search, f, slope, f_new)
    with torch.no_grad():
        flat.copy_(start)
    return None
