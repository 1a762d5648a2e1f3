"""Capped, streaming decompression of untrusted inputs (``.bz2`` block files, ``--prevouts x.bz2``, fetched
``.tar.gz`` archives): a few hundred compressed bytes must not become gigabytes on disk or in memory.

:class:`CappedReader` decompresses chunk by chunk (the decompressor never gives more than it is asked for)
and fails as soon as the output passes ``max_bytes``, or passes ``max_ratio`` times the compressed bytes
read so far once it is past ``ratio_floor`` (real block files compress about 1.3:1, YAML about 5-10:1; a
bomb of zeros 1000:1 and more). The error is the caller's (``error(message)``), naming the input.
Limits and their defaults: docs/security.md.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from fundtrail.errors import FundtrailError, InputError

CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class DecompressLimits:
    max_bytes: int
    max_ratio: float = 200.0
    ratio_floor: int = 16 << 20  # the ratio is checked once the output is past this


def _decompressor(kind: str):  # type: ignore[no-untyped-def]
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    if kind == "gz":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if kind == "xz":
        return lzma.LZMADecompressor()
    raise ValueError(f"unknown compression {kind!r}")


def sniff(head: bytes) -> str | None:
    """The compression of a stream from its first bytes: bz2 | gz | xz | None."""
    if head[:3] == b"BZh":
        return "bz2"
    if head[:2] == b"\x1f\x8b":
        return "gz"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    return None


class CappedReader(io.RawIOBase):
    """A readable stream of the decompressed bytes of ``src`` (concatenated streams included, as
    ``bzip2``/``gzip`` write them), under :class:`DecompressLimits`."""

    def __init__(self, src: BinaryIO, kind: str, limits: DecompressLimits, *, what: str,
                 error: Callable[[str], FundtrailError] | None = None) -> None:
        self._src = src
        self._kind = kind
        self._lim = limits
        self._what = what
        self._error = error or (lambda m: InputError(m, path=what))
        self._dec = _decompressor(kind)
        self._pending = b""  # compressed bytes not yet fed
        self._buf = b""  # decompressed bytes not yet returned
        self._eof = False
        self._in_stream = False
        self.bytes_in = 0
        self.bytes_out = 0

    def readable(self) -> bool:
        return True

    def _fail(self, why: str) -> None:
        raise self._error(f"decompressed size {why}; refused as a decompression bomb "
                          f"({self.bytes_in:,} compressed bytes read)")

    def _needs_input(self) -> bool:
        if self._kind == "gz":
            return not self._dec.unconsumed_tail
        return bool(self._dec.needs_input)

    def _fill(self, want: int) -> None:
        while not self._buf and not self._eof:
            if self._dec.eof:  # a following stream (bzip2 and gzip files may be concatenations)
                self._pending = self._dec.unused_data + self._pending
                self._dec = _decompressor(self._kind)
                self._in_stream = False
            if self._kind == "gz" and self._dec.unconsumed_tail:
                data = self._dec.unconsumed_tail
            elif self._needs_input():
                if self._pending:
                    data, self._pending = self._pending, b""
                else:
                    data = self._src.read(CHUNK)
                    self.bytes_in += len(data)
                    if not data:
                        if self._in_stream:
                            raise self._error("truncated compressed data")
                        self._eof = True
                        return
            else:
                data = b""
            self._in_stream = True
            try:
                if self._kind == "gz":
                    out = self._dec.decompress(data, want)
                else:
                    out = self._dec.decompress(data, max_length=want)
            except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as e:
                raise self._error(f"cannot decompress: {e}") from None
            self.bytes_out += len(out)
            if self.bytes_out > self._lim.max_bytes:
                self._fail(f"passes the {self._lim.max_bytes:,}-byte limit")
            if self.bytes_out > self._lim.ratio_floor and \
                    self.bytes_out > self._lim.max_ratio * max(1, self.bytes_in):
                self._fail(f"passes {self._lim.max_ratio:g} times the compressed size")
            self._buf = out

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(b), CHUNK)
        self._fill(want)
        n = min(len(self._buf), len(b))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n
