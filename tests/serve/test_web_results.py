"""The results page end to end in Chromium against the live service: facets, the sort, "More
results", similar products, the first screen at 1280 and 375 px, the keyboard alone."""

from __future__ import annotations

import json
from collections import Counter
from itertools import permutations
from urllib.parse import parse_qs, urlparse

import pytest

from tests.serve.test_web_page import (
    CARDS,
    FACETS,
    SEARCH_MS,
    assert_page_shows,
    catalogue_image,
    count_says,
    expect,
    fill_query,
    money,
    run_search,
    shown_cards,
)

PANEL = """() => [...document.querySelectorAll("#facets fieldset")].map(set => ({
    name: set.dataset.facet, values: [...set.querySelectorAll("li")].map(li => ({
        value: li.querySelector("input").value, checked: li.querySelector("input").checked,
        label: li.querySelector("label").innerText}))}))"""


def box(page, facet: str, value: str):
    return page.locator(f'#facets input[data-facet="{facet}"][value="{value}"]')


def facet_counts(body: dict, name: str) -> dict[str, int]:
    return {v["value"]: v["count"] for f in body["facets"] if f["name"] == name
            for v in f["values"]}


def assert_panel_shows(page, body: dict) -> None:
    """The panel lists each facet of the answer, every value with its count and pick."""
    panel = page.evaluate(PANEL)
    answer = [f for f in body["facets"] if f["values"]]
    assert [f["name"] for f in panel] == [f["name"] for f in answer]
    for shown, facet in zip(panel, answer):
        assert [(v["value"], v["checked"]) for v in shown["values"]] == [
            (v["value"], v["selected"]) for v in facet["values"]]
        assert [v["label"].rsplit(" (", 1)[1] for v in shown["values"]] == [
            f"{v['count']})" for v in facet["values"]]


def run_get(page, part: str, trigger):
    """A GET the page sends (`part` in its URL) on `trigger`: its URL and JSON answer."""
    with page.expect_response(lambda r: part in r.url, timeout=SEARCH_MS) as answer:
        trigger()
    response = answer.value
    expect(page.locator("#busy")).to_be_hidden(timeout=SEARCH_MS)
    assert response.status == 200, response.text()
    return urlparse(response.url), response.json()


def test_facets_refine_or_within_and_across_with_the_answers_counts(page):
    fill_query(page, "a bag, a mug, a phone case or a t-shirt", k=24, rerank=False)
    call = run_search(page)
    assert json.loads(call.sent["facets"]) == json.loads(FACETS) and "refine" not in call.sent
    assert_panel_shows(page, call.body)
    expect(page.locator("#refine")).to_have_js_property("open", True)  # beside the results
    categories = facet_counts(call.body, "category")
    assert len(categories) >= 2
    a, b = sorted(categories, key=lambda c: (-categories[c], c))[:2]

    call = run_search(page, box(page, "category", a).check)
    assert json.loads(call.sent["refine"]) == {"category": [a]}
    assert {r["category"] for r in call.body["results"]} == {a}
    assert call.body["total"] == categories[a]
    assert_panel_shows(page, call.body)
    assert facet_counts(call.body, "category")[b] == categories[b]  # its own picks ignored
    expect(box(page, "category", a)).to_be_focused()  # drawn anew, the place is kept
    expect(page.locator("#count")).to_contain_text(count_says(categories[a], categories[a]))

    call = run_search(page, box(page, "category", b).check)  # OR within a facet
    assert json.loads(call.sent["refine"]) == {"category": [a, b]}
    assert {r["category"] for r in call.body["results"]} == {a, b}
    assert call.body["total"] == categories[a] + categories[b]
    assert_panel_shows(page, call.body)
    brands = facet_counts(call.body, "brand")  # counted under the category picks
    brand = min(brands, key=lambda x: (-brands[x], x))

    call = run_search(page, box(page, "brand", brand).check)  # AND across facets
    assert json.loads(call.sent["refine"]) == {"category": [a, b], "brand": [brand]}
    results = call.body["results"]
    assert results and all(r["category"] in (a, b) and r["brand"] == brand for r in results)
    assert call.body["total"] == brands[brand]
    assert_page_shows(page, call.body)
    assert_panel_shows(page, call.body)
    expect(page.locator("#refine summary")).to_contain_text("(3 picked)")

    call = run_search(page, box(page, "category", a).uncheck)
    assert json.loads(call.sent["refine"]) == {"category": [b], "brand": [brand]}
    assert all(r["category"] == b and r["brand"] == brand for r in call.body["results"])
    assert_panel_shows(page, call.body)

    call = run_search(page, page.get_by_role("button", name="Clear all picks").click)
    assert "refine" not in call.sent
    assert call.body["total"] == sum(categories.values()) or call.body["total"] >= 1
    expect(page.locator("#facets input:checked")).to_have_count(0)


