"""Cached method runs: keys, reuse, atomic folders, every method kind."""

import json

import pytest
import torch

from conftest import needs_hed

from photostyle_lib.experiments import runs
from photostyle_lib.io.data import get_pair
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.experiments import pipeline
from photostyle_lib.experiments.runs import RunSpec, run_cached, run_many
from photostyle_lib.io.images import RANDOM_WEIGHTS_BANNER


@pytest.fixture
def data_dir(pair_data_dir):
    """Here any pair will do: the synthetic set (conftest.pair_data_dir), present in every clone."""
    return pair_data_dir


def _spec(method="full", **kw):
    base = dict(pair_id=1, method=method, size=48, iterations=2, weights="random", segmenter="random-tiny")
    base.update(kw)
    return RunSpec(**base)


def test_key_depends_on_spec_and_files(data_dir):
    pair = get_pair(1, data_dir)
    assert _spec().key(pair) == _spec().key(pair)
    assert _spec().key(pair) != _spec(iterations=3).key(pair)
    assert _spec(theta_s=0.3).key(pair) != _spec().key(pair)
    assert _spec(overrides={"rf_sigma_r": 0.2, "lr": 0.2}).overrides == (("lr", 0.2), ("rf_sigma_r", 0.2))
    assert _spec(pair_id=2).key(get_pair(2, data_dir)) != _spec().key(pair)


def test_theta_s_keys_soft_runs_only(data_dir):
    """theta_s travels on the mask request; it splits soft runs (and soft-rendered error runs), nothing else."""
    pair = get_pair(1, data_dir)
    soft = {t: _spec(masks="soft", theta_s=t) for t in (0.2, 0.3)}
    assert soft[0.3].key(pair) != soft[0.2].key(pair)
    assert soft[0.3].mask_request().theta_s == 0.3 and soft[0.2].mask_request().theta_s == 0.2
    assert "theta_s" not in {f for f, _ in soft[0.3].config().__dict__.items()}  # not an engine setting
    gold = {t: _spec(masks="gold", theta_s=t) for t in (0.2, 0.3)}
    assert gold[0.3].key(pair) == gold[0.2].key(pair) == _spec(masks="gold").key(pair)
    assert gold[0.3].overrides == () and gold[0.3].theta_s == 0.2  # reset where it does not act
    err = {t: _spec(masks="gold", theta_s=t, mask_errors=(("kind", "boundary"), ("severity", 2),
                                                                            ("render", "soft"))) for t in (0.2, 0.3)}
    assert err[0.3].key(pair) != err[0.2].key(pair)
    with pytest.raises(PhotostyleError, match="theta_s"):
        _spec(masks="soft", theta_s=1.5)


def test_engine_run_is_cached_and_complete(data_dir, tmp_path, monkeypatch):
    rec = run_cached(_spec(masks="gold"), cache_dir=tmp_path, data_dir=data_dir, progress=False)
    names = {p.name for p in rec.directory.iterdir()}
    assert {"image.png", "raw.png", "content.png", "style.png", "losses.csv", "masks.npz", "metadata.json"} <= names
    assert rec.random_weights and rec.metadata["weights"].startswith("random")
    assert rec.metadata["spec"]["method"] == "full" and rec.metadata["git_revision"]
    assert rec.metadata["memory"]["run_peak_rss_mb"] > 10
    assert rec.image().shape[-1] == 48 and rec.masks().kind == "gold" and len(rec.losses()) == 2
    from PIL import Image

    assert "RANDOM WEIGHTS" in Image.open(rec.image_path).text["photostyle:weights"]
    assert rec.weights_warning == RANDOM_WEIGHTS_BANNER and rec.metadata["network"]["network"] == "VGG-19"
    # a second call reads the folder: stylize must not run again
    monkeypatch.setattr(pipeline, "stylize", lambda *a, **k: pytest.fail("recomputed a cached run"))
    again = run_cached(_spec(masks="gold"), cache_dir=tmp_path, data_dir=data_dir, progress=False)
    assert again.directory == rec.directory
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_interrupted_run_leaves_nothing(data_dir, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "stylize", boom)
    with pytest.raises(KeyboardInterrupt):
        run_cached(_spec(masks="gold"), cache_dir=tmp_path, data_dir=data_dir, progress=False)
    assert list((tmp_path / "runs").iterdir()) == []


def test_soft_masks_from_random_tiny_segmenter(data_dir, tmp_path):
    rec = run_cached(_spec(masks="soft"), cache_dir=tmp_path, data_dir=data_dir, progress=False)
    m = rec.masks()
    assert m.kind == "soft" and rec.metadata["segmenter_random_weights"] is True
    assert rec.weights_warning == RANDOM_WEIGHTS_BANNER
    assert any((tmp_path / "segmentation").iterdir())


