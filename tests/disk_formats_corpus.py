"""Disk images of every format the catalog converts, made at test time with qemu-img.

Every accepted case is made from one small source disk (`source_raw`: an MBR, data
that compresses and data that doesn't, zeros between) and `oracle_raw` gives what
qemu reads from it, the reference the readers must reproduce byte for byte. Two
cases qemu can't write are built here from the formats' specs: a VMware-style
streamOptimized VMDK whose grain directory is at the end (a footer), and a VHDX
block in the partially present state.

`ACCEPTED` maps a case to its builder and the DiskImage.format it must open as;
`REJECTED` maps a case to its builder and the rejection code. Builders raise
CorpusToolMissing when qemu-img is missing (the fixture skips, CI fails).
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.domain.formats.vhdx import crc32c
from tests.vhd_corpus import CorpusToolMissing, _patch_footer, _run, _tool

MIB = 1024 * 1024
SECTOR = 512
SOURCE_SIZE = 9 * MIB + 3 * SECTOR  # a whole number of sectors, not of MiB


def _qemu(*args: str) -> None:
    _run("qemu-img", *args)


def write_source(path: Path, size: int = SOURCE_SIZE) -> Path:
    """A small raw disk: an MBR, incompressible and compressible data, zeros between."""
    rng = random.Random(11)
    with open(path, "wb") as f:
        f.truncate(size)
        mbr = bytearray(SECTOR)
        mbr[446:462] = struct.pack("<BBBBBBBBII", 0x80, 0, 2, 0, 0x83, 0, 0, 0, 2048, 16384)
        mbr[510:512] = b"\x55\xaa"
        f.write(mbr)
        for offset, data in (
            (4096, rng.randbytes(300_000)),  # the first clusters, incompressible
            (2 * MIB + 512, b"compressible text " * 40_000),  # straddles cluster boundaries
            (5 * MIB, rng.randbytes(64 * 1024)),
            (5 * MIB + 256 * 1024, bytes(128 * 1024)),  # written zeros
            (7 * MIB - 1000, rng.randbytes(3000)),  # across a MiB boundary
            (size - 700, b"the end" * 100),  # the very last sectors
        ):
            if offset < size:
                f.seek(offset)
                f.write(data[: size - offset])
    return path


def oracle_raw(image: Path, fmt: str | None = None) -> bytes:
    """What qemu reads from `image`: the reference the readers must match."""
    out = image.with_name(image.name + ".oracle.raw")
    _qemu("convert", *(["-f", fmt] if fmt else []), "-O", "raw", str(image), str(out))
    data = out.read_bytes()
    out.unlink()
    return data


def _from_source(name: str, fmt: str, *options: str) -> Callable[[Path], Path]:
    def build(directory: Path) -> Path:
        src = write_source(directory / f"{name}.src.raw")
        out = directory / name
        _qemu("convert", "-f", "raw", "-O", fmt, *options, str(src), str(out))
        src.unlink()
        return out

    return build


def _qemu_io(image: Path, *commands: str, fmt: str | None = None) -> None:
    args = [_tool("qemu-io")]
    if fmt:
        args += ["-f", fmt]
    for c in commands:
        args += ["-c", c]
    subprocess.run([*args, str(image)], check=True, capture_output=True, timeout=60)


def raw_odd(directory: Path) -> Path:
    """A raw disk whose length is not a multiple of 512 (nor of a MiB)."""
    return write_source(directory / "odd.img", 3 * MIB + 1001)


def vhd_fixed_chs(directory: Path) -> Path:
    """qemu's fixed VHD without force_size: a CHS-rounded size, not a whole MiB."""
    return _from_source("chs.vhd", "vpc", "-o", "subformat=fixed")(directory)


def qcow2_zero_clusters(directory: Path) -> Path:
    """A v3 qcow2 with zero clusters (plain and allocated) over data."""
    out = _from_source("zero.qcow2", "qcow2")(directory)
    _qemu_io(out, "write -z 4096 64k", "write -z -u 5M 64k", "write -z 2M 1M", fmt="qcow2")
    return out


def qcow2_extended_l2_zero(directory: Path) -> Path:
    """Extended L2 entries with some subclusters zeroed and others written."""
    out = _from_source("extl2z.qcow2", "qcow2", "-o", "extended_l2=on,cluster_size=64k")(directory)
    _qemu_io(out, "write -z 8k 4k", "write -P 0x5a 6M 2k", "write -z 2M 8k", fmt="qcow2")
    return out


