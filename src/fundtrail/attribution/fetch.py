"""``tags fetch SOURCE``: download a public tag source, keep the files under HOME/downloads, import them.

Sources and their default URLs are in :data:`SOURCES`; each URL can be replaced by the workspace setting
``attribution.url.<source>`` (a list of URLs) or by the caller (``urls=``). Downloads go through a small
:class:`Fetcher` interface; :class:`HttpFetcher` uses httpx and takes an ``httpx`` transport, so tests
serve the real files from an ``httpx.MockTransport`` or a loopback server.
"""

from __future__ import annotations

import datetime as dt
import io
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import httpx

from fundtrail.attribution.isolate import ParseLimits
from fundtrail.attribution.records import ImportStats, now
from fundtrail.attribution.service import import_paths
from fundtrail.attribution.trust import Provenance
from fundtrail.errors import FetchError, UsageError
from fundtrail.principal import Principal, cli_principal
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


class HttpFetcher:
    """Downloads with httpx (redirects followed, a timeout, one retry)."""

    def __init__(self, *, transport: httpx.BaseTransport | None = None, timeout: float = 60.0) -> None:
        self._client = httpx.Client(transport=transport, timeout=timeout, follow_redirects=True,
                                    headers={"User-Agent": "fundtrail (open-source blockchain forensics)"})

    def get(self, url: str) -> bytes:
        last: Exception | None = None
        for _ in range(2):
            try:
                r = self._client.get(url)
                if r.status_code != 200:
                    raise FetchError(f"{url}: HTTP {r.status_code}")
                return r.content
            except httpx.HTTPError as e:
                last = e
        raise FetchError(f"{url}: download failed ({last})")

    def close(self) -> None:
        self._client.close()


def source_urls(ws: Workspace, name: str, urls: Sequence[str] | None = None) -> list[str]:
    if name not in SOURCES:
        raise UsageError(f"unknown source {name!r}; known: {', '.join(sorted(SOURCES))}")
    if urls:
        return list(urls)
    configured = ws.setting(f"attribution.url.{name}")
    if configured:
        return [configured] if isinstance(configured, str) else list(configured)
    return list(SOURCES[name].urls)


def _file_name(url: str, name: str, i: int) -> str:
    base = Path(urlparse(url).path).name or f"{name}-{i}"
    if name == "ofac-csv":  # keep the names detect() pairs: sdn.csv + sdn_comments.csv
        base = base.lower()
    return base


def fetch(ws: Workspace, name: str, *, urls: Sequence[str] | None = None, fetcher: Fetcher | None = None,
          as_of: dt.datetime | dt.date | str | None = None, progress: Progress = NullProgress(),
          principal: Principal | None = None, confirm: bool = False,
          limits: ParseLimits | None = None) -> ImportStats:
    """Download source ``name`` into HOME/downloads/<name>/<UTC date>/ and import it.

    The snapshot date is ``as_of`` if given, else what the files say (SDN.XML's publish date …), else today.
    Only a download from the source's built-in official URLs is authoritative (OFAC) or curated
    (GraphSense, Etherscan, the per-asset lists); from any other URL the files are the caller's own
    import (trust.py).
    """
    src = SOURCES.get(name)
    chosen = source_urls(ws, name, urls)
    prov = Provenance(principal or cli_principal(ws.home), fetched=True,
                      official=src is not None and tuple(chosen) == src.urls, fetch_source=name,
                      source_url=" ".join(chosen)[:2000], confirm=confirm)
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
    return import_paths(ws, written, as_of=as_of, progress=progress, provenance=prov, limits=limits)


def _extract_tagfiles(data: bytes, target: Path, url: str) -> list[Path]:
    """The TagPack / ActorPack YAML files of a repository tarball (packs/ and actors/ folders)."""
    out: list[Path] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for m in tar.getmembers():
                parts = Path(m.name).parts
                if not m.isfile() or not m.name.endswith((".yaml", ".yml")):
                    continue
                if not any(p in ("packs", "actors") for p in parts[:-1]):
                    continue
                rel = Path(*[p for p in parts[1:] if p not in ("..", "")])
                dest = target / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                fh = tar.extractfile(m)
                if fh is None:
                    continue
                dest.write_bytes(fh.read())
                out.append(dest)
    except tarfile.TarError as e:
        raise FetchError(f"{url}: not a tar archive ({e})") from e
    if not out:
        raise FetchError(f"{url}: the archive holds no TagPacks (packs/*.yaml) or ActorPacks (actors/*.yaml)")
    return sorted(out)
