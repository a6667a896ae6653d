"""The NoCloud seed ISO written in pure Python, read back by independent readers where available."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from components.hypervisor.iso9660 import SECTOR, build_iso

DOCS = {"user-data": "#cloud-config\nhostname: nas\n", "meta-data": "instance-id: nas-1\n", "network-config": "version: 2\n" + "x" * 5000 + "\n"}


def read_root(image: bytes) -> dict[str, bytes]:
    """Follow the primary descriptor to the root directory and read every file (names as Linux shows them)."""
    pvd = image[16 * SECTOR:17 * SECTOR]
    assert pvd[1:6] == b"CD001" and pvd[0] == 1
    assert struct.unpack("<I", pvd[80:84])[0] * SECTOR == len(image), "volume size matches the image"
    root = pvd[156:190]
    extent, size = struct.unpack("<I", root[2:6])[0], struct.unpack("<I", root[10:14])[0]
    assert struct.unpack(">I", root[6:10])[0] == extent, "both-endian fields agree"
    directory = image[extent * SECTOR:extent * SECTOR + size]
    files: dict[str, bytes] = {}
    offset = 0
    while offset < len(directory):
        length = directory[offset]
        if length == 0:  # padding to the next sector
            offset = (offset // SECTOR + 1) * SECTOR
            continue
        rec = directory[offset:offset + length]
        name = rec[33:33 + rec[32]]
        if name not in (b"\0", b"\1"):
            start, data_len = struct.unpack("<I", rec[2:6])[0], struct.unpack("<I", rec[10:14])[0]
            files[name.decode().lower().removesuffix(".;1")] = image[start * SECTOR:start * SECTOR + data_len]
        offset += length
    return files


def test_files_read_back_with_linux_names() -> None:
    files = read_root(build_iso(DOCS))
    assert files == {k: v.encode() for k, v in DOCS.items()}


def test_image_is_deterministic_and_changes_with_content() -> None:
    assert build_iso(DOCS) == build_iso(dict(reversed(list(DOCS.items()))))
    assert build_iso(DOCS) != build_iso({**DOCS, "meta-data": "instance-id: nas-2\n"})


def test_many_files_spill_over_directory_sectors() -> None:
    many = {f"file-{i:03d}": f"content {i}\n" for i in range(80)}
    assert read_root(build_iso(many)) == {k: v.encode() for k, v in many.items()}


def test_bad_names_are_refused() -> None:
    with pytest.raises(ValueError):
        build_iso({"user data": "x"})


def test_blkid_sees_an_iso9660_labelled_cidata(tmp_path: Path) -> None:
    path = tmp_path / "seed.iso"
    path.write_bytes(build_iso(DOCS))
    out = subprocess.run(["blkid", "-p", "-o", "export", str(path)], capture_output=True, text=True, check=True).stdout
    assert "TYPE=iso9660" in out and "LABEL=cidata" in out


def test_libarchive_extracts_the_documents(tmp_path: Path) -> None:
    path = tmp_path / "seed.iso"
    path.write_bytes(build_iso(DOCS))
    subprocess.run(["bsdtar", "-xf", str(path), "-C", str(tmp_path)], check=True)
    for name, text in DOCS.items():
        assert (tmp_path / name.upper()).read_text() == text