def _facet_value(result: dict, facet: str, ranges: list[str]) -> str | None:
    if facet in ("category", "brand"):
        return result[facet]
    if facet == "rating":
        low = min(4, int(result["rating"]))
        return f"{low}-{low + 1}"
    for name in ranges:  # "10-25", "500+"
        low, _, high = name.rstrip("+").partition("-")
        if float(low) <= result["price"] and (not high or result["price"] < float(high)):
            return name
    return None


def test_a_picked_value_stays_shown_at_count_zero(page, client):
    """Pick b and b2 of one facet, then a value of another that only b2's products have: b's
    count falls to 0, and its box stays there, checked."""
    text = "a bag, a mug, a phone case or a t-shirt"
    answer = client.post("/v1/search", json={"text": text, "k": 100, "rerank": False,
                                             "facets": ["price"]}).json()
    ranges = [v["value"] for v in answer["facets"][0]["values"]]  # every price is in one
    items = answer["results"]
    found = None
    for first, second in permutations(["category", "brand", "price", "rating"], 2):
        pairs = Counter((_facet_value(r, first, ranges), _facet_value(r, second, ranges))
                        for r in items)
        for a in {x for x, _ in pairs}:
            with_a = {y for x, y in pairs if x == a}
            without = {y for _, y in pairs} - with_a
            if with_a and without:
                found = (first, a, second, min(without), min(with_a))
                break
        if found:
            break
    assert found, "the sample search has no value missing from a pair of facets"
    first, a, second, b, b2 = found

    fill_query(page, text, k=24, rerank=False)
    run_search(page)
    run_search(page, box(page, second, b).check)
    run_search(page, box(page, second, b2).check)
    call = run_search(page, box(page, first, a).check)
    assert json.loads(call.sent["refine"]) == {first: [a], second: [b, b2]}
    zero = [v for f in call.body["facets"] if f["name"] == second for v in f["values"]
            if v["value"] == b]
    assert zero == [{"value": b, "count": 0, "selected": True}]
    expect(box(page, second, b)).to_be_checked()
    expect(box(page, second, b)).to_be_visible()
    assert_panel_shows(page, call.body)


def test_the_sort_selector_orders_the_results_and_keeps_the_picks(page):
    fill_query(page, "a bag, a mug, a phone case or a t-shirt", k=24, rerank=False)
    first = run_search(page)
    ids = {r["id"] for r in first.body["results"]}
    checks = {"price_asc": lambda r: r["price"], "price_desc": lambda r: -r["price"],
              "rating": lambda r: -r["rating"], "newest": lambda r: -r["added_at"]}
    for sort, key in checks.items():
        call = run_search(page, lambda s=sort: page.get_by_label("Sort by").select_option(s))
        assert call.sent["sort"] == sort and call.body["sort"] == sort
        results = call.body["results"]
        assert [key(r) for r in results] == sorted(key(r) for r in results)
        assert {r["id"] for r in results} == ids  # the same products, in another order
        assert_page_shows(page, call.body)

    category = first.body["results"][0]["category"]
    run_search(page, box(page, "category", category).check)
    call = run_search(page, lambda: page.get_by_label("Sort by").select_option("price_asc"))
    assert json.loads(call.sent["refine"]) == {"category": [category]}
    assert call.sent["sort"] == "price_asc"
    assert {r["category"] for r in call.body["results"]} == {category}
    call = run_search(page, lambda: page.get_by_label("Sort by").select_option("relevance"))
    assert "sort" not in call.sent and call.body["sort"] == "relevance"  # the default


