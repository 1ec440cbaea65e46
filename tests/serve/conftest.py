"""The browser fixtures of the page tests (test_web_page.py, test_web_results.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def browser():
    # Deferred: test_web_page skips where Chromium or Playwright is missing, and only the page
    # tests (collected only where both are present) ask for a browser.
    from tests.serve.test_web_page import chromium

    with chromium() as launched:
        yield launched


@pytest.fixture()
def page(browser, service_url, artifacts, request):
    """A fresh tab on the service's page; a screenshot is left in the artifacts."""
    # Deferred: as above.
    from tests.serve.test_web_page import open_tab

    with open_tab(browser, service_url, artifacts / f"web-{request.node.name}.png") as tab:
        yield tab
