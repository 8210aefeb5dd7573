"""The paper's symbols and this project's names for them, written once.

The paper writes the loss weights of eq. (10) as alpha, beta, gamma and the soft-mask
cutoff of section 3.3 as theta_s; the code uses readable names. Every door that shows
the symbols (the command line's ``--alpha``, the notebooks' ``Settings.alpha``, the
interactive app's sliders) translates through :data:`WEIGHT_FIELDS` and
:func:`weight_overrides`, so one table decides what alpha means. theta_s is no
``TransferConfig`` field: the doors (``--theta-s``, ``Settings.theta_s``, the
app's slider, ``RunSpec.theta_s``) put it on the mask request,
``photostyle_lib.semantic.request.MaskRequest.theta_s``, checked there once and
read by the cut (``photostyle_lib.semantic.cut``) alone.

=========  =====================  =================================================
symbol     name                   meaning
=========  =====================  =================================================
alpha      ``content_weight``     weight of the content loss (eq. 2), >= 0
beta       ``style_weight``       weight of the (masked) style loss (eqs. 3, 6), >= 0
gamma      ``similarity_weight``  weight of the L1 similarity loss (eq. 8), >= 0
theta_s    ``theta_s``            soft-mask cutoff (section 3.3), in (0, 1]: a
                                  setting of the masks (``MaskRequest``), not
                                  of the optimisation
=========  =====================  =================================================
"""

from __future__ import annotations

from typing import Any, Mapping

#: alpha, beta, gamma -> the TransferConfig field each one sets (eq. 10's weights).
WEIGHT_FIELDS: dict[str, str] = {"alpha": "content_weight", "beta": "style_weight", "gamma": "similarity_weight"}
#: The reverse: TransferConfig field -> the paper's symbol.
SYMBOL_OF: dict[str, str] = {field: symbol for symbol, field in WEIGHT_FIELDS.items()}


def weight_overrides(values: Mapping[str, Any]) -> dict[str, float]:
    """alpha / beta / gamma given in ``values`` (None or absent: not given) -> {field: float}.

    >>> weight_overrides({"alpha": 1, "beta": None, "gamma": 3})
    {'content_weight': 1.0, 'similarity_weight': 3.0}
    """
    return {field: float(values[symbol]) for symbol, field in WEIGHT_FIELDS.items()
            if values.get(symbol) is not None}
