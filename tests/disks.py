"""Real file systems for fault tests: a tmpfs that is full or read-only, and tree digests.

Test modules import it by name (pytest puts this folder on ``sys.path``). Mounting needs root, as
the CI runs; elsewhere the tests that need it are skipped, saying why.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative path ({} when it does not exist)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(root).rglob("*"))
        if p.is_file()
    }


@contextlib.contextmanager
def tmpfs(mountpoint: Path, size: str) -> Iterator[Path]:
    """A fresh tmpfs of ``size`` mounted at ``mountpoint`` (skips the test without permission)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "--lazy", str(mountpoint)], check=True)


def remount_read_only(mountpoint: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mountpoint)], check=True)


def fill(directory: Path) -> None:
    """Write a file in ``directory`` until its file system has no byte left."""
    for name, block in (("filler", 65536), ("filler-tail", 1)):
        # Unbuffered: a failed write leaves nothing for close() to flush (and fail on) again.
        with contextlib.suppress(OSError), open(directory / name, "wb", buffering=0) as handle:
            while True:
                handle.write(b"\0" * block)
