"""The search page end to end: Debian's headless Chromium (Playwright) against the live service."""

from __future__ import annotations

import json
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.support.service import API_KEY

CHROMIUM = "/usr/bin/chromium" if shutil.which("/usr/bin/chromium") else shutil.which("chromium")
if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed (apt-get install chromium); the page tests "
                "never download a browser", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                               "(the `test` extra)")
expect = sync_api.expect

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
SEARCH_MS = 120_000  # a reranked search runs a (tiny) vision-language model on CPU
UI_MS = 15_000
CARDS = "#grid > li"
FACETS = json.dumps(["category", "brand", "price", "rating"], separators=(",", ":"))
# Chromium does not show Playwright a multipart body that holds a file: the page's fetch is
# watched instead; the fields of the last FormData it sent are kept in window.__sent, and of
# every one in window.__sentAll.
FORM_SPY = """
const send = window.fetch;
window.__sentAll = [];
window.fetch = (url, options = {}) => {
  if (options.body instanceof FormData) {
    window.__sent = Object.fromEntries([...options.body.entries()].map(([key, value]) =>
      [key, typeof value === "string" ? value : {name: value.name, size: value.size}]));
    window.__sentAll.push(window.__sent);
  }
  return send(url, options);
};
"""


@contextmanager
def chromium():
    """Debian's Chromium, headless, driven by Playwright."""
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@contextmanager
def open_tab(browser, url: str, screenshot: Path):
    """A fresh tab on the page; its script errors fail the test, a screenshot is kept."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.add_init_script(FORM_SPY)
    tab = context.new_page()
    tab.set_default_timeout(UI_MS)
    expect.set_options(timeout=UI_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(f"{url}/")
    yield tab
    tab.screenshot(path=screenshot, full_page=True)
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def catalogue_image(sample_catalogue, index: int, picture: int = 0):
    return sample_catalogue / "images" / f"item-{index:04d}-{picture}.jpg"


def open_options(page):
    """Unfold "Options and filters" (folded by default, so results show on the first screen)."""
    options = page.locator("#options")
    if not options.evaluate("details => details.open"):
        options.locator("summary").click()
    expect(page.get_by_label("Number of results")).to_be_visible()


def fill_query(page, text="", k=None, rerank=None, category=None, price_max=None):
    page.get_by_label("What are you looking for?").fill(text)
    if (k, rerank, category, price_max) != (None,) * 4:
        open_options(page)
    if k is not None:
        page.get_by_label("Number of results").fill(str(k))
    if rerank is not None:
        page.get_by_label("Rerank with the vision-language model").set_checked(rerank)
    if category is not None:
        page.get_by_label("Category").fill(category)
    if price_max is not None:
        page.get_by_label("Price up to").fill(str(price_max))


def run_search(page, trigger=None):
    """Start a search (the Search button unless `trigger`) and wait for the page to draw the
    answer: .request, .sent (the form fields), .status and .body (the JSON answer)."""
    with page.expect_response(lambda r: r.url.endswith("/v1/search"), timeout=SEARCH_MS) as answer:
        (trigger or page.get_by_role("button", name="Search").click)()
    response = answer.value
    expect(page.locator("#busy")).to_be_hidden(timeout=SEARCH_MS)
    expect(page.get_by_role("button", name="Search")).to_be_enabled()
    return SimpleNamespace(request=response.request, sent=page.evaluate("window.__sent"),
                           status=response.status, body=response.json())


def shown_cards(page) -> list[dict]:
    return page.eval_on_selector_all(CARDS, """cards => cards.map(card => ({
        id: card.dataset.id, category: card.dataset.category, text: card.innerText,
        alt: card.querySelector("img").alt,
        src: card.querySelector("img").getAttribute("src")}))""")


def money(price: float | None, currency: str) -> str:
    """A price as the page shows it (Intl.NumberFormat, English); the sample service's
    currency is USD."""
    assert currency == "USD", currency
    return "-" if price is None else f"${price:,.2f}"


def count_says(shown: int, total: int) -> str:
    """The count line's "how many of how many"."""
    noun = "result" if total == 1 else "results"
    return f"{shown} of {total} {noun}" if shown < total else f"{shown} {noun}"


