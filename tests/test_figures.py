"""`--export`: the interactive HTML page and the SVG figures, checked as files and in a real browser
(headless Chromium through Playwright, on the system's Chromium: nothing is downloaded)."""

import json
import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from helpers import BERT, PRONOUN, needs_minilm, png_colours

from attncli.views.figures import contrast

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium, or a skip that says what is missing (make test installs both where it can)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium on PATH: apt-get install chromium (make test does, as root) to run the browser tests")
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is in the test extra: pip install .[test]"
    )
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


def _open(browser, path, width=1100, height=800):
    """The page at `path`, loaded, with the list of every request it made."""
    page = browser.new_page(viewport={"width": width, "height": height})
    requests, errors = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri())
    return page, requests, errors


def _export(cli, tmp_path, name, *args):
    target = tmp_path / name
    run = cli(*args, "--export", str(target), "--json")
    assert run.code == 0, run.stderr
    return target, run.json()


@needs_minilm
def test_the_page_works_offline_and_shows_the_weights_of_the_json(cli, tmp_path, browser):
    page_file, document = _export(cli, tmp_path, "page.html", "heatmap", PRONOUN, "--model", "minilm")
    attention = np.array(document["attention"])
    page, requests, errors = _open(browser, page_file)
    page.wait_for_selector("body[data-ready=true]")
    assert requests == [page_file.as_uri()] and errors == []  # the file itself and nothing else

    # Hovering "it" (token 10) in the head view outlines it and gives each key its weight.
    page.hover("#queries .token[data-index='10']")
    assert "active" in page.get_attribute("#queries .token[data-index='10']", "class")
    shown = [float(page.get_attribute(f"#keys .token[data-index='{k}']", "data-weight")) for k in range(15)]
    np.testing.assert_allclose(shown, attention[0, 0, 10], atol=1e-4)
    page.mouse.move(1000, 700)
    assert page.query_selector(".token.active") is None

    # Layer 3, head 1 in the matrix: the page's weights are the JSON's, rounded to 1/65535.
    page.select_option("#layer", "3")
    page.select_option("#head", "1")
    page.click("button[data-view=matrix]")
    held = np.array(page.evaluate("attncliPage.weights(3, 1)"))
    np.testing.assert_allclose(held, attention[3, 1], atol=0.5 / 65535 + 1e-7)
    matrix = page.evaluate("attncliPage.matrix")
    box = page.query_selector("#cells").bounding_box()
    x = box["x"] + matrix["left"] + 2.5 * matrix["cell"]
    y = box["y"] + matrix["top"] + 10.5 * matrix["cell"]
    page.mouse.move(x, y)
    assert page.text_content("#tip") == f"query 10 “it” → key 2 “animal”: {attention[3, 1, 10, 2]:.4f}"
    assert png_colours(page.screenshot(clip={"x": box["x"], "y": box["y"], "width": 300, "height": 300})) > 20


@needs_minilm
def test_the_model_view_opens_the_head_clicked(cli, tmp_path, browser):
    page_file, _ = _export(cli, tmp_path, "page.html", "model", PRONOUN, "--model", "minilm")
    page, _, errors = _open(browser, page_file)
    page.wait_for_selector("body[data-ready=true]")
    page.click("button[data-view=grid]")
    assert len(page.query_selector_all(".thumb")) == 6 * 12
    page.click(".thumb[data-layer='4'][data-head='7']")
    state = page.evaluate("attncliPage.state")
    assert (state["view"], state["layer"], state["head"]) == ("matrix", 4, 7) and errors == []
    assert page.is_visible("#cells") and not page.is_visible("#grid")


def test_a_long_page_is_not_cropped_and_stays_small(cli, tmp_path):
    text = " ".join([PRONOUN] * 30)  # 390 tokens on the sample model: 1.2 million weights, random ones
    page_file, document = _export(cli, tmp_path, "page.html", "heatmap", text)
    data = re.search(r'<script type="application/json" id="attncli-data">(.*?)</script>', page_file.read_text())
    held = json.loads(data[1])
    assert len(held["tokens"]) == len(document["tokens"]) == 390 and held["bits"] == 8
    assert page_file.stat().st_size < 2_000_000
    assert "http" not in page_file.read_text().replace("http-equiv", "")  # no script, style or font from anywhere


def _svg(path):
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return root


def test_the_svg_heatmap_has_every_label_whole_and_readable_numbers(cli, tmp_path):
    text = "The cat sat on the extraordinarily long mat"
    figure, document = _export(
        cli, tmp_path, "figure.svg", "heatmap", text, "--model", BERT, "--layer", "1", "--head", "2"
    )
    root = _svg(figure)
    texts = [element.text for element in root.iter(f"{SVG}text")]
    assert texts[0] == f"{document['model']['name']} · layer 1, head 2"
    for index, token in enumerate(document["tokens"]):
        assert texts.count(f"{index} {token['text']}") == 2  # a row label and a key label, neither cut
    elements = list(root.iter())
    weights = np.array(document["attention"])[1, 2]
    numbers = [(i, e) for i, e in enumerate(elements) if e.tag == f"{SVG}text" and e.get("fill") in ("#000", "#fff")]
    assert len(numbers) == weights.size  # every cell has its weight written in it
    for i, number in numbers:
        cell = elements[i - 1]  # each number follows its cell
        background = tuple(int(cell.get("fill")[j : j + 2], 16) for j in (1, 3, 5))
        ink = (0, 0, 0) if number.get("fill") == "#000" else (255, 255, 255)
        assert contrast(background, ink) >= 4.5
    assert sorted(float(e.text) for _, e in numbers) == sorted(float(f"{w:.2f}") for w in weights.ravel())
    assert "url(" not in figure.read_text().replace("url(#viridis)", "")  # system fonts; nothing fetched


