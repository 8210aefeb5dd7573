"""photostyle: photorealistic style transfer (soft semantic segmentation, similarity loss,
recursive-filter post-process), with the baselines it is compared against.

The public API, importable from the package root::

    from photostyle_lib import data_dir, get_preset, load_gold_masks, load_image, save_result, stylize

    data = data_dir()                                   # the Luan et al. set ($PHOTOSTYLE_DATA)
    content = load_image(data / "input" / "in1.png", 512)   # (1, 3, H, W) float in [0, 1]
    style = load_image(data / "style" / "tar1.png", 512)
    masks = load_gold_masks(data / "segmentation" / "in1.png", data / "segmentation" / "tar1.png")
    config = get_preset("full", weights="imagenet-vgg19-caffe", iterations=500)
    result = stylize(content, style, config, masks=masks)
    save_result(result, "pair1_full.png")               # + pair1_full.png.json, its metadata

Each name is loaded from its module on first use (PEP 562 ``__getattr__``): ``import
photostyle_lib`` imports neither torch nor numpy. The package root re-exports by name only
(the table :data:`_EXPORTS`, module paths as strings), so it imports nothing from the layers
above it (tests/test_layout.py).
"""

import importlib as _importlib

__version__ = "0.1.0"

from photostyle_lib.errors import PhotostyleError  # noqa: E402

#: Public name -> the module that defines it (loaded lazily by :func:`__getattr__`).
_EXPORTS: dict[str, str] = {
    "data_dir": "photostyle_lib.io.data",
    "get_pair": "photostyle_lib.io.data",
    "load_image": "photostyle_lib.io.images",
    "save_image": "photostyle_lib.io.images",
    "save_result": "photostyle_lib.io.results",
    "load_gold_masks": "photostyle_lib.semantic.masks",
    "MaskRequest": "photostyle_lib.semantic.request",
    "make_masks": "photostyle_lib.semantic.request",
    "get_preset": "photostyle_lib.engine.presets",
    "TransferConfig": "photostyle_lib.engine.config",
    "TransferResult": "photostyle_lib.engine.config",
    "stylize": "photostyle_lib.engine.transfer",
}

__all__ = ["PhotostyleError", "__version__", *_EXPORTS]


def __getattr__(name: str) -> object:
    """Load a public name from its module on first use (``photostyle_lib.stylize`` imports the engine then).

    Raises
    ------
    AttributeError
        If ``name`` is not a public name of the package.
    """
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'photostyle_lib' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    """The module's names with the lazy public ones (for ``dir()`` and tab completion)."""
    return sorted(set(globals()) | set(__all__))
