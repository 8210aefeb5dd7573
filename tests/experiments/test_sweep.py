"""Tests for the metrics sweep: photostyle_lib.experiments.executors (serial, process pool, an in-process
Dask cluster), sweep (scoring of cached runs, intervals, files), sweep_plots (figures), metrics_table
(notebook 06's computation, run directly), and the metrics notebook run by papermill."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from photostyle_lib.experiments import executors, metrics_table, sweep, sweep_plots
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.metrics import METRICS
from photostyle_lib.experiments import cache_store, runs
from photostyle_lib.doors import runner
from photostyle_lib.experiments.runs import RunSpec, run_cached, run_many
from photostyle_lib.experiments.settings import Settings, profile_parameters

# Tiny specs: synthetic pairs (conftest.pair_data_dir), 48 px, 2 iterations, random VGG weights.
TINY = dict(size=48, iterations=2, weights="random")


def tiny_specs(pair_ids=(1,), methods=("gatys", "reinhard")) -> list[RunSpec]:
    return [RunSpec(p, m, **TINY) for p in pair_ids for m in methods]


@pytest.fixture(scope="module")
def shared_data(pair_data_dir):
    """Some pairs: the synthetic set (conftest), so the sweep runs without the dataset."""
    return pair_data_dir


@pytest.fixture(scope="module")
def scored(shared_data, tmp_path_factory):
    """Cached tiny runs of two pairs and their metrics table (Gram distance not requested)."""
    cache = tmp_path_factory.mktemp("cache")
    specs = tiny_specs((1, 8), ("gatys", "reinhard", "pitie_idt", "luan_published"))
    records = run_many(specs, cache_dir=cache, data_dir=shared_data, device="cpu", progress=False)
    table = sweep.score_runs(records, data_dir=shared_data, gram_weights=None, device="cpu", progress=False)
    return records, table, cache


def _images_equal(a, b) -> bool:
    return bool(np.array_equal(a.image().numpy(), b.image().numpy()))


# ---------------------------------------------------------------------------
# Executors


def test_make_executor_serial_and_bad_arguments():
    with executors.make_executor("serial") as ex:
        assert ex is None
    with pytest.raises(PhotostyleError, match="executor kind"):
        with executors.make_executor("gpu"):
            pass
    with pytest.raises(PhotostyleError, match="kind='dask'"):
        with executors.make_executor("process", address="tcp://127.0.0.1:8786"):
            pass
    with pytest.raises(PhotostyleError, match="workers"):
        with executors.make_executor("process", workers=0):
            pass


def test_unreachable_dask_scheduler_is_a_clear_error():
    pytest.importorskip("distributed")
    with pytest.raises(PhotostyleError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        with executors.make_executor("dask", address="tcp://127.0.0.1:9", timeout=1):
            pass


def test_dask_local_cluster_fills_the_cache_like_a_serial_run(shared_data, tmp_path):
    distributed = pytest.importorskip("distributed")
    specs = tiny_specs()
    serial = run_many(specs, cache_dir=tmp_path / "serial", data_dir=shared_data, device="cpu", progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with executors.make_executor("dask", address=cluster.scheduler_address) as client:
            assert isinstance(client, distributed.Client)
            records = run_many(specs, cache_dir=tmp_path / "dask", data_dir=shared_data, device="cpu",
                               executor=client, progress=False)
            table = sweep.score_runs(records, data_dir=shared_data, gram_weights=None, device="cpu",
                                     executor=client, progress=False)
    for rec, ref in zip(records, serial):
        assert rec.spec == ref.spec and rec.key == ref.key
        assert rec.directory == tmp_path / "dask" / "runs" / rec.key
        assert (rec.directory / "metadata.json").is_file() and rec.image_path.is_file()
        assert _images_equal(rec, ref)
    # A rerun on the same cache computes nothing: the same folders, untouched.
    again = run_many(specs, cache_dir=tmp_path / "dask", data_dir=shared_data, device="cpu", progress=False)
    assert [r.metadata["created"] for r in again] == [r.metadata["created"] for r in records]
    # Scoring on the cluster equals scoring here.
    here = sweep.score_runs(serial, data_dir=shared_data, gram_weights=None, device="cpu", progress=False)
    pd.testing.assert_frame_equal(table[["pair_id", "method", *METRICS]], here[["pair_id", "method", *METRICS]])


def test_dask_worker_processes_survive_a_killed_worker(shared_data, tmp_path):
    """Worker processes (LocalCluster(processes=True)): the first engine run's worker is SIGKILLed
    mid-task and the second run raises a transient OSError. The sweep still finishes: the
    scheduler reschedules the lost task, ``retries=1`` reruns the failed one, every finished run
    is in the cache, and no run is computed to the end twice (three runs, three finishes)."""
    distributed = pytest.importorskip("distributed")
    from dask_faults import StylizeFaults

    faults = tmp_path / "faults"
    faults.mkdir()
    specs = tiny_specs((1, 2, 8), ("gatys",)) + tiny_specs((1,), ("reinhard",))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        client.register_plugin(StylizeFaults(str(faults)))
        records = run_many(specs, cache_dir=tmp_path / "cache", data_dir=shared_data, device="cpu",
                           executor=client, progress=False, retries=1)
        log = (faults / "log").read_text().split()
        assert (faults / "killed").exists() and (faults / "raised").exists()
        assert log[::2].count("done") == 3 and log[::2].count("start") == 5  # 3 finished + killed + raised
        again = run_many(specs, cache_dir=tmp_path / "cache", data_dir=shared_data, device="cpu",
                         executor=client, progress=False)
    assert (faults / "log").read_text().split() == log  # the rerun computed nothing
    assert [r.spec for r in records] == specs
    for rec, re in zip(records, again):
        assert rec.directory == tmp_path / "cache" / "runs" / rec.key == re.directory
        assert cache_store.entry_problem(rec.directory) is None and rec.metadata["created"] == re.metadata["created"]
        assert rec.image().shape[-1] == 48


def _worker_threads() -> tuple[str | None, str | None, int]:
    import torch

    return os.environ.get("OMP_WAIT_POLICY"), os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()


def test_child_threads_sets_the_environment_for_children_and_restores_it(monkeypatch):
    """Children get the thread counts and the passive wait policy; a value set by the user wins."""
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_WAIT_POLICY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("NUMBA_NUM_THREADS", "7")
    assert 1 <= executors.available_cores() <= (os.cpu_count() or 1)
    with executors.child_threads(3) as added:
        assert added == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3", "OMP_WAIT_POLICY": "PASSIVE"}
        assert os.environ["NUMBA_NUM_THREADS"] == "7" and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "OMP_NUM_THREADS" not in os.environ and os.environ["NUMBA_NUM_THREADS"] == "7"
    with pytest.raises(PhotostyleError, match="threads"):
        executors.thread_environment(0)


def test_process_pool_workers_share_the_cores_and_sleep_when_idle(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = executors.available_cores()
    with executors.make_executor("process", workers=1) as pool:
        policy, omp, threads = pool.submit(_worker_threads).result(timeout=600)
    assert policy == "PASSIVE" and omp == str(cores) and threads == cores


def test_process_pool_fills_the_cache_like_a_serial_run(shared_data, tmp_path):
    specs = [RunSpec(1, "reinhard", **TINY)]
    serial = run_many(specs, cache_dir=tmp_path / "serial", data_dir=shared_data, device="cpu", progress=False)
    with executors.make_executor("process", workers=1) as pool:
        records = run_many(specs, cache_dir=tmp_path / "pool", data_dir=shared_data, device="cpu",
                           executor=pool, progress=False)
    assert (tmp_path / "pool" / "runs" / records[0].key / "metadata.json").is_file()
    assert records[0].key == serial[0].key and _images_equal(records[0], serial[0])


# ---------------------------------------------------------------------------
# Specs


class _FakeSettings:
    pair_ids = (3, 5)

    def spec(self, pair_id, method):
        return RunSpec(pair_id, method, **TINY)


def test_sweep_specs_follow_the_settings():
    specs = sweep.sweep_specs(_FakeSettings())
    assert len(specs) == 2 * len(sweep.SWEEP_METHODS) == 20
    assert [s.pair_id for s in specs[:10]] == [3] * 10 and [s.method for s in specs[:10]] == list(sweep.SWEEP_METHODS)
    assert sweep.SWEEP_METHODS[:5] == ("full", "regularization", "no_segmentation", "no_similarity",
                                       "no_postprocess")
    with pytest.raises(PhotostyleError, match="method"):
        sweep.sweep_specs(_FakeSettings(), ["full", "picasso"])
    with pytest.raises(PhotostyleError, match="list"):
        sweep.sweep_specs(_FakeSettings(), "full")


def test_resolve_pair_ids(data_dir):
    assert sweep.resolve_pair_ids(None, data_dir) == list(range(1, 61))
    assert sweep.resolve_pair_ids(4) == [4] and sweep.resolve_pair_ids([2, 1]) == [2, 1]
    with pytest.raises(PhotostyleError, match="empty"):
        sweep.resolve_pair_ids([])


# ---------------------------------------------------------------------------
# Scoring


def test_score_runs_table(scored):
    records, table, _ = scored
    assert list(table["pair_id"]) == [1] * 5 + [8] * 5
    assert list(table["method"][:5]) == ["content", "gatys", "reinhard", "pitie_idt", "luan_published"]
    for col in (*METRICS, "runtime_s", "wall_s", "peak_rss_mb", "cuda_peak_mb", "random_weights", "regions",
                "gram_note", "key"):
        assert col in table
    content = table[table["method"] == "content"]
    assert (content["photorealism"] < 1e-5).all() and np.allclose(content["structure"], 1.0)
    assert table["gram_distance"].isna().all() and table["gram_note"].str.startswith("skipped").all()
    assert (table["regions"] == "gold").all()
    # Reinhard moves the colours toward the style on every pair, per gold region too.
    for p in (1, 8):
        rows = table[table["pair_id"] == p].set_index("method")
        assert rows.loc["reinhard", "style_distance"] < rows.loc["content", "style_distance"]
        assert rows.loc["reinhard", "style_distance_global"] < rows.loc["content", "style_distance_global"]


def test_score_runs_carries_runtime_and_memory_from_the_runs(scored):
    records, table, _ = scored
    by_key = table.set_index("key")
    for rec in records:
        row = by_key.loc[rec.key]
        assert bool(row["random_weights"]) == rec.random_weights
        assert (row["weights_warning"] if isinstance(row["weights_warning"], str) else None) == rec.weights_warning
        if rec.spec.method == "luan_published":
            assert math.isnan(row["runtime_s"]) and math.isnan(row["peak_rss_mb"])
        else:
            assert row["runtime_s"] == pytest.approx(rec.metadata["timings"]["total"])
            assert row["wall_s"] == pytest.approx(rec.metadata["wall_seconds"])
            assert row["peak_rss_mb"] == pytest.approx(rec.metadata["memory"]["run_peak_rss_mb"])
            assert row["peak_rss_mb"] > 10  # a Python process with torch: tens of MB at least


def test_score_pair_takes_one_pair(scored):
    records, _, _ = scored
    with pytest.raises(PhotostyleError, match="one pair"):
        sweep.score_pair(records, gram_weights=None)
    assert sweep.score_pair([], gram_weights=None) == []


# ---------------------------------------------------------------------------
# Summary


def _toy_table() -> pd.DataFrame:
    return pd.DataFrame({"pair_id": [1, 2, 3, 4, 1, 2, 3, 4],
                         "method": ["a"] * 4 + ["b"] * 4,
                         "photorealism": [1.0, 2.0, 3.0, 4.0, 2.0, 3.0, np.nan, 5.0],
                         "structure": [0.5, 0.5, 0.5, 0.5, 1.0, np.nan, np.nan, np.nan]})


def test_t_interval_matches_the_closed_form():
    s = sweep.summarize(_toy_table(), ["photorealism", "structure"])
    a = s[(s["method"] == "a") & (s["metric"] == "photorealism")].iloc[0]
    half = stats.t.ppf(0.975, 3) * np.std([1, 2, 3, 4], ddof=1) / 2
    assert a["n"] == 4 and a["mean"] == 2.5
    assert (a["low"], a["high"]) == pytest.approx((2.5 - half, 2.5 + half))
    b = s[(s["method"] == "b") & (s["metric"] == "photorealism")].iloc[0]
    assert b["n"] == 3 and b["mean"] == pytest.approx(10 / 3)          # NaN left out
    lone = s[(s["method"] == "b") & (s["metric"] == "structure")].iloc[0]
    assert lone["n"] == 1 and lone["mean"] == 1.0 and np.isnan(lone["low"])
    assert set(s["interval"]) == {"t"} and set(s["level"]) == {0.95}


def test_bootstrap_interval_is_seeded_and_inside_the_range():
    one = sweep.summarize(_toy_table(), ["photorealism"], interval="bootstrap")
    two = sweep.summarize(_toy_table(), ["photorealism"], interval="bootstrap")
    pd.testing.assert_frame_equal(one, two)
    a = one[one["method"] == "a"].iloc[0]
    assert 1.0 <= a["low"] < a["mean"] < a["high"] <= 4.0


def test_summary_rejects_bad_input():
    with pytest.raises(PhotostyleError, match="interval"):
        sweep.summarize(_toy_table(), ["photorealism"], interval="bayes")
    with pytest.raises(PhotostyleError, match="lacks columns"):
        sweep.summarize(_toy_table(), ["gram_distance"])
    with pytest.raises(PhotostyleError, match="level"):
        sweep.summarize(_toy_table(), ["photorealism"], level=95)


def test_summary_table_and_paired_differences():
    s = sweep.summarize(_toy_table(), ["photorealism", "structure"])
    wide = sweep.summary_table(s)
    assert list(wide.index) == ["a", "b"] and list(wide.columns) == ["photorealism", "structure"]
    assert wide.loc["a", "photorealism"].startswith("2.5 [") and wide.loc["b", "structure"] == "1"
    rel = sweep.relative_to(_toy_table(), "a", ["photorealism"])
    assert list(rel.loc[rel["method"] == "a", "photorealism"]) == [0.0] * 4
    assert list(rel.loc[rel["method"] == "b", "photorealism"].fillna(-1)) == [1.0, 1.0, -1, 1.0]
    with pytest.raises(PhotostyleError, match="reference"):
        sweep.relative_to(_toy_table(), "c", ["photorealism"])


# ---------------------------------------------------------------------------
# Figures and files


def test_figures_carry_the_random_weights_banner_when_it_applies(scored):
    _, table, _ = scored
    summary = sweep.summarize(table)
    boxes = sweep_plots.plot_metric_boxes(table)
    assert sweep.RANDOM_WEIGHTS_BANNER in boxes.get_suptitle()
    assert len([ax for ax in boxes.axes if ax.get_visible()]) == 4
    skipped = boxes.axes[3]
    assert any("skipped" in t.get_text() for t in skipped.texts)
    trade = sweep_plots.plot_tradeoff(table, summary)
    assert sweep.RANDOM_WEIGHTS_BANNER in trade.get_suptitle()
    assert trade.axes[0].get_yscale() == "log"
    colour_only = table[table["method"].isin(["content", "reinhard", "pitie_idt", "luan_published"])]
    assert sweep.RANDOM_WEIGHTS_BANNER not in sweep_plots.plot_metric_boxes(colour_only).get_suptitle()


def test_save_sweep_writes_tables_figures_and_metadata(scored, tmp_path):
    records, table, _ = scored
    summary = sweep.summarize(table)
    figs = {"metrics_boxes": sweep_plots.plot_metric_boxes(table)}
    paths = sweep.save_sweep(tmp_path / "out", table, summary, figs, records=records, parameters={"size": 48})
    assert all(p.is_file() for p in paths.values())
    back = pd.read_csv(paths["table"])
    assert len(back) == len(table) and list(back.columns) == list(table.columns)
    md = json.loads(paths["metadata"].read_text())
    assert md["random_weights"] is True and md["parameters"] == {"size": 48}
    assert md["figures"][0]["file"] == "metrics_boxes.png" and md["interval"] == ["t"]
    assert md["cache_keys"] == [r.key for r in records] and md["pairs"] == [1, 8]
    paired = sweep.summarize(sweep.relative_to(table, "content"))
    paths = sweep.save_sweep(tmp_path / "two", table, summary, {}, tables={"vs_content": paired})
    assert paths["vs_content"].name == "vs_content.csv" and paths["vs_content"].is_file()


# ---------------------------------------------------------------------------
# metrics_table: the notebook's computation, run directly


def test_metrics_sweep_runs_scores_summarises_and_saves(shared_data, tmp_path):
    methods = ("gatys", "reinhard", "pitie_idt")
    settings = Settings("06_metrics", profile="ci", data_dir=str(shared_data), cache_dir=str(tmp_path / "cache"),
                        output_dir=str(tmp_path / "out"), pair_ids=(1, 8), progress=False, device="cpu", **TINY)
    result = metrics_table.metrics_sweep(settings, methods, gram_weights=None)
    # The runs are the settings' own specs, pairs outer: the figure notebooks' cache entries.
    assert [r.spec for r in result.records] == [settings.spec(p, m) for p in (1, 8) for m in methods]
    assert all((tmp_path / "cache" / "runs" / r.key / "metadata.json").is_file() for r in result.records)
    t = result.table
    assert len(t) == 2 * (len(methods) + 1) and list(pd.unique(t["method"])) == ["content", *methods]
    # The summary: n = 2 pairs per method; the mean is the mean of the two rows.
    row = result.summary[(result.summary["method"] == "reinhard") & (result.summary["metric"] == "structure")]
    assert int(row["n"].iloc[0]) == 2
    assert math.isclose(row["mean"].iloc[0], t.loc[t["method"] == "reinhard", "structure"].mean(), rel_tol=1e-12)
    # Paired: each method minus the content on the same pair; the content itself is exactly 0.
    skipped = ("gram_distance", "judge_gram", "edge_ssim")  # no network asked for: NaN
    content = result.paired[(result.paired["method"] == "content") & ~result.paired["metric"].isin(skipped)]
    assert len(content) == len(METRICS) - 3 and np.allclose(content["mean"].to_numpy(dtype=float), 0.0)
    diff = (t[t["method"] == "gatys"].set_index("pair_id")["photorealism"]
            - t[t["method"] == "content"].set_index("pair_id")["photorealism"]).mean()
    got = result.paired[(result.paired["method"] == "gatys") & (result.paired["metric"] == "photorealism")]
    assert math.isclose(got["mean"].iloc[0], diff, rel_tol=1e-9, abs_tol=1e-15)
    # Files and real metadata: the notebook, profile, the settings' parameters and the sweep's options.
    out = tmp_path / "out"
    for name in ("metrics.csv", "metrics_summary.csv", "metrics_vs_content.csv", "metrics_boxes.png",
                 "metrics_tradeoff.png", "metadata.json"):
        assert (out / name).is_file(), name
    md = json.loads((out / "metadata.json").read_text())
    assert (md["notebook"], md["profile"]) == ("06_metrics", "ci")
    assert md["parameters"]["size"] == 48 and md["parameters"]["pair_ids"] == [1, 8]
    assert md["parameters"]["methods"] == list(methods) and md["parameters"]["executor"] == "serial"
    assert md["cache_keys"] == [r.key for r in result.records] and md["random_weights"] is True
    assert sweep.RANDOM_WEIGHTS_BANNER in result.figures["metrics_boxes"].get_suptitle()
    # A second sweep reads the cache: no run is computed again.
    again = metrics_table.metrics_sweep(settings, methods, gram_weights=None, save=False)
    assert again.paths == {}
    assert [r.metadata["created"] for r in again.records] == [r.metadata["created"] for r in result.records]


def test_metrics_sweep_refuses_bad_options(shared_data, tmp_path):
    settings = Settings("06_metrics", data_dir=str(shared_data), cache_dir=str(tmp_path / "c"),
                        output_dir=str(tmp_path / "o"), progress=False, **TINY)
    with pytest.raises(PhotostyleError, match="interval"):
        metrics_table.metrics_sweep(settings, ("reinhard",), interval="normal")
    with pytest.raises(PhotostyleError, match="executor"):
        metrics_table.metrics_sweep(settings, ("reinhard",), executor="gpu")
    with pytest.raises(PhotostyleError, match="method"):
        metrics_table.metrics_sweep(settings, ("nope",))
    assert not (tmp_path / "c").exists()  # nothing ran


# ---------------------------------------------------------------------------
# The notebook (the runner's door for the sweep)


@pytest.mark.slow
def test_metrics_notebook_ci_profile(shared_data, tmp_path):
    papermill = pytest.importorskip("papermill")

    runner.ensure_kernel()
    nb = runner.NOTEBOOKS_DIR / "06_metrics.ipynb"
    declared = runner.declared_parameters(nb)
    params = profile_parameters("ci", nb.stem, declared)
    params.update(profile="ci", data_dir=str(shared_data), output_dir=str(tmp_path / "out"),
                  cache_dir=str(tmp_path / "cache"), pair_ids=[8, 16, 1])
    # A run a figure notebook made earlier, under the same settings: the sweep must reuse it.
    settings = Settings(notebook="03_baselines", profile="ci", data_dir=str(shared_data),
                                    cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path / "fig"),
                                    **{k: params[k] for k in ("pair_ids", "size", "iterations", "weights",
                                                              "segmenter", "device", "seed")})
    earlier = run_cached(settings.spec(8, "gatys"), cache_dir=settings.cache_dir, data_dir=shared_data,
                         device="cpu", progress=False)
    # As the runner starts kernels: threads from the cores there are, idle OpenMP threads asleep
    # (without, a busy 2-core machine took this test from 37 s to over 900 s).
    with executors.child_threads(executors.available_cores()):
        papermill.execute_notebook(str(nb), str(tmp_path / "executed.ipynb"), parameters=params,
                                   kernel_name="photostyle", cwd=str(nb.parent), progress_bar=False)
    out = tmp_path / "out"
    table = pd.read_csv(out / "metrics.csv")
    assert len(table) == 3 * (len(sweep.SWEEP_METHODS) + 1)
    assert set(table["method"]) == {*sweep.SWEEP_METHODS, "content"}
    summary = pd.read_csv(out / "metrics_summary.csv")
    assert set(summary["metric"]) == set(sweep.SUMMARY_COLUMNS) and set(summary["interval"]) == {"t"}
    assert (summary.loc[summary["metric"] == "photorealism", "n"] == 3).all()
    assert (out / "metrics_boxes.png").is_file() and (out / "metrics_tradeoff.png").is_file()
    assert (out / "metrics_vs_content.csv").is_file()
    md = json.loads((out / "metadata.json").read_text())
    assert md["random_weights"] is True and len(md["figures"]) == 2
    assert earlier.key in md["cache_keys"]
    assert json.loads((earlier.directory / "metadata.json").read_text())["created"] == earlier.metadata["created"]
