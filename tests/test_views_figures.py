"""views/figures.py: `--export FILE.svg` figures, as XML and in headless Chromium (nothing downloaded)."""

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from helpers import BERT, GPT2, HOSTILE, PRONOUN, SENTENCE, copy_fixture, export, open_page, png_colours

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
    assert texts[0] == "bert · layer 1, head 2"  # the model's name, not its directory's path
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


def test_a_figure_is_titled_with_the_model_s_name_or_the_title_given(cli, tmp_path):
    figure, _ = export(cli, tmp_path, "figure.svg", "rollout", SENTENCE, "--model", BERT + "/")
    assert _svg(figure).find(f"{SVG}title").text.startswith("bert · attention rollout")
    inner = copy_fixture(tmp_path) / "inner"
    inner.mkdir()
    dotted, _ = export(cli, tmp_path, "dotted.svg", "rollout", SENTENCE, "--model", str(inner / ".."))
    assert _svg(dotted).find(f"{SVG}title").text.startswith("bert · attention rollout")  # not ".."
    for name in ("figure.svg", "page.html", "tokens.svg", "tokens.html"):
        command = ["tokenize", SENTENCE] if name.startswith("tokens") else ["heatmap", SENTENCE, "--model", BERT]
        target, _ = export(cli, tmp_path, name, *command, "--title", "Figure 2: <b>a head</b>")
        document = target.read_text().replace("&#160;", " ")  # a terminal picture's spaces are no-break spaces
        assert "Figure 2: &lt;b&gt;a head&lt;/b&gt;" in document and BERT not in document, name


def test_figure_labels_are_words_without_the_terminal_s_mark_of_a_word_s_start(cli, tmp_path):
    figure, document = export(cli, tmp_path, "figure.svg", "heatmap", SENTENCE, "--model", GPT2)
    labels = [e.text for e in _svg(figure).iter(f"{SVG}text") if re.fullmatch(r"\d+ \S+", e.text or "")]
    assert document["tokens"][1]["text"] == "Ġcat" and "1 cat" in labels
    assert all(re.fullmatch(r"\d+ ␣", label) for label in labels if "␣" in label)  # but a token that is a space
    assert "␣cat" in cli("heatmap", SENTENCE, "--model", GPT2).stdout  # the terminal keeps the mark


def test_the_model_and_query_figures_draw_the_window_asked_for(cli, tmp_path):
    grid, _ = export(cli, tmp_path, "grid.svg", "model", PRONOUN, "--model", BERT, "--keys", "2:5", "--queries", "0:3")
    root = _svg(grid)
    cells = [r for r in root.iter(f"{SVG}rect") if r.get("width") == r.get("height") and r.get("x")]
    layers_heads = len([t for t in root.iter(f"{SVG}text") if re.fullmatch(r"L\d+ H\d+", t.text or "")])
    assert len(cells) == layers_heads * 3 * 3  # 3 queries × 3 keys per head
    assert "(drawn: queries 0–2 and keys 2–4)" in " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    bars, document = export(
        cli, tmp_path, "bars.svg", "query", PRONOUN, "--model", BERT, "--token", "it", "--keys", "-4:"
    )
    root = _svg(bars)
    drawn = [r for r in root.iter(f"{SVG}rect") if r.get("fill") in ("#2c728e", "#b5b5b5")]
    assert len(drawn) == min(12, len(document["heads"])) * 4  # a bar for each of the last 4 keys of every ranked head
    tokens = len(document["tokens"])
    labels = [t.text for t in root.iter(f"{SVG}text") if re.fullmatch(r"\d+ \S+", t.text or "")]
    assert [int(label.split()[0]) for label in labels] == list(range(tokens - 4, tokens))


# Every SVG an export writes: the five figures and pictures of the other commands' views.
EVERY_SVG = [
    ["heatmap"],
    ["explain"],
    ["rollout"],
    ["model"],
    ["query", "--token", "1"],
    ["tokenize"],
    ["heads"],
    ["compare", "--token", "cat"],
]


