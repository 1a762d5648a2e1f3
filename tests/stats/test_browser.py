"""The statistics HTML in a real headless Chromium: the charts render with real sizes, nothing is fetched,
no console errors. Needs Debian's chromium at /usr/bin/chromium and the playwright package."""

from __future__ import annotations

import pytest

from fundtrail.store import Workspace

pytestmark = pytest.mark.browser


def test_stats_html_renders_in_chromium(browser, multi_world, tmp_path):
    from fundtrail.stats import compute_stats
    from fundtrail.stats.render import render

    home, _ = multi_world
    r = compute_stats(Workspace(home), by=("actor", "year"), models=("haircut", "fifo"))
    path = tmp_path / "stats.html"
    path.write_text(render(r, "html"), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda q: requests.append(q.url))
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(path.as_uri(), wait_until="load")
    assert [u for u in requests if u != path.as_uri()] == [] and problems == []
    # stacked bars: one rect per (year, actor) with a height, three years, two actors
    bars = page.locator("svg.bars rect")
    assert bars.count() >= 4
    years = {bars.nth(i).get_attribute("data-year") for i in range(bars.count())}
    actors = {bars.nth(i).get_attribute("data-actor") for i in range(bars.count())}
    assert years >= {"2024", "2025", "2026"} and actors == {"lazarus-sim", "bluenoroff-sim"}
    assert all(bars.nth(i).bounding_box()["height"] > 0 for i in range(bars.count()))
    # the country ranking and the Sankey from actor to country are drawn
    assert page.locator("svg.rank rect").count() >= 4
    sk = page.locator("svg#sankey")
    assert sk.bounding_box()["width"] > 600
    assert page.locator("svg#sankey .node-seed").count() == 2
    assert page.locator("svg#sankey .node-country").count() >= 4
    assert page.locator("svg#sankey path.link").count() >= 8
