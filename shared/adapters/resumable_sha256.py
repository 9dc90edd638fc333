"""SHA-256 whose state can be saved and taken up again, in another process.

A disk's content hash feeds every byte of its data area through one SHA-256, and a
job hashing a large disk must stop within a function's time limit and go on later.
hashlib can't export its state, so this drives OpenSSL's SHA256_Init/Update/Final
(the same libcrypto hashlib uses, with its CPU instructions) through ctypes: the
state is the 112-byte SHA256_CTX of OpenSSL's public header, saved as bytes. Where
that library can't be found the hash is plain hashlib and can't be resumed
(`Sha256Stream.state()` is None: a resumed job starts that disk over).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import struct
from functools import cache
from typing import Any

CTX_SIZE = 112  # SHA256_CTX: h[8], Nl, Nh, data[16], num, md_len (32-bit words)
FORMAT = "openssl-sha256-ctx-1"  # what a saved state is, so a stranger one is refused
_ZEROS = bytes(4 * 1024 * 1024)


@cache
def _libcrypto() -> Any | None:
    """The libcrypto the process already uses (hashlib's), if it has the SHA256 calls."""
    import _hashlib  # noqa: F401  (loads libcrypto, so its path is in the map)

    paths: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "libcrypto" in line})
    except OSError:
        pass
    found = ctypes.util.find_library("crypto")
    for path in [*paths, *([found] if found else [])]:
        try:
            lib = ctypes.CDLL(path)
            init, update, final = lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final
        except (OSError, AttributeError):
            continue
        init.argtypes = [ctypes.c_void_p]
        update.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        if _works(lib):
            return lib
    return None


def _works(lib: Any) -> bool:
    ctx = ctypes.create_string_buffer(CTX_SIZE)
    out = ctypes.create_string_buffer(32)
    lib.SHA256_Init(ctx)
    lib.SHA256_Update(ctx, b"abc", 3)
    lib.SHA256_Final(out, ctx)
    return out.raw == hashlib.sha256(b"abc").digest()


class Sha256Stream:
    """SHA-256 over a stream, fed in order; `state()` saves it, `Sha256Stream(state)` resumes."""

    def __init__(self, state: bytes | None = None, resumable: bool = True) -> None:
        self._lib = _libcrypto() if resumable else None
        self.length = 0  # bytes fed so far
        if self._lib is None:
            if state is not None:
                raise ValueError("this process can't resume a saved SHA-256 state")
            self._plain: Any = hashlib.sha256()
            return
        self._ctx = ctypes.create_string_buffer(CTX_SIZE)
        if state is None:
            self._lib.SHA256_Init(self._ctx)
            return
        if len(state) != CTX_SIZE:
            raise ValueError("not a saved SHA-256 state")
        ctypes.memmove(self._ctx, state, CTX_SIZE)
        low, high = struct.unpack_from("<II", state, 32)  # Nl, Nh: the length in bits
        self.length = ((high << 32) | low) // 8

    @property
    def resumable(self) -> bool:
        return self._lib is not None

    def update(self, data: bytes | bytearray) -> None:
        if self._lib is None:
            self._plain.update(data)
        elif data:
            # bytes go by pointer; a bytearray through a view of its buffer (no copy). ctypes
            # lets go of the GIL during the call, so reads go on meanwhile.
            pointer = (
                data if isinstance(data, bytes) else (ctypes.c_char * len(data)).from_buffer(data)
            )
            self._lib.SHA256_Update(self._ctx, pointer, len(data))
        self.length += len(data)

    def update_zeros(self, count: int) -> None:
        """Feed `count` zero bytes (a hole: costs hashing, no reads)."""
        while count > 0:
            n = min(count, len(_ZEROS))
            self.update(_ZEROS[:n] if n < len(_ZEROS) else _ZEROS)
            count -= n

    def state(self) -> bytes | None:
        """The state to resume from, or None when this hash can't be resumed."""
        return None if self._lib is None else bytes(self._ctx.raw)

    def hexdigest(self) -> str:
        if self._lib is None:
            return str(self._plain.hexdigest())
        ctx = ctypes.create_string_buffer(self._ctx.raw, CTX_SIZE)  # a copy: this one goes on
        out = ctypes.create_string_buffer(32)
        self._lib.SHA256_Final(out, ctx)
        return out.raw.hex()
