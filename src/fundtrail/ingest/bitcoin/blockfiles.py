"""Bitcoin Core block files: framing, XOR obfuscation, .bz2, the block index and the best chain.

A block file is a sequence of records ``[magic (4)][size (u32 LE)][block (size bytes)]``; Bitcoin Core
pre-allocates files, so a file may end in zero bytes. Since Core 28 the files are XORed with the 8-byte key
in ``xor.dat`` (byte i of a file with key[i % 8]). Test data comes bzip2-compressed; a ``.bz2`` file is
decompressed once into a temporary file next to the workspace and read like any other.

Blocks are stored in the order they arrived: out of height order, and including stale blocks of forks
that lost. :func:`build_index` reads the framing and the 80-byte header of every record;
:func:`best_chain` links them by previous-block hash and picks the chain with the most work, starting
from the workspace's tip (when it has one), from the genesis block, or from a block whose height its
coinbase states (BIP-34).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numba as nb
import numpy as np

from fundtrail.decompress import CappedReader, DecompressLimits
from fundtrail.errors import BlockFileError, UsageError
from fundtrail.ingest.bitcoin.hashing import sha256d_spans
from fundtrail.model.chain import BitcoinNetwork

ZERO_HASH = b"\0" * 32


def list_block_files(blocks_dir: Path) -> list[Path]:
    """The block files of a directory, in file order: ``blk*.dat`` (Bitcoin Core), else ``*.dat`` /
    ``*.bz2`` / ``*.blk`` data files; a single file path is read as it is."""
    p = Path(blocks_dir)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise UsageError(f"{p}: no such directory")
    core = sorted(f for f in p.iterdir() if f.name.startswith("blk") and
                  (f.name.endswith(".dat") or f.name.endswith(".dat.bz2")))
    if core:
        return core
    skip = ("xor.dat", "rev")
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in (".dat", ".bz2", ".blk")
                   and not f.name.startswith(skip) and "utxo" not in f.name)
    if not files:
        raise UsageError(f"{p}: no block files here (blk*.dat[.bz2], *.dat, *.bz2, *.blk): is it the "
                         "node's blocks directory (e.g. ~/.bitcoin/blocks)?")
    return files


def read_xor_key(blocks_dir: Path) -> np.ndarray | None:
    p = Path(blocks_dir)
    k = (p if p.is_dir() else p.parent) / "xor.dat"
    if not k.exists():
        return None
    key = np.frombuffer(k.read_bytes(), np.uint8)
    if len(key) != 8:
        raise BlockFileError(f"xor.dat must hold 8 bytes, not {len(key)}", path=k)
    return None if not key.any() else key.copy()


# Core never writes a blk file past 128 MiB (MAX_BLOCKFILE_SIZE); the unused, preallocated tail is zeros,
# so the ratio is checked only past 16 MiB of output
BZ2_LIMITS = DecompressLimits(max_bytes=256 << 20, max_ratio=200.0, ratio_floor=16 << 20)


class BlockSource:
    """Random access to the bytes of a set of block files (XOR undone, .bz2 decompressed)."""

    def __init__(self, files: list[Path], xor_key: np.ndarray | None, tmp_dir: Path | None = None) -> None:
        self.files = files
        self.xor_key = xor_key
        self._tmp_root = tmp_dir
        self._tmp: Path | None = None
        self._data: dict[int, Path] = {}
        self._maps: dict[int, np.ndarray] = {}
        self._fds: dict[int, int] = {}

    def data_path(self, i: int) -> Path:
        got = self._data.get(i)
        if got is None:
            f = self.files[i]
            if f.suffix == ".bz2":
                if self._tmp is None:
                    if self._tmp_root is not None:
                        self._tmp_root.mkdir(parents=True, exist_ok=True)
                    self._tmp = Path(tempfile.mkdtemp(prefix="fundtrail-bz2-", dir=self._tmp_root))
                got = self._tmp / f"{i}.dat"
                try:  # streamed under a size and ratio cap: a tiny .bz2 must not fill the disk
                    with open(f, "rb") as raw, open(got, "wb") as dst:
                        src = CappedReader(raw, "bz2", BZ2_LIMITS, what=str(f),
                                           error=lambda m, f=f: BlockFileError(m, path=f))
                        shutil.copyfileobj(src, dst, 1 << 20)
                except OSError as e:
                    raise BlockFileError(f"cannot decompress: {e}", path=f) from e
            else:
                got = f
            self._data[i] = got
        return got

    def array(self, i: int) -> np.ndarray:
        """The file's (decompressed) bytes as a read-only memory map (XOR not yet undone).

        Only the most recent map is kept: the pages a map touched count in the process's resident memory
        until it is dropped (the index scan goes file by file; block bytes are read with pread)."""
        m = self._maps.get(i)
        if m is None:
            path = self.data_path(i)
            if os.path.getsize(path) == 0:
                m = np.zeros(0, np.uint8)
            else:
                m = np.memmap(path, np.uint8, mode="r")
            self._maps.clear()
            self._maps[i] = m
        return m

    def _fd(self, i: int) -> int:
        fd = self._fds.get(i)
        if fd is None:
            if len(self._fds) >= 8:
                os.close(self._fds.pop(next(iter(self._fds))))
            fd = os.open(self.data_path(i), os.O_RDONLY)
            self._fds[i] = fd
        return fd

    def read(self, i: int, offset: int, size: int, out: np.ndarray) -> None:
        """Copy size bytes at offset of file i into out (XOR undone). Plain reads, not the memory map, so
        resident memory stays at the batch buffer however many files are read."""
        fd = self._fd(i)
        view = memoryview(out).cast("B")
        done = 0
        while done < size:
            n = os.preadv(fd, [view[done:size]], offset + done)
            if n <= 0:
                raise BlockFileError("file shorter than its block index says", path=self.files[i],
                                     offset=offset + done)
            done += n
        if self.xor_key is not None:
            out ^= np.roll(self.xor_key, -(offset % 8))[np.arange(size) % 8]

    def close(self) -> None:
        self._maps.clear()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


@nb.njit(cache=True)
def _scan(arr, magic, key, has_key, offs, sizes, headers):  # pragma: no cover - numba
    """Walk the records of one file. Returns (count, error code, error offset); code 0 = clean end.

    Codes: 1 bad magic, 2 record header truncated, 3 block runs past the end of the file, 4 block too
    small for a header, 5 too many records for the arrays (call again with more room).
    """
    n = arr.shape[0]
    p = 0
    c = 0
    rec = np.empty(8, np.uint8)
    while p < n:
        if n - p < 8:
            # trailing bytes: fine if they are zero padding
            for q in range(p, n):
                v = arr[q] ^ (key[q % 8] if has_key else 0)
                if v != 0:
                    return c, 2, p
            return c, 0, 0
        for j in range(8):
            rec[j] = arr[p + j] ^ (key[(p + j) % 8] if has_key else 0)
        if rec[0] == 0 and rec[1] == 0 and rec[2] == 0 and rec[3] == 0:
            # pre-allocated zero tail: the rest of the file must be zeros
            for q in range(p, n):
                v = arr[q] ^ (key[q % 8] if has_key else 0)
                if v != 0:
                    return c, 1, q
            return c, 0, 0
        if rec[0] != magic[0] or rec[1] != magic[1] or rec[2] != magic[2] or rec[3] != magic[3]:
            return c, 1, p
        size = np.int64(rec[4]) | (np.int64(rec[5]) << 8) | (np.int64(rec[6]) << 16) | (np.int64(rec[7]) << 24)
        if size < 81:
            return c, 4, p
        if p + 8 + size > n:
            return c, 3, p
        if c >= offs.shape[0]:
            return c, 5, p
        offs[c] = p + 8
        sizes[c] = size
        for j in range(80):
            q = p + 8 + j
            headers[c, j] = arr[q] ^ (key[q % 8] if has_key else 0)
        c += 1
        p += 8 + size
    return c, 0, 0


SCAN_ERRORS = {
    1: "not a block record (wrong network magic)",
    2: "file ends inside a record header (truncated)",
    3: "block runs past the end of the file (truncated)",
    4: "block record too small to hold a block header",
}


@dataclass(slots=True)
class BlockIndex:
    """Every block record found: where it is and its header."""

    file: np.ndarray  # int32 index into files
    offset: np.ndarray  # int64 offset of the block (after magic and size)
    size: np.ndarray
    header: np.ndarray  # (n, 80) uint8
    hash: np.ndarray  # (n, 32) uint8 internal order
    error: BlockFileError | None = None  # a framing error that stopped the scan (raised after ingesting)
    files: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.offset)


def build_index(src: BlockSource, network: BitcoinNetwork) -> BlockIndex:
    magic = np.frombuffer(network.magic, np.uint8).copy()
    key = src.xor_key if src.xor_key is not None else np.zeros(8, np.uint8)
    has_key = src.xor_key is not None
    parts: list[tuple[np.ndarray, ...]] = []
    error: BlockFileError | None = None
    for i, f in enumerate(src.files):
        arr = src.array(i)
        room = max(16, len(arr) // 4096)
        while True:
            offs = np.empty(room, np.int64)
            sizes = np.empty(room, np.int64)
            headers = np.empty((room, 80), np.uint8)
            c, code, at = _scan(arr, magic, key, has_key, offs, sizes, headers)
            if code != 5:
                break
            room *= 4
        parts.append((np.full(c, i, np.int32), offs[:c], sizes[:c], headers[:c]))
        if code:
            error = BlockFileError(SCAN_ERRORS[int(code)], path=f, offset=int(at))
            break
    if parts:
        file_ = np.concatenate([p[0] for p in parts])
        offset = np.concatenate([p[1] for p in parts])
        size = np.concatenate([p[2] for p in parts])
        header = np.concatenate([p[3] for p in parts])
    else:
        file_, offset, size = np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64)
        header = np.zeros((0, 80), np.uint8)
    src._maps.clear()
    hashes = sha256d_spans(np.ascontiguousarray(header).reshape(-1), np.arange(len(offset), dtype=np.int64) * 80, 80)
    return BlockIndex(file_, offset, size, header, hashes, error, list(src.files))


def _work(bits: int) -> int:
    exp = bits >> 24
    mant = bits & 0x007FFFFF
    target = mant << (8 * (exp - 3)) if exp > 3 else mant >> (8 * (3 - exp))
    if target <= 0:
        return 0
    return (1 << 256) // (target + 1)


def bip34_height(block: bytes) -> int | None:
    """The height a version-2+ block's coinbase states (BIP-34), or None."""
    if len(block) < 81 or int.from_bytes(block[:4], "little") < 2:
        return None
    p = 80
    # tx count varint, then version, (segwit marker), input count
    first = block[p]
    p += 1 if first < 0xFD else (3 if first == 0xFD else (5 if first == 0xFE else 9))
    p += 4
    if block[p] == 0 and block[p + 1] == 1:
        p += 2
    p += 1  # input count (1 for a coinbase)
    p += 36  # null prevout
    p += 1  # script length (< 0xfd for any real coinbase)
    ln = block[p]
    if 1 <= ln <= 8:
        return int.from_bytes(block[p + 1:p + 1 + ln], "little")
    if 0x51 <= ln <= 0x60:
        return ln - 0x50
    return None


