"""The page at GET / in real headless Chromium: the test starts the server, loads the page, clicks Generate
and checks that every image (the teacher and every width, for the same seeds) decoded at the right size.

Chromium and chromedriver come from Debian (scripts/setup.sh installs them); without them the test is
skipped locally and fails under CI (CI=true), as tests/test_report.py does."""

import pytest

from browser_helpers import headless_chromium

pytest.importorskip("fastapi")

from zoo.serve.app import create_app  # noqa: E402
from zoo.serve.testing import ServerThread, tiny_checkpoint  # noqa: E402
from zoo.environment import hardware  # noqa: E402

WIDTHS = ("1", "1/2", "1/4")
SEEDS = [0, 1, 2]


@pytest.fixture
def server(tmp_path):
    fp = hardware("cpu")["fingerprint"]
    pinned = []
    for i, ch in enumerate(WIDTHS):
        meta = {"metrics": {"kid": 0.01 * (i + 1)},
                "latency": [{"batch": 1, "median_ms": 40.0 / 3 ** i, "speedup_vs_full": 3.0 ** i, "fingerprint": fp}]}
        pinned.append(("tiny", str(tiny_checkpoint(tmp_path / f"ck{i}", ch, seed=i, metadata=meta))))
    app = create_app(pinned, registry=False, max_wait_ms=100, max_batch=16)
    with ServerThread(app) as s:
        yield s


def test_page_generates_every_width_in_headless_chromium(server, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    browser = headless_chromium(tmp_path / "profile")
    try:
        browser.get(server.url + "/")
        assert browser.title == "ganzoo serve"
        status = lambda: browser.find_element("id", "status").get_attribute("data-state")  # noqa: E731
        WebDriverWait(browser, 30).until(lambda b: status() in ("ready", "error"))
        assert status() == "ready", browser.find_element("id", "status").text
        assert browser.find_element("id", "fingerprint").text == hardware("cpu")["fingerprint"]
        seeds = browser.find_element("id", "seeds")
        seeds.clear()
        seeds.send_keys(",".join(map(str, SEEDS)))
        psi = browser.find_element("id", "psi")
        psi.clear()
        psi.send_keys("0.7")
        browser.find_element("id", "generate").click()
        WebDriverWait(browser, 60).until(lambda b: status() in ("done", "error"))
        assert status() == "done", browser.find_element("id", "status").text
        images = browser.execute_script(
            "return Array.from(document.querySelectorAll('#grid img')).map(i => "
            "[i.complete, i.naturalWidth, i.naturalHeight, Number(i.dataset.resolution), i.dataset.ok, i.alt])")
        assert len(images) == len(WIDTHS) * len(SEEDS)
        for done, w, h, resolution, ok, alt in images:
            assert done and ok == "1" and w == h == resolution == 16, (alt, w, h, resolution)
        rows = browser.execute_script(
            "return Array.from(document.querySelectorAll('#grid tbody tr')).map(r => "
            "Array.from(r.cells).slice(0, 6).map(c => c.textContent))")
        assert [r[0] for r in rows] == ["tiny ch_mul=1 (teacher) (pinned)", "tiny ch_mul=1/2 (pinned)",
                                        "tiny ch_mul=1/4 (pinned)"]
        assert rows[1][3] == "13.33 ms" and rows[1][4] == "3.00×" and rows[2][5].startswith("30.00")
        assert all(r[1] != "-" and r[2] != "-" for r in rows)  # params and MACs of every width
        body = browser.find_element("tag name", "body").text
        assert "Students are trained from scratch" in body and "is not the same image" in body
        # the check itself can fail: a broken image reports naturalWidth 0
        broken = browser.execute_script(
            "const i = new Image(); i.src = 'data:image/png;base64,AAAA';"
            "return new Promise(r => { i.onerror = i.onload = () => r(i.naturalWidth); });")
        assert broken == 0
        # the page's requests were batched by the server: fewer forwards than images
        assert server.app.state.engine.batcher.forwards < len(images)
    finally:
        browser.quit()
