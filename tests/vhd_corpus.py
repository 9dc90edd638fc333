"""Build real disk images with real tools, at test time, for the VHD tests.

Each builder writes one image into a directory and returns its path. The
images are sparse and small (tens of MiB of apparent size, a few hundred KiB
on disk) and each builds in well under a second, so the whole corpus takes a
few seconds. The tools come from the Debian packages `qemu-utils e2fsprogs
fdisk dosfstools ntfs-3g mtools`; a builder whose tool is missing raises
`CorpusToolMissing` (the test fixture turns that into a skip).

`CASES` maps a case name to its builder and the rejection code the validator
must give (None for a valid upload), so tests and docs can enumerate them.
"""

from __future__ import annotations

import gzip
import lzma
import os
import random
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.domain.vhd import FOOTER_SIZE, MIB, build_footer, footer_checksum

SECTOR = 512
TIB = 1024**4

GPT_EFI = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
GPT_MSR = "E3C9E316-0B5C-4DB8-817D-F92DF00215AE"
GPT_BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"

UBUNTU_2204_OS_RELEASE = """\
PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=jammy
"""

DEBIAN_12_OS_RELEASE = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""


class CorpusToolMissing(RuntimeError):
    """A command-line tool needed to build an image is not installed."""


def _tool(name: str) -> str:
    # sbin is often missing from a non-root PATH, yet mke2fs and friends live there.
    extra = os.pathsep.join(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
    found = shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + extra)
    if found is None:
        raise CorpusToolMissing(
            f"`{name}` is not installed; install the Debian packages "
            "qemu-utils e2fsprogs fdisk dosfstools ntfs-3g mtools to build the VHD test corpus."
        )
    return found


def _run(*args: str, stdin: str | None = None) -> None:
    cmd = [_tool(args[0]), *args[1:]]
    proc = subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, check=False, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}"
        )


def _truncate(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def _place(src: Path, dst: Path, offset: int) -> None:
    """`dd if=src of=dst seek=offset conv=notrunc,sparse`: copy only the non-zero chunks."""
    chunk = 64 * 1024
    zero = bytes(chunk)
    with open(src, "rb") as fin, open(dst, "r+b") as fout:
        pos = 0
        while data := fin.read(chunk):
            if data != zero[: len(data)]:
                fout.seek(offset + pos)
                fout.write(data)
            pos += len(data)


def _to_fixed_vhd(raw: Path, out: Path) -> Path:
    _run(
        "qemu-img",
        "convert",
        "-f",
        "raw",
        "-O",
        "vpc",
        "-o",
        "subformat=fixed,force_size=on",
        str(raw),
        str(out),
    )
    raw.unlink()
    return out


def _patch_footer(path: Path, offset: int, **fields: int) -> None:
    """Change footer fields in place (disk_type, current_size, data_offset), fixing the checksum."""
    layout = {"data_offset": (16, 8), "current_size": (48, 8), "disk_type": (60, 4)}
    with open(path, "r+b") as f:
        f.seek(offset)
        footer = bytearray(f.read(FOOTER_SIZE))
        for name, value in fields.items():
            at, width = layout[name]
            footer[at : at + width] = value.to_bytes(width, "big")
        footer[64:68] = footer_checksum(bytes(footer)).to_bytes(4, "big")
        f.seek(offset)
        f.write(footer)


def _write_tree(root: Path, os_release: str, *, symlink: str, etc_files: int) -> None:
    """A small but realistic root file system tree."""
    for d in (
        "etc/default",
        "usr/lib",
        "usr/bin",
        "usr/share/doc",
        "var/log",
        "home",
        "boot",
        "root",
        "tmp",
    ):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "usr/lib/os-release").write_text(os_release)
    (root / "etc/os-release").symlink_to(symlink)
    (root / "etc/loop-a").symlink_to("loop-b")  # a symlink loop for the hop limit
    (root / "etc/loop-b").symlink_to("loop-a")
    (root / "etc/dangling").symlink_to("/nonexistent/file")
    (root / "etc/hostname").write_text("imagebuilder\n")
    (root / "etc/fstab").write_text("LABEL=cloudimg-rootfs / ext4 defaults 0 1\n")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    for i in range(etc_files):
        (root / f"etc/config-file-number-{i:04d}.conf").write_text(f"setting = {i}\n")
    for i in range(40):
        (root / f"usr/lib/library-{i:03d}.so").write_bytes(bytes(64))
        (root / f"usr/bin/tool-{i:03d}").write_bytes(b"#!/bin/sh\n")
    (root / "usr/lib/big-file.bin").write_bytes(random.Random(7).randbytes(300_000))