@pytest.mark.parametrize("command", EVERY_SVG, ids=[command[0] for command in EVERY_SVG])
def test_every_figure_kind_is_xml_whatever_its_text_holds(cli, tmp_path, command):
    text = "cat \ufffe dog \uffff \x01 \x7f mat"  # characters XML 1.0 forbids, or that a terminal would obey
    args = [command[0], text, *(["cat dog"] if command[0] == "compare" else []), *command[1:]]
    target = tmp_path / "figure.svg"
    run = cli(*args, "--export", str(target))
    assert run.code == 0, run.stderr
    ET.fromstring(target.read_bytes())  # parses: every character is one XML allows
    title = "a \udcff title \uffff\x02"  # a typed title that was not UTF-8 holds a lone surrogate
    assert cli(*args, "--export", str(target), "--title", title).code == 0
    shown = " ".join(element.text or "" for element in ET.fromstring(target.read_bytes()).iter())
    assert "a \\udcff title \\uffff\\x02" in shown.replace("\xa0", " ")  # spelled as the terminal spells \x02


NETWORK = re.compile(
    r"https?://|ftp://|@import|url\(\s*['\"]?(?!data:|#)|\b(?:src|href|action|srcset)\s*=\s*['\"]?\s*//", re.IGNORECASE
)
NAMESPACES = ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink", "http://www.w3.org/1999/xhtml")
EVERY_EXPORT = [
    ["explain", SENTENCE],
    ["heatmap", SENTENCE],
    ["model", SENTENCE],
    ["rollout", SENTENCE],
    ["query", SENTENCE, "--token", "cat"],
    ["heads", SENTENCE],
    ["compare", SENTENCE, SENTENCE, "--token", "cat"],
    ["tokenize", SENTENCE],
    ["embed", SENTENCE],
    ["similar", "king"],
    ["softmax", "1", "2"],
    ["dot", "1,2", "3,4"],
]


@pytest.mark.parametrize("kind", [".svg", ".html"])
@pytest.mark.parametrize("command", EVERY_EXPORT, ids=[command[0] for command in EVERY_EXPORT])
def test_no_exported_file_refers_to_the_network(cli, tmp_path, command, kind):
    target = tmp_path / f"export{kind}"
    run = cli(*command, "--export", str(target))
    assert run.code == 0, run.stderr
    document = target.read_text()
    for namespace in NAMESPACES:  # names, not addresses: nothing is fetched from them
        document = document.replace(namespace, "")
    assert NETWORK.search(document) is None, NETWORK.search(document)


@pytest.mark.parametrize("command", ["heatmap", "model"])
def test_a_figure_of_norms_colours_them_from_0_to_the_largest_drawn_and_says_so(cli, tmp_path, command):
    """The brightest cell is the largest norm drawn, the colour bar ends there and names it: norms are no
    weights, and a bar from 0 to 1 would clip them."""
    args = [command, PRONOUN, "--model", BERT, "--measure", "norms"]
    figure, document = export(
        cli, tmp_path, "norms.svg", *args, *(["--layer", "1", "--head", "2"] * (command == "heatmap"))
    )
    norms = np.array(document["attention"])
    root = _svg(figure)
    texts = [element.text for element in root.iter(f"{SVG}text")]
    assert "‖αv W_O‖" in texts[0]
    if command == "heatmap":
        largest = norms[1, 2].max()
        cells = [float(e.text) for e in root.iter(f"{SVG}text") if e.get("fill") in ("#000", "#fff")]
        assert sorted(cells) == sorted(float(f"{w:.2f}") for w in norms[1, 2].ravel())
    else:  # each thumbnail cell a token's norm (the text is short enough for one a cell)
        largest = norms.max()
    assert f"‖αv W_O‖, 0 to the largest drawn, {largest:.3g}" in texts
    assert f"{largest:.3g}" in texts  # the bar's last tick
    fills = [element.get("fill") for element in root.iter(f"{SVG}rect")]
    assert fills.count("#fde725") == 1  # viridis' top: the one largest cell
