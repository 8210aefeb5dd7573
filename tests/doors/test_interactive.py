"""The interactive app, headless: build it, set sliders, press Run, read the result and the messages.

Runs use the ``ci`` profile's settings (weights auto: the original VGG-19 offline,
the tiny random segmenter, 64 px, 3 iterations) and the session's shared CI cache,
so the default run is shared with the notebook suite and the recipe tests.
"""

from __future__ import annotations

import io
import json
import shutil
import threading

import ipywidgets as W
import numpy as np
import pytest
from PIL import Image

from photostyle_lib.doors import app as doors_app
from photostyle_lib.experiments.settings import PROFILES, Settings, canonical_spec
from photostyle_lib.plots import figures
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.engine.presets import get_preset


@pytest.fixture
def data_dir(pair_data_dir):
    """Here any pair will do: the synthetic set (conftest.pair_data_dir), present in every clone."""
    return pair_data_dir


@pytest.fixture
def make_app(tmp_path_factory, tmp_path, data_dir):
    ci = PROFILES["ci"]["*"]
    cache = tmp_path_factory.getbasetemp() / "photostyle-ci-cache"

    def make(**kw):
        args = dict(data_dir=data_dir, pair_id=8, size=ci["size"], iterations=ci["iterations"],
                    weights=ci["weights"], segmenter=ci["segmenter"], device=ci["device"], cache_dir=cache,
                    output_dir=tmp_path / "out", profile="ci", progress=False)
        args.update(kw)
        return doors_app.build_app(args.pop("data_dir"), **args)

    return make


def ci_weights() -> str:
    return PROFILES["ci"]["*"]["weights"]