@dataclass(slots=True)
class Chain:
    """The best chain: index rows in height order, starting at ``first_height``."""

    rows: np.ndarray  # int64 rows of the BlockIndex
    first_height: int
    base_hash: bytes | None  # the parent of the first block (the workspace tip it continues), if any
    fork_height: int | None = None  # when the workspace tip is not on the best chain: where they meet
    unconnected: int = 0  # blocks not on the chosen chain (stale blocks, other fragments)


def best_chain(index: BlockIndex, network: BitcoinNetwork, read_block, *, tip_hash: bytes | None = None,
               tip_height: int | None = None, start_height: int | None = None) -> Chain:
    """Link blocks by previous hash and choose the most-work chain (first seen wins ties).

    ``tip_hash``/``tip_height``: the workspace's tip (internal byte order), continued from when given. When
    the files hold a chain with more work that leaves the stored chain below its tip, the result says
    where (``fork_height``) and holds the blocks above the fork. ``read_block(row)``: the bytes of a block
    (for the BIP-34 height of a chain that starts mid-way).
    """
    n = len(index)
    hashes = [index.hash[i].tobytes() for i in range(n)]
    by_hash: dict[bytes, int] = {}
    for i, h in enumerate(hashes):
        by_hash.setdefault(h, i)
    prevs = [index.header[i, 4:36].tobytes() for i in range(n)]
    bits = index.header[:, 72:76].copy().view("<u4").reshape(-1).tolist() if n else []
    children: dict[bytes, list[int]] = {}
    for i in range(n):
        if by_hash[hashes[i]] == i:
            children.setdefault(prevs[i], []).append(i)
    genesis = bytes.fromhex(network.genesis_hash)[::-1]

    roots: list[tuple[int, int]] = []  # (row, height)
    stored: list[int] = []  # index rows of the stored chain, tip first
    if tip_hash is not None and tip_height is not None:
        if tip_hash in by_hash:
            x = by_hash[tip_hash]
            stored.append(x)
            while prevs[x] in by_hash:
                x = by_hash[prevs[x]]
                stored.append(x)
            roots = [(x, tip_height - len(stored) + 1)]
        else:
            roots = [(r, tip_height + 1) for r in children.get(tip_hash, [])]
    else:
        roots = [(r, 0) for r in children.get(ZERO_HASH, [])] + [(r, 1) for r in children.get(genesis, [])]
        if not roots:
            for i in range(n):
                if by_hash[hashes[i]] == i and prevs[i] not in by_hash:
                    h = start_height if start_height is not None else bip34_height(read_block(i))
                    if h is not None:
                        roots.append((i, h))
            if not roots and n:
                raise UsageError(
                    "cannot place the blocks: none connects to the genesis block and none states its height "
                    "(BIP-34); give start_height")
    height_of: dict[int, int] = {}
    work_of: dict[int, int] = {}
    parent: dict[int, int] = {}
    best: tuple[int, int] | None = None  # (work, -row)
    for r, h in roots:
        height_of[r] = h
        work_of[r] = _work(bits[r])
        stack = [r]
        while stack:
            x = stack.pop()
            if best is None or (work_of[x], -x) > best:
                best = (work_of[x], -x)
            for c in children.get(hashes[x], []):
                if c in height_of:
                    continue
                height_of[c] = height_of[x] + 1
                work_of[c] = work_of[x] + _work(bits[c])
                parent[c] = x
                stack.append(c)
    if best is None:
        h0 = (tip_height + 1) if tip_height is not None else 0
        return Chain(np.zeros(0, np.int64), h0, tip_hash, None, n)
    path = [-best[1]]
    while path[-1] in parent:
        path.append(parent[path[-1]])
    path.reverse()
    fork_height = None
    if stored:
        on_path = {r: k for k, r in enumerate(path)}
        if stored[0] in on_path:
            path = path[on_path[stored[0]] + 1:]
        else:
            stored_set = set(stored)
            k = 0
            while k < len(path) and path[k] in stored_set:
                k += 1
            if k == 0:  # the chosen chain does not share the stored chain's blocks: keep the stored one
                return Chain(np.zeros(0, np.int64), tip_height + 1, tip_hash, None, n)
            fork_height = height_of[path[k - 1]]
            path = path[k:]
    first = height_of[path[0]] if path else (tip_height + 1 if tip_height is not None else 0)
    return Chain(np.array(path, np.int64), first, tip_hash if fork_height is None else None, fork_height,
                 n - len(path))


def iter_batches(chain: Chain, index: BlockIndex, batch_bytes: int, batch_blocks: int) -> Iterator[np.ndarray]:
    """Positions into chain.rows, grouped into batches of about batch_bytes / at most batch_blocks."""
    sizes = index.size[chain.rows] if len(chain.rows) else np.zeros(0, np.int64)
    i = 0
    n = len(chain.rows)
    while i < n:
        j = i
        total = 0
        while j < n and (j == i or (total + sizes[j] <= batch_bytes and j - i < batch_blocks)):
            total += int(sizes[j])
            j += 1
        yield np.arange(i, j)
        i = j


def gather(src: BlockSource, index: BlockIndex, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The blocks of the given index rows, back to back in one buffer; (buf, starts, ends)."""
    sizes = index.size[rows]
    ends = np.cumsum(sizes)
    starts = ends - sizes
    buf = np.empty(int(ends[-1]) if len(ends) else 0, np.uint8)
    for k, r in enumerate(rows.tolist()):
        src.read(int(index.file[r]), int(index.offset[r]), int(sizes[k]), buf[starts[k]:ends[k]])
    return buf, starts, ends