def test_more_results_sends_the_same_search_with_the_cursor(page, sample_catalogue):
    page.get_by_label("Query image").set_input_files(catalogue_image(sample_catalogue, 2))
    fill_query(page, "like this", k=3, rerank=False)
    run_search(page)
    first = run_search(page, lambda: page.get_by_label("Sort by").select_option("rating"))
    assert first.sent["sort"] == "rating" and first.sent["image"]["name"] == "item-0002-0.jpg"
    assert first.body["next"] and first.body["total"] > 3
    more = page.get_by_role("button", name="More results")
    shown, body, sent = list(first.body["results"]), first.body, first.sent
    while body["next"]:
        expect(more).to_be_visible()
        call = run_search(page, more.click)
        assert call.sent == {**sent, "cursor": body["next"]}  # the image too, same file
        assert [r["rank"] for r in call.body["results"]] == list(
            range(len(shown) + 1, len(shown) + 1 + len(call.body["results"])))
        expect(page.locator(CARDS).nth(len(shown)).locator(".card-title")).to_be_focused()
        assert_page_shows(page, call.body, earlier=shown)
        shown += call.body["results"]
        body = call.body
    expect(more).to_be_hidden()
    assert len(shown) == first.body["total"] == len({r["id"] for r in shown})
    ratings = [r["rating"] for r in shown]
    assert ratings == sorted(ratings, reverse=True)  # one ranking, cut into pages

    fill_query(page, "a mug", k=3, rerank=False)  # a new search starts again
    call = run_search(page)
    assert "cursor" not in call.sent and call.sent["text"] == "a mug"
    assert_page_shows(page, call.body)
    expect(more).to_be_visible() if call.body["next"] else expect(more).to_be_hidden()


def test_similar_products_page_on_and_lead_back(page):
    fill_query(page, "a dotted mug", k=4, rerank=False)
    first = run_search(page)
    chosen = first.body["results"][1]
    similar = page.locator(CARDS).nth(1).get_by_role("button", name="Similar")
    expect(similar).to_have_accessible_name(f"Similar products to {chosen['title']}")
    url, body = run_get(page, "/similar", similar.click)
    assert url.path == f"/v1/items/{chosen['id']}/similar" and parse_qs(url.query) == {"k": ["4"]}
    heading = page.locator("#results-heading")
    expect(heading).to_have_text(f"Products like “{chosen['title']}”")
    expect(heading).to_be_focused()
    ids = [r["id"] for r in body["results"]]
    assert ids and chosen["id"] not in ids
    assert [c["id"] for c in shown_cards(page)] == ids
    for card, result in zip(shown_cards(page), body["results"]):
        assert money(result["price"], body["currency"]) in card["text"]
    expect(page.locator("#count")).to_contain_text("similar product")
    for hidden in ("#sort-field", "#refine", "#rerank-note"):
        expect(page.locator(hidden)).to_be_hidden()

    assert body["next"]
    url, more = run_get(page, "/similar", page.get_by_role("button", name="More results").click)
    assert parse_qs(url.query) == {"k": ["4"], "cursor": [body["next"]]}
    assert [c["id"] for c in shown_cards(page)] == ids + [r["id"] for r in more["results"]]
    assert not set(ids) & {r["id"] for r in more["results"]}

    page.get_by_role("button", name="Back to results").click()
    expect(heading).to_have_text("Results")
    expect(similar).to_be_focused()  # where the shopper left
    assert_page_shows(page, first.body)
    expect(page.locator("#sort-field")).to_be_visible()


