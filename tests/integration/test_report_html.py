"""report.html in headless Chromium (Debian's package, driven by Playwright): the figures,
card images and candidate table render, nothing fails to load, and no request leaves the file.
The report is a real Ba-Ti-O run (tests/data/report_run)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from matloop.reports import write_report_files
from matloop.schemas import DiscoveryReport, RemovedClaim

CHROMIUM = Path("/usr/bin/chromium")
FIXTURE = Path(__file__).parents[1] / "data" / "report_run" / "batio-fixture"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian chromium is not installed at /usr/bin/chromium "
                                       "(apt-get install chromium)")


@pytest.fixture
def report_html(tmp_path: Path) -> Path:
    run_dir = tmp_path / "runs" / FIXTURE.name
    shutil.copytree(FIXTURE, run_dir)
    report = DiscoveryReport.model_validate_json((run_dir / "report.json").read_text())
    report = report.model_copy(update={
        "removed_claims": [RemovedClaim(part="summary", text="Its band gap is 3.87 eV.",
                                        reason="number 3.87 matches no computed or retrieved "
                                               "value")]})
    write_report_files(report, run_dir, use_robocrys=False, workflows=False)
    return run_dir / "report.html"


def test_report_renders_offline_with_plots_cards_and_tables(report_html: Path,
                                                            tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    failed, errors, requests = [], [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(  # a fresh, empty profile
            tmp_path / "profile", executable_path=str(CHROMIUM), args=FLAGS,
            viewport={"width": 1280, "height": 900})
        try:
            page = browser.new_page()
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report_html.as_uri(), wait_until="load")
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => ({alt: e.alt, w: e.naturalWidth, "
                       "h: e.getBoundingClientRect().height, done: e.complete}))")
            rows = page.locator("#candidates tr").count()
            headers = page.locator("#candidates th").all_inner_texts()
            sections = page.eval_on_selector_all("section", "els => els.map(e => e.id)")
            toc = page.locator("nav a").count()
            nav_position = page.eval_on_selector("nav", "e => getComputedStyle(e).position")
            doi_links = page.eval_on_selector_all(
                "a[href^='https://doi.org/']", "els => els.map(e => e.href)")
            removed_note = page.locator("#grounding .note.removed").inner_text()
        finally:
            browser.close()
    assert shot.stat().st_size > 50_000
    figures = [i for i in images if i["alt"] in ("Candidates on the Ba-O-Ti hull",
                                                 "Objective against stability",
                                                 "Progress across iterations")]
    assert len(figures) == 3
    projections = [i for i in images if i["alt"].startswith("projection along")]
    assert len(projections) == 15  # five cards, three axes each
    assert all(i["done"] and i["w"] > 0 and i["h"] > 0 for i in images)
    assert rows == 21  # header + 20 evaluated candidates
    for column in ("formula", "space group", "novelty", "source method"):
        assert column in [h.lower() for h in headers]
    assert sections == ["summary", "objective", "hypotheses", "methods", "results", "cards",
                        "evidence", "synthesis", "limitations", "next-steps", "grounding"]
    assert toc == len(sections) and nav_position == "sticky"
    assert "https://doi.org/10.1016/j.jssc.2017.03.026" in doi_links
    assert "Its band gap is 3.87 eV." in removed_note
    assert failed == [] and errors == []
    assert all(u.startswith(("file://", "data:")) for u in requests), requests
