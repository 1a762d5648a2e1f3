"""Reading the index's ``.npz`` files fast: each member read straight from its offset in the file.

``np.load`` of an ``.npz`` goes through :mod:`zipfile`, which checks a CRC-32 over every byte it reads:
on the large world's address table (100 MB) and update state (50 MB) that check alone costs about a
tenth of a second on every update and every load of the index by a service worker. The files are written
by ``np.savez`` (stored, not compressed) by this package and published atomically (index.py ``publish``),
so a torn file cannot be read as a whole one; the member's size and the ``.npy`` header are still checked.
A compressed member (a file written by something else) is read through ``np.load`` as before.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np

_LOCAL = struct.Struct("<4s5H3L2H")  # a zip local file header (30 bytes)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, by name."""
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as z, open(path, "rb") as f:
        for info in z.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if info.compress_type != zipfile.ZIP_STORED:
                with np.load(path) as full:
                    return {k: full[k] for k in full.files}
            f.seek(info.header_offset)
            head = _LOCAL.unpack(f.read(_LOCAL.size))
            if head[0] != b"PK\x03\x04":
                raise ValueError(f"{path}: member {info.filename!r} has no local header")
            f.seek(info.header_offset + _LOCAL.size + head[9] + head[10])
            start = f.tell()
            out[name] = np.lib.format.read_array(f, allow_pickle=False)
            if f.tell() - start != info.file_size:
                raise ValueError(f"{path}: member {info.filename!r} is {info.file_size} bytes, read {f.tell() - start}")
    return out


__all__ = ["read_npz"]
