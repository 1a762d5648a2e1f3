"""The HTML report in a real headless Chromium: the Sankey renders, tables are there, nothing is fetched.

Needs Debian's chromium at /usr/bin/chromium (dev/setup installs it) and the playwright package.
Set FUNDTRAIL_SCREENSHOT_DIR to keep the screenshot.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fundtrail.report.build import assemble_report
from fundtrail.report.render import render
from tests.report import fixtures as F

pytestmark = pytest.mark.browser


def test_html_report_renders_in_chromium(browser, tmp_path):
    report = assemble_report(F.incident(), F.results(), prices=F.prices())
    path = tmp_path / "report.html"
    path.write_text(render(report, "html"), encoding="utf-8")

    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(path.as_uri(), wait_until="load")

    # nothing but the file itself was requested
    assert requests and all(u.startswith("file://") for u in requests), requests
    assert [u for u in requests if u != path.as_uri()] == []
    assert problems == []

    svg = page.locator("svg#sankey")
    assert svg.is_visible()
    box = svg.bounding_box()
    assert box is not None and box["width"] > 800 and box["height"] > 350

    # one country node per endpoint country, each with ribbons of its own that are actually drawn
    countries = page.eval_on_selector_all("svg#sankey .node-country", "ns => ns.map(n => n.dataset.country)")
    assert sorted(countries) == ["KH", "RU", "US"]
    for cc in countries:
        n_links = page.locator(f'svg#sankey path.link[data-country="{cc}"]').count()
        assert n_links >= 3, cc
        node = page.locator(f'svg#sankey .node-country[data-country="{cc}"] rect').bounding_box()
        assert node is not None and node["height"] >= 1.5
        first = page.locator(f'svg#sankey path.link[data-country="{cc}"]').first.bounding_box()
        assert first is not None and first["width"] > 50
    for kind in ("seed", "hops", "entity", "outcome"):
        assert page.locator(f"svg#sankey .node-{kind}").count() >= 1, kind

    # every label lies inside the drawing (nothing clipped at the right edge)
    overflow = page.evaluate("""() => {
        const svg = document.getElementById('sankey').getBoundingClientRect();
        return [...document.querySelectorAll('#sankey text')].filter(t => {
            const b = t.getBoundingClientRect();
            return b.right > svg.right + 1 || b.left < svg.left - 1 || b.top < svg.top - 1 || b.bottom > svg.bottom + 1;
        }).map(t => t.textContent);
    }""")
    assert overflow == []

    # the tables are there and filled
    for cls in ("endpoints", "countries", "categories", "unspent", "mixers", "crossings", "timeline",
                "comparison", "conservation"):
        rows = page.locator(f"table.{cls} tbody tr").count()
        assert rows >= 1, cls
    assert page.locator("table.endpoints tbody tr").count() == 6
    assert "Reached exchanges in Russia: 47.00002468 BTC, $2,924,301.54" in page.inner_text("ul.rollup")

    # hovering a node highlights its ribbons (the inline script runs)
    page.hover('svg#sankey .node-entity[data-id="entity:Garantex"] rect')
    assert "focus" in (svg.get_attribute("class") or "")
    assert page.locator("svg#sankey path.link.hi").count() >= 2
    page.mouse.move(5, 5)

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    keep = os.environ.get("FUNDTRAIL_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")
        shutil.copy(path, Path(keep) / "report.html")
    page.close()


def test_crowded_diagram_stays_legible(browser, tmp_path):
    report = assemble_report(F.incident(), [F.crowded_result()], prices=F.prices())
    path = tmp_path / "crowded.html"
    path.write_text(render(report, "html"), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(path.as_uri(), wait_until="load")
    assert problems == []
    # at most 20 entity nodes and 12 named countries + one "other countries" node
    assert page.locator("svg#sankey .node-entity").count() == 20
    assert page.locator("svg#sankey .node-country").count() == 13
    assert page.locator('svg#sankey .node-country[data-id="country:__other__"]').count() == 1
    # labels in one column never overlap, and none is clipped
    bad = page.evaluate("""() => {
        const svg = document.getElementById('sankey').getBoundingClientRect();
        const out = [];
        for (const kind of ['hops', 'entity', 'country']) {
            const boxes = [...document.querySelectorAll(`#sankey .node-${kind} text`)]
                .map(t => [t.textContent, t.getBoundingClientRect()]).sort((a, b) => a[1].top - b[1].top);
            for (let i = 1; i < boxes.length; i++) {
                if (boxes[i][1].top < boxes[i - 1][1].bottom - 1) { out.push(boxes[i - 1][0] + ' / ' + boxes[i][0]); }
            }
            for (const [name, b] of boxes) { if (b.right > svg.right + 1 || b.bottom > svg.bottom + 1) { out.push('clipped ' + name); } }
        }
        return out;
    }""")
    assert bad == []
    page.close()


def test_simulated_world_report_in_chromium(browser, sim_report, sim_world, tmp_path):
    """The report of a simulated theft (real traces of ingested chains) in the browser."""
    _, truth = sim_world
    path = tmp_path / "sim.html"
    path.write_text(render(sim_report, "html"), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(path.as_uri(), wait_until="load")
    assert problems == [] and requests == [path.as_uri()]
    want = {e["country"] for e in truth["expected"]["haircut"]["endpoints"] if e["country"]}
    drawn = set(page.eval_on_selector_all("svg#sankey .node-country", "ns => ns.map(n => n.dataset.country)"))
    assert want <= drawn
    for cc in want:
        assert page.locator(f'svg#sankey path.link[data-country="{cc}"]').count() >= 3
    assert page.locator("table.endpoints tbody tr").count() == len(sim_report.entity_comparison)
    assert page.locator("table.conservation .bad").count() == 0
    shot = tmp_path / "sim.png"
    page.screenshot(path=str(shot), full_page=True)
    keep = os.environ.get("FUNDTRAIL_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "sim-report.png")
        shutil.copy(path, Path(keep) / "sim-report.html")
    page.close()