def test_colour_transfer_and_published(data_dir, tmp_path):
    specs = [_spec("reinhard"), _spec("pitie_idt"), _spec("luan_published")]
    recs = run_many(specs, cache_dir=tmp_path, data_dir=data_dir, progress=False)
    for r in recs:
        img = r.image()
        assert img.shape == r.content().shape and not r.random_weights and r.weights_warning is None
    assert not torch.equal(recs[0].image(), recs[0].content())
    assert json.loads((recs[2].directory / "metadata.json").read_text())["weights"].startswith("published")


@needs_hed
def test_stand_in_run_records_its_network_and_banner(data_dir, tmp_path):
    from PIL import Image

    from photostyle_lib.features import vgg
    from photostyle_lib.io.images import STAND_IN_BANNER, STAND_IN_TEXT
    from photostyle_lib.io.metadata import file_digest

    rec = run_cached(_spec(masks="gold", weights="hed-vgg16"), cache_dir=tmp_path, data_dir=data_dir, progress=False)
    assert rec.weights_warning == STAND_IN_BANNER and not rec.random_weights
    net = rec.metadata["network"]
    assert (net["network"], net["kind"], net["sha256"]) == ("VGG-16", "stand-in", file_digest(vgg.hed_weights_path()))
    assert rec.metadata["weights_choice"] is None and rec.metadata["stand_in_weights"] is True
    for name in ("image.png", "raw.png"):
        assert Image.open(rec.directory / name).text == STAND_IN_TEXT
    # a random segmenter on top: the stronger banner wins
    soft = run_cached(_spec(masks="soft", weights="hed-vgg16"), cache_dir=tmp_path, data_dir=data_dir,
                      progress=False)
    assert soft.weights_warning == RANDOM_WEIGHTS_BANNER and soft.metadata["network"]["kind"] == "stand-in"


def test_a_record_says_the_banner_it_was_written_with(tmp_path):
    """One rule makes the banner (TransferResult.banner), when the run is computed; a record only reads it."""
    record = lambda md: runs.RunRecord(_spec(), "k", tmp_path, md)  # noqa: E731
    assert record({"random_weights": True, "weights_warning": RANDOM_WEIGHTS_BANNER}).weights_warning \
        == RANDOM_WEIGHTS_BANNER
    assert record({"random_weights": False}).weights_warning is None


def test_bad_specs():
    with pytest.raises(PhotostyleError, match="method"):
        RunSpec(1, "cubism")
    with pytest.raises(PhotostyleError, match="masks"):
        RunSpec(1, "full", masks="crayon")
    with pytest.raises(PhotostyleError, match="size"):
        RunSpec(1, "full", size=3)


def test_key_follows_presets_weights_and_segmenter(data_dir, tmp_path, monkeypatch):
    import dataclasses

    from photostyle_lib.engine import presets

    pair = get_pair(1, data_dir)
    spec = _spec(masks="soft")
    key = spec.key(pair)
    monkeypatch.setitem(presets.PRESETS, "full", dataclasses.replace(presets.PRESETS["full"], rf_sigma_s=30.0))
    assert spec.key(pair) != key  # a changed preset is a different run
    monkeypatch.undo()
    assert spec.key(pair) == key
    monkeypatch.setenv("PHOTOSTYLE_SEGMENTER", str(tmp_path))
    assert spec.key(pair) != key
    monkeypatch.delenv("PHOTOSTYLE_SEGMENTER")
    w = tmp_path / "w.pth"
    w.write_bytes(b"1")
    a = _spec(weights=str(w)).key(pair)
    w.write_bytes(b"12")
    assert _spec(weights=str(w)).key(pair) != a  # replaced weights file


