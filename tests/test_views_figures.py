"""views/figures.py: `--export FILE.svg` figures, as XML and in headless Chromium (nothing downloaded)."""

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from helpers import BERT, HOSTILE, PRONOUN, export, open_page, png_colours

from attncli.views.figures import contrast

SVG = "{http://www.w3.org/2000/svg}"


def _svg(path):
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return root


def test_the_svg_heatmap_has_every_label_whole_and_readable_numbers(cli, tmp_path):
    text = "The cat sat on the extraordinarily long mat"
    figure, document = export(
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
    figure, document = export(cli, tmp_path, "figure.svg", "heatmap", PRONOUN, "--keys", "3:6", "--queries", "0:2")
    texts = [element.text for element in _svg(figure).iter(f"{SVG}text")]
    labels = [t for t in texts if re.fullmatch(r"\d+ \S.*", t or "")]
    tokens = [token["text"] for token in document["tokens"]]
    assert labels == [f"{i} {tokens[i]}" for i in (0, 1, 3, 4, 5)]


def test_the_model_and_query_figures(cli, tmp_path):
    grid, document = export(cli, tmp_path, "grid.svg", "model", PRONOUN, "--model", BERT)
    texts = [element.text for element in _svg(grid).iter(f"{SVG}text")]
    layers, heads = document["model"]["layers"], document["model"]["heads"]
    assert [t for t in texts if re.fullmatch(r"L\d+ H\d+", t)] == [
        f"L{layer} H{head}" for layer in range(layers) for head in range(heads)
    ]
    bars, document = export(cli, tmp_path, "bars.svg", "query", PRONOUN, "--model", BERT, "--token", "it")
    root = _svg(bars)
    texts = [element.text for element in root.iter(f"{SVG}text")]
    ranked = [f"L{head['layer']} H{head['head']}" for head in document["heads"][:8]]
    assert [t for t in texts if re.fullmatch(r"L\d+ H\d+", t)] == ranked
    tokens = len(document["tokens"])
    drawn = [r for r in root.iter(f"{SVG}rect") if r.get("fill") in ("#2c728e", "#b5b5b5")]
    assert len(drawn) == len(ranked) * tokens  # a bar for every key of every ranked head


@pytest.mark.slow
@pytest.mark.parametrize("name", ["grid.svg", "heat.svg"])
def test_svg_figures_render_in_a_browser(cli, tmp_path, browser, name):
    command = ["model", PRONOUN, "--model", BERT] if name == "grid.svg" else ["heatmap", PRONOUN, "--model", BERT]
    figure, _ = export(cli, tmp_path, name, *command)
    page, requests, errors = open_page(browser, figure, 900, 700)
    assert requests == [figure.as_uri()] and errors == []
    assert png_colours(page.screenshot(clip={"x": 0, "y": 0, "width": 400, "height": 400})) > 20


@pytest.mark.parametrize("command", [["heatmap", HOSTILE], ["model", HOSTILE], ["query", HOSTILE, "--token", "cat"]])
def test_text_that_looks_like_markup_stays_text_in_a_figure(cli, tmp_path, command):
    figure, _ = export(cli, tmp_path, "figure.svg", *command)
    texts = " ".join(element.text or "" for element in _svg(figure).iter(f"{SVG}text"))  # parses: valid XML
    assert "<!--<script> </script></svg> & <b>it</b>" in texts and "\x01" not in figure.read_text()
