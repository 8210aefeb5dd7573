"""Which config fields only the post-process reads (config.POSTPROCESS_FIELDS, same_optimisation)."""

import ast
import dataclasses
from pathlib import Path

import pytest

from photostyle_lib.engine import config as config_module
from photostyle_lib.engine.config import (POSTPROCESS_FIELDS, POSTPROCESS_STEP_FIELDS, POSTPROCESS_STEP_NAMES,
                                          TransferConfig, same_optimisation)
from photostyle_lib.engine.presets import PRESETS, get_preset

ENGINE = Path(config_module.__file__).parent
FIELDS = {f.name for f in dataclasses.fields(TransferConfig)}


def _attributes_read(path: Path) -> set[str]:
    """Names of every ``<expr>.<name>`` in a module's source that is a TransferConfig field."""
    tree = ast.parse(path.read_text())
    return {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr in FIELDS}


def _optimisation_reads() -> set[str]:
    """Config fields read anywhere in the package outside the post-process chain and the config itself."""
    package = ENGINE.parent
    skip = {ENGINE / "postprocess_chain.py", ENGINE / "config.py"}
    names: set[str] = set()
    for path in package.rglob("*.py"):
        if path not in skip:
            names |= _attributes_read(path)
    return names


def test_every_step_lists_its_fields():
    assert set(POSTPROCESS_STEP_FIELDS) == set(POSTPROCESS_STEP_NAMES)
    for step, fields in POSTPROCESS_STEP_FIELDS.items():
        assert set(fields) <= FIELDS, step
        assert set(fields) <= set(POSTPROCESS_FIELDS), step
    assert POSTPROCESS_FIELDS[0] == "postprocess" and len(set(POSTPROCESS_FIELDS)) == len(POSTPROCESS_FIELDS)


def test_every_field_only_the_post_process_reads_is_listed():
    # a field the chain reads and nothing else in the package reads is a post-process field; a
    # listed field read outside the chain would make two "equal but for the post-process"
    # configs optimise differently
    chain = _attributes_read(ENGINE / "postprocess_chain.py")
    outside = _optimisation_reads()
    only_chain = chain - outside
    assert only_chain, "the chain reads no field of its own: the scan found nothing"
    assert only_chain <= set(POSTPROCESS_FIELDS), sorted(only_chain - set(POSTPROCESS_FIELDS))
    assert not (set(POSTPROCESS_FIELDS) & outside), sorted(set(POSTPROCESS_FIELDS) & outside)
    # every listed field is read by the chain (a stale entry would hide an optimisation field)
    assert set(POSTPROCESS_FIELDS) <= chain, sorted(set(POSTPROCESS_FIELDS) - chain)


def test_same_optimisation():
    base = TransferConfig()
    assert same_optimisation(base, base.replace(postprocess="recursive_filter+detail_match", detail_max_gain=2.0,
                                                smooth_lambda=7.0, rf_sigma_s=20.0))
    assert not same_optimisation(base, base.replace(style_weight=base.style_weight * 2))
    assert not same_optimisation(base, base.replace(matting_eps=base.matting_eps * 10))  # the regulariser reads it


@pytest.mark.parametrize("method", ["enhanced", "enhanced_detail", "no_postprocess"])
def test_post_process_presets_share_full_s_optimisation(method):
    if method not in PRESETS:
        pytest.skip(f"no preset {method}")
    assert same_optimisation(get_preset(method, weights="imagenet-vgg19-caffe"),
                             get_preset("full", weights="imagenet-vgg19-caffe"))