def test_an_svg_of_a_window_draws_only_its_keys(cli, tmp_path):
    figure, document = _export(cli, tmp_path, "figure.svg", "heatmap", PRONOUN, "--keys", "3:6", "--queries", "0:2")
    texts = [element.text for element in _svg(figure).iter(f"{SVG}text")]
    labels = [t for t in texts if re.fullmatch(r"\d+ \S.*", t or "")]
    tokens = [token["text"] for token in document["tokens"]]
    assert labels == [f"{i} {tokens[i]}" for i in (0, 1, 3, 4, 5)]


def test_the_model_and_query_figures(cli, tmp_path):
    grid, document = _export(cli, tmp_path, "grid.svg", "model", PRONOUN, "--model", BERT)
    texts = [element.text for element in _svg(grid).iter(f"{SVG}text")]
    layers, heads = document["model"]["layers"], document["model"]["heads"]
    assert [t for t in texts if re.fullmatch(r"L\d+ H\d+", t)] == [
        f"L{layer} H{head}" for layer in range(layers) for head in range(heads)
    ]
    bars, document = _export(cli, tmp_path, "bars.svg", "query", PRONOUN, "--model", BERT, "--token", "it")
    root = _svg(bars)
    texts = [element.text for element in root.iter(f"{SVG}text")]
    ranked = [f"L{head['layer']} H{head['head']}" for head in document["heads"][:8]]
    assert [t for t in texts if re.fullmatch(r"L\d+ H\d+", t)] == ranked
    tokens = len(document["tokens"])
    drawn = [r for r in root.iter(f"{SVG}rect") if r.get("fill") in ("#2c728e", "#b5b5b5")]
    assert len(drawn) == len(ranked) * tokens  # a bar for every key of every ranked head


@pytest.mark.parametrize("name", ["grid.svg", "heat.svg"])
def test_svg_figures_render_in_a_browser(cli, tmp_path, browser, name):
    command = ["model", PRONOUN, "--model", BERT] if name == "grid.svg" else ["heatmap", PRONOUN, "--model", BERT]
    figure, _ = _export(cli, tmp_path, name, *command)
    page, requests, errors = _open(browser, figure, 900, 700)
    assert requests == [figure.as_uri()] and errors == []
    assert png_colours(page.screenshot(clip={"x": 0, "y": 0, "width": 400, "height": 400})) > 20


HOSTILE = "the \x01 cat <!--<script> </script></svg> & <b>it</b> ]]> \u202e"


@pytest.mark.parametrize("command", [["heatmap", HOSTILE], ["model", HOSTILE], ["query", HOSTILE, "--token", "cat"]])
def test_text_that_looks_like_markup_stays_text_in_a_figure(cli, tmp_path, command):
    figure, _ = _export(cli, tmp_path, "figure.svg", *command)
    texts = " ".join(element.text or "" for element in _svg(figure).iter(f"{SVG}text"))  # parses: valid XML
    assert "<!--<script> </script></svg> & <b>it</b>" in texts and "\x01" not in figure.read_text()


def test_text_that_looks_like_markup_stays_text_in_a_page(cli, tmp_path, browser):
    page_file, document = _export(cli, tmp_path, "page.html", "heatmap", HOSTILE)
    page, requests, errors = _open(browser, page_file)
    page.wait_for_selector("body[data-ready=true]")
    assert errors == [] and requests == [page_file.as_uri()]
    assert page.text_content("p.text") == HOSTILE
    assert [t.text_content() for t in page.query_selector_all("#queries .token")] == [
        token["text"] for token in document["tokens"]
    ]


def test_a_page_opens_where_the_command_pointed(cli, tmp_path, browser):
    page_file, _ = _export(
        cli, tmp_path, "page.html", "heatmap", PRONOUN, "--model", BERT, "--layer", "1", "--head", "3"
    )
    state = _opened_state(browser, page_file)
    assert (state["layer"], state["head"], state["scale"]) == (1, 3, "fixed")
    page_file, document = _export(cli, tmp_path, "query.html", "query", PRONOUN, "--model", BERT, "--token", "it")
    state = _opened_state(browser, page_file)
    assert state["active"] == {"side": "query", "index": document["token"]["index"]} and state["pinned"]
    rollout, _ = _export(cli, tmp_path, "rollout.html", "rollout", PRONOUN, "--model", BERT)
    assert "attncli-data" not in rollout.read_text()  # its own view, not a page of raw attention


def _opened_state(browser, page_file) -> dict:
    page, _, errors = _open(browser, page_file)
    page.wait_for_selector("body[data-ready=true]")
    assert errors == []
    return page.evaluate("attncliPage.state")
