"""report.html in headless Chromium (Debian's package, driven by Playwright): the figures,
card images and candidate table render, nothing fails to load, and no request leaves the file.
The report is a real Ba-Ti-O run (tests/data/report_run): its hull is a ternary, drawn as
pymatgen's Gibbs triangle, and its cards carry ASE projections and AFLOW prototype labels.

Screenshots go to the test's temporary directory; with ``MATLOOP_SCREENSHOTS_DIR`` set they
are also copied there (``tests/data/screenshots`` holds one of each, made that way)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

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


FLAG = "far below the MP hull (likely MLIP error)"


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's report with a removed claim and one flagged candidate, written once."""
    run_dir = tmp_path_factory.mktemp("runs") / FIXTURE.name
    shutil.copytree(FIXTURE, run_dir)
    report = DiscoveryReport.model_validate_json((run_dir / "report.json").read_text())
    candidates = list(report.candidates)
    candidates[0] = candidates[0].model_copy(update={"flags": [FLAG]})
    report = report.model_copy(update={
        "candidates": candidates,
        "removed_claims": [RemovedClaim(part="summary", text="Its band gap is 3.87 eV.",
                                        reason="number 3.87 matches no computed or retrieved "
                                               "value")]})
    write_report_files(report, run_dir, use_robocrys=False, workflows=False)
    return run_dir / "report.html"


def open_report(pw: Any, report_html: Path, profile: Path) -> tuple[Any, Any, list[str],
                                                                   list[str], list[str]]:
    """A fresh Chromium profile with the report loaded, and the lists its listeners fill:
    failed requests, console errors, every request."""
    failed: list[str] = []
    errors: list[str] = []
    requests: list[str] = []
    browser = pw.chromium.launch_persistent_context(
        profile, executable_path=str(CHROMIUM), args=FLAGS,
        viewport={"width": 1280, "height": 900})
    page = browser.new_page()
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report_html.as_uri(), wait_until="load")
    return browser, page, failed, errors, requests


def test_report_renders_offline_with_plots_cards_and_tables(report_html: Path,
                                                            tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser, page, failed, errors, requests = open_report(pw, report_html,
                                                              tmp_path / "profile")
        try:
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


def test_ternary_hull_and_cards_render_with_their_pictures(report_html: Path,
                                                           tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    keep = os.environ.get("MATLOOP_SCREENSHOTS_DIR")
    with sync_playwright() as pw:
        browser, page, failed, errors, requests = open_report(pw, report_html,
                                                              tmp_path / "profile")
        try:
            hull = page.locator("#fig-hull")
            hull.scroll_into_view_if_needed()
            shots = {"report-hull.png": hull, "report-card.png": page.locator(".card").first}
            for name, element in shots.items():
                element.screenshot(path=str(tmp_path / name))
            figure = page.eval_on_selector(
                "#fig-hull img", "e => ({w: e.naturalWidth, h: e.naturalHeight, "
                                 "done: e.complete, "
                                 "inline: e.src.startsWith('data:image/svg+xml;base64,')})")
            caption = page.locator("#fig-hull figcaption").inner_text()
            cards = page.eval_on_selector_all(
                ".card", "els => els.map(c => ({id: c.id, imgs: [...c.querySelectorAll('img')]"
                         ".map(i => ({alt: i.alt, w: i.naturalWidth, done: i.complete}))}))")
            first_card = page.locator(".card").first.inner_text()
            types = page.eval_on_selector_all(
                "#candidates td.stype", "els => els.map(e => e.innerText)")
            flagged = page.locator("#candidates .flag").all_inner_texts()
        finally:
            browser.close()
    assert figure["done"] and figure["inline"] and figure["w"] > 400 and figure["h"] > 300
    assert caption.startswith("Candidates on the Ba-O-Ti hull. Gibbs triangle of Ba-O-Ti drawn "
                              "by pymatgen's PDPlotter from the report's 8 reference phases")
    assert "1 flagged candidate(s) are crosses with a red edge." in caption
    assert [c["id"] for c in cards] == ["card-prot-1c275c287fcb", "card-prot-b054c9b5e199",
                                        "card-prot-57e8408fddc8", "card-prot-6747931ceb38",
                                        "card-prot-3de9cdc2a95a"]
    for card in cards:
        assert [i["alt"] for i in card["imgs"]] == [f"projection along {a}" for a in "abc"]
        assert all(i["done"] and i["w"] == 330 for i in card["imgs"])  # 3 in at 110 dpi
    assert "structure type\nAB2C4_tI14_139_a_e_ce · (La,Ba)CuO4" in first_card
    assert types[:4] == ["AB2C4_tI14_139_a_e_ce\n(La,Ba)CuO4"] * 2 + [
        "AB3C_cP5_221_a_c_b\n(Cubic) Perovskite"] * 2  # card and same-structure twin
    assert flagged == [f"⚠ {FLAG}"]
    for name in shots:
        assert (tmp_path / name).stat().st_size > 20_000
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp_path / name, Path(keep) / name)
    assert failed == [] and errors == []
    assert all(u.startswith(("file://", "data:")) for u in requests), requests