@pytest.mark.parametrize("width, height", [(1280, 800), (375, 667)])
def test_the_first_results_are_in_view_right_after_a_search(page, width, height):
    page.set_viewport_size({"width": width, "height": height})
    fill_query(page, "a striped bag", rerank=False)
    page.locator("#options summary").click()  # folded again, as the page starts
    expect(page.get_by_label("Number of results")).to_be_hidden()
    call = run_search(page, lambda: page.get_by_label("What are you looking for?").press("Enter"))
    assert call.status == 200 and call.body["results"]
    assert page.evaluate("window.scrollY") == 0
    card = page.locator(CARDS).first.bounding_box()
    assert card["y"] >= 0 and card["y"] + card["height"] <= height, card
    assert card["x"] >= 0 and card["x"] + card["width"] <= width, card
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for control in ("#sort", "#refine summary", "#count"):
        shown = page.locator(control).bounding_box()
        assert shown["y"] + shown["height"] <= height, control


def test_prices_show_the_answers_currency(page, client):
    """The answer's currency (ISO 4217) formats every price; an unknown price shows "-"."""
    real = client.post("/v1/search", json={"text": "a mug", "k": 3, "rerank": False,
                                           "facets": ["price"]}).json()
    euro = {**real, "currency": "EUR"}
    euro["results"] = [{**real["results"][0], "price": None}, *real["results"][1:]]
    page.route("**/v1/search", lambda route: route.fulfill(json=euro))
    fill_query(page, "a mug")
    run_search(page)
    prices = page.locator(f"{CARDS} .price")
    expect(prices.nth(0)).to_have_text("-")
    expect(prices.nth(1)).to_have_text(f"€{euro['results'][1]['price']:,.2f}")
    ranges = [v["value"] for v in euro["facets"][0]["values"]]
    labels = [v["label"] for v in page.evaluate(PANEL)[0]["values"]]
    assert len(labels) == len(ranges) and all("€" in label for label in labels)
    words = {"0-10": "Under €10", "10-25": "€10 to €25", "25-50": "€25 to €50",
             "50-100": "€50 to €100", "500+": "€500 and more"}
    for value, label in zip(ranges, labels):
        if value in words:
            assert label.startswith(f"{words[value]} ("), label


FOCUSED = """() => {
    const e = document.activeElement, card = e.closest("#grid > li");
    const ring = getComputedStyle(e.matches(".card-title") ? card : e);
    const box = e.getBoundingClientRect();
    return {id: e.id || null, tag: e.tagName.toLowerCase(), facet: e.dataset.facet || null,
            value: e.type === "checkbox" ? e.value : null, card: card ? card.dataset.id : null,
            part: card ? (e.matches(".similar") ? "similar" : "title") : null,
            ring: ring.outlineStyle !== "none" && parseFloat(ring.outlineWidth) >= 2,
            inside: box.left >= 0 && box.right <= innerWidth + 1}}"""


def tab_to(page, selector: str, back: bool = False, limit: int = 60) -> list[dict]:
    """Press Tab (Shift+Tab) until `selector` has the focus; the stops on the way."""
    stops = []
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        stops.append(page.evaluate(FOCUSED))
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return stops
    raise AssertionError(f"{selector} never took the focus: {stops[-5:]}")


