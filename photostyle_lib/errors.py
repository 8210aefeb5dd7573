"""The one exception type users see.

Every check on user input raises :class:`PhotostyleError` with a message that
names the problem and the fix. The CLI and the experiment runner turn it into
one line and a non-zero exit; any other exception escaping to the user is a bug.
"""

from __future__ import annotations

import argparse


class PhotostyleError(ValueError):
    """Bad input, missing weights or data, or a run that cannot continue.

    Subclasses ``ValueError`` so that callers catching the standard type for
    bad arguments still catch it.
    """


class OneLineParser(argparse.ArgumentParser):
    """argparse with usage errors as one line and exit status 2 (shared by the doors)."""

    def error(self, message: str):  # argparse's own usage errors: one line, status 2
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")
