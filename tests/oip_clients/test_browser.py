"""The page at / in a real browser: Debian's chromium driven by Playwright (the pip package's
driver with the system browser; nothing is downloaded). It picks an image file and waits for the
top-1 label, which must be /v1/classify's for the same file.

SWIN_BROWSER   the browser binary (default: chromium, then chromium-browser, on PATH). Without one
               the test is skipped, unless SWIN_BROWSER_REQUIRED=1 (CI sets it)."""

import os
import shutil

import pytest
import requests


def browser_path():
    for candidate in (os.environ.get("SWIN_BROWSER"), "chromium", "chromium-browser"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def test_the_page_classifies_a_chosen_file(small_server, images, tmp_path):
    server = small_server
    path = browser_path()
    if path is None:
        if os.environ.get("SWIN_BROWSER_REQUIRED") == "1":
            pytest.fail("no chromium on PATH and SWIN_BROWSER_REQUIRED=1")
        pytest.skip("no chromium on PATH")
    from playwright.sync_api import sync_playwright

    name, blob = next(iter(images.items()))
    image = tmp_path / f"{name}.png"
    image.write_bytes(blob)
    base = f"http://{server.http_url}"
    expected = requests.post(f"{base}/v1/classify?top_k=5", data=blob, timeout=120).json()
    top1 = expected["predictions"][0]["label"]

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(base + "/")
            page.wait_for_selector("#model:not(:empty)")
            page.set_input_files("#file", str(image))
            first = page.wait_for_selector("tr.prediction td.label", timeout=120_000)
            assert first.inner_text() == top1
            assert len(page.query_selector_all("tr.prediction")) == 5
            assert "inference" in page.inner_text("#timing")
            assert page.inner_text("#error") == ""
        finally:
            browser.close()
