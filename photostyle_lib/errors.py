"""The one exception type users see.

Every check on user input raises :class:`PhotostyleError` with a message that
names the problem and the fix. The CLI and the experiment runner turn it into
one line and a non-zero exit; any other exception escaping to the user is a bug.

:func:`require_extra` imports an optional package (one of pyproject.toml's
extras) or raises that error naming the extra to install.
"""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType

#: pyproject.toml's optional extras and the importable modules each provides (tests/test_packaging.py
#: checks the two agree). numba ([fast]) has no entry: every numba kernel has a numpy / torch fallback.
EXTRAS: dict[str, tuple[str, ...]] = {
    "notebooks": ("papermill", "nbformat", "jupyter_client", "ipykernel", "ipywidgets"),
    "segmentation": ("transformers", "huggingface_hub"),
    "dask": ("distributed",),
}


class PhotostyleError(ValueError):
    """Bad input, missing weights or data, or a run that cannot continue.

    Subclasses ``ValueError`` so that callers catching the standard type for
    bad arguments still catch it.
    """


class OneLineParser(argparse.ArgumentParser):
    """argparse with usage errors as one line and exit status 2 (shared by the doors)."""

    def error(self, message: str):  # argparse's own usage errors: one line, status 2
        """Print ``message`` as one line (pointing to --help) and exit with status 2.

        Parameters
        ----------
        message : str
            argparse's usage error.
        """
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def require_extra(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` (a package of the optional extra ``extra``) for ``feature``, or say how to install it.

    Parameters
    ----------
    module
        the importable name, e.g. "transformers".
    extra
        the extra of pyproject.toml that installs it (a key of :data:`EXTRAS`).
    feature
        what needs it, as the start of the error's sentence ("the ADE20K segmenter").

    Raises
    ------
    PhotostyleError
        one line, ``<feature> needs <module>, which is not installed:
        pip install 'photostyle[<extra>]'`` (naming the missing module when it is a
        dependency of ``module`` rather than ``module`` itself).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = exc.name or module
        what = module if missing.split(".")[0] == module.split(".")[0] else f"{module} (its dependency {missing})"
        raise PhotostyleError(f"{feature} needs {what}, which is not installed: "
                              f"pip install 'photostyle[{extra}]'") from None