def assert_page_shows(page, body: dict, earlier: list[dict] = ()) -> list[dict]:
    """Every result of the API's answer (after the `earlier` pages' results) is on the page,
    with what the shopper should see."""
    cards = shown_cards(page)
    results = [*earlier, *body["results"]]
    assert [c["id"] for c in cards] == [r["id"] for r in results]
    for card, result in zip(cards, results):
        assert f"#{result['rank']}" in card["text"]
        assert f"score {result['score']:.3f}" in card["text"]
        assert result["title"] in card["text"] and card["alt"].startswith(result["title"])
        if result["image_count"] > 1:  # which of its pictures matched
            picture = f"picture {result['image_index'] + 1} of {result['image_count']}"
            assert picture in card["alt"] and f"matched {picture}" in card["text"]
        assert card["category"] == result["category"]
        assert money(result["price"], body["currency"]) in card["text"]
        assert result["brand"] in card["text"]
        assert ("Out of stock" in card["text"]) == (result["in_stock"] is False)
        moved = result["retrieval_rank"] != result["rank"]
        assert (f"retrieval #{result['retrieval_rank']}" in card["text"]) == moved
        joiner = "&" if "?" in result["image_url"] else "?"
        assert card["src"] == f"{result['image_url']}{joiner}size=256"
    expect(page.locator("#count")).to_contain_text(count_says(len(results), body["total"]))
    if body["rerank"]["outcome"] == "reranked":
        expect(page.locator("#rerank-note")).to_be_hidden()
    else:  # why not, in words (the page's own for each outcome)
        expect(page.locator("#rerank-note")).to_contain_text("Not reranked: ")
        expect(page.locator("#rerank-note")).not_to_contain_text("no reason given")
    if body["reason"]:
        expect(page.locator("#reason")).to_contain_text(body["reason"])
    if not page.locator("#timings").evaluate("panel => panel.open"):
        page.locator("#timings summary").click()
    expect(page.locator("#timings-list")).to_contain_text("total")
    return cards


def test_text_query_draws_the_ranked_grid(page, artifacts):
    fill_query(page, "a red bag", k=6)  # rerank stays on: its default

    def search_and_look_busy():  # the reranker takes seconds: long enough to see the state
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#busy")).to_be_visible()
        expect(page.get_by_role("button", name="Search")).to_be_disabled()
        page.screenshot(path=artifacts / "web-busy.png")

    call = run_search(page, search_and_look_busy)
    assert call.status == 200
    assert call.sent == {"text": "a red bag", "k": "6", "rerank": "true", "facets": FACETS}
    assert len(assert_page_shows(page, call.body)) == 6
    first = page.get_by_role("img", name=call.body["results"][0]["title"]).first
    expect(first).to_be_visible()
    expect(first).to_have_js_property("complete", True)
    assert first.evaluate("img => img.naturalWidth") > 0


def test_image_upload_finds_that_item_first(page, sample_catalogue):
    # Item 4, in stock: the sample's item 3 is out of stock, and the server's default boosts
    # demote it below in-stock look-alikes.
    picture = catalogue_image(sample_catalogue, 4)
    page.get_by_label("Query image").set_input_files(picture)
    expect(page.locator("#preview")).to_be_visible()
    expect(page.locator("#preview-name")).to_have_text("item-0004-0.jpg")
    fill_query(page, "", k=5, rerank=False)
    call = run_search(page)
    assert call.status == 200
    assert call.sent["image"] == {"name": "item-0004-0.jpg", "size": picture.stat().st_size}
    cards = assert_page_shows(page, call.body)
    assert cards[0]["id"] == "SAMPLE00004"
    expect(page.locator("#rerank-note")).to_be_visible()

    page.get_by_role("button", name="Remove image").click()
    expect(page.locator("#preview")).to_be_hidden()
    expect(page.get_by_label("Query image")).to_be_focused()


