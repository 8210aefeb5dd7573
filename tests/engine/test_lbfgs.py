"""photostyle_lib.engine.lbfgs against torch.optim.LBFGS (line_search_fn=None), an independent implementation."""

import math
import pytest
import torch

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.engine.lbfgs import LBFGS, CompactHistory, TwoLoopHistory


def _problem(dtype, n=40, seed=0):
    """A smooth non-quadratic objective: logistic loss + ridge + quartic, and a start point."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3 * n, n, generator=g, dtype=dtype)
    b = torch.randn(3 * n, generator=g, dtype=dtype)
    x0 = torch.randn(n, generator=g, dtype=dtype)

    def f(x):
        return torch.nn.functional.softplus(a @ x - b).sum() + 0.05 * x.pow(2).sum() + 0.01 * x.pow(4).sum()
    return f, x0


def _run(opt_cls, f, x0, steps, **kw):
    """Parameters after each step() and every loss the closure saw."""
    x = x0.clone().requires_grad_(True)
    opt = opt_cls([x], **kw)
    seen, after = [], []

    def closure():
        opt.zero_grad()
        loss = f(x)
        loss.backward()
        seen.append(loss.item())
        return loss

    for _ in range(steps):
        opt.step(closure)
        after.append(x.detach().clone())
    return torch.stack(after), seen, opt


KWS = [dict(lr=1.0, max_iter=20, history_size=5),
       dict(lr=0.1, max_iter=20, history_size=100, tolerance_grad=0.0, tolerance_change=0.0),
       dict(lr=0.5, max_iter=3, history_size=2)]


@pytest.mark.parametrize("form", ["two-loop", "compact"])
@pytest.mark.parametrize("kw", KWS)
def test_iterates_equal_torch(form, kw):
    """float64, six steps with torch's stopping tests: the two-loop form does torch's arithmetic
    exactly (bitwise equal iterates, checked under ATen's default, AVX2 and AVX-512 kernels); the
    compact form builds the same matrix by other operations: equal to rounding. Both stop where
    torch stops (same evaluations): in float64 the stopping tests are far from rounding's reach."""
    f, x0 = _problem(torch.float64)
    ours, seen_ours, opt = _run(LBFGS, f, x0, 6, form=form, **kw)
    ref, seen_ref, ref_opt = _run(torch.optim.LBFGS, f, x0, 6, **kw)
    assert len(seen_ours) == len(seen_ref) > 6  # same number of evaluations: same stopping decisions
    assert opt.state[opt._params[0]]["func_evals"] == ref_opt.state[ref_opt._params[0]]["func_evals"]
    assert len(opt.state[opt._params[0]]["history"]) <= kw["history_size"]
    if form == "two-loop":
        assert torch.equal(ours, ref) and seen_ours == seen_ref
        return
    scale = float(ref.abs().max())
    assert torch.allclose(ours, ref, rtol=1e-10, atol=1e-10 * scale)
    assert seen_ours == pytest.approx(seen_ref, rel=1e-10)


def _problem_as(dtype, n=40, seed=0):
    """``_problem(torch.float32)``'s objective and start, computed in ``dtype`` (the same numbers, cast)."""
    g = torch.Generator().manual_seed(seed)
    a, b, x0 = (torch.randn(*shape, generator=g, dtype=torch.float32).to(dtype) for shape in ((3 * n, n), (3 * n,), (n,)))

    def f(x):
        return torch.nn.functional.softplus(a @ x - b).sum() + 0.05 * x.pow(2).sum() + 0.01 * x.pow(4).sum()
    return f, x0


@pytest.mark.parametrize("form", ["two-loop", "compact"])
@pytest.mark.parametrize("kw,steps", [(KWS[0], 1), (KWS[1], 3), (KWS[2], 6)])
def test_float32_iterates_follow_torch(form, kw, steps):
    """float32 over a fixed schedule: which step a float32 run stops at depends on rounding (it
    differs between CPUs: 39 against 41 evaluations seen), so the stopping tests are switched off
    (tolerances 0) and the run kept short of convergence, where no other test (descent, curvature)
    is near its threshold: then every run makes exactly steps * max_iter evaluations on any
    machine. Ours and torch's float32 iterates agree to 1e-5 of the largest entry (measured
    <= 6e-7), and both follow the float64 run of the same problem to 5e-4 (measured <= 5e-5)."""
    kw = dict(kw, tolerance_grad=0.0, tolerance_change=0.0)
    f32, x32 = _problem_as(torch.float32)
    f64, x64 = _problem_as(torch.float64)
    exact, _, _ = _run(torch.optim.LBFGS, f64, x64, steps, **kw)
    end = exact[-1].clone().requires_grad_(True)
    f64(end).backward()
    assert float(end.grad.abs().max()) > 1e-2  # short of convergence: float32 noise is far below |g|
    ours, seen_ours, opt = _run(LBFGS, f32, x32, steps, form=form, **kw)
    ref, seen_ref, _ = _run(torch.optim.LBFGS, f32, x32, steps, **kw)
    assert len(seen_ours) == len(seen_ref) == steps * kw["max_iter"] == opt.state[opt._params[0]]["func_evals"]
    scale = float(exact.abs().max())
    assert float((ours - ref).abs().max()) <= 1e-5 * scale
    assert seen_ours == pytest.approx(seen_ref, rel=1e-5)
    for run in (ours, ref):
        assert float((run.double() - exact).abs().max()) <= 5e-4 * scale


@pytest.mark.parametrize("form", ["two-loop", "compact"])
def test_solves_a_quadratic(form):
    """x^T A x / 2 - b^T x has its minimum at A^-1 b; L-BFGS reaches it on a 10-d SPD problem."""
    g = torch.Generator().manual_seed(3)
    m = torch.randn(10, 10, generator=g, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(10, dtype=torch.float64)
    b = torch.randn(10, generator=g, dtype=torch.float64)
    x, _, _ = _run(LBFGS, lambda v: 0.5 * v @ a @ v - b @ v, torch.zeros(10, dtype=torch.float64), 10,
                   lr=1.0, max_iter=20, history_size=10, tolerance_grad=1e-12, tolerance_change=0.0, form=form)
    assert torch.allclose(x[-1], torch.linalg.solve(a, b), atol=1e-8)


@pytest.mark.parametrize("form", ["two-loop", "compact"])
def test_no_curvature_no_pairs(form):
    """On a linear function y = 0, so s^T y = 0 <= 1e-10: no pair is stored and every step is -lr g."""
    c = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    x, seen, opt = _run(LBFGS, lambda v: c @ v, torch.zeros(3, dtype=torch.float64), 1,
                        lr=0.1, max_iter=4, history_size=5, tolerance_grad=0.0, tolerance_change=0.0, form=form)
    assert len(opt.state[opt._params[0]]["history"]) == 0
    t0 = min(1.0, 1.0 / float(c.abs().sum())) * 0.1  # first step scaled by min(1, 1/|g|_1)
    assert torch.allclose(x[-1], -c * (t0 + 3 * 0.1))  # then three plain gradient steps
    assert len(seen) == 4


@pytest.mark.parametrize("form", ["two-loop", "compact"])
def test_several_parameters_flatten_together(form):
    f, x0 = _problem(torch.float64, n=12)

    def run(cls):
        u = x0[:5].clone().requires_grad_(True)
        v = x0[5:].clone().reshape(7, 1).requires_grad_(True)
        opt = cls([u, v], lr=1.0, max_iter=10, history_size=4, **({"form": form} if cls is LBFGS else {}))

        def closure():
            opt.zero_grad()
            loss = f(torch.cat([u, v.reshape(-1)]))
            loss.backward()
            return loss
        for _ in range(3):
            opt.step(closure)
        return torch.cat([u.detach(), v.detach().reshape(-1)])

    assert torch.allclose(run(LBFGS), run(torch.optim.LBFGS), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kw,match", [(dict(lr=0.0), "lr"), (dict(lr=-1.0), "lr"), (dict(max_iter=0), "max_iter"),
                                      (dict(history_size=0), "history_size"), (dict(form="newton"), "form")])
def test_bad_settings(kw, match):
    with pytest.raises(PhotostyleError, match=match):
        LBFGS([torch.zeros(2, requires_grad=True)], **kw)


def test_mixed_dtypes_refused():
    with pytest.raises(PhotostyleError, match="one dtype"):
        LBFGS([torch.zeros(2, requires_grad=True), torch.zeros(2, dtype=torch.float64, requires_grad=True)])


def test_auto_form_is_two_loop_on_cpu():
    f, x0 = _problem(torch.float32, n=8)
    _, _, opt = _run(LBFGS, f, x0, 1, lr=1.0, max_iter=3, history_size=4)
    assert type(opt.state[opt._params[0]]["history"]).__name__ == "TwoLoopHistory"


@pytest.mark.parametrize("history_cls", [TwoLoopHistory, CompactHistory])
def test_direction_equals_dense_bfgs_matrix(history_cls):
    """-H g against H built densely: gamma I updated by the BFGS inverse formula
    H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T for the kept pairs, oldest first."""
    g = torch.Generator().manual_seed(5)
    n, m = 12, 4
    hist = history_cls(m)
    pairs = []
    for _ in range(6):  # more pairs than kept: the oldest two fall out
        s = torch.randn(n, generator=g, dtype=torch.float64)
        y = s + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)  # s^T y > 0
        hist.append(s, y, y.dot(s))
        pairs.append((s, y))
    grad = torch.randn(n, generator=g, dtype=torch.float64)
    s_new, y_new = pairs[-1]
    gamma = s_new.dot(y_new) / y_new.dot(y_new)
    h = gamma * torch.eye(n, dtype=torch.float64)
    for s, y in pairs[-m:]:
        rho = 1.0 / y.dot(s)
        left = torch.eye(n, dtype=torch.float64) - rho * torch.outer(s, y)
        h = left @ h @ left.T + rho * torch.outer(s, s)
    assert len(hist) == m
    assert torch.allclose(hist.direction(grad, gamma), -h @ grad, rtol=1e-10, atol=1e-12)


