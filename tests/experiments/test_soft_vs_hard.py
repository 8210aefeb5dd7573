"""soft_vs_hard: the recipe end to end on tiny synthetic pairs (random weights), its runs in the cache,
and notebook 07 under the ci profile."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from photostyle_lib.doors import runner
from photostyle_lib.experiments import recipes, soft_vs_hard
from photostyle_lib.experiments.settings import Settings
from photostyle_lib.semantic import mask_errors
from photostyle_lib.io.data import get_pair
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.plots.figures import ORIGINAL_VGG19_BANNER, RANDOM_WEIGHTS_BANNER
from photostyle_lib.semantic.masks import load_gold_masks
from photostyle_lib.experiments.runs import RunSpec

SEVERITIES = {"boundary": [0, 2]}


@pytest.fixture(scope="module")
def tiny(pair_data_dir, tmp_path_factory):
    """The recipe once: two synthetic pairs, 24 px, 4 evaluations, RANDOM weights (a smoke test of the
    plumbing, explicitly not a style transfer), a strong style weight so the images move."""
    root = tmp_path_factory.mktemp("svh")
    settings = Settings("07_soft_vs_hard", data_dir=str(pair_data_dir), output_dir=str(root / "out"),
                                    cache_dir=str(root / "cache"), pair_ids=(1, 2), size=24, iterations=4,
                                    weights="random", device="cpu", beta=1e12, progress=False)
    result = soft_vs_hard.soft_vs_hard(settings, SEVERITIES, [0.2], temperature=3.0)
    return settings, result


def test_plan_shares_severity_zero_and_the_gold_run(tiny):
    settings, _ = tiny
    planned = soft_vs_hard.plan(settings, {"boundary": [0, 2], "swap": [0, 0.5]}, [0.2, 0.4])
    assert len(planned) == 2 * 4 * 4  # pairs x (kind, severity) x (hard, two soft, gold)
    per_pair = 1 + 3 + 3 + 3         # gold; severity 0 shared by both kinds; boundary 2; swap 0.5
    assert planned["spec"].nunique() == 2 * per_pair
    gold = planned[planned["mask"] == "gold"]
    assert set(gold["spec"]) == {settings.spec(p, "full", "gold") for p in (1, 2)}  # Figure 5's gold runs
    soft = planned[(planned["mask"] == "soft") & (planned["theta_s"] == 0.4)]["spec"].iloc[0]
    assert soft.theta_s == 0.4 and "theta_s" not in dict(soft.overrides) and dict(soft.mask_errors)["render"] == "soft"


def test_a_pair_with_one_label_is_left_out_with_its_reason(tiny, monkeypatch):
    """No error between labels exists on a one-label pair (held-out pair 57's gold masks): the plan leaves
    it out and says why, instead of failing the whole measurement at its first run."""
    settings, _ = tiny
    real = soft_vs_hard._label_counts
    assert real(1, settings.data_dir)["content"] >= 2           # the synthetic pairs have two labels
    monkeypatch.setattr(soft_vs_hard, "_label_counts",
                        lambda p, d: {"content": 1, "style": 2} if p == 2 else real(p, d))
    planned = soft_vs_hard.plan(settings, {"swap": [0.5]}, [0.2])
    assert set(planned["pair_id"]) == {1}
    assert planned.attrs["left_out"] == {2: "content gold mask has 1 label(s)"}
    # the style side is what target="style" corrupts: pair 2's style has two labels, so it stays
    assert set(soft_vs_hard.plan(settings, {"swap": [0.5]}, [0.2], target="style")["pair_id"]) == {1, 2}
    monkeypatch.setattr(soft_vs_hard, "_label_counts", lambda p, d: {"content": 1, "style": 1})
    with pytest.raises(PhotostyleError, match="no pair admits an error between labels"):
        soft_vs_hard.plan(settings, {"swap": [0.5]}, [0.2])


def test_the_runs_used_the_corrupted_masks(tiny, pair_data_dir):
    settings, result = tiny
    t = result.table
    by = {(r.pair_id, r.severity, r.condition): rec for r, rec in zip(t.itertuples(), result.records)}
    hard0, hard2 = by[(1, 0.0, "hard")].masks(), by[(1, 2.0, "hard")].masks()
    soft2 = by[(1, 2.0, "soft (theta_s=0.2)")].masks()
    assert hard0.kind == "hard" and soft2.kind == "soft"
    # severity 0 is the gold masks at the run's size; severity 2 moves one label's boundary by 2 px
    pair = get_pair(1, pair_data_dir)
    gold = load_gold_masks(pair.content_mask, pair.style_mask, unmatched="drop")
    want = mask_errors.hard_at_size(gold.content, tuple(hard0.content.shape[-2:]))
    assert np.array_equal(hard0.content.numpy(), want[[gold.labels.index(n) for n in hard0.labels]])
    want2 = mask_errors.boundary_shift(want, 2, seed=settings.seed)
    assert np.array_equal(hard2.content.numpy(), want2[[gold.labels.index(n) for n in hard2.labels]])
    assert not torch.equal(hard0.content, hard2.content)
    c = soft2.content.float()
    assert float(c.sum(0).max()) <= 1 + 1e-3 and bool(((c > 0.01) & (c < 0.99)).any())
    md = by[(1, 2.0, "hard")].metadata
    assert md["segmenter"] == "gold masks with errors" and md["mask_errors"]["severity"] == 2.0
    assert md["random_weights"] is True and md["weights_warning"] == RANDOM_WEIGHTS_BANNER


def test_scores_summary_and_figures(tiny):
    settings, result = tiny
    t = result.table
    assert len(t) == 2 * 2 * 3 and t["key"].nunique() == 2 * 5
    for col in soft_vs_hard.SCORES:
        assert np.isfinite(t[col]).all(), col
    # the gold run at both severities is one run, scored once: identical rows
    g = t[(t["mask"] == "gold") & (t["pair_id"] == 1)]
    assert g["style_distance"].nunique() == 1
    s = result.summary
    assert set(s["metric"]) == set(soft_vs_hard.SCORES) and (s["n"] == 2).all()
    assert ((s["low"] <= s["mean"] + 1e-12) & (s["mean"] <= s["high"] + 1e-12)).all()
    names = [o.name for o in result.outputs]
    assert names == ["soft_vs_hard_boundary", "examples_boundary_2"]
    ex = result.outputs[1]
    assert ex.shape == (2, 6) and ex.weights_warning == RANDOM_WEIGHTS_BANNER
    path = recipes.save_outputs(settings, result.outputs)
    md = json.loads(path.read_text())
    assert {f["name"] for f in md["figures"]} == set(names)
    assert all(RANDOM_WEIGHTS_BANNER in f["title"] for f in md["figures"])
    assert (settings.out / "soft_vs_hard_boundary.csv").exists() and (settings.out / "examples_boundary_2.png").exists()


def test_a_second_call_reads_every_run_from_the_cache(tiny):
    settings, result = tiny
    again = soft_vs_hard.soft_vs_hard(settings, SEVERITIES, [0.2], temperature=3.0)
    assert [r.key for r in again.records] == [r.key for r in result.records]
    assert [r.metadata["created"] for r in again.records] == [r.metadata["created"] for r in result.records]
    assert np.allclose(again.table["style_distance"], result.table["style_distance"])


def test_bad_input_is_one_error(tiny):
    settings, _ = tiny
    with pytest.raises(PhotostyleError, match="error kind"):
        soft_vs_hard.plan(settings, {"blur": [1]})
    with pytest.raises(PhotostyleError, match="masks='gold'"):
        RunSpec(1, "full", masks="hard", mask_errors=(("kind", "swap"),))
    with pytest.raises(PhotostyleError, match="no severities"):
        soft_vs_hard.plan(settings, {"swap": []})


def test_notebook_07_under_the_ci_profile(pair_data_dir, tmp_path):
    """The notebook through the runner (papermill), ci profile (weights auto: the original VGG-19 offline), on the
    synthetic pairs 8 and 16."""
    runs = runner.run_suite("ci", only=["07"], data_dir=pair_data_dir, output_dir=tmp_path,
                                 cache_dir=tmp_path / "cache")
    assert [r.name for r in runs] == ["07_soft_vs_hard"]
    d = tmp_path / "ci" / "07_soft_vs_hard"
    md = json.loads((d / "metadata.json").read_text())
    assert md["parameters"]["weights"] == "auto" and md["parameters"]["pair_ids"] == [8, 16]
    assert {f["name"] for f in md["figures"]} == {"soft_vs_hard_boundary", "examples_boundary_4"}
    assert all(f["weights_warning"] == ORIGINAL_VGG19_BANNER and ORIGINAL_VGG19_BANNER in f["title"]
               for f in md["figures"])
    assert (d / "soft_vs_hard.csv").exists() and (d / "soft_vs_hard_summary.csv").exists()
    assert md["random_weights"] is False