def vhdx_zero_blocks(directory: Path) -> Path:
    """A VHDX with 1 MiB blocks, some made zero blocks after writing."""
    out = _from_source("zero.vhdx", "vhdx", "-o", "block_size=1M")(directory)
    _qemu_io(out, "write -z 2M 1M", "write -P 0x33 8M 4k", fmt="vhdx")
    return out


def vmdk_stream_footer(directory: Path) -> Path:
    """A streamOptimized VMDK as VMware writes it: grains, then grain tables with markers,
    the grain directory, and a footer holding the header (the first says GD_AT_END)."""
    src = write_source(directory / "footer.src.raw")
    data = src.read_bytes()
    src.unlink()
    grain, per_gt = 128, 512  # sectors, entries
    capacity = -(-len(data) // SECTOR)
    descriptor = (
        "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n"
        'createType="streamOptimized"\n\n'
        f'RW {capacity} SPARSE "footer.vmdk"\n\nddb.adapterType = "lsilogic"\n'
    ).encode()

    def header(gd_offset: int) -> bytes:
        fields = struct.pack(
            "<4sIIQQQQIQQQB4sH",
            b"KDMV", 3, 0x30001, capacity, grain, 1, 20, per_gt, 0, gd_offset, 128, 0,
            b"\n \r\n", 1,
        )  # fmt: skip
        return fields.ljust(SECTOR, b"\0")

    def marker(value: int, kind: int) -> bytes:
        return struct.pack("<QII", value, 0, kind).ljust(SECTOR, b"\0")

    out = bytearray(header(0xFFFF_FFFF_FFFF_FFFF))
    out += descriptor.ljust(20 * SECTOR, b"\0")
    out += bytes(128 * SECTOR - len(out))
    grain_bytes = grain * SECTOR
    n_grains = -(-capacity // grain)
    tables = [[0] * per_gt for _ in range(-(-n_grains // per_gt))]
    for g in range(n_grains):
        chunk = data[g * grain_bytes : (g + 1) * grain_bytes]
        if not chunk.strip(b"\0"):
            continue
        tables[g // per_gt][g % per_gt] = len(out) // SECTOR
        body = zlib.compress(chunk.ljust(grain_bytes, b"\0"))
        record = struct.pack("<QI", g * grain, len(body)) + body
        out += record.ljust(-(-len(record) // SECTOR) * SECTOR, b"\0")
    directory_entries = []
    for table in tables:
        if not any(table):
            directory_entries.append(0)
            continue
        out += marker(per_gt * 4 // SECTOR, 1)
        directory_entries.append(len(out) // SECTOR)
        out += struct.pack(f"<{per_gt}I", *table)
    out += marker(1, 2)
    gd_at = len(out) // SECTOR
    out += struct.pack(f"<{len(directory_entries)}I", *directory_entries).ljust(SECTOR, b"\0")
    out += marker(1, 3) + header(gd_at) + bytes(SECTOR)
    path = directory / "footer.vmdk"
    path.write_bytes(bytes(out))
    return path


OVF = """<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"
          xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References>
    <File ovf:id="file2" ovf:href="vm-disk2.vmdk"/>
    <File ovf:id="file1" ovf:href="vm-disk1.vmdk"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="{cap1}"
          ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
    <Disk ovf:diskId="vmdisk2" ovf:fileRef="file2" ovf:capacity="{cap2}"
          ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <VirtualSystem ovf:id="vm"><Info>A virtual machine</Info><Name>vm</Name></VirtualSystem>
</Envelope>
"""


def ova(directory: Path) -> Path:
    """An OVA made with tar: the OVF first, then two streamOptimized disks (OS, data)."""
    os_disk = _from_source("vm-disk1.vmdk", "vmdk", "-o", "subformat=streamOptimized")(directory)
    data_src = write_source(directory / "data.src.raw", 2 * MIB)
    data_disk = directory / "vm-disk2.vmdk"
    _qemu("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized",
          str(data_src), str(data_disk))  # fmt: skip
    data_src.unlink()
    ovf = directory / "vm.ovf"
    ovf.write_text(OVF.format(cap1=SOURCE_SIZE, cap2=2 * MIB))
    out = directory / "vm.ova"
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        for f in (ovf, os_disk, data_disk):
            tar.add(f, arcname=f.name)
    return out


def vhdx_partially_present(directory: Path) -> Path:
    """A VHDX whose block 2 is PARTIALLY_PRESENT: only the sectors its sector bitmap marks
    read from the block, the others as zeros (qemu can't read this state: see
    `partially_present_expected`)."""
    out = _from_source("partial.vhdx", "vhdx", "-o", "block_size=1M")(directory)
    bat_offset, _ = _vhdx_region(out, "2DC27766-F623-4200-9D64-115E9BFD4A08")
    ratio = (1 << 23) * 512 // MIB
    with open(out, "r+b") as f:
        f.seek(bat_offset + 16)
        entry = struct.unpack("<Q", f.read(8))[0]
        assert entry & 7 == 6, "block 2 of the source is fully present"
        f.seek(bat_offset + 16)
        f.write(struct.pack("<Q", entry | 7))
        end = os.fstat(f.fileno()).st_size
        bitmap_at = -(-end // MIB) * MIB
        bitmap = bytearray(MIB)
        # Block 2's sectors start at bit 4096: mark sectors 0-99 and 1000-1099 present.
        for s in (*range(100), *range(1000, 1100)):
            bit = 4096 + s
            bitmap[bit >> 3] |= 1 << (bit & 7)
        f.seek(bitmap_at)
        f.write(bitmap)
        f.seek(bat_offset + ratio * 8)
        f.write(struct.pack("<Q", bitmap_at | 6))
    return out


def partially_present_expected(oracle: bytes) -> bytes:
    """The source's bytes as `vhdx_partially_present` reads: block 2 masked."""
    data = bytearray(oracle)
    block = data[2 * MIB : 3 * MIB]
    masked = bytearray(MIB)
    masked[: 100 * SECTOR] = block[: 100 * SECTOR]
    masked[1000 * SECTOR : 1100 * SECTOR] = block[1000 * SECTOR : 1100 * SECTOR]
    data[2 * MIB : 3 * MIB] = masked
    return bytes(data)


def _vhdx_region(path: Path, guid: str) -> tuple[int, int]:
    import uuid

    with open(path, "rb") as f:
        f.seek(192 * 1024)
        table = f.read(64 * 1024)
    count = struct.unpack_from("<I", table, 8)[0]
    for i in range(count):
        gid, offset, length, _ = struct.unpack_from("<16sQII", table, 16 + 32 * i)
        if uuid.UUID(bytes_le=gid) == uuid.UUID(guid):
            return offset, length
    raise AssertionError(f"no region {guid}")


# --------------------------------------------------------------------------------------
# Rejected variants.


def differencing_vhd(directory: Path) -> Path:
    """qemu can't write differencing VHDs: a dynamic one with disk type 4 in both footers."""
    out = _from_source("diff.vhd", "vpc")(directory)
    _patch_footer(out, 0, disk_type=4)
    _patch_footer(out, out.stat().st_size - SECTOR, disk_type=4)
    return out


def qcow2_backing(directory: Path) -> Path:
    base = _from_source("base.qcow2", "qcow2")(directory)
    out = directory / "child.qcow2"
    _qemu("create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(out))
    return out


def _qcow2_crypt(directory: Path, method: int) -> Path:
    """A qcow2 whose header says it is encrypted (crypt_method 1 AES, 2 LUKS).

    Made by patching the header: qemu-img does write LUKS qcow2, but its key-derivation
    timing fails now and then on a busy machine ("Unable to get accurate CPU usage") and
    takes seconds; the reader decides from this header field alone.
    """
    out = _from_source(f"crypt{method}.qcow2", "qcow2")(directory)
    with open(out, "r+b") as f:
        f.seek(32)
        f.write(struct.pack(">I", method))
    return out


def qcow2_luks(directory: Path) -> Path:
    return _qcow2_crypt(directory, 2)


def qcow2_aes(directory: Path) -> Path:
    return _qcow2_crypt(directory, 1)


def qcow2_external_data(directory: Path) -> Path:
    out = directory / "ext.qcow2"
    _qemu(
        "create", "-q", "-f", "qcow2", "-o", f"data_file={directory / 'ext.data'}", str(out), "4M"
    )
    return out


def qcow2_truncated(directory: Path) -> Path:
    """A qcow2 cut short after its tables: its data clusters point past the end."""
    out = _from_source("cut.qcow2", "qcow2")(directory)
    os.truncate(out, 4 * 64 * 1024 + 1000)
    return out


def qcow2_v1(directory: Path) -> Path:
    out = directory / "old.qcow"
    _qemu("create", "-q", "-f", "qcow", str(out), "4M")
    return out


def vmdk_child(directory: Path) -> Path:
    base = _from_source("base.vmdk", "vmdk")(directory)
    out = directory / "child.vmdk"
    _qemu("create", "-q", "-f", "vmdk", "-b", str(base), "-F", "vmdk", str(out))
    return out


def vmdk_descriptor(directory: Path) -> Path:
    """The descriptor of a split (twoGbMaxExtentSparse) VMDK: a small text file."""
    _from_source("split.vmdk", "vmdk", "-o", "subformat=twoGbMaxExtentSparse")(directory)
    return directory / "split.vmdk"


def vmdk_split_extent(directory: Path) -> Path:
    """One extent of a split VMDK: a sparse extent without a descriptor."""
    _from_source("split.vmdk", "vmdk", "-o", "subformat=twoGbMaxExtentSparse")(directory)
    return directory / "split-s001.vmdk"


def _set_log(path: Path, guid: bytes, log_offset: int | None = None) -> None:
    """Name a log in the VHDX's current header (and move the log), CRC-32C fixed up."""
    with open(path, "r+b") as f:
        best = max(
            (64 * 1024, 128 * 1024),
            key=lambda at: (f.seek(at + 8), struct.unpack("<Q", f.read(8))[0])[1],
        )
        f.seek(best)
        header = bytearray(f.read(4096))
        header[48:64] = guid
        if log_offset is not None:
            header[72:80] = struct.pack("<Q", log_offset)
        header[4:8] = bytes(4)
        header[4:8] = struct.pack("<I", crc32c(bytes(header)))
        f.seek(best)
        f.write(header)


def vhdx_log_without_entries(directory: Path) -> Path:
    """A VHDX whose header names a log that holds no valid entry: nothing to replay."""
    out = _from_source("log.vhdx", "vhdx")(directory)
    _set_log(out, bytes(range(1, 17)))
    return out


def vhdx_log_misplaced(directory: Path) -> Path:
    """A log to replay at an offset that is not a whole MiB: refused, not guessed at."""
    out = _from_source("badlog.vhdx", "vhdx")(directory)
    _set_log(out, bytes(range(1, 17)), log_offset=MIB + 4096)
    return out


def _log_entry(
    guid: bytes, sequence: int, tail: int, size: int, writes: list[tuple[int, bytes]],
    zeros: list[tuple[int, int]],
) -> bytes:  # fmt: skip
    """One VHDX log entry (MS-VHDX 2.3.1): header, descriptors, data sectors, CRC-32C."""
    descriptors = [struct.pack("<4sIQQQ", b"zero", 0, n, at, sequence) for at, n in zeros]
    sectors = []
    for at, data in writes:
        assert len(data) == 4096
        lead, trail = struct.unpack_from("<Q", data)[0], struct.unpack_from("<I", data, 4092)[0]
        descriptors.append(struct.pack("<4sIQQQ", b"desc", trail, lead, at, sequence))
        sectors.append(
            b"data" + struct.pack("<I", sequence >> 32) + data[8:4092]
            + struct.pack("<I", sequence & 0xFFFF_FFFF)
        )  # fmt: skip
    head_len = -(-(64 + 32 * len(descriptors)) // 4096) * 4096
    length = head_len + 4096 * len(sectors)
    header = struct.pack(
        "<4sIIIQII16sQQ", b"loge", 0, length, tail, sequence, len(descriptors), 0, guid, size, size
    )
    entry = bytearray((header + b"".join(descriptors)).ljust(head_len, b"\0") + b"".join(sectors))
    entry[4:8] = struct.pack("<I", crc32c(bytes(entry)))
    return bytes(entry)


def vhdx_dirty_log(directory: Path) -> Path:
    """A VHDX not closed cleanly: its header names a log whose active entry maps a new
    block (written in place, its BAT entry only in the log) and zeroes 8 KiB of block 0,
    beside a stale entry (a lower sequence, not in the active run) that must not apply."""
    out = _from_source("dirty.vhdx", "vhdx", "-o", "block_size=1M")(directory)
    bat_offset, _ = _vhdx_region(out, "2DC27766-F623-4200-9D64-115E9BFD4A08")
    guid = bytes(range(101, 117))
    with open(out, "r+b") as f:
        headers = []
        for at in (64 * 1024, 128 * 1024):
            f.seek(at)
            headers.append((struct.unpack_from("<Q", f.read(16), 8)[0], at))
        current = max(headers)[1]
        f.seek(current)
        header = bytearray(f.read(4096))
        log_offset = struct.unpack_from("<Q", header, 72)[0]
        f.seek(bat_offset)
        bat = bytearray(f.read(4096))
        block0 = struct.unpack_from("<Q", bat, 0)[0]
        assert block0 & 7 == 6 and struct.unpack_from("<Q", bat, 8 * 8)[0] & 7 in (0, 2)
        size = os.fstat(f.fileno()).st_size
        new_block = -(-size // MIB) * MIB
        f.seek(new_block)
        f.write(b"replayed block " * (MIB // 15) + bytes(MIB % 15))
        size = new_block + MIB
        active = bytearray(bat)
        active[64:72] = struct.pack("<Q", new_block | 6)  # block 8 mapped by the log only
        block2 = struct.unpack_from("<Q", bat, 16)[0]
        assert block2 & 7 == 6
        zero_at = (block0 >> 20 << 20) + 64 * 1024
        f.seek(log_offset)
        f.write(_log_entry(guid, 7, 0, size, [(bat_offset, bytes(active))], [(zero_at, 8192)]))
        f.seek(log_offset + 64 * 1024)
        # Stale: it would zero block 2's first 64 KiB, were it replayed.
        f.write(_log_entry(guid, 3, 64 * 1024, size, [], [(block2 >> 20 << 20, 65536)]))
        header[48:64] = guid
        header[4:8] = bytes(4)
        header[4:8] = struct.pack("<I", crc32c(bytes(header)))
        f.seek(current)
        f.write(header)
    return out


def replayed_oracle(image: Path) -> bytes:
    """What qemu reads once it has replayed the log (`qemu-img check -r all` replays it)."""
    copy = image.with_name(image.name + ".replayed")
    copy.write_bytes(image.read_bytes())
    _qemu("check", "-q", "-r", "all", str(copy))
    data = oracle_raw(copy)
    copy.unlink()
    return data


def vhdx_differencing(directory: Path) -> Path:
    """A VHDX whose file parameters say it has a parent (qemu can't write one)."""
    out = _from_source("diff.vhdx", "vhdx")(directory)
    meta_offset, _ = _vhdx_region(out, "8B7CA206-4790-4B9A-B8FE-575F050F886E")
    import uuid

    with open(out, "r+b") as f:
        f.seek(meta_offset)
        table = f.read(64 * 1024)
        count = struct.unpack_from("<H", table, 10)[0]
        for i in range(count):
            gid, at, _, _, _ = struct.unpack_from("<16sIIII", table, 32 + 32 * i)
            if uuid.UUID(bytes_le=gid) == uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B"):
                f.seek(meta_offset + at + 4)
                flags = struct.unpack("<I", f.read(4))[0]
                f.seek(meta_offset + at + 4)
                f.write(struct.pack("<I", flags | 2))
    return out


def vdi(directory: Path) -> Path:
    return _from_source("disk.vdi", "vdi")(directory)


def text_file(directory: Path) -> Path:
    out = directory / "notes.qcow2"
    out.write_text("not a disk\n" * 100)
    return out


@dataclass(frozen=True)
class Accepted:
    build: Callable[[Path], Path]
    format: str
    qemu_format: str | None = None  # `-f` for the oracle when qemu can't probe it
    replay: bool = False  # the oracle is read after qemu replays the VHDX log


@dataclass(frozen=True)
class Rejected:
    build: Callable[[Path], Path]
    code: str


ACCEPTED: dict[str, Accepted] = {
    "raw_odd": Accepted(raw_odd, "raw", "raw"),
    "vhd_fixed_chs": Accepted(vhd_fixed_chs, "vhd-fixed", "vpc"),
    "vhd_dynamic": Accepted(_from_source("dyn.vhd", "vpc"), "vhd-dynamic"),
    "vhd_dynamic_force_size": Accepted(
        _from_source("dynfs.vhd", "vpc", "-o", "force_size=on"), "vhd-dynamic"
    ),
    "vhdx_dynamic": Accepted(_from_source("dyn.vhdx", "vhdx"), "vhdx"),
    "vhdx_fixed": Accepted(_from_source("fixed.vhdx", "vhdx", "-o", "subformat=fixed"), "vhdx"),
    "vhdx_zero_blocks": Accepted(vhdx_zero_blocks, "vhdx"),
    "vhdx_dirty_log": Accepted(vhdx_dirty_log, "vhdx", replay=True),
    "vhdx_log_without_entries": Accepted(vhdx_log_without_entries, "vhdx", replay=True),
    "qcow2_v2": Accepted(_from_source("v2.qcow2", "qcow2", "-o", "compat=0.10"), "qcow2"),
    "qcow2_v3": Accepted(_from_source("v3.qcow2", "qcow2"), "qcow2"),
    "qcow2_compressed": Accepted(_from_source("c.qcow2", "qcow2", "-c"), "qcow2"),
    "qcow2_v2_compressed": Accepted(
        _from_source("c2.qcow2", "qcow2", "-c", "-o", "compat=0.10"), "qcow2"
    ),
    "qcow2_zstd": Accepted(
        _from_source("z.qcow2", "qcow2", "-c", "-o", "compression_type=zstd"), "qcow2"
    ),
    "qcow2_zero_clusters": Accepted(qcow2_zero_clusters, "qcow2"),
    "qcow2_extended_l2": Accepted(
        _from_source("extl2.qcow2", "qcow2", "-o", "extended_l2=on,cluster_size=128k"), "qcow2"
    ),
    "qcow2_extended_l2_zero": Accepted(qcow2_extended_l2_zero, "qcow2"),
    "qcow2_small_clusters": Accepted(
        _from_source("small.qcow2", "qcow2", "-o", "cluster_size=512"), "qcow2"
    ),
    "qcow2_2m_clusters": Accepted(
        _from_source("big.qcow2", "qcow2", "-o", "cluster_size=2M"), "qcow2"
    ),
    "vmdk_sparse": Accepted(_from_source("sparse.vmdk", "vmdk"), "vmdk-sparse"),
    "vmdk_stream": Accepted(
        _from_source("stream.vmdk", "vmdk", "-o", "subformat=streamOptimized"), "vmdk-stream"
    ),
    "vmdk_stream_footer": Accepted(vmdk_stream_footer, "vmdk-stream"),
}

REJECTED: dict[str, Rejected] = {
    "differencing_vhd": Rejected(differencing_vhd, "BackingFileNotSupported"),
    "qcow2_backing": Rejected(qcow2_backing, "BackingFileNotSupported"),
    "vmdk_child": Rejected(vmdk_child, "BackingFileNotSupported"),
    "vhdx_differencing": Rejected(vhdx_differencing, "BackingFileNotSupported"),
    "qcow2_luks": Rejected(qcow2_luks, "EncryptedDiskNotSupported"),
    "qcow2_aes": Rejected(qcow2_aes, "EncryptedDiskNotSupported"),
    "qcow2_external_data": Rejected(qcow2_external_data, "ExternalDataFileNotSupported"),
    "qcow2_truncated": Rejected(qcow2_truncated, "CorruptDiskImage"),
    "qcow2_v1": Rejected(qcow2_v1, "UnsupportedDiskFeature"),
    "vmdk_descriptor": Rejected(vmdk_descriptor, "VmdkExtentsNotSupported"),
    "vmdk_split_extent": Rejected(vmdk_split_extent, "VmdkExtentsNotSupported"),
    "vhdx_log_misplaced": Rejected(vhdx_log_misplaced, "VhdxLogReplayRequired"),
    "vdi": Rejected(vdi, "UnsupportedFormatVdi"),
    "text_file": Rejected(text_file, "NotADisk"),
}


class FormatsCorpus:
    """Builds cases on first use into one directory and remembers their paths."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._paths: dict[str, Path] = {}
        self._oracles: dict[str, bytes] = {}

    def __getitem__(self, name: str) -> Path:
        if name not in self._paths:
            build = {
                "ova": ova,
                "vhdx_partially_present": vhdx_partially_present,
                **{k: v.build for k, v in ACCEPTED.items()},
                **{k: v.build for k, v in REJECTED.items()},
            }[name]
            sub = self.directory / name
            sub.mkdir(parents=True, exist_ok=True)
            self._paths[name] = build(sub)
        return self._paths[name]

    def oracle(self, name: str) -> bytes:
        """qemu's raw reading of an accepted case."""
        if name not in self._oracles:
            case = ACCEPTED[name]
            self._oracles[name] = (
                replayed_oracle(self[name])
                if case.replay
                else oracle_raw(self[name], case.qemu_format)
            )
        return self._oracles[name]


__all__ = ["ACCEPTED", "REJECTED", "CorpusToolMissing", "FormatsCorpus", "oracle_raw"]
