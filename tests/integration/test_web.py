"""The web page in headless Chromium (Playwright driving Debian's /usr/bin/chromium) against a
real uvicorn server: a streamed chat turn with citations, a small offline campaign with plan
approval to its report, and the 3D viewer, with screenshots in tmp_path."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from matloop.app.web import create_app
from tests.conftest import DATA
from tests.fakes import scripted, text_turn, tool_turn

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists() or shutil.which("chromium") is None,
                                reason="Debian chromium is not installed at /usr/bin/chromium "
                                       "(apt-get install chromium); the browser tests need it")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         # WebGL for the 3D viewer without a GPU: SwiftShader, the software renderer.
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        yield browser
        browser.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve() -> Iterator[object]:
    """Start an app on a free loopback port in a thread; stop it after the test."""
    import uvicorn

    servers = []

    def start(app) -> str:
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.requests = []
    page.on("request", lambda r: page.requests.append(r.url))
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    yield page
    context.close()


def only_local(urls: list[str], base: str) -> None:
    outside = [u for u in urls if urlsplit(u).netloc != urlsplit(base).netloc]
    assert not outside, f"requests left the server: {outside}"


def test_chat_streams_steps_and_cites_evidence(tmp_path, serve, page) -> None:
    from matloop.files import FileAccess
    from matloop.knowledge.store import KnowledgeBase
    from matloop.tools.retrieval import retrieval_tools

    KnowledgeBase().ingest([DATA / "knowledge" / "papers.jsonl"])
    [search] = [t.as_langchain() for t in retrieval_tools(KnowledgeBase(), access=FileAccess(
                [DATA]), use_robocrys=False) if t.name == "search_literature"]
    hits = json.loads(search.invoke({"query": "olivine LiFePO4 cathode", "k": 2}))["results"]
    cited = hits[0]
    assert cited["doi"] == "10.9999/matloop.paper.001"
    model = scripted([
        tool_turn("search_literature", {"query": "olivine LiFePO4 cathode", "k": 2}),
        text_turn(f"LiFePO4 is made by a solid-state reaction at 700 C [{cited['id']}].")])
    base = serve(create_app(tmp_path / "runs", chat_model=model))
    page.goto(base + "/#chat")
    page.fill("#chat-input", "How is olivine LiFePO4 made?")
    page.click("#chat-send")
    turn = page.locator(".turn.assistant[data-state=done]")
    turn.wait_for(timeout=120_000)
    # the model answers after one tool round; "finish" attaches the structured answer
    assert turn.locator(".step-node").all_inner_texts() == ["agent", "tools", "agent", "finish"]
    tool = turn.locator("details.tool")
    assert tool.count() == 1 and "ok" in tool.get_attribute("class")
    assert tool.get_attribute("data-tool") == "search_literature"
    tool.locator("summary").click()
    assert '"olivine LiFePO4 cathode"' in tool.locator("pre.args").inner_text()
    assert cited["id"] in tool.locator("pre.result").inner_text()
    link = turn.locator(f"a.cite:has-text('{cited['id']}')")
    assert link.get_attribute("href") == "https://doi.org/10.9999/matloop.paper.001"
    assert "solid-state reaction at 700 C" in turn.locator(".answer").inner_text()
    page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
    only_local(page.requests, base)
    assert not page.console_errors


def test_campaign_from_the_page_with_approval_report_and_3d_viewer(tmp_path, serve,
                                                                   page) -> None:
    from PIL import Image

    base = serve(create_app(tmp_path / "runs"))
    page.goto(base + "/#campaign")
    page.fill("input[name=query]", "stable compounds in the Na-Cl system")
    page.fill("input[name=max_evaluations]", "2")
    page.fill("input[name=max_iterations]", "1")
    page.fill("input[name=thread_id]", "web-nacl")
    page.check("input[name=require_approval]")
    page.click("#campaign-form button[type=submit]")
    page.wait_for_url("**/#run/web-nacl")
    page.locator("#approval").wait_for(state="visible", timeout=120_000)
    assert page.locator("#approval-plan tbody tr").count() >= 2
    assert "predict_properties" in page.locator("#approval-plan").inner_text()
    page.screenshot(path=str(tmp_path / "approval.png"), full_page=True)
    # A malformed edited plan is refused with the schema error; the plan still waits.
    page.click("#edit-plan")
    page.fill("#plan-json", '{"steps": []}')
    page.click("#approve-edited")
    page.locator("#approval-error").wait_for(state="visible")
    assert "Plan schema" in page.locator("#approval-error").inner_text()
    page.click("#approve")
    page.locator("#run-state[data-state=finished]").wait_for(timeout=300_000)
    page.locator("#report-summary").wait_for()
    assert "relaxed with the MLIP" in page.locator("#report-summary").inner_text()
    full = page.request.get(base + page.locator("#report-html").get_attribute("href"))
    assert full.ok and full.headers["content-type"].startswith("text/html")
    rows = page.locator("#candidates tbody tr[data-candidate]")
    assert rows.count() >= 1 and "NaCl" in rows.first.inner_text()
    assert "interpret" in page.locator("#run-phases").inner_text()
    assert "plan approved by human" in page.locator("#events").inner_text()
    assert "MLIP evaluations: 2 / 2" in page.locator("#run-budget").inner_text() or \
        "MLIP evaluations: 1 / 2" in page.locator("#run-budget").inner_text()
    page.screenshot(path=str(tmp_path / "campaign.png"), full_page=True)

    rows.first.locator("button.view3d").click()
    page.locator("#viewer canvas").wait_for()
    page.wait_for_function("Number(document.querySelector('#viewer').dataset.atoms) > 0")
    page.wait_for_timeout(500)
    page.locator("#viewer").screenshot(path=str(tmp_path / "viewer.png"))
    with Image.open(tmp_path / "viewer.png") as image:
        pixels = list(image.convert("RGB").getdata())
    drawn = [p for p in pixels if p != (255, 255, 255)]
    assert len(drawn) > 0.02 * len(pixels), "the 3D viewer drew nothing"
    greenish = [p for p in drawn if p[1] > 150 and p[0] < 120 and p[2] < 120]  # Cl (Jmol)
    assert greenish, "no chlorine atoms in the picture"
    href = page.locator("#viewer-download").get_attribute("href")
    cif = page.request.get(base + href)
    assert cif.ok and "_cell_length_a" in cif.text()
    assert "attachment" in cif.headers["content-disposition"]
    page.screenshot(path=str(tmp_path / "viewer-page.png"), full_page=True)
    only_local(page.requests, base)
    # The one failed request is the malformed plan the server refused above.
    assert [e for e in page.console_errors if "422" not in e] == []
    assert len(page.console_errors) == 1

    page.goto(base + "/#runs")
    page.locator("#runs-table a:has-text('web-nacl')").wait_for()


def test_chat_upload_relax_table_viewer_and_follow_up(tmp_path, serve, page) -> None:
    """A CIF uploaded from the page is relaxed and answered with a table and the 3D viewer;
    a follow-up in the same conversation ("is it stable?") needs no second upload, and the
    conversation survives a reload of the page and a restart of the server (SQLite)."""
    from PIL import Image

    runs = tmp_path / "runs"
    base = serve(create_app(runs))
    page.goto(base + "/#chat")
    page.set_input_files("#chat-file", str(DATA / "NaCl_rocksalt.cif"))
    page.locator("#chat-attachment:not([hidden])").wait_for()
    assert "NaCl_rocksalt.cif (NaCl, 8 atoms)" in page.locator("#chat-attachment").inner_text()
    page.fill("#chat-input", "relax this")
    page.click("#chat-send")
    first = page.locator(".turn.assistant[data-state=done]").nth(0)
    first.wait_for(timeout=300_000)
    assert "NaCl_rocksalt.cif (NaCl)" in page.locator(".turn.user").first.inner_text()
    tool = first.locator("details.tool[data-tool=relax_structure]")
    assert "ok" in tool.get_attribute("class")
    # The structure went to the tools as the stored upload, not as a path the user typed.
    tool.locator("summary").click()
    assert "/.chat/threads/" in tool.locator("pre.args").inner_text()
    text = first.locator(".answer-text").inner_text()
    assert "NaCl relaxed with chgnet" in text and "eV/atom" in text
    table = first.locator(".answer-table table")
    assert table.locator("th").all_inner_texts()[:2] == ["formula", "energy (eV/atom)"]
    energy = float(table.locator("tbody td").nth(1).inner_text())
    assert -3.8 < energy < -3.5  # CHGNet total energy of rocksalt NaCl, about -3.67 eV/atom
    viewer = first.locator(".viewer-inline")
    viewer.locator("canvas").wait_for()
    page.wait_for_function("Number(document.querySelector('.viewer-inline').dataset.atoms) > 0")
    page.wait_for_timeout(500)
    viewer.screenshot(path=str(tmp_path / "chat-viewer.png"))
    with Image.open(tmp_path / "chat-viewer.png") as image:
        pixels = list(image.convert("RGB").getdata())
    drawn = [p for p in pixels if p != (255, 255, 255)]
    assert len(drawn) > 0.02 * len(pixels), "the 3D viewer drew nothing"
    sources = first.locator("details.sources")
    assert "relax_structure(" in sources.text_content()
    first.locator("button.to-campaign").wait_for()

    page.fill("#chat-input", "is it stable?")
    page.click("#chat-send")
    second = page.locator(".turn.assistant[data-state=done]").nth(1)
    second.wait_for(timeout=300_000)
    follow = second.locator(".answer-text").inner_text()
    assert "About the structure given earlier (NaCl)" in follow
    assert "above the convex hull" in follow and "phases of Cl-Na" in follow
    page.screenshot(path=str(tmp_path / "chat-upload.png"), full_page=True)

    page.reload()
    page.locator(".turn.assistant[data-state=done]").nth(1).wait_for()
    assert page.locator(".turn.user").count() == 2
    assert "NaCl_rocksalt.cif" in page.locator(".turn.user").first.inner_text()
    # A second server over the same runs folder (a restart) continues the conversation. It
    # listens on another port, another origin for the browser's storage: carry the thread id.
    thread = page.evaluate("localStorage.getItem('matloop-chat-thread')")
    base2 = serve(create_app(runs))
    page.goto(base2 + "/#chat")
    page.evaluate("t => localStorage.setItem('matloop-chat-thread', t)", thread)
    page.reload()
    page.locator(".turn.assistant[data-state=done]").nth(1).wait_for()
    page.fill("#chat-input", "and its density?")
    page.click("#chat-send")
    third = page.locator(".turn.assistant[data-state=done]").nth(2)
    third.wait_for(timeout=300_000)
    assert "density" in third.locator(".answer-text").inner_text()
    assert "g/cm^3" in third.locator(".answer-table").inner_text()
    only_local([u for u in page.requests if not u.startswith(base2)], base)
    assert not page.console_errors


def test_chat_known_phases_hull_plot_drop_upload_and_campaign_button(tmp_path, serve,
                                                                     page) -> None:
    """Known phases come with a hull figure and a table with mp-id links; a file dropped on
    the form is uploaded (a non-structure is refused with the server's message); the
    campaign button fills the campaign form."""
    base = serve(create_app(tmp_path / "runs"))
    page.goto(base + "/#chat")
    page.fill("#chat-input", "Which phases are known in the Li-Fe-O system?")
    page.click("#chat-send")
    turn = page.locator(".turn.assistant[data-state=done]").first
    turn.wait_for(timeout=120_000)
    svg = turn.locator("svg.hull[data-kind=ternary]")
    assert svg.locator("g.phase.stable[data-formula=LiFeO2]").count() == 1
    assert svg.locator("line.tie").count() >= 3
    link = turn.locator(".answer-table a:has-text('mp-851027')")
    assert link.get_attribute("href").endswith("/materials/mp-851027")
    turn.locator("button.to-campaign").click()
    page.wait_for_url("**/#campaign")
    assert page.input_value("input[name=query]") == "new stable compounds in the Fe-Li-O system"

    page.goto(base + "/#chat")
    drop = """([name, text]) => {
        const dt = new DataTransfer();
        dt.items.add(new File([text], name, {type: 'text/plain'}));
        document.querySelector('#chat-form').dispatchEvent(
            new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }"""
    page.evaluate(drop, ["notes.txt", "just a line of text"])
    page.locator("#chat-error:not([hidden])").wait_for()
    assert "not a structure file" in page.locator("#chat-error").inner_text()
    page.evaluate(drop, ["POSCAR", (DATA / "POSCAR_NaCl").read_text()])
    page.locator("#chat-attachment:not([hidden])").wait_for()
    assert "(NaCl, " in page.locator("#chat-attachment").inner_text()
    only_local(page.requests, base)
    assert [e for e in page.console_errors if "422" not in e] == []
