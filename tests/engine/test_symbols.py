"""The one table of the paper's symbols (engine.symbols)."""

import dataclasses
import doctest

from photostyle_lib.engine import symbols
from photostyle_lib.engine.config import TransferConfig


def test_every_weight_symbol_names_a_config_field():
    fields = {f.name for f in dataclasses.fields(TransferConfig)}
    assert set(symbols.WEIGHT_FIELDS) == {"alpha", "beta", "gamma"}
    assert set(symbols.WEIGHT_FIELDS.values()) <= fields
    assert {symbols.SYMBOL_OF[f]: f for f in symbols.SYMBOL_OF} == symbols.WEIGHT_FIELDS


def test_weight_overrides_skips_what_was_not_given():
    assert symbols.weight_overrides({}) == {}
    assert symbols.weight_overrides({"beta": 3e6, "alpha": None, "other": 1}) == {"style_weight": 3e6}
    cfg = TransferConfig().replace(**symbols.weight_overrides({"alpha": 2, "gamma": 0}))
    assert (cfg.content_weight, cfg.similarity_weight) == (2.0, 0.0)


def test_doctests():
    assert doctest.testmod(symbols).failed == 0