def test_ctrl_c_run_is_never_cached_as_done(data_dir, tmp_path):
    """Fault injection: Ctrl-C at iteration 2 of 4. stylize returns its best image (stop_reason
    "interrupted"); run_cached keeps it under interrupted/<key>, raises KeyboardInterrupt again,
    and the next call with the same spec computes the full run."""
    def ctrl_c(it, row):
        if it == 2:
            raise KeyboardInterrupt
    spec = _spec(masks="gold", iterations=4)
    with pytest.raises(KeyboardInterrupt, match="not cached as done"):
        run_cached(spec, cache_dir=tmp_path, data_dir=data_dir, progress=False, callback=ctrl_c)
    assert not [p for p in (tmp_path / "runs").iterdir()]
    (partial,) = (tmp_path / "interrupted").iterdir()
    assert json.loads((partial / "metadata.json").read_text())["stop_reason"] == "interrupted"
    rec = run_cached(spec, cache_dir=tmp_path, data_dir=data_dir, progress=False)
    assert rec.metadata["stop_reason"] == "iterations" and len(rec.losses()) == 4
    assert rec.directory.name == partial.name  # same key: the finished run took its place in runs/


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("name", ["metadata.json", "masks.npz", "losses.csv", "image.png"])
def test_damaged_entry_is_recomputed_with_one_warning(data_dir, tmp_path, monkeypatch, capsys, name):
    """Fault injection: each cache file truncated to half. The manifest's digests catch it: one
    warning line naming the entry and the file, then the run is computed again (not read wrong)."""
    spec = _spec(masks="gold")
    rec = run_cached(spec, cache_dir=tmp_path, data_dir=data_dir, progress=False)
    manifest = json.loads((rec.directory / "manifest.json").read_text())["files"]
    assert {"metadata.json", "masks.npz", "losses.csv", "image.png"} <= set(manifest)
    good_losses = rec.losses()
    _truncate(rec.directory / name)
    capsys.readouterr()
    calls = []
    real = pipeline.stylize
    monkeypatch.setattr(pipeline, "stylize", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = run_cached(spec, cache_dir=tmp_path, data_dir=data_dir, progress=False)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(rec.directory) in err and name in err and "recomputing" in err
    assert calls == [1]
    assert again.losses()["total"].tolist() == pytest.approx(good_losses["total"].tolist(), rel=1e-5)
    assert again.masks().kind == "gold"
    run_cached(spec, cache_dir=tmp_path, data_dir=data_dir, progress=False)  # intact now: read, no warning
    assert calls == [1] and capsys.readouterr().err == ""


def test_entry_without_manifest_is_discarded_and_recomputed(data_dir, tmp_path, capsys):
    """An entry without its manifest cannot be checked: it is discarded (one warning line) and computed again."""
    spec = _spec(masks="gold", iterations=3)
    rec = run_cached(spec, cache_dir=tmp_path, data_dir=data_dir, progress=False)
    (rec.directory / "manifest.json").unlink()
    again = run_cached(spec, cache_dir=tmp_path, data_dir=data_dir, progress=False)
    err = capsys.readouterr().err
    assert "manifest.json is missing" in err and err.count("\n") == 1
    assert (again.directory / "manifest.json").exists() and len(again.losses()) == 3


def test_cache_key_ignores_parameters_of_unused_parts():
    """The local-affine smoothing's parameters matter only when it runs: other runs keep their keys."""
    from photostyle_lib.engine.presets import get_preset
    from photostyle_lib.experiments.runs import relevant_config
    full = get_preset("full", weights="random")
    assert "affine_radius" not in relevant_config(full) and "device" not in relevant_config(full)
    assert relevant_config(full) == relevant_config(full.replace(affine_radius=3, device="cpu"))
    luan = get_preset("luan", weights="random")
    assert relevant_config(luan)["affine_radius"] == 15
    assert relevant_config(luan) != relevant_config(luan.replace(affine_radius=3))
    assert "smooth_lambda" not in relevant_config(full)
    chain = full.replace(postprocess="recursive_filter+colour_match+matting_smooth")
    assert relevant_config(chain)["smooth_lambda"] == chain.smooth_lambda and "affine_radius" not in relevant_config(chain)
    # the detail step's settings enter keys only where it runs (stored runs keep theirs)
    assert "detail_max_gain" not in relevant_config(chain) and "detail_bands" not in relevant_config(full)
    detailed = full.replace(postprocess="recursive_filter+colour_match+detail_match+matting_smooth")
    assert relevant_config(detailed)["detail_max_gain"] == detailed.detail_max_gain
    assert relevant_config(detailed) != relevant_config(detailed.replace(detail_bands=2))
    # a field added later is left out at the value that reproduces the earlier engine (stored keys kept)
    assert "init" not in relevant_config(full)
    assert relevant_config(full.replace(init="reinhard"))["init"] == "reinhard"


def test_line_search_is_in_the_key_only_for_the_projected_optimiser():
    """The projected L-BFGS's line search changes its result (in the key, left out at "halve", the earlier
    engine's); the paper's plain L-BFGS (luan) has none, so the field leaves its key alone."""
    from photostyle_lib.engine.presets import get_preset
    from photostyle_lib.experiments.runs import relevant_config
    full = get_preset("full", weights="random")
    assert full.optimizer == "projected_lbfgs" and relevant_config(full)["line_search"] == "adaptive"
    assert "line_search" not in relevant_config(full.replace(line_search="halve"))
    assert relevant_config(full) != relevant_config(full.replace(line_search="interpolate"))
    luan = get_preset("luan", weights="random")
    assert "line_search" not in relevant_config(luan)
    assert relevant_config(luan) == relevant_config(luan.replace(line_search="interpolate"))


def test_curvature_cosine_is_in_the_key_only_for_the_projected_optimiser():
    """curvature_cosine (the projected L-BFGS's pair test) is in full's key, left out at 0 (the earlier
    engine's plain test, so runs stored before it keep their keys) and for the plain L-BFGS (luan)."""
    from photostyle_lib.engine.presets import get_preset
    from photostyle_lib.experiments.runs import relevant_config
    full = get_preset("full", weights="random")
    assert relevant_config(full)["curvature_cosine"] == 1e-2
    assert "curvature_cosine" not in relevant_config(full.replace(curvature_cosine=0.0))
    assert relevant_config(full) != relevant_config(full.replace(curvature_cosine=0.1))
    luan = get_preset("luan", weights="random")
    assert relevant_config(luan) == relevant_config(luan.replace(curvature_cosine=0.1))


def test_clamp_iterates_is_in_the_key_only_where_it_acts():
    """True (the engine before the field) leaves stored keys as they were; False splits a plain-L-BFGS
    run's key and not a projected one's (it always stays in the box)."""
    from photostyle_lib.engine.presets import get_preset
    from photostyle_lib.experiments.runs import relevant_config
    luan, full = get_preset("luan", weights="random"), get_preset("full", weights="random")
    assert "clamp_iterates" not in relevant_config(luan.replace(clamp_iterates=True))
    assert relevant_config(luan.replace(clamp_iterates=False))["clamp_iterates"] is False
    assert full.optimizer == "projected_lbfgs"
    assert relevant_config(full.replace(clamp_iterates=False)) == relevant_config(full)


def test_schedule_fields_keep_stored_keys_at_their_off_values():
    """pyramid_levels 1, level_iterations None, plateau_window 0 (the paper's run) are not in the key, nor
    plateau_tol while the plateau stop is off; the fast preset's schedule is."""
    from photostyle_lib.engine.presets import get_preset
    from photostyle_lib.experiments.runs import relevant_config
    new = {"pyramid_levels", "level_iterations", "plateau_window", "plateau_tol", "level_start"}
    full = get_preset("full", weights="random")
    assert not new & set(relevant_config(full))
    assert relevant_config(full) == relevant_config(full.replace(plateau_tol=0.5, level_start="content_detail"))
    fast = relevant_config(get_preset("fast", weights="random"))
    assert new - {"level_start"} <= set(fast) and fast["level_iterations"] == get_preset("fast").level_iterations
    assert relevant_config(full.replace(plateau_window=10))["plateau_tol"] == full.plateau_tol


def test_entry_without_manifest_or_image_is_recomputed(data_dir, tmp_path, capsys):
    """Issue 37, case 5: manifest and image.png deleted: not accepted and re-manifested (which then
    failed on every call) but discarded with one warning and computed again."""
    spec = _spec(masks="gold")
    rec = run_cached(spec, cache_dir=tmp_path, data_dir=data_dir, progress=False)
    (rec.directory / "manifest.json").unlink()
    (rec.directory / "image.png").unlink()
    capsys.readouterr()
    again = run_cached(spec, cache_dir=tmp_path, data_dir=data_dir, progress=False)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "image.png is missing" in err
    assert again.image().shape[1] == 3 and (again.directory / "manifest.json").exists()
    assert run_cached(spec, cache_dir=tmp_path, data_dir=data_dir, progress=False).image().shape == again.image().shape
    assert capsys.readouterr().err == ""


def test_entry_path_replaced_by_a_file_is_recomputed(data_dir, tmp_path, capsys):
    """Issue 37, case 5: a file in the entry's place: one warning, removed, the run computed and stored
    (it used to fail every rerun with "damaged as soon as it was written")."""
    spec = _spec(method="gatys")
    rec = run_cached(spec, cache_dir=tmp_path, data_dir=data_dir, progress=False)
    import shutil
    shutil.rmtree(rec.directory)
    rec.directory.write_text("not a folder")
    capsys.readouterr()
    again = run_cached(spec, cache_dir=tmp_path, data_dir=data_dir, progress=False)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a folder" in err
    assert again.directory.is_dir() and again.image().shape[1] == 3


def test_killed_writers_temp_folder_is_removed_by_the_next_run(data_dir, tmp_path):
    """Issue 37, case 5: SIGTERM mid-run leaves runs/.<key>.<host>~<pid>~*; the next run of that key
    removes it (its writer is dead) and stores the entry."""
    import os
    import subprocess
    import sys

    from photostyle_lib.io.outputs import temp_prefix

    spec = _spec(method="gatys")
    key = spec.key(get_pair(1, data_dir))
    pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                             text=True).stdout)
    left = tmp_path / "runs" / (temp_prefix(key).replace(f"~{os.getpid()}~", f"~{pid}~") + "k1")
    left.mkdir(parents=True)
    (left / "image.png").write_bytes(b"half")
    run_cached(spec, cache_dir=tmp_path, data_dir=data_dir, progress=False)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [key]