def test_a_second_picture_finds_its_item_and_says_which_matched(page, sample_catalogue):
    page.get_by_label("Query image").set_input_files(catalogue_image(sample_catalogue, 5, 2))
    fill_query(page, "", k=3, rerank=False)
    call = run_search(page)
    cards = assert_page_shows(page, call.body)
    assert cards[0]["id"] == "SAMPLE00005" and call.body["results"][0]["image_index"] == 2
    assert "matched picture 3 of 3" in cards[0]["text"]
    assert cards[0]["src"].endswith("/v1/items/SAMPLE00005/image?index=2&size=256")
    expect(page.locator("#count")).to_contain_text("Found by pictures")


def test_the_mode_option_is_sent_and_words_find_a_model_code(page, sample_catalogue):
    first = json.loads((sample_catalogue / "items.jsonl").read_text().splitlines()[7])
    code = first["title"].split()[-1]  # the sample titles end with a model code
    fill_query(page, code, k=3, rerank=False)
    page.get_by_label("Search by").select_option(label="Words only (brands, model numbers)")
    call = run_search(page)
    assert call.sent["mode"] == "lexical" and call.body["mode"] == "lexical"
    assert assert_page_shows(page, call.body)[0]["id"] == first["parent_asin"]
    expect(page.locator("#count")).to_contain_text("Found by words")
    page.get_by_label("Search by").select_option("auto")
    assert "mode" not in run_search(page).sent  # automatic: the server's default


def test_a_dropped_or_pasted_picture_becomes_the_query_image(page, sample_catalogue):
    data = list(catalogue_image(sample_catalogue, 5).read_bytes())
    for event in ("drop", "paste"):
        page.evaluate("""([event, data]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(data)], `${event}.jpg`,
                                        {type: "image/jpeg"}));
            const init = {bubbles: true, cancelable: true};
            const target = document.getElementById(event === "drop" ? "drop-zone" : "q-text");
            target.dispatchEvent(event === "drop"
                ? new DragEvent("drop", {...init, dataTransfer: transfer})
                : new ClipboardEvent("paste", {...init, clipboardData: transfer}));
        }""", [event, data])
        expect(page.locator("#preview-name")).to_have_text(f"{event}.jpg")
        expect(page.locator("#preview-img")).to_have_js_property("naturalWidth", 256)
    assert page.get_by_label("Query image").evaluate("input => input.files[0].name") == "paste.jpg"


def test_composed_query_sends_text_and_image(page, sample_catalogue):
    fill_query(page, "like this but in blue", k=4, rerank=False)
    page.get_by_label("Query image").set_input_files(catalogue_image(sample_catalogue, 0))
    call = run_search(page)
    assert call.status == 200
    assert call.sent["text"] == "like this but in blue"
    assert call.sent["image"]["name"] == "item-0000-0.jpg"
    assert len(assert_page_shows(page, call.body)) == 4


def test_category_and_price_filters_narrow_the_results(page):
    fill_query(page, "something to drink from", k=24, rerank=False, category="Home & Kitchen")
    call = run_search(page)
    assert call.status == 200
    assert json.loads(call.sent["filters"]) == {"categories": ["Home & Kitchen"]}
    cards = assert_page_shows(page, call.body)
    assert len(cards) == 6  # the sample catalogue's mugs
    assert {c["category"] for c in cards} == {"Home & Kitchen"}

    fill_query(page, "something to wear", k=24, rerank=False, category="Clothing, Home & Kitchen",
               price_max=40)
    call = run_search(page)
    assert call.status == 200
    assert json.loads(call.sent["filters"]) == {"categories": ["Clothing", "Home & Kitchen"],
                                                "price_max": 40}
    cards = assert_page_shows(page, call.body)
    assert cards and {c["category"] for c in cards} <= {"Clothing", "Home & Kitchen"}
    assert all(r["price"] is not None and r["price"] <= 40 for r in call.body["results"])


