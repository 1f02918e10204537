"""views/page.py: the `--export FILE.html` page, as a file and in headless Chromium (nothing downloaded)."""

import base64
import json
import re
import zlib

import numpy as np
import pytest
from helpers import (
    BERT,
    FIXTURES,
    HOSTILE,
    PRONOUN,
    export,
    needs_minilm,
    open_page,
    png_colours,
)

from attncli import commands
from attncli.models import load_model
from attncli.views.page import page_data


@pytest.mark.slow
@needs_minilm
def test_the_page_works_offline_and_shows_the_weights_of_the_json(cli, tmp_path, browser):
    page_file, document = export(cli, tmp_path, "page.html", "heatmap", PRONOUN, "--model", "minilm")
    attention = np.array(document["attention"])
    page, requests, errors = open_page(browser, page_file)
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


@pytest.mark.slow
@needs_minilm
def test_the_model_view_opens_the_head_clicked(cli, tmp_path, browser):
    page_file, _ = export(cli, tmp_path, "page.html", "model", PRONOUN, "--model", "minilm")
    page, _, errors = open_page(browser, page_file)
    page.wait_for_selector("body[data-ready=true]")
    page.click("button[data-view=grid]")
    assert len(page.query_selector_all(".thumb")) == 6 * 12
    page.click(".thumb[data-layer='4'][data-head='7']")
    state = page.evaluate("attncliPage.state")
    assert (state["view"], state["layer"], state["head"]) == ("matrix", 4, 7) and errors == []
    assert page.is_visible("#cells") and not page.is_visible("#grid")


@pytest.mark.slow  # over half a second: 390 tokens' page
def test_a_long_page_is_not_cropped_and_stays_small(cli, tmp_path):
    text = " ".join([PRONOUN] * 30)  # 390 tokens on the sample model: 1.2 million weights, random ones
    page_file, document = export(cli, tmp_path, "page.html", "heatmap", text)
    data = re.search(r'<script type="application/json" id="attncli-data">(.*?)</script>', page_file.read_text())
    held = json.loads(data[1])
    assert len(held["tokens"]) == len(document["tokens"]) == 390 and held["bits"] == 8
    assert page_file.stat().st_size < 2_000_000
    assert "http" not in page_file.read_text().replace("http-equiv", "")  # no script, style or font from anywhere


@pytest.mark.slow
def test_text_that_looks_like_markup_stays_text_in_a_page(cli, tmp_path, browser):
    page_file, document = export(cli, tmp_path, "page.html", "heatmap", HOSTILE)
    page, requests, errors = open_page(browser, page_file)
    page.wait_for_selector("body[data-ready=true]")
    assert errors == [] and requests == [page_file.as_uri()]
    assert page.text_content("p.text") == HOSTILE
    assert [t.text_content() for t in page.query_selector_all("#queries .token")] == [
        token["text"] for token in document["tokens"]
    ]


@pytest.mark.slow
def test_a_page_opens_where_the_command_pointed(cli, tmp_path, browser):
    page_file, _ = export(
        cli, tmp_path, "page.html", "heatmap", PRONOUN, "--model", BERT, "--layer", "1", "--head", "3"
    )
    state = _opened_state(browser, page_file)
    assert (state["layer"], state["head"], state["scale"]) == (1, 3, "fixed")
    page_file, document = export(cli, tmp_path, "query.html", "query", PRONOUN, "--model", BERT, "--token", "it")
    state = _opened_state(browser, page_file)
    assert state["active"] == {"side": "query", "index": document["token"]["index"]} and state["pinned"]
    rollout, _ = export(cli, tmp_path, "rollout.html", "rollout", PRONOUN, "--model", BERT)
    assert "attncli-data" not in rollout.read_text()  # its own view, not a page of raw attention


def _opened_state(browser, page_file) -> dict:
    page, _, errors = open_page(browser, page_file)
    page.wait_for_selector("body[data-ready=true]")
    assert errors == []
    return page.evaluate("attncliPage.state")


def test_query_s_page_opens_at_the_head_its_ranking_put_first(cli, tmp_path):
    page_file, document = export(cli, tmp_path, "query.html", "query", PRONOUN, "--model", BERT, "--token", "it")
    data = re.search(r'<script type="application/json" id="attncli-data">(.*?)</script>', page_file.read_text())
    start = json.loads(data[1])["start"]
    first = document["heads"][0]
    assert (first["layer"], first["head"]) != (0, 0)  # or the test would not tell
    assert (start["layer"], start["head"], start["query"]) == (
        first["layer"],
        first["head"],
        document["token"]["index"],
    )


def test_a_bidirectional_models_local_windows_are_masked_in_its_page_and_its_global_layers_not():
    run = commands.run(PRONOUN, load_model(str(FIXTURES / "modernbert")))
    data = page_data(run, "title", {})
    tokens, layers = len(run.tokens), run.model.layers
    bits = np.unpackbits(np.frombuffer(zlib.decompress(base64.b64decode(data["masks"])), np.uint8))
    masks = bits[: layers * tokens * tokens].reshape(layers, tokens, tokens).astype(bool)
    assert masks[0].all() and masks[3].all()  # global layers: every key
    assert np.array_equal(masks[1], run.model.mask(1, tokens)) and not masks[1].all()  # local: the band