def test_compact_diagonal_is_the_accepted_curvature():
    """R's diagonal is the s^T y that passed the curvature test, not a recomputation that rounding
    could push to <= 0 (a singular R)."""
    g = torch.Generator().manual_seed(6)
    hist = CompactHistory(3)
    s, y = torch.randn(50, generator=g), torch.randn(50, generator=g)
    ys = torch.tensor(0.125)  # stands for the value the optimiser tested
    hist.append(s, y, ys)
    hist.direction(torch.randn(50, generator=g), torch.tensor(1.0))
    assert float(hist.sy[hist.newest, hist.newest]) == 0.125


# ----------------------------------------------------------------------------- projected L-BFGS (box constraints)

def _box_quadratic(n=40, seed=0):
    """f(x) = 1/2 x^T A x - b^T x with A SPD and b pushing several coordinates out of [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=g, dtype=torch.float64)
    a = m @ m.T / n + 0.5 * torch.eye(n, dtype=torch.float64)
    b = 3.0 * torch.randn(n, generator=g, dtype=torch.float64)
    return a, b


def _run_projected(a, b, x0, history=10, evaluations=400, line_search="adaptive"):
    from photostyle_lib.engine.lbfgs import projected_lbfgs
    x = x0.clone().requires_grad_(True)
    values = []

    class Enough(Exception):
        pass

    def closure():
        x.grad = None
        f = 0.5 * x @ a @ x - b @ x
        f.backward()
        values.append((float(f.detach()), x.detach().clone()))
        if len(values) >= evaluations:
            raise Enough
        return f

    try:
        reason = projected_lbfgs(x, closure, history=history, line_search=line_search)
    except Enough:
        reason = "evaluations"
    return x.detach(), values, reason


LINE_SEARCHES = ("adaptive", "interpolate", "halve")


@pytest.mark.parametrize("line_search", LINE_SEARCHES)
def test_projected_lbfgs_meets_the_box_kkt_conditions(line_search):
    a, b = _box_quadratic()
    x, values, _ = _run_projected(a, b, torch.full((40,), 0.5, dtype=torch.float64), line_search=line_search)
    g = a @ x - b
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    inside = (x > 1e-9) & (x < 1 - 1e-9)
    assert int((~inside).sum()) >= 5  # the bounds are active: a real test of the projection
    assert float(g[inside].abs().max()) < 1e-6  # stationary on the free set
    assert bool((g[x <= 1e-9] >= -1e-6).all()) and bool((g[x >= 1 - 1e-9] <= 1e-6).all())  # multipliers' signs
    # the same point as a dense projected-gradient solve (independent reference)
    ref = torch.full((40,), 0.5, dtype=torch.float64)
    step = 1.0 / float(torch.linalg.eigvalsh(a).max())
    for _ in range(20000):
        ref = (ref - step * (a @ ref - b)).clamp(0, 1)
    assert torch.allclose(x, ref, atol=1e-6)


@pytest.mark.parametrize("line_search", LINE_SEARCHES)
def test_projected_lbfgs_accepts_only_decreasing_points_inside_the_box(line_search):
    """On a non-convex function (Rosenbrock, whose minimiser is the box's corner (1, ..., 1)) full quasi-Newton
    steps overshoot: trial points are rejected, and every accepted iterate satisfies the Armijo decrease."""
    from photostyle_lib.engine.lbfgs import projected_lbfgs
    x = torch.full((6,), 0.05, dtype=torch.float64, requires_grad=True)
    evaluated, accepted = [], []

    def closure():
        x.grad = None
        f = (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()
        f.backward()
        evaluated.append((float(f.detach()), x.detach().clone()))
        if len(evaluated) >= 400:
            raise StopIteration
        return f

    try:
        projected_lbfgs(x, closure, history=5, on_step=accepted.append, line_search=line_search)
    except StopIteration:
        pass
    assert all(float(v.min()) >= 0.0 and float(v.max()) <= 1.0 for _, v in evaluated)
    assert len(evaluated) > len(accepted) + 1  # some trials were rejected
    assert all(b < a for a, b in zip(accepted, accepted[1:]))  # strictly decreasing
    assert accepted[-1] == min(f for f, _ in evaluated) < 1e-6  # ends at its best point, the minimiser
    assert torch.allclose(x.detach(), torch.ones(6, dtype=torch.float64), atol=1e-3)


@pytest.mark.parametrize("line_search", LINE_SEARCHES)
def test_projected_lbfgs_ends_when_nothing_decreases(line_search):
    """At the box-constrained minimiser the projected gradient is zero: the run ends by itself."""
    a = torch.eye(3, dtype=torch.float64)
    b = torch.tensor([-1.0, 2.0, 0.5], dtype=torch.float64)  # minimiser of the box problem: (0, 1, 0.5)
    x, values, reason = _run_projected(a, b, torch.tensor([0.2, 0.9, 0.1], dtype=torch.float64),
                                       line_search=line_search)
    assert reason.startswith("converged")
    assert torch.allclose(x, torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64), atol=1e-8)


def test_backtrack_factor_is_the_quadratic_minimiser_safeguarded():
    """On q(t) = f0 + a t + c t^2 a trial at t = 1 gives f_t = f0 + a + c: the cut is q's minimiser -a / (2c)
    while that lies in [0.1, 0.5], else the nearer end; halving is 1/2 whatever the values."""
    from photostyle_lib.engine.lbfgs import backtrack_factor
    f0, a = 3.0, -2.0
    for c, expected in [(2.5, 0.4), (5.0, 0.2), (1e4, 0.1), (1.5, 0.5)]:
        for rule in ("interpolate", "adaptive"):
            assert backtrack_factor(rule, f0, a, f0 + a + c) == pytest.approx(expected, rel=1e-12)
    # the trial point above the start by 1000x its value: one tenfold cut
    assert backtrack_factor("interpolate", 1.0, -1.0, 1000.0) == 0.1
    for bad in (float("nan"), float("inf")):
        assert backtrack_factor("adaptive", f0, a, bad) == 0.1
    assert backtrack_factor("adaptive", f0, 0.5, f0 + 1.0) == 0.1  # not a descent direction
    assert backtrack_factor("adaptive", f0, a, f0 + a - 1.0) == 0.5  # no positive curvature along the path
    assert backtrack_factor("halve", f0, a, 1e9) == 0.5


def test_projected_lbfgs_trials_follow_the_line_search():
    """Recording every trial point on a Rosenbrock valley inside the box: within a step, each cut is
    backtrack_factor of the rejected trial (checked on the steps whose trials were not clipped), and with
    "adaptive" no first trial exceeds twice the previous step's accepted fraction."""
    from photostyle_lib.engine.lbfgs import backtrack_factor, projected_lbfgs

    def f_of(v):  # y = 4 (v - 0.5): minimiser v = 0.75, start v = 0.2 (y = -1.2), inside (0, 1)
        y = 4.0 * (v - 0.5)
        return (100.0 * (y[1:] - y[:-1] ** 2) ** 2 + (1.0 - y[:-1]) ** 2).sum()

    for rule in ("adaptive", "interpolate", "halve"):
        x = torch.full((4,), 0.2, dtype=torch.float64).requires_grad_(True)
        trials, accepted = [], []

        def closure():
            x.grad = None
            f = f_of(x)
            f.backward()
            trials.append((float(f.detach()), x.detach().clone(), x.grad.detach().clone()))
            if len(trials) >= 150:
                raise StopIteration
            return f

        try:
            projected_lbfgs(x, closure, history=5, on_step=accepted.append, line_search=rule)
        except StopIteration:
            pass
        # group the evaluations into steps: a step ends at its accepted trial (its loss is on_step's)
        steps, current, acc = [], [], iter(accepted)
        nxt = next(acc, None)
        for f, v, g in trials[1:]:
            current.append((f, v, g))
            if nxt is not None and f == nxt:
                steps.append(current)
                current, nxt = [], next(acc, None)
        assert len(steps) >= 10
        start, cuts = trials[0], 0
        for step in steps:
            f0, x0, g0 = start
            start = step[-1]
            if f0 < 1e-8:  # at the minimiser the steps are at the rounding level
                break
            if any(float(v.min()) <= 0 or float(v.max()) >= 1 for _, v, _ in step):
                continue  # a clipped trial: its length is not t |d|
            lengths = [float((v - x0).norm()) for _, v, _ in step]
            for (ft, vt, _), t_prev, t_next in zip(step, lengths, lengths[1:]):
                want = backtrack_factor(rule, f0, float(g0 @ (vt - x0)), ft)
                assert t_next / t_prev == pytest.approx(want, rel=1e-6)
                cuts += 1
        assert cuts >= 3, rule  # full steps overshot in the valley: the cuts were exercised


def test_keeps_pair_is_a_cosine_test():
    """keeps_pair on closed forms: s = (1, 0), y = r (cos th, sin th) has s^T y = r cos th and cosine cos th;
    kept iff s^T y > 1e-10 and cos th > min_cosine; min_cosine 0 is the plain positive-curvature test."""
    from photostyle_lib.engine.lbfgs import CURVATURE_MIN, keeps_pair
    s = torch.tensor([1.0, 0.0], dtype=torch.float64)
    for r in (1e-3, 1.0, 1e3):
        for cos in (-0.5, 7e-4, 9.9e-3, 1.01e-2, 0.3, 1.0):
            y = r * torch.tensor([cos, math.sqrt(1.0 - cos * cos)], dtype=torch.float64)
            ys = y.dot(s)
            assert keeps_pair(s, y, ys, 1e-2) == (cos > 1e-2)
            assert keeps_pair(s, y, ys, 0.0) == (r * cos > CURVATURE_MIN)
    tiny = torch.tensor([1e-11, 0.0], dtype=torch.float64)  # cosine 1 but curvature below torch's floor
    assert not keeps_pair(s, tiny, tiny.dot(s), 0.0) and not keeps_pair(s, tiny, tiny.dot(s), 1e-2)


def _record_pairs(monkeypatch):
    """Make projected_lbfgs's history record the cosine of every pair it stores."""
    from photostyle_lib.engine import lbfgs
    cosines = []

    class Recording(lbfgs.TwoLoopHistory):
        def append(self, s, y, ys):
            cosines.append(float(ys / (s.norm() * y.norm())))
            super().append(s, y, ys)

    monkeypatch.setattr(lbfgs, "TwoLoopHistory", Recording)
    return cosines


@pytest.mark.parametrize("line_search", LINE_SEARCHES)
def test_projected_lbfgs_stores_no_pair_below_the_curvature_cosine(monkeypatch, line_search):
    """f = 1/2 x^T A x - b^T x, A = diag(1e-6, 1), started where g = (1, 1e-3): the first (steepest-descent)
    pair has cosine g^T A g / (|g| |A g|) ~ 2e-3 (closed form). With curvature_cosine 0 it is stored; with
    1e-2 no stored pair is below 1e-2; both reach the minimiser A^-1 b (inside a wide box)."""
    from photostyle_lib.engine.lbfgs import projected_lbfgs
    a = torch.diag(torch.tensor([1e-6, 1.0], dtype=torch.float64))
    x0 = torch.tensor([0.5, 0.5], dtype=torch.float64)
    g0 = torch.tensor([1.0, 1e-3], dtype=torch.float64)
    b = a @ x0 - g0
    expected_cos = float(g0 @ a @ g0 / (g0.norm() * (a @ g0).norm()))
    assert 1e-3 < expected_cos < 3e-3
    cosines = _record_pairs(monkeypatch)
    for min_cos in (0.0, 1e-2):
        cosines.clear()
        x = x0.clone().requires_grad_(True)
        evaluations = []

        def closure():
            x.grad = None
            f = 0.5 * x @ a @ x - b @ x
            f.backward()
            evaluations.append(float(f.detach()))
            if len(evaluations) >= 3000:
                raise StopIteration
            return f

        try:
            projected_lbfgs(x, closure, history=5, low=-1e7, high=1e7, line_search=line_search,
                            curvature_cosine=min_cos)
        except StopIteration:
            pass
        if min_cos == 0.0:
            assert cosines[0] == pytest.approx(expected_cos, rel=1e-6)
        else:
            assert cosines and min(cosines) > 1e-2
        x_star = torch.linalg.solve(a, b)
        f_star = float(-0.5 * b @ x_star)
        assert min(evaluations) - f_star <= 1e-9 * abs(f_star)


def test_projected_lbfgs_rejects_a_bad_curvature_cosine():
    from photostyle_lib.engine.lbfgs import projected_lbfgs
    x = torch.zeros(3, requires_grad=True)
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(PhotostyleError, match="curvature_cosine"):
            projected_lbfgs(x, lambda: (x ** 2).sum(), curvature_cosine=bad)