@dataclass(frozen=True)
class LinuxLayout:
    fs_type: str = "ext4"
    block_size: int | None = None  # mke2fs's default for the size when None
    symlink: str = "../usr/lib/os-release"
    os_release: str = UBUNTU_2204_OS_RELEASE
    etc_files: int = 30
    htree: bool = False  # run `e2fsck -fD` so that big directories get an htree index
    swap_mib: int = 0
    disk_mib: int = 64
    mkfs_options: tuple[str, ...] = ()


def _sfdisk(raw: Path, script: str) -> None:
    # Without --no-reread sfdisk spends ~0.25 s trying to make the kernel re-read the
    # partition table of what is only a regular file.
    _run("sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(raw), stdin=script)


def _ext_image(
    directory: Path, name: str, size_mib: int, layout: LinuxLayout, *, tree: bool = True
) -> Path:
    """An ext file system image of `size_mib` MiB in its own file (a root tree or empty)."""
    root = directory / f"{name}.tree"
    root.mkdir(parents=True, exist_ok=True)
    if tree:
        _write_tree(root, layout.os_release, symlink=layout.symlink, etc_files=layout.etc_files)
    fs = _truncate(directory / f"{name}.fs", size_mib * MIB)
    args = ["mke2fs", "-q", "-t", layout.fs_type, "-F", "-L", "cloudimg-rootfs" if tree else "boot"]
    if layout.block_size:
        args += ["-b", str(layout.block_size)]
    _run(*args, *layout.mkfs_options, "-d", str(root), str(fs))
    shutil.rmtree(root)
    if layout.htree:
        # e2fsck exits 1 when it optimised directories: that is success here.
        proc = subprocess.run([_tool("e2fsck"), "-fyD", str(fs)], capture_output=True, check=False)
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"e2fsck -fyD failed: {proc.stdout!r} {proc.stderr!r}")
    return fs


def _swap_image(directory: Path, name: str, size_mib: int) -> Path:
    swap = _truncate(directory / f"{name}.swap", size_mib * MIB)
    _run("mkswap", "-q", "-L", "swap", str(swap))
    return swap


def _move_into(image: Path, raw: Path, offset: int) -> None:
    _place(image, raw, offset)
    image.unlink()


def _linux_raw(directory: Path, name: str, layout: LinuxLayout) -> Path:
    """An MBR disk: a bootable Linux (0x83) ext partition from 1 MiB, then optional swap."""
    raw = _truncate(directory / f"{name}.raw", layout.disk_mib * MIB)
    root_mib = layout.disk_mib - 1 - layout.swap_mib
    script = f"label: dos\nstart=2048, size={root_mib * 2048}, type=83, bootable\n"
    if layout.swap_mib:
        script += f"start={(1 + root_mib) * 2048}, size={layout.swap_mib * 2048}, type=82\n"
    _sfdisk(raw, script)
    _move_into(_ext_image(directory, name, root_mib, layout), raw, MIB)
    if layout.swap_mib:
        _move_into(_swap_image(directory, name, layout.swap_mib), raw, (1 + root_mib) * MIB)
    return raw


# --------------------------------------------------------------------------------------
# Valid fixed VHDs.


def linux_ext4_mbr(directory: Path) -> Path:
    """64 MiB MBR + ext4 (0x83) with Ubuntu 22.04's os-release behind a relative symlink."""
    return _to_fixed_vhd(_linux_raw(directory, "linux", LinuxLayout()), directory / "linux.vhd")


def linux_with_swap(directory: Path) -> Path:
    """MBR with an ext4 root and an 8 MiB swap partition (0x82)."""
    raw = _linux_raw(directory, "swap", LinuxLayout(swap_mib=8))
    return _to_fixed_vhd(raw, directory / "linux-swap.vhd")