def test_a_file_that_is_not_an_image_shows_the_servers_message(page):
    fill_query(page, "a mug", k=3, rerank=False)
    page.get_by_label("Query image").set_input_files(
        {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": b"this is no picture"})
    call = run_search(page)
    assert call.status == 400
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Search failed (400")
    expect(alert).to_contain_text(call.body["error"]["message"])
    expect(page.locator(CARDS)).to_have_count(0)
    expect(page.get_by_role("heading", name="Pardus")).to_be_visible()


def test_mistakes_caught_before_sending_and_failures_in_transit(page):
    fill_query(page, "")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("alert")).to_contain_text("Type what you are looking for")

    page.get_by_label("Query image").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"})
    expect(page.get_by_role("alert")).to_contain_text("is not an image")
    expect(page.locator("#preview")).to_be_hidden()

    fill_query(page, "a bag", k=0)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("alert")).to_contain_text("Number of results:")

    fill_query(page, "a bag", k=3, rerank=False)
    page.route("**/v1/search", lambda route: route.fulfill(
        status=503, headers={"Retry-After": "7", "Content-Type": "application/json"},
        body='{"error": {"code": "unavailable", "message": "Milvus is down", "field": null}}'))
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("alert")).to_contain_text("temporarily unavailable, retry in 7 s")
    page.unroute("**/v1/search")

    page.route("**/v1/search", lambda route: route.abort("connectionrefused"))
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("alert")).to_contain_text("Could not reach the search service")


def test_more_like_this_searches_with_the_items_picture(page):
    fill_query(page, "a striped t-shirt", k=6, rerank=False)
    chosen = run_search(page).body["results"][2]
    call = run_search(page, page.locator(CARDS).nth(2).click)
    assert call.status == 200
    assert call.sent["image"]["name"] == f"{chosen['id']}.jpg" and call.sent["image"]["size"]
    assert call.sent["text"] == "a striped t-shirt"  # the text is kept
    expect(page.locator("#preview")).to_be_visible()
    expect(page.locator("#preview-name")).to_have_text(f"{chosen['id']}.jpg")
    assert page.locator("#preview-img").evaluate("img => img.naturalWidth") > 0
    expect(page.locator("#results-heading")).to_be_focused()  # not lost with the old grid
    assert_page_shows(page, call.body)

    # The keyboard does the same: focus a result, press Enter.
    target = call.body["results"][1]
    page.locator(CARDS).nth(1).locator(".card-title").focus()
    call = run_search(page, lambda: page.keyboard.press("Enter"))
    assert call.status == 200
    assert call.sent["image"]["name"] == f"{target['id']}.jpg"


def test_api_key_is_kept_for_the_tab_and_sent(page):
    page.locator("#settings summary").click()
    page.get_by_label("API key").fill("test-key-1")
    fill_query(page, "a phone case", k=2, rerank=False)
    call = run_search(page)
    assert call.status == 200
    assert call.request.headers["authorization"] == "Bearer test-key-1"
    page.reload()
    expect(page.get_by_label("API key")).to_have_value("test-key-1")


def test_with_an_api_key_item_pictures_are_fetched_with_it(page):
    """A service may want the key for item pictures too (search_requires_key), which an <img>
    cannot send: the page fetches them with the key and shows them from blob: URLs."""
    pictures = []
    page.on("request", lambda request: pictures.append(request)
            if "/image" in request.url else None)
    page.locator("#settings summary").click()
    page.get_by_label("API key").fill(API_KEY)
    fill_query(page, "a phone case", k=3, rerank=False)
    call = run_search(page)
    results = call.body["results"]
    assert call.status == 200 and results
    expect(page.locator(f"{CARDS} img[src^='blob:']")).to_have_count(len(results))
    page.wait_for_function("""() => [...document.querySelectorAll("#grid > li img")]
        .every(img => img.complete && img.naturalWidth > 0)""")
    assert len(pictures) == len(results)
    assert {p.headers.get("authorization") for p in pictures} == {f"Bearer {API_KEY}"}


def test_phone_width_has_no_sideways_scrolling(page, sample_catalogue):
    page.set_viewport_size({"width": 375, "height": 800})
    page.get_by_label("Query image").set_input_files(catalogue_image(sample_catalogue, 6))
    fill_query(page, "a bag like this", k=4, rerank=False)
    assert run_search(page).status == 200
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    open_options(page)
    for label in ("What are you looking for?", "Query image", "Number of results", "Category",
                  "Price from", "Price up to"):
        box = page.get_by_label(label).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 375, label
    assert re.search(r"\d+ results?", page.locator("#count").inner_text())