@pytest.mark.parametrize("width", [1280, 375])
def test_the_results_page_works_from_the_keyboard_alone(page, width):
    page.set_viewport_size({"width": width, "height": 800})
    page.keyboard.press("Tab")
    expect(page.get_by_label("What are you looking for?")).to_be_focused()
    page.keyboard.type("a striped bag")
    tab_to(page, "#options summary")
    page.keyboard.press("Enter")
    tab_to(page, "#k")
    page.keyboard.press("Control+A")
    page.keyboard.type("4")
    tab_to(page, "#rerank")
    page.keyboard.press("Space")
    tab_to(page, "#submit")
    call = run_search(page, lambda: page.keyboard.press("Enter"))
    assert call.sent["k"] == "4" and call.sent["rerank"] == "false" and call.body["next"]

    # The order of the stops: the sort, the facets, each card's two buttons, More results.
    tab_to(page, "#sort")
    stops = [page.evaluate(FOCUSED), *tab_to(page, "#more")]
    wide = width >= 900  # the facets beside the results; on a phone folded under "Refine"
    boxes = [(f["name"], v["value"]) for f in call.body["facets"] for v in f["values"]
             if wide]
    cards = [(r["id"], part) for r in call.body["results"] for part in ("title", "similar")]
    assert [s["id"] or s["tag"] for s in stops[:2]] == ["sort", "summary"]
    assert [(s["facet"], s["value"]) for s in stops[2:2 + len(boxes)]] == boxes
    assert [(s["card"], s["part"]) for s in stops[2 + len(boxes):-1]] == cards
    assert stops[-1]["id"] == "more"
    assert all(s["ring"] and s["inside"] for s in stops), stops  # a visible focus, on screen

    # The sort by arrow key; the focus stays on it.
    tab_to(page, "#sort", back=True)
    call = run_search(page, lambda: page.keyboard.press("ArrowDown"))
    assert call.sent["sort"] == "price_asc"
    expect(page.get_by_label("Sort by")).to_be_focused()

    # A facet by Space (on a phone, "Refine" opens first); the focus stays on the value.
    tab_to(page, "#refine summary")
    if not wide:
        page.keyboard.press("Enter")
    tab_to(page, "#facets input")
    picked = page.evaluate(FOCUSED)
    call = run_search(page, lambda: page.keyboard.press("Space"))
    assert json.loads(call.sent["refine"]) == {picked["facet"]: [picked["value"]]}
    expect(box(page, picked["facet"], picked["value"])).to_be_focused()
    expect(box(page, picked["facet"], picked["value"])).to_be_checked()

    # Similar products by Enter, and back.
    stops = tab_to(page, "#grid .similar")
    run_get(page, "/similar", lambda: page.keyboard.press("Enter"))
    expect(page.locator("#results-heading")).to_be_focused()
    tab_to(page, "#back")
    page.keyboard.press("Enter")
    expect(page.locator("#results-heading")).to_have_text("Results")
    assert page.evaluate(FOCUSED)["card"] == stops[-1]["card"]

    # More results by Enter: the focus goes to the first new card.
    assert call.body["next"]
    tab_to(page, "#more")
    more = run_search(page, lambda: page.keyboard.press("Enter"))
    assert more.sent == {**call.sent, "cursor": call.body["next"]}
    focused = page.evaluate(FOCUSED)
    assert (focused["card"], focused["part"]) == (more.body["results"][0]["id"], "title")


def test_a_catalogue_without_facets_still_searches(page):
    """A catalogue version written before the signals answers facets and sorts by 409
    catalogue_outdated: the page searches again without them and says so."""
    refused = []

    def outdated(route):
        if "facets" in (route.request.post_data or ""):
            refused.append(route.request.post_data)
            route.fulfill(status=409, json={"error": {
                "code": "catalogue_outdated", "field": None,
                "message": "the catalogue version 'v0' was written before business signals"}})
        else:
            route.continue_()

    page.route("**/v1/search", outdated)
    fill_query(page, "a mug", k=3, rerank=False)
    with page.expect_response(lambda r: r.url.endswith("/v1/search") and r.status == 200,
                              timeout=SEARCH_MS) as answer:
        page.get_by_role("button", name="Search").click()
    body = answer.value.json()
    expect(page.locator(CARDS)).to_have_count(len(body["results"]))
    sent = page.evaluate("window.__sentAll")
    assert len(refused) == 1 and len(sent) == 2
    assert sent[1] == {"text": "a mug", "k": "3", "rerank": "false"}  # no facets, no sort
    expect(page.locator("#plain-note")).to_be_visible()
    for hidden in ("#sort-field", "#refine"):
        expect(page.locator(hidden)).to_be_hidden()
    expect(page.get_by_role("alert")).to_have_text("")

    fill_query(page, "a bag")  # the next search goes without them at once
    call = run_search(page)
    assert "facets" not in call.sent and len(refused) == 1
