"""``tags fetch SOURCE``: download a public tag source, keep the files under HOME/downloads, import them.

Sources and their default URLs are in :data:`SOURCES`; each URL can be replaced by the workspace setting
``attribution.url.<source>`` (a list of URLs) or by the caller (``urls=``), http(s) only. Downloads go
through a small :class:`Fetcher` interface; :class:`HttpFetcher` uses the bounded client of
:mod:`fundtrail.netclient` (size cap, deadline, same-host redirects) and takes an ``httpx`` transport, so
tests serve the real files from an ``httpx.MockTransport`` or a loopback server. Archives are extracted
under decompression and header limits (:func:`_extract_tagfiles`).
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import httpx

from fundtrail.attribution.records import ImportStats, now
from fundtrail.attribution.service import import_paths
from fundtrail.decompress import CappedReader, DecompressLimits, sniff
from fundtrail.errors import FetchError, ResponseLimitError, SourceTimeout, SourceUnreachable, UsageError
from fundtrail.netclient import BoundedHttp, HttpLimits, check_http_url, redact_url
from fundtrail.progress import NullProgress, Progress
from fundtrail.store import Workspace

_OFAC = "https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports"
_LISTS = "https://raw.githubusercontent.com/0xB10C/ofac-sanctioned-digital-currency-addresses/lists"
OFAC_ASSETS = ("XBT", "ETH", "USDT", "USDC", "LTC", "BCH", "TRX", "XMR", "ZEC", "DASH", "ETC", "BSV", "BTG",
               "XRP", "XVG", "ARB", "BSC")


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    urls: tuple[str, ...]
    description: str
    archive: bool = False  # a .tar.gz whose tag files are extracted


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("ofac", (f"{_OFAC}/SDN.XML",), "OFAC SDN list (SDN.XML): entities, programs, addresses"),
    Source("ofac-csv", (f"{_OFAC}/SDN.CSV", f"{_OFAC}/SDN_COMMENTS.CSV"),
           "OFAC sdn.csv with sdn_comments.csv (remarks past 1,000 characters)"),
    Source("ofac-advanced", (f"{_OFAC}/SDN_ADVANCED.XML",), "OFAC sdn_advanced.xml (with listing dates)"),
    Source("ofac-lists", tuple(f"{_LISTS}/sanctioned_addresses_{a}.txt" for a in OFAC_ASSETS),
           "per-asset OFAC address lists (0xB10C/ofac-sanctioned-digital-currency-addresses)"),
    Source("graphsense", ("https://codeload.github.com/graphsense/graphsense-tagpacks/tar.gz/refs/heads/master",),
           "GraphSense public TagPacks and ActorPacks", archive=True),
    Source("etherscan", ("https://raw.githubusercontent.com/brianleect/etherscan-labels/main/data/etherscan/"
                         "combined/combinedAccountLabels.json",), "Etherscan label dump (brianleect)"),
)}


class Fetcher(Protocol):
    def get(self, url: str) -> bytes: ...


# the largest real source is OFAC's sdn_advanced.xml (about 120 MB); one download may take 10 minutes
FETCH_LIMITS = HttpLimits(max_bytes=256 << 20, timeout=60.0, deadline=600.0, redirects="same-host")


class HttpFetcher:
    """Downloads through :class:`fundtrail.netclient.BoundedHttp` (size cap, per-read timeout and per-call
    deadline, same-host redirects only), one retry on a timeout or a connection failure."""

    def __init__(self, *, transport: httpx.BaseTransport | None = None, timeout: float = 60.0,
                 limits: HttpLimits | None = None) -> None:
        lim = limits or replace(FETCH_LIMITS, timeout=timeout)
        self._client = BoundedHttp(lim, source="tags fetch", transport=transport)

    def get(self, url: str) -> bytes:
        last: Exception | None = None
        for _ in range(2):
            try:
                r = self._client.request("GET", url)
            except (SourceTimeout, SourceUnreachable) as e:
                last = e
                continue
            if r.status != 200:  # the body is not echoed: it may be anything the URL points at
                raise FetchError(f"{redact_url(url)}: HTTP {r.status}")
            return r.body
        raise FetchError(f"download failed: {last}")

    def close(self) -> None:
        self._client.close()


def source_urls(ws: Workspace, name: str, urls: Sequence[str] | None = None) -> list[str]:
    if name not in SOURCES:
        raise UsageError(f"unknown source {name!r}; known: {', '.join(sorted(SOURCES))}")
    if urls:
        return [check_http_url(u, "--url") for u in urls]
    configured = ws.setting(f"attribution.url.{name}")
    if configured:
        return [check_http_url(u, "attribution.url") for u in
                ([configured] if isinstance(configured, str) else list(configured))]
    return list(SOURCES[name].urls)


def _file_name(url: str, name: str, i: int) -> str:
    base = Path(urlparse(url).path).name or f"{name}-{i}"
    if name == "ofac-csv":  # keep the names detect() pairs: sdn.csv + sdn_comments.csv
        base = base.lower()
    return base


def fetch(ws: Workspace, name: str, *, urls: Sequence[str] | None = None, fetcher: Fetcher | None = None,
          as_of: dt.datetime | dt.date | str | None = None, progress: Progress = NullProgress()) -> ImportStats:
    """Download source ``name`` into HOME/downloads/<name>/<UTC date>/ and import it.

    The snapshot date is ``as_of`` if given, else what the files say (SDN.XML's publish date …), else today.
    """
    src = SOURCES.get(name)
    chosen = source_urls(ws, name, urls)
    own = fetcher is None
    f: Fetcher = fetcher or HttpFetcher()
    day = now().date().isoformat()
    target = ws.home / "downloads" / name / day
    target.mkdir(parents=True, exist_ok=True)
    task = progress.task(f"downloading {name}", total=len(chosen), unit="files")
    written: list[Path] = []
    try:
        for i, url in enumerate(chosen):
            data = f.get(url)
            if src is not None and src.archive:
                written += _extract_tagfiles(data, target, url)
            else:
                p = target / _file_name(url, name, i)
                p.write_bytes(data)
                written.append(p)
            task.advance(1, bytes=len(data))
    finally:
        task.close()
        if own and isinstance(f, HttpFetcher):
            f.close()
    # no as_of: the files' own date (SDN.XML's publish date, a TagPack's lastmod), else today (mtime)
    return import_paths(ws, written, as_of=as_of, progress=progress)


# a fetched archive: decompressed size and ratio capped, member count and sizes capped, and every tar
# header checked before tarfile parses it (pax / GNU long-name headers are bounded: CPython's pax parser is
# quadratic in a header's size before 3.11.10, CVE-2024-6232)
TAR_LIMITS = DecompressLimits(max_bytes=512 << 20, max_ratio=100.0, ratio_floor=16 << 20)
MAX_MEMBERS = 200_000
MAX_MEMBER_BYTES = 64 << 20
MAX_PAX_HEADER = 8 << 10
MAX_PAX_TOTAL = 256 << 10
_BLOCK = 512


def _archive_stream(data: bytes, url: str) -> io.BufferedReader:
    kind = sniff(data[:6])
    raw: io.RawIOBase
    if kind is None:
        raw = io.BytesIO(data)  # type: ignore[assignment]
    else:
        raw = CappedReader(io.BytesIO(data), kind, TAR_LIMITS, what=redact_url(url),
                           error=lambda m: ResponseLimitError(f"{redact_url(url)}: {m}"))
    return io.BufferedReader(raw, 1 << 20)


def _tar_size(field: bytes) -> int | None:
    if field[:1] and field[0] & 0x80:  # GNU base-256
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        return None


def check_tar_headers(stream: io.BufferedReader, url: str) -> int:
    """Walk the tar headers of ``stream`` (decompressed, capped) without tarfile and refuse archives with
    too many members or oversized pax / long-name headers. Returns the number of members."""
    members = pax_total = 0
    name = redact_url(url)
    while True:
        hdr = stream.read(_BLOCK)
        if len(hdr) < _BLOCK or hdr == bytes(_BLOCK):
            return members
        size = _tar_size(hdr[124:136])
        if size is None:
            raise FetchError(f"{name}: not a tar archive (bad size field in header {members + 1})")
        typ = hdr[156:157]
        if typ in (b"x", b"g", b"L", b"K"):
            pax_total += size
            if size > MAX_PAX_HEADER or pax_total > MAX_PAX_TOTAL:
                raise ResponseLimitError(f"{name}: tar extended header of {size:,} bytes (at most "
                                         f"{MAX_PAX_HEADER:,} each, {MAX_PAX_TOTAL:,} in all)")
        else:
            members += 1
            if members > MAX_MEMBERS:
                raise ResponseLimitError(f"{name}: more than {MAX_MEMBERS:,} members in the archive")
        left = -(-size // _BLOCK) * _BLOCK
        while left > 0:
            got = stream.read(min(left, 1 << 20))
            if not got:
                return members
            left -= len(got)


def _extract_tagfiles(data: bytes, target: Path, url: str) -> list[Path]:
    """The TagPack / ActorPack YAML files of a repository tarball (packs/ and actors/ folders), streamed:
    headers checked first (:func:`check_tar_headers`), then each wanted member copied in chunks."""
    out: list[Path] = []
    name = redact_url(url)
    try:
        check_tar_headers(_archive_stream(data, url), url)
        with tarfile.open(fileobj=_archive_stream(data, url), mode="r|") as tar:
            for m in tar:
                parts = Path(m.name).parts
                if not m.isfile() or not m.name.endswith((".yaml", ".yml")):
                    continue
                if not any(p in ("packs", "actors") for p in parts[:-1]):
                    continue
                if m.size > MAX_MEMBER_BYTES:
                    raise ResponseLimitError(f"{name}: member {m.name[:200]!r} of {m.size:,} bytes (at most "
                                             f"{MAX_MEMBER_BYTES:,})")
                rel = Path(*[p for p in parts[1:] if p not in ("..", "")])
                dest = target / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                fh = tar.extractfile(m)
                if fh is None:
                    continue
                with open(dest, "wb") as w:
                    shutil.copyfileobj(fh, w, 1 << 20)
                out.append(dest)
    except tarfile.TarError as e:
        raise FetchError(f"{name}: not a tar archive ({e})") from e
    if not out:
        raise FetchError(f"{name}: the archive holds no TagPacks (packs/*.yaml) or ActorPacks (actors/*.yaml)")
    return sorted(out)
