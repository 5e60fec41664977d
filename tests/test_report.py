"""`zoo compare --format html` (train/report.py): one self-contained page, checked in real headless Chromium.

Chromium comes from Debian (`chromium`, `chromium-driver`; scripts/setup.sh installs them) and is driven
by selenium.  Without them the browser test is skipped locally, and fails under CI (CI=true), where
setup.sh must have installed them."""
import base64
import io
import re
import sys

import pytest

from browser_helpers import headless_chromium

pytest.importorskip("mlflow")
pytest.importorskip("matplotlib")

from compare_helpers import EXPERIMENT, tiny_study  # noqa: E402



@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return tiny_study(tmp_path_factory)


@pytest.fixture(scope="module")
def page(study, tmp_path_factory):
    """The report of the tiny study, read from MLflow (checkpoints and curves from its artifacts/metrics)."""
    from zoo.cli import main

    out = tmp_path_factory.mktemp("report")
    code = main(["compare", "--experiment", EXPERIMENT, "--tracking-uri", f"sqlite:///{study / 'mlruns.db'}",
                 "--format", "html", "--out", str(out)])
    assert code == 0
    return out / "report.html"


def images(html: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def test_page_is_self_contained(page):
    from PIL import Image

    html = page.read_text(encoding="utf-8")
    # nothing to fetch: no external script, style, font or image
    assert not re.search(r'(src|href)="(?!data:)', html)
    assert "<script" not in html and "@import" not in html and "url(" not in html
    pngs = images(html)
    # quality vs MACs, speedup vs ch_mul, score curves, and a sample grid per row (teacher, DGL, Baseline)
    assert len(pngs) == 6 and html.count("<img") == 6
    sizes = [Image.open(io.BytesIO(p)).size for p in pngs]
    assert all(w > 100 and h > 100 for w, h in sizes[:3])
    assert sizes[3:] == [(8 * 16, 16)] * 3  # 8 seeds of 16-px images in one row
    text = re.sub(r"<[^>]+>", " ", html)
    assert "Students are trained from scratch" in text and "same latent seed does" in text
    assert "inconclusive (the interval contains 0)" in text
    assert "1.49 / 0.67 / 0.43 / 0.34 s" in text  # the paper's V100 figures the speedup plot is drawn from
    assert "DGL-GAN (λ=0.1)" in text and "28.00 ± 2.828 (s0 30.00, s1 26.00)" in text


def test_paper_figures():
    """The speedups drawn beside ours are the paper's (section 4.1: 2.22 / 3.47 / 4.38x), which are its
    Table 2 times 1.49 s / (0.67, 0.43, 0.34) s."""
    from zoo.train.report import PAPER_V100_SECONDS, PAPER_V100_SPEEDUP

    assert PAPER_V100_SPEEDUP == {"1": 1.0, "1/2": 2.22, "1/4": 3.47, "1/8": 4.38}
    for ch, s in PAPER_V100_SECONDS.items():
        assert PAPER_V100_SECONDS["1"] / s == pytest.approx(PAPER_V100_SPEEDUP[ch], abs=0.005)


def test_page_renders_in_headless_chromium(page, tmp_path):
    browser = headless_chromium(tmp_path / "profile")
    try:
        browser.get(page.resolve().as_uri())
        assert browser.execute_script("return document.readyState") == "complete"
        assert browser.title == "ganzoo compare"
        loaded = browser.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])")
        assert len(loaded) == 6
        assert all(done and w > 0 and h > 0 for done, w, h, _ in loaded), loaded
        assert browser.execute_script("return document.querySelectorAll('table').length") == 3
        body = browser.find_element("tag name", "body").text
        assert "stylegan2-emoji (stylegan2)" in body and "inconclusive" in body
        # the check itself can fail: a broken image reports naturalWidth 0
        broken = browser.execute_script(
            "const i = new Image(); i.src = 'data:image/png;base64,AAAA';"
            "return new Promise(r => { i.onerror = i.onload = () => r(i.naturalWidth); });")
        assert broken == 0
        assert browser.get_screenshot_as_png()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        browser.quit()


def test_missing_matplotlib_is_a_clear_error(study, tmp_path, capsys, monkeypatch):
    from zoo.cli import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code = main(["compare", "--runs-dir", str(study / "runs"), "--format", "html", "--out", str(tmp_path)])
    assert code == 2
    assert "the HTML report's plots need matplotlib: pip install 'dglgan-zoo[report]'" in capsys.readouterr().err
    assert not (tmp_path / "report.html").exists()
