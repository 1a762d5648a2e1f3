"""Which reader a file needs, from its name and its first bytes."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
from pathlib import Path

from fundtrail.attribution import fbi, ofac

FORMATS = (
    "graphsense-tagpack", "graphsense-actorpack", "ofac-sdn-csv", "ofac-sdn-comments", "ofac-sdn-xml",
    "ofac-sdn-advanced", "ofac-asset-list", "ofac-address-json", "etherscan-combined", "etherscan-accounts",
    "fbi-list", "csv",
)

#: file names that are never tag files (skipped when a folder is imported)
SKIP_NAMES = re.compile(r"^(LICENSE|README|COPYING|NOTICE|CHANGELOG)(\..*)?$|^\.", re.IGNORECASE)
TAG_SUFFIXES = {".yaml", ".yml", ".json", ".csv", ".txt", ".xml"}
MAX_SNIFF_BYTES = 1 << 20  # a JSON file is parsed whole to tell its format only up to this size


def _head(path: Path, n: int = 4096) -> str:
    with open(path, "rb") as fh:
        return fh.read(n).decode("utf-8", errors="replace")


def detect(path: Path) -> str | None:
    """The format of ``path`` (one of FORMATS), or None when it is not a tag file fundtrail reads."""
    name = path.name.lower()
    suffix = path.suffix.lower()
    head = _head(path)
    if suffix in (".yaml", ".yml"):
        if re.search(r"^actors:", head, re.MULTILINE) or name.endswith(".actorpack.yaml"):
            return "graphsense-actorpack"
        return "graphsense-tagpack"
    if ofac.ASSET_LIST_NAME.search(path.name):
        return "ofac-asset-list"
    if suffix == ".txt" and fbi.known_list(path) is not None:
        return "fbi-list"
    if suffix == ".xml":
        if "<sdnList" in head:
            return "ofac-sdn-xml"
        if "<Sanctions" in head or "ReferenceValueSets" in head:
            return "ofac-sdn-advanced"
        return None
    if suffix == ".json":
        s = head.lstrip()
        if '"metadata"' in head and '"addresses"' in head:
            return "ofac-address-json"
        if s.startswith("{"):
            m = re.match(r'\{\s*"(0x[0-9a-fA-F]{40})"\s*:\s*(.)', s)
            if m:
                return "etherscan-combined" if m[2] == "{" else "etherscan-accounts"
            if path.stat().st_size > MAX_SNIFF_BYTES:
                return None  # detection runs in the importing process: no unbounded parse here
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                return None
            if isinstance(doc, dict) and not doc:
                return "etherscan-accounts"
        return None
    if suffix == ".csv":
        first = head.splitlines()[0] if head else ""
        cols = [c.strip().lower() for c in first.split(",")]
        if cols[:3] == ["address", "chain", "label"] or {"address", "chain"} <= set(cols):
            return "csv"
        try:
            row = next(csv.reader(io.StringIO(head)))
        except (StopIteration, csv.Error):
            return None
        if row and row[0].strip().isdigit():
            if len(row) == 12:
                return "ofac-sdn-csv"
            if len(row) == 2:
                return "ofac-sdn-comments"
        return None
    return None


def expand(paths: list[Path], issues: list | None = None) -> list[Path]:
    """Files under the given paths (folders recursively), tag-file suffixes only, sorted, no duplicates.

    Inside a folder nothing is followed out of it: symbolic links (to files or folders) are skipped and
    reported, and so is anything that does not resolve to a path under the folder. A file named on the
    command line is taken as given."""
    from fundtrail.attribution.records import Issue

    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += _walk(p, issues if issues is not None else [], Issue)
        else:
            out.append(p)
    seen: set[Path] = set()
    res = []
    for f in out:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            res.append(f)
    return res


def _walk(top: Path, issues: list, Issue: type) -> list[Path]:  # noqa: N803
    root = top.resolve()
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        d = Path(dirpath)
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        for n in list(dirnames):
            if (d / n).is_symlink():
                issues.append(Issue(str(d / n), None, "a symbolic link inside the folder: not followed",
                                    level="warning"))
                dirnames.remove(n)
        for n in sorted(filenames):
            f = d / n
            if n.startswith(".") or SKIP_NAMES.match(n) or f.suffix.lower() not in TAG_SUFFIXES:
                continue
            try:
                st = f.lstat()
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                issues.append(Issue(str(f), None, "a symbolic link inside the folder: not followed",
                                    level="warning"))
                continue
            if not stat.S_ISREG(st.st_mode) or not f.resolve().is_relative_to(root):
                issues.append(Issue(str(f), None, "not a regular file under the folder: skipped",
                                    level="warning", skipped=True))
                continue
            found.append(f)
    return sorted(found)