def _png(value: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(value)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0


def _no_error_outputs(app) -> bool:
    return all(o.get("output_type") != "error" for o in app.output.outputs)


def test_widgets_and_defaults(make_app):
    app = make_app()
    w = app.widgets
    # the sliders start at the full preset's weights for the network (presets.NETWORK_WEIGHTS)
    expected_beta = get_preset("full", weights=ci_weights()).style_weight
    assert isinstance(w["beta"], W.FloatLogSlider) and w["beta"].value == pytest.approx(expected_beta)
    assert (w["alpha"].value, w["gamma"].value, w["theta_s"].value) == (1.0, 3.0, 0.2)
    assert tuple(w["masks"].options) == ("soft", "hard", "gold", "none")
    assert set(w["postprocess"].options) == set(doors_app.POSTPROCESS_CHOICES)
    assert isinstance(w["run"], W.Button) and isinstance(w["progress"], W.IntProgress)
    assert "RANDOM WEIGHTS" in w["banner"].value
    assert app.record is None and app.message is None
    # The defaults are the paper's full model: the same cached run as the notebooks'.
    ci_iterations = PROFILES["ci"]["*"]["iterations"]
    assert app.spec() == Settings("x", data_dir=app.settings.data_dir, size=64, iterations=ci_iterations,
                                              weights=ci_weights(), segmenter="random-tiny").spec(8, "full")
    # theta_s acts on soft masks only, and says so.
    w["masks"].value = "gold"
    assert w["theta_s"].disabled
    w["masks"].value = "soft"
    assert not w["theta_s"].disabled
    assert "application/vnd.jupyter.widget-view+json" in app._repr_mimebundle_()


def test_run_button_produces_a_result(make_app):
    app = make_app()
    w = app.widgets
    w["alpha"].value = 2.0
    w["gamma"].value = 0.0  # in 3 iterations the similarity loss holds the image near the content
    w["beta"].value = 1e8
    w["postprocess"].value = "none"
    w["run"].click()
    app.wait()  # the button runs in a background thread
    rec = app.record
    assert rec is not None and app.message is None and _no_error_outputs(app)
    assert rec.spec.method == "no_postprocess"
    assert dict(rec.spec.overrides) == {"content_weight": 2.0, "similarity_weight": 0.0, "style_weight": 1e8}
    assert rec.metadata["config"]["style_weight"] == 1e8
    result, content = _png(w["result"].value), _png(w["content"].value)
    assert result.shape == content.shape == (42, 64, 3)
    assert np.abs(result - content).max() > 4 / 255  # the run changed the image
    assert w["progress"].value == w["progress"].max and "done" in w["status"].value
    assert not w["run"].disabled
    # Saving: the before/after figure, its panels and metadata with the widget values.
    md = json.loads(app.save().read_text())
    assert md["random_weights"] is True and md["extra_parameters"]["widgets"]["alpha"] == 2.0
    (fig,) = md["figures"]
    assert (fig["rows"], fig["columns"]) == (1, 4) and figures.RANDOM_WEIGHTS_BANNER in fig["title"]
    assert md["cache_keys"] == [rec.key]
    assert (md["runs"][0]["network"]["network"], md["runs"][0]["network"]["kind"]) == ("VGG-19", "original")


def test_banner_follows_the_run(make_app):
    """Gold masks: no random segmenter in the run, so the banner becomes the network's after Run (offline, the
    original VGG-19's note: named, not in red)."""
    app = make_app(masks="gold")
    assert "RANDOM WEIGHTS" in app.widgets["banner"].value  # before: the settings name a random segmenter
    app.widgets["run"].click()
    app.wait()  # the button runs in a background thread
    assert app.record is not None and app.record.weights_warning == figures.ORIGINAL_VGG19_BANNER
    banner = app.widgets["banner"].value
    assert "original VGG-19 (Caffe release, 8-bit quantised)" in banner and figures.WARNING_COLOUR not in banner
    (fig,) = json.loads(app.save().read_text())["figures"]
    assert fig["weights_warning"] == figures.ORIGINAL_VGG19_BANNER and figures.ORIGINAL_VGG19_BANNER in fig["title"]


def test_mask_mode_none_reuses_the_ablation_run(make_app):
    app = make_app()
    app.widgets["masks"].value = "none"
    spec = app.spec()
    assert (spec.method, spec.masks, spec.overrides, spec.segmenter) == ("no_segmentation", None, (), None)


def test_postprocess_choices_map_to_sigma_r(make_app):
    app = make_app()
    app.widgets["postprocess"].value = "recursive filter, \u03c3_r = 100 on [0, 1] (ablation)"
    assert dict(app.spec().overrides) == {"rf_sigma_r": 100.0}
    app.widgets["postprocess"].value = "screened Poisson"
    assert dict(app.spec().overrides) == {"postprocess": "screened_poisson"}
    app.widgets["postprocess"].value = "recursive filter, \u03c3_r = 100/255 (paper's text)"
    assert app.spec().overrides == ()


@pytest.mark.parametrize("changes, message", [
    ({"alpha": 0.0, "gamma": 0.0}, "alpha and gamma are both 0"),
])
def test_bad_combination_gives_a_message_not_a_traceback(make_app, changes, message):
    app = make_app()
    for name, value in changes.items():
        app.widgets[name].value = value
    app.widgets["run"].click()
    app.wait()  # the button runs in a background thread
    assert app.record is None and message in app.message
    assert _no_error_outputs(app)
    texts = [o["text"] for o in app.output.outputs if o.get("output_type") == "stream"]
    assert len(texts) == 1 and texts[0].startswith("Cannot run: ") and message in texts[0]
    assert "Cannot run" in app.widgets["status"].value and app.widgets["progress"].value == 0
    assert not app.widgets["run"].disabled
    # A good setting afterwards runs and clears the message.
    app.widgets["alpha"].value, app.widgets["gamma"].value = 1.0, 3.0
    assert app.run() is not None and app.message is None and app.output.outputs == ()


def test_gold_masks_missing_is_a_message(make_app, data_dir, tmp_path):
    # A data folder whose pair 8 has no gold masks.
    d = tmp_path / "data"
    for sub, name in (("input", "in8.png"), ("style", "tar8.png")):
        (d / sub).mkdir(parents=True)
        shutil.copy(data_dir / sub / name, d / sub / name)
    app = make_app(data_dir=d)
    app.widgets["masks"].value = "gold"
    assert app.run() is None and "has no gold masks" in app.message and _no_error_outputs(app)


def test_errors_inside_a_run_are_a_message(make_app, monkeypatch):
    def fail(*args, **kwargs):
        raise PhotostyleError("segmenter weights not found; see photostyle_lib/semantic/segmenter.py")

    monkeypatch.setattr(doors_app, "run_cached", fail)
    app = make_app()
    app.widgets["run"].click()
    app.wait()  # the button runs in a background thread
    assert app.record is None and app.message.startswith("segmenter weights not found")
    assert _no_error_outputs(app) and not app.widgets["run"].disabled


def test_nothing_to_save_before_a_run(make_app):
    with pytest.raises(PhotostyleError, match="press Run first"):
        make_app().save()


def test_auto_run_runs_and_saves(make_app, tmp_path):
    app = make_app(auto_run=True, output_dir=tmp_path / "auto")
    assert app.record is not None
    assert (tmp_path / "auto" / "interactive.png").exists() and (tmp_path / "auto" / "metadata.json").exists()


def test_build_app_checks(make_app):
    with pytest.raises(PhotostyleError, match="pair 999 is not in"):
        make_app(pair_id=999)
    with pytest.raises(PhotostyleError, match="masks must be one of"):
        make_app(masks="fuzzy")
    with pytest.raises(PhotostyleError, match="postprocess must be one of"):
        make_app(postprocess="sharpen")
    with pytest.raises(PhotostyleError, match="initial settings cannot run: alpha and gamma"):
        make_app(alpha=0.0, gamma=0.0, auto_run=True)


def test_status_line_follows_iterations(make_app):
    app = make_app()
    w = app.widgets
    w["iterations"].value = 4
    w["alpha"].value = 3.0  # a setting no other test computed: this run is not in the cache
    seen = []
    w["status"].observe(lambda change: seen.append(change["new"]), names="value")
    w["run"].click()
    app.wait()  # the button runs in a background thread
    assert app.record is not None
    assert any("iteration 4/4" in s for s in seen), seen


# --------------------------------------------------------------------------- live preview, Stop, Save, strip
# Tiny runs: random VGG weights (explicitly), no masks, 32 px (the synthetic pair is then 21 x 32).


@pytest.fixture
def tiny_app(tmp_path, data_dir):
    def make(**kw):
        args = dict(pair_id=8, size=32, iterations=6, weights="random", masks="none", postprocess="none",
                    device="cpu", cache_dir=tmp_path / "cache", output_dir=tmp_path / "out", progress=False)
        args.update(kw)
        return doors_app.build_app(data_dir, **args)

    return make


def test_live_preview_and_progress_bar(tiny_app):
    app = tiny_app(preview_every=2, iterations=6)
    w = app.widgets
    previews, progress = [], []
    w["result"].observe(lambda c: previews.append((app.preview_iteration, c["new"])), names="value")
    w["progress"].observe(lambda c: progress.append(c["new"]), names="value")
    rec = app.run()
    assert rec is not None and rec.metadata["stop_reason"] == "iterations"
    evaluations = rec.metadata["evaluations"]
    live = [_png(v) for it, v in previews if it is not None]
    # evaluations 1, 2, 4, 6 are previewed (iteration 1 and every 2nd), then the final result is shown
    assert [it for it, _ in previews[:-1]] == [i for i in range(1, evaluations + 1) if i == 1 or i % 2 == 0]
    assert previews[-1][0] is None and len(live) >= 2
    assert all(p.shape == (21, 32, 3) for p in live)
    content = _png(w["content"].value)
    assert np.abs(live[0] - content).max() <= 1.5 / 255  # the first evaluation is at the content image
    assert np.abs(live[-1] - content).max() > 2 / 255  # ... later previews show the optimisation moving
    # the bar counts evaluations: 1, 2, ... up to the run's evaluations, out of the planned 6
    assert progress == list(range(1, evaluations + 1))
    assert w["progress"].max == 6 and w["progress"].value == evaluations
    assert w["progress"].description == f"{evaluations}/6"


def test_evaluations_of_a_two_stage_run():
    spec = canonical_spec(doors_app.RunSpec(1, "luan", iterations=7, weights="random"))
    assert spec.config().two_stage and doors_app.evaluations_of(spec) == 14
    assert doors_app.evaluations_of(doors_app.RunSpec(1, "full", iterations=7, weights="random")) == 7


def test_stop_from_another_thread_keeps_the_best_and_is_not_cached(tiny_app, tmp_path):
    app = tiny_app(iterations=40, preview_every=1)
    w = app.widgets
    first_preview, stop_sent = threading.Event(), threading.Event()

    def hold_at_first_preview(change):
        if app.running and not first_preview.is_set():
            first_preview.set()
            assert stop_sent.wait(60)  # the run thread waits for the Stop click: a deterministic stop point

    w["result"].observe(hold_at_first_preview, names="value")
    assert not app.stop()  # nothing runs yet
    w["run"].click()  # a background thread
    assert first_preview.wait(120) and app.running and w["run"].disabled and not w["stop"].disabled
    assert app.stop()
    stop_sent.set()
    rec = app.wait(120)
    assert rec is not None and not app.running and not w["run"].disabled and w["stop"].disabled
    md = rec.metadata
    assert md["stop_reason"] == "stopped by user" and md["evaluations"] == 2  # evaluation 2 saw the request
    losses = rec.losses()
    assert losses["total"].iloc[md["best_iteration"] - 1] == losses["total"].min()  # the best image is kept
    assert "stopped by user" in w["status"].value and w["progress"].bar_style == "warning"
    assert w["progress"].value == 2
    # Not a finished run: kept under interrupted/<key>, absent from runs/
    cache = tmp_path / "cache"
    assert rec.directory == cache / "interrupted" / rec.key and not (cache / "runs" / rec.key).exists()
    assert app.history[0].caption.endswith("stopped at 2") and app.history[0].stop_reason == "stopped by user"
    # The same setting again is computed in full (its callback runs), then cached as finished.
    seen = []
    w["progress"].observe(lambda c: seen.append(c["new"]), names="value")
    again = app.run()
    assert again.key == rec.key and again.metadata["stop_reason"] == "iterations"
    assert again.directory == cache / "runs" / rec.key and max(seen) == again.metadata["evaluations"] > 2


def test_stop_from_within_the_callback(tiny_app):
    app = tiny_app(iterations=30)
    app.widgets["progress"].observe(lambda c: c["new"] == 3 and app.stop(), names="value")
    rec = app.run()  # in this thread: stop() is called from the run's own callback
    assert rec.metadata["stop_reason"] == "stopped by user" and rec.metadata["evaluations"] == 3
    assert rec.directory.parent.name == "interrupted"


def test_save_writes_png_and_json_and_refuses_existing_files(tiny_app, tmp_path, data_dir):
    from photostyle_lib.io.images import WEIGHTS_TEXT_KEY
    from photostyle_lib.io.metadata import file_digest

    app = tiny_app(iterations=3)
    with pytest.raises(PhotostyleError, match="press Run first"):
        app.save(tmp_path / "r.png")
    app.widgets["alpha"].value = 2.5
    rec = app.run()
    out = tmp_path / "saved" / "r.png"
    meta = app.save(out)
    assert meta == tmp_path / "saved" / "r.png.json"
    md = json.loads(meta.read_text())
    assert md["image_sha256"] == file_digest(out) and md["run_key"] == rec.key
    assert md["widgets"]["alpha"] == 2.5 and md["stop_reason"] == "iterations" and md["cached_as_finished"]
    assert md["random_weights"] is True and md["weights_warning"] == figures.RANDOM_WEIGHTS_BANNER
    assert md["run"]["config"]["content_weight"] == 2.5
    with Image.open(out) as im:
        assert "RANDOM WEIGHTS" in im.text[WEIGHTS_TEXT_KEY]
        saved = np.asarray(im.convert("RGB"))
    with Image.open(rec.image_path) as im:
        assert np.array_equal(saved, np.asarray(im.convert("RGB")))  # the run's result, pixel for pixel
    # An existing file is refused (both files unchanged) unless overwrite=True
    before = (out.read_bytes(), meta.read_bytes())
    with pytest.raises(PhotostyleError, match="already exists; choose another output path or pass overwrite \\(tick it"):
        app.save(out)
    assert (out.read_bytes(), meta.read_bytes()) == before
    json_only = tmp_path / "other.png"
    (tmp_path / "other.png.json").write_text("{}")
    with pytest.raises(PhotostyleError, match="other.png.json already exists"):
        app.save(json_only)
    assert not json_only.exists()
    assert app.save(out, overwrite=True) == meta and json.loads(meta.read_text())["image_sha256"] == file_digest(out)
    # The Save button: a refusal is a status line, not a traceback; the box's path and overwrite are used
    w = app.widgets
    w["save_path"].value = str(out)
    w["save"].click()
    assert "Cannot save" in w["status"].value and "already exists" in app.message
    w["overwrite"].value = True
    w["save"].click()
    assert "saved" in w["status"].value and "RANDOM WEIGHTS" in w["status"].value
    # Never an input file, even with overwrite; only PNG
    with pytest.raises(PhotostyleError, match="is the content file"):
        app.save(data_dir / "input" / "in8.png", overwrite=True)
    with pytest.raises(PhotostyleError, match="must end in .png"):
        app.save(tmp_path / "r.jpg")


def test_strip_holds_the_last_runs_with_their_knobs(tiny_app):
    app = tiny_app(iterations=2, strip_size=2)
    w = app.widgets
    for alpha in (1.0, 2.0, 3.0):
        w["alpha"].value = alpha
        assert app.run() is not None
    assert [e.values["alpha"] for e in app.history] == [3.0, 2.0]  # newest first, the oldest dropped
    assert len({e.key for e in app.history}) == 2
    assert app.history[0].caption.startswith("\u03b1 3 \u00b7 \u03b2 1e+07 \u00b7 \u03b3 3 | none masks, no post")
    assert len(w["strip"].children) == 2
    thumb, caption = w["strip"].children[0].children
    assert isinstance(thumb, W.Image) and _png(thumb.value).shape == (21, 32, 3)
    assert "\u03b1 3" in caption.value
    w["alpha"].value = 3.0
    app.run()  # the same setting again (from the cache): still one entry
    assert [e.values["alpha"] for e in app.history] == [3.0, 2.0]


def test_knob_caption_names_theta_s_for_soft_masks_only():
    v = {"alpha": 1.0, "beta": 1e7, "gamma": 3.0, "theta_s": 0.35, "masks": "soft",
         "postprocess": "screened Poisson"}
    expected = "\u03b1 1 \u00b7 \u03b2 1e+07 \u00b7 \u03b3 3 \u00b7 \u03b8s 0.35 | soft masks, Poisson"
    assert doors_app.knob_caption(v) == expected
    assert "\u03b8s" not in doors_app.knob_caption({**v, "masks": "gold"})
    assert doors_app.knob_caption(v, "stopped by user", 12).endswith("| stopped at 12")


def test_build_app_checks_the_new_options(tiny_app):
    with pytest.raises(PhotostyleError, match="preview_every"):
        tiny_app(preview_every=0)
    with pytest.raises(PhotostyleError, match="strip_size"):
        tiny_app(strip_size=0)


def test_app_spec_is_the_settings_spec(tiny_app):
    """The app and the notebooks turn alpha, beta, gamma, theta_s into a run in one place (Settings.spec)."""
    from photostyle_lib.engine.symbols import WEIGHT_FIELDS

    app = tiny_app()
    for change in ({}, {"alpha": 2.5, "gamma": 0.0}, {"beta": 3e6, "masks": "hard"},
                   {"theta_s": 0.35, "masks": "soft"}, {"masks": "none",
                                                        "postprocess": "screened Poisson"}):
        v = {**app.values(), **change}
        expected = Settings("00_interactive", profile=app.settings.profile, data_dir=app.settings.data_dir,
                            cache_dir=app.settings.cache_dir, output_dir=app.settings.output_dir,
                            size=v["size"], iterations=v["iterations"], weights=app.settings.weights,
                            segmenter=app.settings.segmenter, theta_s=v["theta_s"], alpha=v["alpha"],
                            beta=v["beta"], gamma=v["gamma"], seed=app.settings.seed
                            ).spec(v["pair_id"], "full", v["masks"],
                                   extra=doors_app.POSTPROCESS_CHOICES[v["postprocess"]])
        got = app.spec(v)
        assert got == expected  # the same spec: the same cache key
        cfg = got.config()
        for symbol, field in WEIGHT_FIELDS.items():
            assert getattr(cfg, field) == pytest.approx(v[symbol]), symbol
