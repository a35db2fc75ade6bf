"""The image, built once per test session from the project's Dockerfile with podman.

The base rootfs tarball is cached in `.cache/container/` of the repository (inside CI's
work folder; $CACHERR_CONTAINER_CACHE overrides it); everything podman makes lives in a
temporary work folder removed at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.container.podman import Podman, base_tarball, missing_tools
from tests.helpers import require_fuse

REPO = Path(__file__).resolve().parents[2]
TAG = "localhost/cacherr:test"


@dataclass(frozen=True)
class Image:
    podman: Podman
    tag: str


@pytest.fixture(scope="session")
def image():
    require_fuse()
    missing = missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (installed by .ci/run)")
    cache_dir = Path(os.environ.get("CACHERR_CONTAINER_CACHE") or REPO / ".cache" / "container")
    work = Path(tempfile.mkdtemp(prefix="cacherr-podman-"))
    podman = Podman(work)
    try:
        podman.import_base(base_tarball(cache_dir, work))
        podman.build(REPO, TAG)
        yield Image(podman, TAG)
    finally:
        podman.close()
        shutil.rmtree(work, ignore_errors=True)
