"""Provenance (photostyle_lib.io.metadata): the git revision inside and outside a checkout."""

import re
import shutil
import subprocess

import pytest

from photostyle_lib.io import data, metadata


def test_git_revision_of_this_checkout():
    if shutil.which("git") is None or data.SOURCE_ROOT is None:
        pytest.skip("needs git and a source checkout")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=data.SOURCE_ROOT, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("the source tree is not a git checkout")
    rev = metadata.git_revision()
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", rev) and rev.startswith(head.stdout.strip())


def test_git_revision_outside_a_checkout(tmp_path):
    assert metadata.git_revision(None) == metadata.NOT_A_CHECKOUT == "unknown (not a git checkout)"
    # a folder outside any git work tree (tmp_path: the system's temporary folder)
    if shutil.which("git") is None or subprocess.run(["git", "rev-parse"], cwd=tmp_path,
                                                      capture_output=True).returncode != 0:
        assert metadata.git_revision(tmp_path) == metadata.NOT_A_CHECKOUT
    assert metadata.base_metadata()["git_revision"]  # always a non-empty string
