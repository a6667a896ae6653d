"""A minimal ISO 9660 writer for cloud-init NoCloud seeds (VirtualBox has no cloud-init disk of its own).

One root directory of small files, no Rock Ridge or Joliet: Linux's isofs shows the
names lowercased without ``.;1`` (``USER-DATA.;1`` reads as ``user-data``), which is
all cloud-init needs. The output is byte-for-byte deterministic (fixed timestamps), so
the seed only changes - and the VM's seed command only re-runs - when a document does.
"""

from __future__ import annotations

import re
import struct
from typing import Mapping

SECTOR = 2048
_FIRST_FREE = 18  # 0-15 system area, 16 primary descriptor, 17 terminator
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,30}$")
_DATE_DIGITS = b"2024010100000000"  # 17-byte descriptor dates: digits + GMT offset
_DIR_DATE = bytes([124, 1, 1, 0, 0, 0, 0])  # 2024-01-01 00:00:00 GMT (years since 1900)


def both16(value: int) -> bytes:
    return struct.pack("<H", value) + struct.pack(">H", value)


def both32(value: int) -> bytes:
    return struct.pack("<I", value) + struct.pack(">I", value)


def _pad(data: bytes, size: int, fill: bytes = b" ") -> bytes:
    if len(data) > size:
        raise ValueError(f"{data!r} is longer than {size} bytes")
    return data + fill * (size - len(data))


def _sectors(length: int) -> int:
    return max(1, -(-length // SECTOR))


def iso_name(name: str) -> bytes:
    """ISO 9660 level 2 identifier: uppercase, period required, version 1."""
    if not _NAME.match(name):
        raise ValueError(f"{name!r}: seed file names are letters, digits, '-' and '_' (at most 30)")
    return name.upper().encode("ascii") + b".;1"


def _record(identifier: bytes, extent: int, length: int, directory: bool) -> bytes:
    size = 33 + len(identifier) + (1 - len(identifier) % 2)
    head = struct.pack("<BB", size, 0) + both32(extent) + both32(length) + _DIR_DATE
    tail = struct.pack("<BBB", 2 if directory else 0, 0, 0) + both16(1) + struct.pack("<B", len(identifier)) + identifier
    return _pad(head + tail, size, b"\0")


def _directory(records: list[bytes]) -> bytes:
    """Directory records packed into sectors; a record never crosses a sector boundary."""
    sectors: list[bytes] = [b""]
    for rec in records:
        if len(sectors[-1]) + len(rec) > SECTOR:
            sectors.append(b"")
        sectors[-1] += rec
    return b"".join(_pad(s, SECTOR, b"\0") for s in sectors)


def _path_table(root_extent: int, big_endian: bool) -> bytes:
    fmt = ">IH" if big_endian else "<IH"
    return struct.pack("<BB", 1, 0) + struct.pack(fmt, root_extent, 1) + b"\0\0"


def _primary_descriptor(label: str, total: int, root: bytes, table_size: int, l_table: int, m_table: int) -> bytes:
    d = bytearray(SECTOR)
    d[0:8] = b"\x01CD001\x01\x00"
    d[8:40] = _pad(b"", 32)
    d[40:72] = _pad(label.encode("ascii"), 32)
    d[80:88] = both32(total)
    d[120:124] = both16(1)
    d[124:128] = both16(1)
    d[128:132] = both16(SECTOR)
    d[132:140] = both32(table_size)
    d[140:144] = struct.pack("<I", l_table)
    d[148:152] = struct.pack(">I", m_table)
    d[156:190] = root
    d[190:813] = _pad(b"", 813 - 190)
    for offset in (813, 830, 864):  # creation, modification, effective dates
        d[offset:offset + 17] = _DATE_DIGITS + b"\0"
    d[847:864] = b"0" * 16 + b"\0"  # no expiration
    d[881] = 1
    return bytes(d)


def build_iso(files: Mapping[str, str | bytes], label: str = "cidata") -> bytes:
    """An ISO 9660 image holding `files` (name -> content) in its root directory."""
    if not 1 <= len(label) <= 32 or not label.isascii():
        raise ValueError("the volume label is 1-32 ASCII characters")
    names = sorted(files, key=iso_name)
    data = {n: files[n].encode() if isinstance(files[n], str) else files[n] for n in names}
    l_table, m_table, root_extent = _FIRST_FREE, _FIRST_FREE + 1, _FIRST_FREE + 2

    def root_records(extents: Mapping[str, int], root_size: int) -> list[bytes]:
        dots = [_record(ident, root_extent, root_size, True) for ident in (b"\0", b"\1")]
        return dots + [_record(iso_name(n), extents.get(n, 0), len(data[n]), False) for n in names]

    root_size = len(_directory(root_records({}, 0)))  # record sizes do not depend on extents
    extents: dict[str, int] = {}
    next_free = root_extent + root_size // SECTOR
    for n in names:
        extents[n] = next_free
        next_free += _sectors(len(data[n]))
    records = root_records(extents, root_size)
    table = _path_table(root_extent, False)

    image = bytearray(SECTOR * next_free)
    image[16 * SECTOR:17 * SECTOR] = _primary_descriptor(label, next_free, records[0], len(table), l_table, m_table)
    image[17 * SECTOR:17 * SECTOR + 7] = b"\xffCD001\x01"
    image[l_table * SECTOR:l_table * SECTOR + len(table)] = table
    image[m_table * SECTOR:m_table * SECTOR + len(table)] = _path_table(root_extent, True)
    image[root_extent * SECTOR:root_extent * SECTOR + root_size] = _directory(records)
    for n in names:
        image[extents[n] * SECTOR:extents[n] * SECTOR + len(data[n])] = data[n]
    return bytes(image)