def linux_ext2_absolute_symlink(directory: Path) -> Path:
    """ext2 (block pointers, no extents) with a slow (>= 60 bytes) absolute symlink."""
    target = "/usr/./lib/../lib/" + "./" * 30 + "os-release"
    layout = LinuxLayout(fs_type="ext2", symlink=target, os_release=DEBIAN_12_OS_RELEASE)
    return _to_fixed_vhd(_linux_raw(directory, "ext2", layout), directory / "linux-ext2.vhd")


def linux_ext3(directory: Path) -> Path:
    """ext3 (journal, block pointers) with the os-release symlink."""
    layout = LinuxLayout(fs_type="ext3")
    return _to_fixed_vhd(_linux_raw(directory, "ext3", layout), directory / "linux-ext3.vhd")


def linux_htree(directory: Path) -> Path:
    """ext4 with 4 KiB blocks and an htree-indexed /etc of 1500 entries."""
    layout = LinuxLayout(block_size=4096, etc_files=1500, htree=True)
    return _to_fixed_vhd(_linux_raw(directory, "htree", layout), directory / "linux-htree.vhd")


def linux_meta_bg(directory: Path) -> Path:
    """ext4 with meta_bg and tiny groups (1 MiB, 16 inodes): group descriptors are
    spread over meta block groups and /etc's entries have inodes in far groups."""
    layout = LinuxLayout(
        block_size=1024,
        etc_files=600,
        mkfs_options=("-O", "meta_bg,^resize_inode", "-g", "1024", "-i", "65536"),
    )
    return _to_fixed_vhd(_linux_raw(directory, "metabg", layout), directory / "linux-meta-bg.vhd")


def linux_logical(directory: Path) -> Path:
    """MBR with a bootable ext2 /boot (no /etc), then an extended partition holding
    the ext4 root (logical 5) and swap (logical 6)."""
    raw = _truncate(directory / "logical.raw", 64 * MIB)
    _sfdisk(
        raw,
        "label: dos\n"
        f"{raw}1 : start=2048, size={8 * 2048}, type=83, bootable\n"
        f"{raw}2 : start={9 * 2048}, size={54 * 2048}, type=5\n"
        f"{raw}5 : start={10 * 2048}, size={40 * 2048}, type=83\n"
        f"{raw}6 : start={51 * 2048}, size={12 * 2048}, type=82\n",
    )
    boot = _ext_image(directory, "boot", 8, LinuxLayout(fs_type="ext2"), tree=False)
    _move_into(boot, raw, MIB)
    _move_into(_ext_image(directory, "root", 40, LinuxLayout()), raw, 10 * MIB)
    _move_into(_swap_image(directory, "logical", 12), raw, 51 * MIB)
    return _to_fixed_vhd(raw, directory / "linux-logical.vhd")


def linux_cut_short(directory: Path) -> Path:
    """The 64 MiB Linux disk cut to 40 MiB before conversion: a valid fixed VHD whose
    partition (and ext4 file system) runs 24 MiB past the end of the disk."""
    raw = _linux_raw(directory, "cut", LinuxLayout())
    os.truncate(raw, 40 * MIB)
    return _to_fixed_vhd(raw, directory / "linux-cut-short.vhd")


def linux_unpartitioned(directory: Path) -> Path:
    """ext4 directly on the disk from sector 0: no partition table."""
    fs = _ext_image(directory, "whole", 32, LinuxLayout())
    return _to_fixed_vhd(fs, directory / "linux-unpartitioned.vhd")


