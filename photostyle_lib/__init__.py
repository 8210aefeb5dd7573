"""photostyle: photorealistic style transfer (soft semantic segmentation, similarity loss,
recursive-filter post-process), with the baselines it is compared against."""

__version__ = "0.1.0"

from photostyle_lib.errors import PhotostyleError  # noqa: E402,F401
