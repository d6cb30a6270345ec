"""Files a device rewrites for months are replaced whole or not at all: a full disk leaves the old one whole."""

from __future__ import annotations

import os
import subprocess

import pytest

from skyedge.durable import replace_file


def test_a_file_is_replaced_whole_and_leaves_nothing_beside_it(tmp_path):
    path = tmp_path / "geometry.yaml"
    replace_file(path, b"old\n")
    replace_file(path, b"new\n" * 1000)
    assert path.read_bytes() == b"new\n" * 1000
    assert [p.name for p in tmp_path.iterdir()] == ["geometry.yaml"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes a file, not mkstemp's owner-only
    path.chmod(0o640)
    replace_file(path, b"newer\n")
    assert path.stat().st_mode & 0o777 == 0o640  # a file's permissions are kept


def test_a_full_disk_leaves_the_old_file_whole_and_no_temporary(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        path = disk / "geometry.yaml"
        replace_file(path, b"learnt over many nights\n")
        with pytest.raises(OSError):
            replace_file(path, os.urandom(2 * 1024 * 1024))  # twice what the disk holds
        assert path.read_bytes() == b"learnt over many nights\n"
        assert [p.name for p in disk.iterdir()] == ["geometry.yaml"]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