@pytest.mark.slow
def test_a_page_of_norms_holds_the_norms_of_the_json_on_scales_that_end_at_the_largest(cli, tmp_path, browser):
    page_file, document = export(cli, tmp_path, "norms.html", "heatmap", PRONOUN, "--model", BERT, "--measure", "norms")
    norms = np.array(document["attention"])  # [L, h, T, T]
    largest = norms.max()
    assert largest > 1  # or a scale that ended at 1 would not tell
    page, requests, errors = open_page(browser, page_file)
    page.wait_for_selector("body[data-ready=true]")
    assert errors == [] and requests == [page_file.as_uri()]
    assert "‖αv W_O‖ norms" in page.title() and "‖αv W_O‖ norms (Kobayashi et al., 2020)" in page.text_content("#note")
    assert page.evaluate("document.getElementById('scale').options[0].text") == "fixed 0–largest"
    np.testing.assert_allclose(page.evaluate("attncliPage.weights(1, 2)"), norms[1, 2], atol=largest / 65535)
    page.select_option("#layer", "1")
    page.select_option("#head", "2")
    page.click("button[data-view=matrix]")
    legend = page.text_content("#legend")
    assert "hover a cell for its ‖αv W_O‖" in legend and legend.endswith(f"{float(f'{largest:.3g}')}")
    matrix = page.evaluate("attncliPage.matrix")
    box = page.query_selector("#cells").bounding_box()
    page.mouse.move(box["x"] + matrix["left"] + 2.5 * matrix["cell"], box["y"] + matrix["top"] + 3.5 * matrix["cell"])
    shown = float(page.text_content("#tip").rsplit(": ", 1)[1])
    assert abs(shown - norms[1, 2, 3, 2]) <= largest / 65535 + 1e-4


def test_a_page_of_weights_carries_no_norms():
    run = commands.run(PRONOUN, load_model(BERT))
    assert "largest_norm" not in page_data(run, "title", {})
    normed = commands.run(PRONOUN, load_model(BERT), measure="norms")
    data = page_data(normed, "title", {})
    largest = data["largest_norm"]
    assert largest == pytest.approx(float(normed.attention.max()))
    held = np.frombuffer(zlib.decompress(base64.b64decode(data["attention"])), "<u2") / 65535 * largest
    np.testing.assert_allclose(held.reshape(normed.attention.shape), normed.attention, atol=largest / 65535)


def test_attributions_page_is_its_view_in_colour_grid_and_legend_included(cli, tmp_path, browser):
    page_file, document = export(
        cli, tmp_path, "attribution.html", "attribute", PRONOUN, "--model", str(FIXTURES / "phi")
    )
    html = page_file.read_text()
    assert "Heads that push it up" in html and "pushes down" in html and "b_O" in html
    top = document["components"][max(range(1, 13), key=lambda i: document["components"][i]["contribution"])]
    assert f"{top['contribution']:+.2f}" in html  # the grid's cell of a head among the first layer's
    page, _, errors = open_page(browser, page_file)
    assert errors == [] and png_colours(page.screenshot()) > 20  # the diverging scale's colours drawn


def test_a_generated_sequence_s_page_marks_where_the_prompt_ends(cli, tmp_path, browser):
    qwen2 = str(FIXTURES / "qwen2")
    page_file, document = export(cli, tmp_path, "generated.html", "generate", PRONOUN, "--model", qwen2)
    first, tokens = document["prompt_tokens"], len(document["tokens"])
    page, requests, errors = open_page(browser, page_file)
    page.wait_for_function("window.attncliPage && window.attncliPage.promptTokens !== undefined")
    assert requests == [page_file.as_uri()] and errors == []
    generated = page.eval_on_selector_all("#queries .token.generated", "tokens => tokens.map(t => +t.dataset.index)")
    assert generated == list(range(first, tokens))
    assert page.get_attribute(f"#keys .token[data-index='{first}']", "class").split() == [
        "token",
        "generated",
        "prompt-end",
    ]
    assert f"Tokens {first} to {tokens - 1} ({tokens - first}, in italics) were generated" in page.text_content("#note")
    page.click("button[data-view=matrix]")
    matrix, box = page.evaluate("attncliPage.matrix"), page.query_selector("#cells").bounding_box()
    line = page.query_selector(".prompt-end-line").bounding_box()  # under the last prompt row
    assert abs(line["y"] - (box["y"] + matrix["top"] + first * matrix["cell"])) < 1.5


def test_only_a_generated_sequence_s_page_carries_the_prompt_s_marks(tmp_path):
    from attncli.views.page import page_html

    model = load_model(str(FIXTURES / "qwen2"))
    result = commands.generate(PRONOUN, model, max_new_tokens=2)
    marked = page_html(result.run, "t", {"layer": 0, "head": 0, "scale": "fixed"}, result.prompt_tokens)
    plain = page_html(result.run, "t", {"layer": 0, "head": 0, "scale": "fixed"})
    assert '"prompt_tokens":' in marked and "prompt-end-line" in marked
    assert "prompt_tokens" not in plain and "prompt-end" not in plain