def windows_gpt(directory: Path) -> Path:
    """96 MiB GPT: EFI system partition (FAT32), Microsoft reserved, basic data (NTFS)."""
    raw = _truncate(directory / "windows.raw", 96 * MIB)
    esp_start, esp_mib = 2048, 36
    msr_start, msr_mib = esp_start + esp_mib * 2048, 8
    data_start = msr_start + msr_mib * 2048
    data_sectors = (96 - 1 - esp_mib - msr_mib - 1) * 2048
    script = (
        "label: gpt\n"
        f'start={esp_start}, size={esp_mib * 2048}, type={GPT_EFI}, name="EFI system partition"\n'
        f"start={msr_start}, size={msr_mib * 2048}, type={GPT_MSR}, "
        'name="Microsoft reserved partition"\n'
        f"start={data_start}, size={data_sectors}, type={GPT_BASIC_DATA}, "
        'name="Basic data partition"\n'
    )
    _sfdisk(raw, script)
    _run(
        "mkfs.vfat",
        "-F",
        "32",
        "-s",
        "1",
        "-n",
        "SYSTEM",
        f"--offset={esp_start}",
        "-h",
        str(esp_start),
        str(raw),
        str(esp_mib * 1024),
    )
    boot = directory / "bootmgfw.efi"
    boot.write_bytes(b"MZ" + bytes(510))
    image = f"{raw}@@{esp_start * SECTOR}"
    _run("mmd", "-i", image, "::/EFI", "::/EFI/Microsoft", "::/EFI/Microsoft/Boot")
    _run("mcopy", "-i", image, str(boot), "::/EFI/Microsoft/Boot/bootmgfw.efi")
    boot.unlink()
    ntfs = _truncate(directory / "windows.ntfs", data_sectors * SECTOR)
    _run(
        "mkntfs",
        "-q",
        "-F",
        "-Q",
        "-s",
        "512",
        "-p",
        str(data_start),
        "-H",
        "255",
        "-S",
        "63",
        "-L",
        "Windows",
        str(ntfs),
    )
    _place(ntfs, raw, data_start * SECTOR)
    ntfs.unlink()
    return _to_fixed_vhd(raw, directory / "windows.vhd")


def blank_fixed(directory: Path, size: int = 64 * MIB) -> Path:
    """An all-zero fixed VHD made by qemu-img."""
    out = directory / f"blank-{size}.vhd"
    _run(
        "qemu-img",
        "create",
        "-q",
        "-f",
        "vpc",
        "-o",
        "subformat=fixed,force_size=on",
        str(out),
        str(size),
    )
    return out


def huge_sparse(directory: Path, size: int = 2 * TIB) -> Path:
    """A sparse fixed VHD of `size` bytes (2 TiB) made in Python, MBR + ext4 at the front.

    No qemu here: the footer comes from `build_footer` and the file is a hole
    except for the first 64 MiB and the last 512 bytes.
    """
    raw = _linux_raw(directory, "huge", LinuxLayout())
    out = directory / f"huge-{size}.vhd"
    _truncate(out, size + FOOTER_SIZE)
    _place(raw, out, 0)
    raw.unlink()
    with open(out, "r+b") as f:
        f.seek(size)
        f.write(build_footer(size))
    return out


# --------------------------------------------------------------------------------------
# Rejected uploads.


def dynamic_vhd(directory: Path) -> Path:
    out = directory / "dynamic.vhd"
    _run(
        "qemu-img",
        "create",
        "-q",
        "-f",
        "vpc",
        "-o",
        "subformat=dynamic,force_size=on",
        str(out),
        "64M",
    )
    return out


def differencing_vhd(directory: Path) -> Path:
    """qemu cannot write differencing VHDs: a dynamic one with disk type 4 in both footers."""
    out = directory / "differencing.vhd"
    _run(
        "qemu-img",
        "create",
        "-q",
        "-f",
        "vpc",
        "-o",
        "subformat=dynamic,force_size=on",
        str(out),
        "64M",
    )
    _patch_footer(out, 0, disk_type=4)
    _patch_footer(out, out.stat().st_size - FOOTER_SIZE, disk_type=4)
    return out


def truncated_dynamic(directory: Path) -> Path:
    """A dynamic VHD missing its last sector: only the footer copy at offset 0 is left."""
    out = dynamic_vhd(directory).rename(directory / "dynamic-truncated.vhd")
    with open(out, "r+b") as f:
        f.truncate(out.stat().st_size - FOOTER_SIZE)
    return out


def vhdx(directory: Path) -> Path:
    out = directory / "disk.vhdx"
    _run("qemu-img", "create", "-q", "-f", "vhdx", str(out), "64M")
    return out


def qcow2(directory: Path) -> Path:
    out = directory / "disk.qcow2"
    _run("qemu-img", "create", "-q", "-f", "qcow2", str(out), "64M")
    return out


def vmdk(directory: Path) -> Path:
    out = directory / "disk.vmdk"
    _run("qemu-img", "create", "-q", "-f", "vmdk", str(out), "64M")
    return out


def vdi(directory: Path) -> Path:
    out = directory / "disk.vdi"
    _run("qemu-img", "create", "-q", "-f", "vdi", str(out), "64M")
    return out


