"""Unit-test fixtures: the VHD test corpus, built lazily once per session.

Each corpus image is built on first use (real qemu-img, sfdisk, mke2fs, ...)
into one session temporary directory; a test whose tool is missing is skipped
with the reason.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# tests/unit has no __init__.py, so pytest puts this directory, not the repository
# root, on sys.path; the tests import `shared` and `tests.vhd_corpus` from the root.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.vhd_corpus import Corpus, CorpusToolMissing  # noqa: E402


@pytest.fixture(scope="session")
def vhd_corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("vhd-corpus"))


@pytest.fixture(scope="session")
def corpus_path(vhd_corpus: Corpus) -> Callable[[str], Path]:
    """`corpus_path("linux_ext4_mbr")` -> the built image (skips if a tool is missing)."""

    def get(name: str) -> Path:
        try:
            return vhd_corpus[name]
        except CorpusToolMissing as exc:
            if os.environ.get("CI"):  # `make test` installs the tools: in CI a gap is a failure
                pytest.fail(str(exc))
            pytest.skip(str(exc))

    return get
