"""Provenance banners: what every artefact made with stand-in, random or the original Caffe weights says.

A banner is a line of text carried by figure titles, panels, metadata
(``weights_warning``) and PNG text chunks (:func:`weights_text`), so that an
image made without the paper's ImageNet VGG-19 says so wherever it goes.
"""

from __future__ import annotations

from collections.abc import Iterable

#: The banner of everything made with randomly initialised weights (VGG or segmenter):
#: figure titles, panels, metadata ``weights_warning``.
RANDOM_WEIGHTS_BANNER = "RANDOM WEIGHTS \u2014 smoke test, not a style transfer"
#: The banner of everything made with the trained stand-in network (``weights="hed-vgg16"``;
#: the same text as ``vgg.VGGFeatures.weights_warning``).
STAND_IN_BANNER = "VGG-16 stand-in (HED, BSDS500) \u2014 not the paper's ImageNet VGG-19"
#: The banner of everything made with the original VGG-19 (``weights="imagenet-vgg19-caffe"``): a note
#: naming the network, not a warning (:func:`is_caution`) -- a real ImageNet VGG-19, but not the
#: paper's torchvision one (retrained by torchvision; RGB, mean / std inputs; unquantised).
ORIGINAL_VGG19_BANNER = ("original VGG-19 (Caffe release, 8-bit quantised) \u2014 not the paper's torchvision "
                         "VGG-19, whose weights torchvision retrained")
#: PNG text chunk key saying which weights made an image (see :func:`weights_text`).
WEIGHTS_TEXT_KEY = "photostyle:weights"


def weights_text(warning: str | None) -> dict[str, str] | None:
    """The PNG text chunk for an image made under a weights banner, or None for the real network.

    Parameters
    ----------
    warning : str or None
        A banner (:data:`RANDOM_WEIGHTS_BANNER`, :data:`STAND_IN_BANNER`) or None.

    Returns
    -------
    dict or None
        ``{WEIGHTS_TEXT_KEY: banner}`` with the em dash as " - ", so the chunk is a
        plain Latin-1 tEXt; None when ``warning`` is empty or None.
    """
    if not warning:
        return None
    return {WEIGHTS_TEXT_KEY: warning.replace(" \u2014 ", " - ")}


def is_caution(banner: str | None) -> bool:
    """Whether a weights banner warns (random weights, the stand-in) rather than only names the network.

    Parameters
    ----------
    banner : str or None
        A banner, or several joined by "; " (:func:`merge_warnings`).

    Returns
    -------
    bool
        True when it holds :data:`RANDOM_WEIGHTS_BANNER` or :data:`STAND_IN_BANNER`: drawn in red
        and stamped on panels. :data:`ORIGINAL_VGG19_BANNER` alone is a note (plain title line,
        PNG text chunk, metadata).
    """
    return bool(banner) and (RANDOM_WEIGHTS_BANNER in banner or STAND_IN_BANNER in banner)


def merge_warnings(warnings: Iterable[str | None]) -> str | None:
    """One banner for something made from several runs: random first, then the others, distinct.

    Parameters
    ----------
    warnings : iterable of str or None
        The runs' banners (None or "" for a run with the real network).

    Returns
    -------
    str or None
        :data:`RANDOM_WEIGHTS_BANNER` if any run has it (the strongest claim: not a
        style transfer); otherwise the distinct banners joined by "; " (one, in
        practice); None when no run has one.
    """
    found = list(dict.fromkeys(w for w in warnings if w))
    if RANDOM_WEIGHTS_BANNER in found:
        return RANDOM_WEIGHTS_BANNER
    return "; ".join(found) or None


#: PNG text chunk written into images made with random weights (see save_image).
RANDOM_WEIGHTS_TEXT = weights_text(RANDOM_WEIGHTS_BANNER)
#: PNG text chunk written into images made with the stand-in network.
STAND_IN_TEXT = weights_text(STAND_IN_BANNER)