def iso_image(directory: Path) -> Path:
    """An ISO 9660 primary volume descriptor at sector 16 (2048-byte sectors)."""
    out = _truncate(directory / "disc.iso", 2 * MIB)
    with open(out, "r+b") as f:
        f.seek(0x8000)
        f.write(b"\x01CD001\x01\x00" + b"LINUX".ljust(32) + b"INSTALLER".ljust(32))
        f.seek(0x8800)
        f.write(b"\xffCD001\x01")
    return out


def raw_disk(directory: Path) -> Path:
    """The Linux MBR disk as a raw image: no footer."""
    return _linux_raw(directory, "rawdisk", LinuxLayout())


def fixed_without_force_size(directory: Path) -> Path:
    """qemu's CHS rounding: 64M becomes 67,125,248 bytes, not whole MiB."""
    out = directory / "chs-rounded.vhd"
    _run("qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=fixed", str(out), "64M")
    return out


def bad_checksum(directory: Path) -> Path:
    out = blank_fixed(directory, 32 * MIB).rename(directory / "bad-checksum.vhd")
    with open(out, "r+b") as f:
        f.seek(32 * MIB + 28)  # the creator application field
        f.write(b"XXXX")
    return out


def truncated(directory: Path) -> Path:
    out = blank_fixed(directory, 32 * MIB).rename(directory / "truncated.vhd")
    with open(out, "r+b") as f:
        f.truncate(32 * MIB + FOOTER_SIZE - 100)
    return out


def not_sector_aligned(directory: Path) -> Path:
    out = directory / "odd-size.bin"
    out.write_bytes(random.Random(3).randbytes(100_001))
    return out


def empty_file(directory: Path) -> Path:
    out = directory / "empty.vhd"
    out.write_bytes(b"")
    return out


def text_file(directory: Path) -> Path:
    out = directory / "readme.txt"
    out.write_text("This is not a disk image.\n" * 40)
    return out


def gzip_file(directory: Path) -> Path:
    """A gzipped fixed VHD (what people upload when they forget to decompress)."""
    src = blank_fixed(directory, 21 * MIB)
    out = directory / "disk.vhd.gz"
    with open(src, "rb") as fin, gzip.open(out, "wb", compresslevel=1) as fout:
        shutil.copyfileobj(fin, fout, 1024 * 1024)
    src.unlink()
    return out


def xz_file(directory: Path) -> Path:
    out = directory / "disk.vhd.xz"
    out.write_bytes(lzma.compress(bytes(1_000_000), preset=0))
    return out


def zip_file(directory: Path) -> Path:
    out = directory / "disk.zip"
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("disk.vhd", b"\0" * 4096)
    return out


def size_mismatch(directory: Path) -> Path:
    """A 64 MiB fixed VHD whose footer claims 32 MiB (checksum fixed up)."""
    out = blank_fixed(directory, 64 * MIB).rename(directory / "size-mismatch.vhd")
    _patch_footer(out, 64 * MIB, current_size=32 * MIB)
    return out


def data_after_footer(directory: Path) -> Path:
    out = blank_fixed(directory, 32 * MIB).rename(directory / "data-after-footer.vhd")
    with open(out, "r+b") as f:
        f.truncate(32 * MIB + 2 * FOOTER_SIZE)
    return out


def legacy_511_footer(directory: Path) -> Path:
    """A pre-2004 style VHD: 24 MiB of disk and a 511-byte footer."""
    out = _truncate(directory / "legacy.vhd", 24 * MIB)
    with open(out, "ab") as f:
        f.write(build_footer(24 * MIB, creator_app=b"vpc ")[:511])
    return out


def bad_data_offset(directory: Path) -> Path:
    out = blank_fixed(directory, 32 * MIB).rename(directory / "bad-data-offset.vhd")
    _patch_footer(out, 32 * MIB, data_offset=512)
    return out


def unknown_disk_type(directory: Path) -> Path:
    out = blank_fixed(directory, 32 * MIB).rename(directory / "disk-type-5.vhd")
    _patch_footer(out, 32 * MIB, disk_type=5)
    return out


def too_small(directory: Path) -> Path:
    return blank_fixed(directory, 8 * MIB)


