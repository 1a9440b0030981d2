"""The back-office pages as a screen reader meets them: a language on the document, one main heading, and every field a
person fills in named by a label (or an aria-label); images carry alternative text."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from tests.integration.test_accounts import add_account, browser, sign_in
from tests.integration.test_order_intake import multi_body
from tests.support.api import Api

UNLABELLED_TYPES = {"hidden", "submit", "button", "reset", "image"}


@pytest.fixture
def database_url(sqlite_url) -> str:
    return sqlite_url


class Fields(HTMLParser):
    """Collects form fields, labels (by ``for`` and by nesting), headings and images of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[dict[str, str]] = []
        self.label_for: set[str] = set()
        self.open_labels = 0
        self.h1 = 0
        self.lang = ""
        self.images_without_alt: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "html":
            self.lang = found.get("lang", "")
        elif tag == "h1":
            self.h1 += 1
        elif tag == "label":
            self.open_labels += 1
            if found.get("for"):
                self.label_for.add(found["for"])
        elif tag == "img" and "alt" not in found:
            self.images_without_alt.append(found.get("src", "")[:60])
        elif tag in ("input", "select", "textarea") and found.get("type", "text") not in UNLABELLED_TYPES:
            self.fields.append({**found, "_tag": tag, "_nested": "1" if self.open_labels else ""})

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.open_labels = max(0, self.open_labels - 1)

    def unlabelled(self) -> list[str]:
        return [
            f"<{f['_tag']} name={f.get('name')!r}>" for f in self.fields
            if not f["_nested"] and f.get("id") not in self.label_for and not f.get("aria-label") and not f.get("aria-labelledby")
        ]


async def test_every_back_office_page_names_its_fields_and_has_one_heading(api: Api):
    assert (await api.client.put("/api/v1/order-sources/shop", json={"review_required": True})).status_code == 200
    assert (await api.client.post("/api/v1/orders", json=multi_body("MO-1"))).status_code == 202
    await add_account(api, "dora", regions=["Huangpu"])
    pages = ["/board", "/board/review", "/jobs", "/reports", "/reports/daily", "/maintenance", "/me"]
    async with browser(api) as client:
        await sign_in(client, "dora")
        for language in ("en", "zh"):
            for path in pages:
                answer = await client.get(f"{path}?lang={language}")
                assert answer.status_code == 200, (path, answer.status_code)
                page = Fields()
                page.feed(answer.text)
                assert page.lang == ("zh-CN" if language == "zh" else "en"), path
                assert page.h1 == 1, (path, page.h1)
                assert page.unlabelled() == [], (path, page.unlabelled())
                assert page.images_without_alt == [], (path, page.images_without_alt)
    async with browser(api) as stranger:
        signin = await stranger.get("/signin?lang=en")
        page = Fields()
        page.feed(signin.text)
        assert page.unlabelled() == [] and page.h1 == 1


def test_the_check_sees_a_field_without_a_label_and_an_image_without_text():
    page = Fields()
    page.feed('<html lang="en"><h1>x</h1><label for="a">A</label><input id="a" name="a"><label>B <select name="b"></select></label>'
              '<input name="c"><input type="hidden" name="d"><textarea name="e" aria-label="E"></textarea><img src="/x.png"></html>')
    assert page.unlabelled() == ["<input name='c'>"] and page.images_without_alt == ["/x.png"]
