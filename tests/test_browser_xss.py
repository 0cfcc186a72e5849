"""The chat page in headless Chromium over a corpus paper full of markup: `<script>`, event
attributes and `javascript:` links in its title, council, text and resolution, and in what the
user types. All of it must render as text, and none of it may run.

The paper is written with entities (`&lt;script&gt;`); the parser unescapes them, so the index
holds the raw markup (checked first: the test means nothing otherwise). Indexed with the fake
hashing encoder, so no model is needed.
"""

from __future__ import annotations

import json

import httpx
import pytest

from indexer import pipeline
from indexer.config import IndexerSettings
from indexer.embed import HashingEncoder
from service.app import create_app
from service.config import ServiceSettings
from browser_fixtures import CHROMIUM, NO_CHROMIUM, browser  # noqa: F401
from service_fixtures import LiveServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM),
]

SCRIPT = "<script>window.pwned = 'script'</script>"
IMG = "<img src=x onerror=\"window.pwned = 'img'\">"
SVG = "<svg onload=\"window.pwned = 'svg'\"></svg>"
LINK = "<a href=\"javascript:window.pwned = 'link'\">javascript:window.pwned='href'</a>"
TITLE = f"Orchards report {IMG}"
COUNCIL = f"London Borough of {SCRIPT}Barnet"


def _entities(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


PAPER = f"""\
MINUTES OF THE HEALTH AND WELLBEING BOARD

1. ZYGOMORPHIC ORCHARDS {_entities(SCRIPT)}

The Board discussed the zygomorphic orchard planting scheme {_entities(IMG)} across every ward.

Officers said the zygomorphic orchards would be mapped, see {_entities(LINK)} and {_entities(SVG)}.

It was RESOLVED that:

1. That the Board approves the zygomorphic orchard planting scheme {_entities(IMG)} {_entities(SCRIPT)}.
"""


@pytest.fixture(scope="module")
def hostile_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("xss")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "orchards-minutes.txt").write_text(PAPER, encoding="utf-8")
    # A JSON string is a valid TOML basic string (quotes and backslashes escaped alike).
    meta = (f'["orchards-minutes.txt"]\ntitle = {json.dumps(TITLE)}\ncouncil = {json.dumps(COUNCIL)}\n'
            'body = "Health & Wellbeing Board"\nmeeting_date = 2019-05-02\ndocument_type = "minutes"\n')
    (corpus / "metadata.toml").write_text(meta, encoding="utf-8")
    encoder = HashingEncoder(dim=64)
    index_dir = root / "index"
    pipeline.build(IndexerSettings(corpus_dir=corpus, index_dir=index_dir, model=encoder.name, progress=False),
                   encoder=encoder)
    app = create_app(ServiceSettings(index_dir=index_dir, onnx_queries=False, found_threshold=0.0))
    with LiveServer(app) as live:
        yield live.url


def test_the_index_really_holds_the_markup(hostile_url):
    docs = httpx.get(f"{hostile_url}/documents").json()["documents"]
    assert [d["title"] for d in docs] == [TITLE] and docs[0]["council"] == COUNCIL
    text = httpx.get(f"{hostile_url}/documents/{docs[0]['id']}/text").json()["text"]
    for markup in (SCRIPT, IMG, SVG, LINK):
        assert markup in text, (markup, text)
    decisions = httpx.get(f"{hostile_url}/decisions", params={"q": "zygomorphic"}).json()["decisions"]
    assert decisions and IMG in decisions[0]["text"]


@pytest.fixture
def page(browser, hostile_url):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(hostile_url + "/")
    yield page
    assert not dialogs, dialogs
    page.close()


def _nothing_ran(page) -> None:
    assert page.evaluate("typeof window.pwned") == "undefined", page.evaluate("window.pwned")
    main = page.locator("#main, #passage-panel")
    # The page's own markup has no images, SVG or inline scripts; any here came from the data.
    assert page.locator("#main img, #main svg, #main script, #passage-panel img, #passage-panel script").count() == 0
    assert page.locator("a[href^='javascript:' i], [onerror], [onload]").count() == 0
    assert main.count() >= 1


def test_document_text_and_the_question_render_as_text(page):
    question = f"zygomorphic orchards {IMG} {SCRIPT}"
    page.fill("#ask-input", question)
    page.click("#ask-submit")
    asked = page.locator(".question").last
    asked.wait_for(state="visible")
    assert IMG in asked.inner_text() and SCRIPT in asked.inner_text()
    answer = page.locator(".answer").last
    answer.wait_for(state="visible")
    answer.locator("button.cite").first.wait_for(state="visible")
    shown = answer.inner_text()
    assert "zygomorphic" in shown and ("<img src=x" in shown or "<script>" in shown), shown
    assert TITLE in shown, "the citation names the paper by its title, as text"
    _nothing_ran(page)

    answer.locator("button.cite").first.click()
    panel = page.locator("#passage-panel")
    panel.locator("mark").first.wait_for(state="visible")
    assert page.locator("#panel-title").inner_text() == TITLE
    passage = panel.inner_text()
    assert "<img src=x" in passage or "<script>" in passage, passage
    assert COUNCIL in passage
    page.wait_for_timeout(300)  # an onerror would have fired by now
    _nothing_ran(page)


def test_decision_cards_and_the_council_list_render_as_text(page):
    options = page.locator("#decisions-council option")
    options.nth(1).wait_for(state="attached")
    assert COUNCIL in options.all_inner_texts()
    page.click("#tab-decisions")
    page.fill("#decisions-q", "zygomorphic orchard")
    page.click("#decisions-search")
    card = page.locator("#decisions-results .decision-card").first
    card.wait_for(state="visible")
    text = card.inner_text()
    assert IMG in text and SCRIPT in text, text
    assert COUNCIL in text
    card.locator("button.show-source").click()
    page.locator("#passage-panel mark").first.wait_for(state="visible")
    page.wait_for_timeout(300)
    _nothing_ran(page)