def nested_qcow2(directory: Path) -> Path:
    """A qcow2 file converted as if it were raw: a fixed VHD holding a qcow2 header."""
    src = qcow2(directory)
    raw = _truncate(directory / "nested.raw", 32 * MIB)
    _place(src, raw, 0)
    src.unlink()
    return _to_fixed_vhd(raw, directory / "nested-qcow2.vhd")


@dataclass(frozen=True)
class Case:
    build: Callable[[Path], Path]
    code: str | None  # the validator's rejection code; None when the upload is valid


#: Every corpus case with the code `validate_vhd` must give it (default limits:
#: max 2 TiB, min 20 MiB).
CASES: dict[str, Case] = {
    "linux_ext4_mbr": Case(linux_ext4_mbr, None),
    "linux_with_swap": Case(linux_with_swap, None),
    "linux_ext2_absolute_symlink": Case(linux_ext2_absolute_symlink, None),
    "linux_ext3": Case(linux_ext3, None),
    "linux_htree": Case(linux_htree, None),
    "linux_meta_bg": Case(linux_meta_bg, None),
    "linux_logical": Case(linux_logical, None),
    "linux_unpartitioned": Case(linux_unpartitioned, None),
    "linux_cut_short": Case(linux_cut_short, None),  # valid VHD; PartitionBeyondDisk after probe
    "windows_gpt": Case(windows_gpt, None),
    "blank_fixed": Case(blank_fixed, None),
    "huge_sparse": Case(huge_sparse, None),
    "dynamic_vhd": Case(dynamic_vhd, "DynamicVhdNotSupported"),
    "differencing_vhd": Case(differencing_vhd, "DifferencingVhdNotSupported"),
    "truncated_dynamic": Case(truncated_dynamic, "TruncatedVhd"),
    "vhdx": Case(vhdx, "UnsupportedFormatVhdx"),
    "qcow2": Case(qcow2, "UnsupportedFormatQcow2"),
    "vmdk": Case(vmdk, "UnsupportedFormatVmdk"),
    "vdi": Case(vdi, "UnsupportedFormatVdi"),
    "iso_image": Case(iso_image, "UnsupportedFormatIso"),
    "raw_disk": Case(raw_disk, "RawDiskWithoutFooter"),
    "fixed_without_force_size": Case(fixed_without_force_size, "VirtualSizeNotWholeMiB"),
    "bad_checksum": Case(bad_checksum, "InvalidVhdFooterChecksum"),
    "truncated": Case(truncated, "TruncatedVhd"),
    "not_sector_aligned": Case(not_sector_aligned, "NotSectorAligned"),
    "empty_file": Case(empty_file, "EmptyBlob"),
    "text_file": Case(text_file, "NotADisk"),
    "gzip_file": Case(gzip_file, "CompressedArchive"),
    "xz_file": Case(xz_file, "CompressedArchive"),
    "zip_file": Case(zip_file, "CompressedArchive"),
    "size_mismatch": Case(size_mismatch, "VhdSizeMismatch"),
    "data_after_footer": Case(data_after_footer, "DataAfterVhdFooter"),
    "legacy_511_footer": Case(legacy_511_footer, "LegacyVhdFooter"),
    "bad_data_offset": Case(bad_data_offset, "InvalidVhdDataOffset"),
    "unknown_disk_type": Case(unknown_disk_type, "InvalidVhdDiskType"),
    "too_small": Case(too_small, "DiskTooSmall"),
    "nested_qcow2": Case(nested_qcow2, "NestedDiskImage"),
}


class Corpus:
    """Builds cases on first use into one directory and remembers their paths."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._paths: dict[str, Path] = {}

    def __getitem__(self, name: str) -> Path:
        if name not in self._paths:
            sub = self.directory / name
            sub.mkdir(parents=True, exist_ok=True)
            self._paths[name] = CASES[name].build(sub)
        return self._paths[name]


def build_all(directory: Path) -> dict[str, Path]:
    """Build every case (e.g. `python -m tests.vhd_corpus /tmp/corpus`)."""
    corpus = Corpus(directory)
    return {name: corpus[name] for name in CASES}


if __name__ == "__main__":
    import sys
    import time

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "vhd-corpus")
    started = time.monotonic()
    for case, path in build_all(target).items():
        print(f"{case:30} {path.stat().st_size:>16} {path}")
    print(f"built in {time.monotonic() - started:.2f} s")
