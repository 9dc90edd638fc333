"""Replaying a VHDX log (MS-VHDX 2.3) over a read-only source, in memory.

A VHDX not closed cleanly names a log in its header: a circular buffer of entries,
each a set of 4 KiB sector writes ("desc" descriptors with their "data" sectors) and
zeroed ranges ("zero" descriptors), all under one CRC-32C. The active sequence is the
run of consecutive entries ending at the valid entry with the highest sequence number,
starting at the entry that entry's Tail names. Its writes, applied in order, are what
the file holds once replayed: `replay_log` gives a RangeReader that shows the source
with them applied (the source is never written).
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass

from shared.domain.formats.base import MIB, CorruptDiskImage, VhdxLogReplayRequired
from shared.domain.ranged import RangeReader

LOG_SECTOR = 4096
MAX_LOG = 32 * MIB  # the log is read whole; Hyper-V and qemu make 1 MiB logs
MAX_GROWTH = 256 * MIB
_ENTRY = struct.Struct("<4sIIIQII16sQQ")  # 64 bytes
_DESCRIPTOR = struct.Struct("<4sIQQQ")  # 32 bytes


@dataclass(frozen=True)
class _Entry:
    offset: int  # in the log
    length: int
    tail: int
    sequence: int
    flushed: int  # FlushedFileOffset
    last: int  # LastFileOffset
    writes: tuple[tuple[int, bytes], ...]  # (file offset, 4 KiB)
    zeros: tuple[tuple[int, int], ...]  # (file offset, length)


def _crc_ok(raw: bytes) -> bool:
    from shared.domain.formats.vhdx import crc32c

    stored = struct.unpack_from("<I", raw, 4)[0]
    return crc32c(raw[:4] + b"\0\0\0\0" + raw[8:]) == stored


def _entry(log: bytes, at: int, guid: bytes) -> _Entry | None:
    """The valid log entry at `at`, or None (a bad signature, checksum, GUID or layout)."""
    if at + _ENTRY.size > len(log) or log[at : at + 4] != b"loge":
        return None
    _, _, length, tail, sequence, count, _, log_guid, flushed, last = _ENTRY.unpack_from(log, at)
    if (
        log_guid != guid
        or sequence == 0
        or length < LOG_SECTOR
        or length % LOG_SECTOR
        or at + length > len(log)
        or tail % LOG_SECTOR
        or tail >= len(log)
        or _ENTRY.size + count * _DESCRIPTOR.size > length
    ):
        return None
    raw = log[at : at + length]
    if not _crc_ok(raw):
        return None
    writes: list[tuple[int, bytes]] = []
    zeros: list[tuple[int, int]] = []
    data_at = -(-(_ENTRY.size + count * _DESCRIPTOR.size) // LOG_SECTOR) * LOG_SECTOR
    for i in range(count):
        kind, trailing, leading, offset, seq = _DESCRIPTOR.unpack_from(raw, _ENTRY.size + 32 * i)
        if seq != sequence or offset % LOG_SECTOR:
            return None
        if kind == b"zero":
            if leading % LOG_SECTOR:  # the zero length, in the leading field's place
                return None
            zeros.append((offset, leading))
        elif kind == b"desc":
            if data_at + LOG_SECTOR > length:
                return None
            sector = raw[data_at : data_at + LOG_SECTOR]
            high, low = (
                struct.unpack_from("<I", sector, 4)[0],
                struct.unpack_from("<I", sector, 4092)[0],
            )
            if sector[:4] != b"data" or (high << 32 | low) != sequence:
                return None
            content = struct.pack("<Q", leading) + sector[8:4092] + struct.pack("<I", trailing)
            writes.append((offset, content))
            data_at += LOG_SECTOR
        else:
            return None
    return _Entry(at, length, tail, sequence, flushed, last, tuple(writes), tuple(zeros))


def _active_sequence(log: bytes, guid: bytes) -> list[_Entry]:
    entries = {}
    for at in range(0, len(log), LOG_SECTOR):
        found = _entry(log, at, guid)
        if found is not None:
            entries[at] = found
    for head in sorted(entries.values(), key=lambda e: e.sequence, reverse=True):
        sequence = [entries.get(head.tail)]
        # Walk from the tail to the head: each entry right after the last, one number up.
        while (
            sequence[-1] is not None and sequence[-1] is not head and len(sequence) <= len(entries)
        ):
            last = sequence[-1]
            nxt = entries.get((last.offset + last.length) % len(log))
            sequence.append(nxt if nxt is not None and nxt.sequence == last.sequence + 1 else None)
        if sequence[-1] is head:
            return [e for e in sequence if e is not None]
    return []


class ReplayedReader:
    """The source as it reads once the log's writes are applied (in memory)."""

    def __init__(
        self, inner: RangeReader, writes: dict[int, bytes], zeros: list[tuple[int, int]], size: int
    ) -> None:
        self._inner = inner
        self._writes = writes
        self._keys = sorted(writes)
        self._zeros = zeros
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self._size)
        if end <= offset:
            return b""
        out = bytearray(self._inner.read(offset, end - offset))
        out += bytes(end - offset - len(out))
        for at, n in self._zeros:
            lo, hi = max(at, offset), min(at + n, end)
            if lo < hi:
                out[lo - offset : hi - offset] = bytes(hi - lo)
        i = bisect.bisect_right(self._keys, offset - LOG_SECTOR)
        while i < len(self._keys) and self._keys[i] < end:
            at = self._keys[i]
            data = self._writes[at]
            lo, hi = max(at, offset), min(at + LOG_SECTOR, end)
            if lo < hi:
                out[lo - offset : hi - offset] = data[lo - at : hi - at]
            i += 1
        return bytes(out)


def replay_log(reader: RangeReader, guid: bytes, log_offset: int, log_length: int) -> RangeReader:
    """A RangeReader of the file with its log replayed; the source if nothing is to replay."""
    if log_length > MAX_LOG or log_length % MIB or log_offset % MIB or log_offset < MIB:
        raise VhdxLogReplayRequired(
            f"This VHDX was not closed cleanly and its log ({log_length} bytes at offset "
            f"{log_offset}) is not one the catalog replays. Replay it by opening the disk once "
            "read-write: attach it in Hyper-V (`Mount-VHD disk.vhdx; Dismount-VHD disk.vhdx`) "
            "or run `qemu-img check -r all disk.vhdx`, then upload it again."
        )
    if log_offset + log_length > reader.size:
        raise CorruptDiskImage("The VHDX log runs past the end of the file: it is truncated.")
    log = bytes(reader.read(log_offset, log_length))
    sequence = _active_sequence(log, guid)
    if not sequence:
        return reader  # nothing was logged that the file lacks
    head = sequence[-1]
    if reader.size < head.flushed:
        raise CorruptDiskImage(
            f"The VHDX log says the file was {head.flushed} bytes long, but it has "
            f"{reader.size}: the file is truncated. Upload the complete file again."
        )
    writes: dict[int, bytes] = {}
    zeros: list[tuple[int, int]] = []
    for entry in sequence:
        for at, n in entry.zeros:
            zeros.append((at, n))
            for key in [k for k in writes if at <= k < at + n]:
                del writes[key]  # a later zeroing wins over an earlier write
        for at, data in entry.writes:
            writes[at] = data
    # The file grows to the head's LastFileOffset (zeros past the source's end), within
    # reason: a bigger claim would only let tables point into nothing.
    size = min(
        max(reader.size, head.last, *(k + LOG_SECTOR for k in writes)), reader.size + MAX_GROWTH
    )
    return ReplayedReader(reader, writes, zeros, size)
