"""The portal is usable with a keyboard, at phone width and by a screen reader: every
control has a label, text has enough contrast (WCAG AA, 4.5:1), nothing but a table
scrolls sideways on a 390 px screen."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from devtools.apphost import AppHost
from tests.browser.conftest import Watch, new_page, screenshot

pytestmark = pytest.mark.azurite
PAGES = ["/#/", "/#/images", "/#/uploads", "/#/vms", "/#/operations"]

# WCAG contrast of each visible text element against the background it is drawn on.
CONTRAST = """() => {
  const lum = (c) => {
    const [r, g, b] = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const bg = getComputedStyle(el).backgroundColor;
      const alpha = bg.match(/[\\d.]+/g)?.[3];
      if (bg !== "transparent" && alpha !== "0") return bg;
    }
    return "rgb(255, 255, 255)";
  };
  const bad = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || parseFloat(style.opacity) < 1) continue;
    const [a, b] = [lum(style.color), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const what = `${el.tagName}.${el.className} "${el.textContent.trim().slice(0, 30)}"`;
    if (ratio < 4.5) bad.push(`${what} ${ratio.toFixed(2)}`);
  }
  return bad;
}"""

UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button")]
  .filter((el) => el.getClientRects().length)
  .filter((el) => !(el.labels?.length || el.getAttribute("aria-label")
    || (el.tagName === "BUTTON" && el.textContent.trim())))
  .map((el) => el.outerHTML.slice(0, 80))"""


def test_every_page_has_labels_and_contrast(page: Page, gallery: None) -> None:
    for path in PAGES:
        page.goto(path)
        expect(page.locator("main h1")).to_be_visible()
        page.wait_for_load_state("networkidle")
        assert page.evaluate(UNLABELLED) == [], path
        assert page.evaluate(CONTRAST) == [], path
        assert page.locator("h1").count() == 1, path


def test_phone_width_needs_no_sideways_scrolling(
    browser: Browser, catalog_app: AppHost, gallery: None, watch: Watch
) -> None:
    context = new_page(
        browser, watch, catalog_app.base_url, viewport={"width": 390, "height": 844},
        is_mobile=True, has_touch=True,
    )  # fmt: skip
    try:
        page = context.new_page()
        for path in [*PAGES, "/#/images?family=Ubuntu%20Server%2022.04%20LTS"]:
            page.goto(path)
            expect(page.locator("main h1")).to_be_visible()
            page.wait_for_load_state("networkidle")
            wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert wide <= 1, f"{path} is {wide}px wider than the screen"
            nav = page.get_by_role("navigation").bounding_box()
            assert nav and nav["x"] >= 0 and nav["x"] + nav["width"] <= 391
        page.goto("/#/")
        page.get_by_role("link", name="Ubuntu Server 22.04 LTS", exact=True).click()
        expect(page.locator("tbody tr").first).to_be_visible()
        screenshot(page, "phone")
    finally:
        context.close()
    assert watch.outside == [] and watch.unexpected_errors() == []


def test_the_keyboard_reaches_everything(page: Page, function_key: str, gallery: None) -> None:
    page.goto("/")
    expect(page.locator("main h1")).to_be_visible()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    assert page.evaluate("location.hash") in ("", "#/")
    # Through the navigation to a page: focus moves to its heading.
    page.get_by_role("link", name="All images").focus()
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_be_focused()
    expect(page.locator("h1")).to_have_text("All images")
    # The function key, with the keyboard alone.
    page.get_by_role("button", name="Function key: not set").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Key", exact=True)).to_be_focused()
    page.keyboard.type(function_key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Function key: set")).to_be_visible()
    # Escape closes it without a change.
    page.get_by_role("button", name="Function key: set").press("Enter")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('vmimage.functionKey')") == function_key
