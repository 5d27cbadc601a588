"""File system faults for tests, made for real: a tiny tmpfs to fill up, and files made
immutable (`chattr +i`, which even root cannot write). Both need root (or CAP_SYS_ADMIN and
CAP_LINUX_IMMUTABLE); where that is missing the test is skipped with the reason, which
`pytest -ra` prints."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


@contextlib.contextmanager
def small_filesystem(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "2m") mounted on the empty directory `mount`, unmounted after."""
    mounted = run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): needs root")
    try:
        yield mount
    finally:
        unmounted = run("umount", str(mount))
        assert unmounted.returncode == 0, unmounted.stderr


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """`chattr +i` on `paths`, undone afterwards."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    made: list[Path] = []
    try:
        for path in paths:
            result = run("chattr", "+i", str(path))
            if result.returncode != 0:
                pytest.skip(f"cannot make a file immutable here ({result.stderr.strip()})")
            made.append(path)
        yield
    finally:
        for path in made:
            run("chattr", "-i", str(path))
