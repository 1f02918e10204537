"""views/ on a fixed-width console and through the CLI: explain, windows, thumbnails, rankings, vectors."""

import dataclasses
import math
import re

import numpy as np
import pytest
from helpers import ANSI, BERT, FIXTURES, GPT2, LONG, PRONOUN, SENTENCE, references, render_text, widest_line
from numpy.testing import assert_allclose

from attncli import commands, views
from attncli.attention import inverse_frequencies, layer_norm
from attncli.models import load_model
from attncli.terminal import abbreviate
from attncli.transformer import feed_forward
from attncli.views.lens import predicted_label
from attncli.widgets.vectors import number


def test_the_walkthrough_shows_the_weights_the_model_gave_inside_a_sliding_window():
    model = load_model(str(FIXTURES / "gemma2"))  # layer 0 slides over the last 4 keys
    result = commands.explain(PRONOUN, model, layer=0, head=3)
    focus = result.focus
    assert result.focus_keys.tolist() == list(range(focus - 3, focus + 1))
    row = result.run.weights[0, 3, focus]
    assert_allclose(result.focus_steps.probabilities, row[result.focus_keys], atol=1e-6)
    assert row[: focus - 3].sum() == 0
    text = render_text(views.view(result), width=120)
    assert "The mask hides 9 outside the sliding window: weight exactly 0." in text
    assert "multiplied by Gemma 2's scale 0.4082," in text and "soft-capped as 2 · tanh(s / 2)" in text


def test_the_walkthrough_turns_q_by_the_angles_it_shows():
    model = load_model(str(FIXTURES / "qwen3"))
    result = commands.explain(PRONOUN, model, focus="7", head=2)
    rope = model.info.layer_attention[0].rope
    assert_allclose(result.focus_angles, 7 * inverse_frequencies(rope))
    q, turned = result.attention.q[2, 7], result.attention.q_rotated[2, 7]
    half = rope.dims // 2
    cos, sin = np.cos(result.focus_angles), np.sin(result.focus_angles)
    assert_allclose(turned[:half], q[:half] * cos - q[half : 2 * half] * sin, atol=1e-5)
    text = render_text(views.view(result), width=120)
    assert "heads 2 to 3 read key-value head 1" in text and "Each head's q and k then pass an RMSNorm" in text


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "short", "long"),
    [
        ("llama-dynamic", "dynamic NTK scaling (factor 2) keeps as this text's", "θ' = 31775.7 for this text"),
        ("phi3-longrope", "short factors (1, 1.01, 1.05, 1.1, …)", "long factors (1, 1.5, 3.3, 6.7, …)"),
    ],
)
def test_the_walkthrough_says_which_table_the_text_length_chose_and_turns_q_by_it(name, short, long):
    model = load_model(str(FIXTURES / name))
    rope = model.info.layer_attention[0].rope
    text = references(name)[-1].text  # 480 tokens, past the context of 256 (dynamic) or 128 (longrope)
    for words, said in ((SENTENCE, short), (text, long)):
        result = commands.explain(words, model, focus="5", head=1)
        tokens = len(result.run.tokens)
        assert_allclose(result.focus_angles, 5 * inverse_frequencies(rope, tokens))
        q, turned = result.attention.q[1, 5], result.attention.q_rotated[1, 5]
        half = rope.dims // 2
        cos, sin = np.cos(result.focus_angles), np.sin(result.focus_angles)
        expected = (q[:half] * cos - q[half : 2 * half] * sin) * rope.attention_factor
        assert_allclose(turned[:half], expected, atol=1e-5)
        assert said in " ".join(render_text(views.view(result), width=200).split())


def test_the_walkthrough_says_a_layer_has_no_rope_and_shows_granites_multipliers():
    smollm3 = load_model(str(FIXTURES / "smollm3"))  # every second layer without RoPE
    result = commands.explain(PRONOUN, smollm3, layer=1)
    assert result.focus_angles is None and result.attention.q_rotated is None
    text = " ".join(render_text(views.view(result), width=200).split())
    assert "Layer 1 has no RoPE, unlike the model's other layers" in text and "RoPE:" not in text
    assert "Layer 0 has no RoPE" not in render_text(views.view(commands.explain(PRONOUN, smollm3)), width=200)
    granite = load_model(str(FIXTURES / "granite"))
    text = " ".join(render_text(views.view(commands.explain(PRONOUN, granite)), width=200).split())
    assert "x = RMSNorm(6 · e)" in text and "multiplied by Granite's scale 0.3," in text
    assert (
        "adds the attention output × 0.4 to the residual stream, then the gated feed-forward network's output × 0.4"
        in text
    )


def test_the_walkthrough_of_a_parallel_block_adds_both_sublayers_to_the_same_input():
    model = load_model(str(FIXTURES / "gpt-neox"))  # a feed-forward norm of its own
    result = commands.explain(PRONOUN, model, layer=1)
    f, trace = result.focus, result.run.trace
    block = model.weights.blocks[1]
    x = trace.layer_inputs[1][f]
    norm = block.ffn_norm
    ffn = feed_forward(layer_norm(x[None], norm.gain, norm.bias, model.config.eps), block.feed_forward, "gelu")[0]
    assert_allclose(result.focus_feed_forward, ffn, atol=1e-5)
    text = " ".join(render_text(views.view(result), width=200).split())
    assert (
        "read r, each through a LayerNorm of its own" in text
        and "r + attention(x) + feed-forward(LayerNorm′(r))" in text
    )
    for label, row in (
        ("layer 1 input", x),
        ("feed-forward output", ffn),
        ("layer 1 output", trace.layer_outputs[1][f]),
    ):
        assert f"{label} {' '.join(number(v) for v in row[:8])}" in text
    shared = " ".join(render_text(views.view(commands.explain(PRONOUN, load_model(str(FIXTURES / "gptj"))))).split())
    assert (
        "both read this x, side by side (a parallel block): layer 0 passes on e + attention(x) + feed-forward(x)"
        in shared
    )
    assert "read the same LayerNorm(input) as attention" in shared


def test_the_walkthrough_turns_adjacent_pairs_of_dimensions_together():
    model = load_model(str(FIXTURES / "cohere"))
    result = commands.explain(PRONOUN, model, focus="5", head=1)
    q, turned = result.attention.q[1, 5], result.attention.q_rotated[1, 5]
    cos, sin = np.cos(result.focus_angles), np.sin(result.focus_angles)
    assert_allclose(turned[0::2], q[0::2] * cos - q[1::2] * sin, atol=1e-5)
    assert_allclose(turned[1::2], q[1::2] * cos + q[0::2] * sin, atol=1e-5)
    text = " ".join(render_text(views.view(result), width=200).split())
    assert "each pair of adjacent dimensions of a head, 2i and 2i + 1, turns together" in text
    assert "dimensions 0 to 7, in pairs (0, 1), (2, 3) …: token 5, head 1" in text
    angles = np.repeat(result.focus_angles, 2)
    assert f"angle {' '.join(number(a) for a in angles)} q before {' '.join(number(v) for v in q)}" in text


def test_the_walkthrough_shows_each_heads_own_q_and_k_layer_norm():
    model = load_model(str(FIXTURES / "stablelm-parallel"))
    result = commands.explain(PRONOUN, model, layer=1, head=3)  # head 3 reads key-value head 1
    attention, f, p = result.attention, result.focus, model.weights.blocks[1].attention
    projected = (attention.x @ p.w_q)[f, 24:32]
    assert_allclose(attention.q_projected[3, f], projected, rtol=1e-5, atol=1e-5)
    assert_allclose(attention.q[3, f], layer_norm(projected, p.q_norm[3, 0], None, model.config.eps), atol=1e-5)
    text = " ".join(render_text(views.view(result), width=200).split())
    assert "pass a LayerNorm over their 8 numbers: less their mean, divided by their standard deviation" in text
    assert "through head 3's and key head 1's own q and k norms" in text
    assert f"q = LayerNorm(x·W_Q) {' '.join(number(v) for v in attention.q[3, f])}" in text


def test_the_model_grid_leaves_masked_cells_blank():
    result = commands.model_grid(PRONOUN, load_model(str(FIXTURES / "mistral")))  # window 5 in every layer
    text = render_text(views.view(result), width=200)
    first_head = text.split("L0 H0")[1].splitlines()[1:14]
    assert first_head[-1].startswith("·" * 8) and first_head[0].endswith("·" * 12)


def _row_indices(view: str) -> list[int]:
    """The query indices a plain heatmap view draws: each grid row starts with its index and label."""
    return [int(match.group(1)) for match in re.finditer(r"^\s*(\d+) \S", view, re.MULTILINE)]


def test_a_window_draws_exactly_the_chosen_queries_and_keys_and_says_so_first(cli):
    run = cli("heatmap", LONG, "--head", "1", "--queries", "10:14", "--keys", "-6:", "--no-values")
    assert run.code == 0
    lines = run.stdout.splitlines()
    note = next(i for i, line in enumerate(lines) if line.startswith("(showing"))
    assert "queries 10–13 and keys 150–155 of 156 tokens" in " ".join(lines[note : note + 2])
    assert _row_indices(run.stdout) == [10, 11, 12, 13]
    assert note < next(i for i, line in enumerate(lines) if re.match(r"^\s*10 \S", line))  # the note comes first
    hundreds = next(i for i, line in enumerate(lines) if line.split() == ["1"] * 6)  # key indices, downwards
    assert [line.split() for line in lines[hundreds + 1 : hundreds + 3]] == [["5"] * 6, list("012345")]


def test_query_shows_the_keys_around_its_strongest_not_the_first_ones(cli):
    doc = cli("query", LONG, "--token", "150", "--json").json()
    strongest = doc["heads"][0]["top"]["index"]
    view = " ".join(cli("query", LONG, "--token", "150", env={"COLUMNS": "80"}).stdout.split())
    first, last = map(int, re.search(r"showing keys (\d+)–(\d+) of 156 tokens", view).groups())
    assert first > 0 and first <= strongest <= last


def test_model_draws_a_long_text_as_thumbnails_of_block_means(cli):
    run = cli("model", LONG, "--layers", "0", "--no-pager")
    assert "drawn 16 cells a side: each cell the mean of a 10 × 10 block" in " ".join(run.stdout.split())
    grid = [line for line in run.stdout.splitlines() if line.startswith("L0 H0")]
    assert grid and len(run.stdout.splitlines()) < 60  # 4 heads of 16 lines, not 4 × 156


def test_the_window_is_said_once_above_heads_drawn_side_by_side(cli):
    run = cli("heatmap", LONG, "--keys", "0:5", "--no-values", env={"COLUMNS": "200"})
    assert run.stdout.count("(showing") == 1 and run.stdout.count("head ") >= 2


@pytest.mark.parametrize("width", [80, 120])
def test_explain_fits_the_terminal(width):
    result = commands.explain(SENTENCE, load_model())
    text = render_text(views.view(result), width=width)
    assert widest_line(text) <= width
    for stage in ("Tokens", "Embeddings", "Queries, keys and values", "Scores", "Attention weights", "Weighted sum"):
        assert stage in text
    assert "random" in text


def scores_table(text: str) -> list[list[str]]:
    """The rows of the explain view's scores table, split into columns."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:3] == ["#", "key", "q·k"])
    end = next(i for i in range(start, len(lines)) if lines[i].split()[:1] == ["sum"])
    return [line.split() for line in lines[start + 1 : end]]


def test_explain_shows_the_focus_softmax_that_the_model_computed():
    result = commands.explain(SENTENCE, load_model(), focus="cat", head=3)
    text = render_text(views.view(result), width=120)
    trace = result.run.trace.layers[0]
    rows = scores_table(text)
    assert [row[1] for row in rows] == ["the", "cat", "sat", "on", "the", "mat"]
    assert [float(row[2]) for row in rows] == [round(float(s), 3) for s in trace.scores[3, 1]]
    assert [float(row[3]) for row in rows] == [round(float(s), 3) for s in trace.scaled[3, 1]]
    assert [float(row[6]) for row in rows] == [round(float(w), 3) for w in trace.weights[3, 1]]
    assert "Scores for “cat”" in text


def test_the_weighted_sum_rows_add_up_to_the_head_output():
    result = commands.explain(SENTENCE, load_model(), focus="mat")
    trace = result.run.trace.layers[0]
    text = render_text(views.view(result), width=120)
    for key, weight in enumerate(trace.weights[0, 5]):
        expected = " ".join(number(v) for v in weight * trace.v[0, key])
        assert expected in " ".join(text.split())


def test_rich_markup_in_the_text_is_shown_literally():
    result = commands.tokenize("[bold red]alarm[/]", load_model())
    text = render_text(views.view(result), color_system="truecolor")
    assert "[bold red]alarm[/]" in ANSI.sub("", text)
    assert "\x1b[1;31m" not in text


def test_softmax_view_keeps_tiny_scores_visible():
    text = render_text(views.view(commands.softmax(["1e-5", "2e-5"])))
    assert "1.0000e-05" in text and "2.0000e-05" in text


def test_softmax_view_shows_the_right_numbers():
    text = render_text(views.view(commands.softmax(["2.0", "1.0", "0.5"])))
    for value in ("0.6285", "0.2312", "0.1402", "1.0000"):
        assert value in text


def test_query_view_draws_a_bar_per_key(cli):
    run = cli("query", SENTENCE, "--token", "mat", "--top", "3")
    assert run.code == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.split()[:1] in (["1"], ["2"], ["3"])]
    assert len(rows) == 3
    assert any(block in rows[0] for block in "▁▂▃▄▅▆▇█")


def test_heads_view_explains_its_columns(cli):
    run = cli("heads", "The cat sat on the mat.", "--model", BERT)
    assert "pattern" in run.stdout and "L1 H3" in run.stdout and "Pattern:" in run.stdout


def test_rollout_lists_the_sources_of_a_token(cli):
    run = cli("rollout", "The cat sat on the mat.", "--model", BERT, "--token", "cat")
    assert "Where “cat” (token 2) draws from" in run.stdout
    assert cli("rollout", "The cat", "--head-fusion", "median").code == 2
    assert cli("query", "The cat", "--token", "cat", "--top", "0").code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["heatmap", PRONOUN],
        ["model", PRONOUN],
        ["query", PRONOUN, "--token", "it"],
        ["heads", PRONOUN],
        ["rollout", PRONOUN],
        ["compare", PRONOUN, PRONOUN.replace("tired", "wide"), "--token", "it"],
        ["explain", PRONOUN],
    ],
)
def test_every_view_of_the_sample_model_says_its_patterns_are_not_learned(cli, args):
    text = " ".join(cli(*args, env={"COLUMNS": "200"}).stdout.split())
    assert text.count("not learned") + text.count("not what a trained model has learned") == 1


def test_rollout_ranks_sources_without_special_tokens_unless_asked(cli):
    plain = " ".join(cli("rollout", "The cat sat on the mat.", "--model", BERT, "--token", "cat").stdout.split())
    listed = plain.split("draws from, after every layer:")[1].split("Left out:")[0]
    assert "[CLS]" not in listed and "[SEP]" not in listed
    assert "[CLS]" in plain.split("Left out:")[1] and "--include-special lists them" in plain
    kept = cli("rollout", "The cat sat on the mat.", "--model", BERT, "--token", "cat", "--include-special").stdout
    assert "[CLS]" in kept.split("draws from, after every layer:")[1] and "Left out" not in kept


def prose(result) -> str:
    """The walkthrough's text with every run of spaces and line breaks made one space."""
    return " ".join(render_text(views.view(result), width=120).split())


def test_the_walkthrough_shows_the_rope_base_of_its_layer_and_of_the_other_kind():
    model = load_model(str(FIXTURES / "gemma3"))  # layers 0, 1 and 3 slide (θ = 100), layer 2 is global
    local = prose(commands.explain(PRONOUN, model, layer=0))
    assert (
        "θ^(-2i/8), θ = 100. The sliding and the global layers turn by RoPEs of their own: layer 0 is one of " in local
    )
    assert (
        "the 3 sliding layers, turned by this base; the 1 global layer by θ = 10000, frequencies scaled (linear, "
        in local
    )
    result = commands.explain(PRONOUN, model, layer=2)
    assert_allclose(result.focus_angles, result.focus * inverse_frequencies(model.info.layer_attention[2].rope))
    text = prose(result)
    assert "layer 2 is the one global layer, turned by this base; the 3 sliding layers by θ = 100." in text


def test_the_walkthrough_counts_the_numbers_clip_qkv_clamped():
    model = load_model(str(FIXTURES / "olmo"))
    result = commands.explain(PRONOUN, model)
    q, k, v = result.attention.projected  # as projected, before clamping to ±2
    counts = [int(np.count_nonzero(np.abs(part) > 2)) for part in (q, k, v)]
    assert result.clipped == tuple(counts) and min(counts) > 0
    text = prose(result)
    total = q.size + k.size + v.size
    q_count, k_count, v_count = counts
    assert (
        f"in layer 0 that clamped {sum(counts)} of their {total} numbers (q {q_count}, k {k_count}, v {v_count})"
        in text
    )
    assert "q = clamp(x·W_Q, ±2) (head 0)" in text and "v = clamp(x·W_V, ±2)" in text
    assert "Its LayerNorm learns no gain and no shift: LayerNorm(x) = (x − mean(x)) / √(var(x) + ε), ε = 1e-05." in text


def test_the_walkthrough_shows_the_norm_over_the_whole_projection_and_the_norms_after_each_sublayer():
    model = load_model(str(FIXTURES / "olmo2"))
    result = commands.explain(PRONOUN, model, head=1)
    f, d_k = result.focus, model.info.d_head
    q = result.attention.projected[0][f]  # [h·d_k] the focus token's q as projected, every head's
    whole = math.sqrt(np.mean(np.square(q.astype(np.float64))) + model.info.eps)
    own = math.sqrt(np.mean(np.square(q[d_k : 2 * d_k].astype(np.float64))) + model.info.eps)
    assert result.projection_rms[:2] == pytest.approx((whole, own))
    text = prose(result)
    assert (
        f"its x·W_Q, all 16 numbers, has √(mean(x²) + ε) = {whole:.3f} (head 1's 4 alone would give {own:.3f})" in text
    )
    assert "x = e itself: OLMo 2 normalises after each sublayer, not before it:" in text
    assert "the attention output, through an RMSNorm, added to the residual stream; then the gated" in text


@pytest.mark.parametrize("width", [80, 140])
def test_the_walkthrough_of_a_mixture_shows_where_each_token_went(width):
    model = load_model(str(FIXTURES / "qwen2-moe"))
    result = commands.explain(SENTENCE, model, layer=1)
    routing = result.run.trace.routing[1]
    text = render_text(views.view(result), width=width)
    assert widest_line(text) <= width
    assert "4 experts (2 a token)" in " ".join(text.split())
    assert "7. Experts" in text and "8. Summary" in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["#", "token", "expert(weight)"])
    for i, line in enumerate(lines[header + 1 : header + 1 + len(result.run.tokens)]):
        chosen = "  ".join(f"{e}({w:.2f})" for e, w in zip(routing.experts[i], routing.weights[i], strict=True))
        assert chosen in line and line.rstrip().endswith(f"{routing.shared[i]:.2f}")
    assert "the mixture of experts (section 7)" in " ".join(text.split())
    dense = render_text(views.view(commands.explain(SENTENCE, model, layer=2)), width=width)
    assert "Layer 2 is one of the model's dense layers" in " ".join(dense.split())


def flowing(renderable) -> str:
    """What `renderable` prints, its lines run together: a sentence wrapped at any width reads whole."""
    return " ".join(render_text(renderable, width=200).split())


def test_the_walkthrough_shows_alibis_slope_and_the_bias_each_key_got():
    result = commands.explain(PRONOUN, load_model(str(FIXTURES / "bloom")), head=2)  # slopes 1/16, 1/256, 1/4
    f, keys = result.focus, result.focus_keys
    assert_allclose(result.focus_biases, 0.25 * (keys - f))
    assert_allclose(result.focus_steps.scores, result.attention.scores[2, f, keys] / 2 + result.focus_biases, atol=1e-5)
    text = flowing(views.view(result))
    assert "plus ALiBi's bias for the key's distance, then softmax" in text
    assert "head 2's slope is m = 0.25; each key j's score gets m·j." in text
    assert f"token {f} sees m·(j − {f}) (the bias column): 0 for itself, -0.25 for the token before, -2.5 ten" in text
    assert "The 3 heads' slopes: 0.0625, 0.003906, 0.25;" in text and "bias ÷√4 + bias" in text
    assert "Layer 0 attends over x = LayerNorm(LayerNorm(e)): BLOOM normalises before each sublayer." in text
    falcon = commands.explain(PRONOUN, load_model(str(FIXTURES / "falcon-alibi")), head=2)
    assert_allclose(falcon.focus_biases, 0.25 * (keys - f) / 2)  # divided by √d_k as the scores are
    text = flowing(views.view(falcon))
    assert f"sees m·(j − {f})/√d_k (the bias column): 0 for itself, -0.125 for the token before" in text


def test_the_walkthrough_shows_a_decoders_learned_positions_projection_and_post_norm():
    model = load_model(str(FIXTURES / "opt-post-norm"))  # word embeddings 8 wide, the model 16
    result = commands.explain(SENTENCE, model)
    trace, tokens = result.run.trace, len(result.run.tokens)
    assert_allclose(trace.positions, model.weights.position[2 : tokens + 2])
    assert_allclose(result.attention.x, trace.embeddings @ model.weights.project_in + trace.positions, atol=1e-6)
    text = flowing(views.view(result))
    assert "word embeddings (8 dimensions, which W_in, 8 × 16, turns into the model's 16)" in text
    assert "Position i reads row i + 2: the table's positions start at row 2." in text
    assert f"p (position embedding: rows 2 to {tokens + 1})" in text
    assert "x = e·W_in + p, not normalised, as OPT normalises after each sublayer: LayerNorm(x + attention)" in text
    later = flowing(views.view(commands.explain(SENTENCE, model, layer=1)))
    assert "Layer 1 attends over x = the output of layer 0, normalised, as OPT normalises after each" in later


def test_the_walkthrough_says_gpt_neo_leaves_its_scores_unscaled_and_which_layers_are_local():
    model = load_model(str(FIXTURES / "gpt-neo"))  # global, local (window 5), global
    local = flowing(views.view(commands.explain(PRONOUN, model, layer=1)))
    assert "not scaled (GPT-Neo leaves out the division by √d_k = √4 = 2.000)" in local and "q·k unscaled" in local
    assert (
        "Layer 1 is a local layer: the causal mask hides later keys, and its sliding window keys more than 4" in local
    )
    assert "The mask hides 13 outside the sliding window: weight exactly 0." in local
    text = flowing(views.view(commands.explain(PRONOUN, model, layer=0)))
    assert "Layer 0 is a global layer: the causal mask hides later keys (·) and nothing else; the local layer 1" in text


@pytest.mark.parametrize("width", [80, 140])
def test_the_walkthrough_of_olmoe_shows_its_whole_projection_norms_the_clamp_after_them_and_its_experts(width):
    model = load_model(str(FIXTURES / "olmoe"))
    result = commands.explain(SENTENCE, model, focus="4")  # token 4's q in head 0 is clamped once normed
    text = render_text(views.view(result), width=width)
    assert widest_line(text) <= width
    flat = " ".join(text.split())
    assert "OLMoE normalises before each sublayer" in flat
    assert "q then passes one RMSNorm over all its 16 numbers at once" in flat
    q, k, v = result.clipped
    assert f"clamped to ±2 (clip_qkv): in layer 0 that clamped {q + k + v} of their 320 numbers" in flat
    assert "q = clamp(RMSNorm(x·W_Q), ±2) (head 0)" in flat and "v = clamp(x·W_V, ±2) (head 0)" in flat
    # the focus token's q and k as the head reads them: normed over the whole projection, then clamped
    assert np.abs(result.attention.q[0, 4]).max() == 2.0
    assert "before and after the whole-projection norm and the clamp to ±2" in flat
    line = next(line for line in text.splitlines() if line.startswith("q (normed, clamped)"))
    assert line.split()[3:7] == [number(value) for value in result.attention.q[0, 4]]
    routing = result.run.trace.routing[0]
    assert "7. Experts" in text and "a mixture of 6 experts" in flat and "not renormalised" in flat
    assert "  ".join(f"{e}({w:.2f})" for e, w in zip(routing.experts[4], routing.weights[4], strict=True)) in text


@pytest.mark.parametrize("width", [80, 140])
def test_the_walkthrough_of_a_model_with_learned_sinks_shows_the_share_its_sink_took(width):
    model = load_model(str(FIXTURES / "gpt-oss"))
    result = commands.explain(SENTENCE, model, head=2)
    h, f, keys = 2, result.focus, result.focus_keys
    row = result.run.weights[0, h, f]  # [T] the focus token's weights in head 2, the model's own
    sink = result.attention.sinks[h]
    share = 1 - row.sum(dtype=np.float64)
    assert 0.01 < share < 0.99
    steps = result.focus_steps  # its keys, then the sink
    assert steps.scores[-1] == sink and len(steps.scores) == len(keys) + 1
    assert_allclose(steps.probabilities[:-1], row[keys], atol=1e-6)
    assert_allclose(steps.probabilities[-1], share, atol=1e-6)
    text = render_text(views.view(result), width=width)
    assert widest_line(text) <= width
    said = " ".join(text.split())
    assert (
        f"The sink: head {h}'s learned logit, {number(sink)} in every row of layer 0, joins the softmax unscaled, "
        f"as a key with no value. It takes {number(share)} of token {f}'s row, which goes nowhere: the keys' "
        f"weights sum to {number(1 - share)}." in said
    )
    assert "with head 2's learned sink logit as one more score; the sink's share is then dropped" in said
    assert "each row sums to 1 less the share its head's learned sink takes" in said
    assert "each row sums to 1." not in said and "a learned attention sink per head" in said
    sink_row = next(line for line in text.splitlines() if "(sink)" in line)
    assert number(sink) in sink_row and number(share) in sink_row
    experts = "sends it to its 2 highest scores; softmax over those 2 alone gives the weights of their outputs"
    assert experts in said and "(u + 1) · g · σ(1.702 · g)" in said and "clamped to at most 2 and" in said


def test_the_views_of_a_model_with_learned_sinks_say_what_their_rows_sum_to():
    model = load_model(str(FIXTURES / "gpt-oss"))

    def said(result) -> str:
        return " ".join(render_text(views.view(result), width=120).split())

    assert "each row sums to 1 less the share its head's learned sink takes" in said(commands.heatmap(SENTENCE, model))
    assert "the renormalisation shares that part out" in said(commands.rollout(SENTENCE, model))
    heads = said(commands.heads(SENTENCE, model))
    assert "a learned sink's share one more key" in heads and "the part its head's learned sink takes" in heads
    compare = said(commands.compare(SENTENCE, "The cat lay on the mat", model, "0"))
    assert "and the share each head's learned sink takes counted as one more key." in compare
    plain = load_model(str(FIXTURES / "mixtral"))  # rows that sum to 1
    assert "each row sums to 1." in said(commands.heatmap(SENTENCE, plain))
    assert "sink's share" not in said(commands.heads(SENTENCE, plain))


def test_the_walkthrough_shows_a_bidirectional_local_window_on_both_sides_of_the_focus_token():
    model = load_model(str(FIXTURES / "modernbert"))  # global, local (local_attention 8), local, global
    local = flowing(views.view(commands.explain(PRONOUN, model, focus="6", layer=1)))
    assert (
        "Layer 1 is a local layer: token 6 sees keys 2 to 10, those at most 4 positions from it (|j − 6| ≤ 4); the "
        "mask hides the other 14 keys (0 to 1 and 11 to 22): weight exactly 0." in local
    )
    assert "a query sees only the keys at most 4 positions from it, before and after it (9 keys, itself" in local
    assert "θ = 1000. The sliding and the global layers turn by RoPEs of their own: layer 1 is one of the 2" in local
    assert "later token" not in local and "causal" not in local  # no causal mask to speak of
    first = flowing(views.view(commands.explain(PRONOUN, model, focus="6", layer=0)))
    assert "Layer 0 is a global layer: every query sees every key, before and after it; the local layers 1, 2" in first
    assert "Layer 0 attends over x = LayerNorm(e) as it is" in first and "mask hides" not in first


def walkthrough(result, width: int) -> tuple[str, str]:
    """explain's view of `result` on a terminal `width` columns wide, checked to fit it: (its text, its
    lines run together)."""
    text = render_text(views.view(result), width=width)
    assert widest_line(text) <= width
    return text, " ".join(text.split())


@pytest.mark.parametrize("width", [80, 140])
def test_the_walkthrough_of_disentangled_attention_shows_each_keys_three_terms_and_the_position_it_read(width):
    model = load_model(str(FIXTURES / "deberta-v3"))  # 16 log buckets, past ±8, up to 511
    text_of_long = references("deberta-v3")[3].text
    result = commands.explain(text_of_long, model, focus="60", head=1)
    h, f, keys = 1, result.focus, result.focus_keys
    attention = result.attention
    assert f == 60 and len(keys) == len(result.run.tokens)
    assert result.focus_relative.tolist() == result.run.trace.relative_positions[f].tolist()
    assert result.focus_relative[f - 8 : f + 9].tolist() == list(range(8, -9, -1))  # the identity up to ±8
    assert result.focus_relative[0] == 12 and result.focus_relative[-1] == -15  # 60 back; 417 ahead
    text, said = walkthrough(result, width)
    assert "sums the 3 terms of DeBERTa's disentangled attention: c2c, content to content" in said
    assert "The sum is divided by √(d_k · 3) = √12 = 3.464" in said
    assert "k_r = P·W_K + b and q_r = P·W_Q + b project it with the layer's own W_K and W_Q (share_att_key)" in said
    assert "a table of 32 relative position embeddings (δ = −16 to 15), passed through a LayerNorm" in said
    assert "δ = i − j counts as it is up to ±8; farther distances share log-spaced buckets, ±15 at a distance" in said
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:4] == ["#", "key", "i", "−"])
    assert lines[start].split()[4:] == ["j", "δ", "c2c", "c2p", "p2c", "sum", "÷√12"]
    for line, key in zip(lines[start + 1 : start + 1 + len(keys)], keys, strict=True):
        cells = line.split()
        c2c, c2p, p2c = (float(matrix[h, f, key]) for matrix in (attention.scores, attention.c2p, attention.p2c))
        assert cells[0] == str(key) and cells[-7:-5] == [str(f - key), str(result.focus_relative[key])]
        assert cells[-5:] == [
            number(c2c),
            number(c2p),
            number(p2c),
            number(c2c + c2p + p2c),
            number(attention.scaled[h, f, key]),
        ]
    assert_allclose(
        attention.scaled[h, f], (attention.scores + attention.c2p + attention.p2c)[h, f] / 12**0.5, rtol=1e-5, atol=1e-5
    )
    softmax = next(i for i in range(start, len(lines)) if lines[i].split()[:3] == ["#", "key", "÷√12"])
    assert lines[softmax].split()[3:] == ["−", "max", "exp", "weight"]


@pytest.mark.parametrize("width", [80, 140])
def test_the_walkthrough_of_deberta_v2_shows_its_summed_projected_embeddings_clipped_positions_and_convolution(width):
    model = load_model(str(FIXTURES / "deberta-v2"))
    result = commands.explain(SENTENCE, model)
    text, said = walkthrough(result, width)
    assert "each position a row p of the position embeddings (8 dimensions each); position enters again later" in said
    assert "x = LayerNorm((e + p + t)·W_in): t the token type 0 embedding; W_in (8 × 16) turns their sum" in said
    assert "k_r = P·W_K,r + b and q_r = P·W_Q,r + b project it with weights of their own, apart from W_K" in said
    assert "δ = i − j counts as it is from −64 to 63; farther keys read the table's end rows" in said
    assert "layer 0 output = LayerNorm(that + tanh(conv(x)))" in said and "(3 tokens wide, its channels in 2" in said
    f = result.focus
    row = next(line for line in text.splitlines() if line.startswith("tanh(conv(x))"))
    assert row.split()[1:4] == [number(value) for value in result.run.trace.convolution[f, :3]]
    _, later = walkthrough(commands.explain(SENTENCE, model, layer=1), width)
    assert "tanh(conv(x))" not in later and "Layer 1 attends over x = the output of layer 0." in later


@pytest.mark.parametrize("width", [80, 140])
def test_the_walkthrough_shows_the_relative_position_bias_of_the_focus_tokens_row(width):
    result = commands.explain(SENTENCE, load_model(str(FIXTURES / "mpnet")), head=1)
    f, keys = result.focus, result.focus_keys
    bias = result.attention.position_bias[1, f, keys]
    assert_allclose(result.focus_biases, bias)
    assert_allclose(result.focus_steps.scores, result.attention.scores[1, f, keys] / 2 + bias, atol=1e-6)
    buckets = result.relative_buckets[f, keys]
    assert buckets.tolist() == [f - j if j <= f else 16 + j - f for j in keys]  # all within the exact distances
    text = render_text(views.view(result), width=width)
    assert widest_line(text) <= width
    rows = scores_table(text)
    assert [row[3] for row in rows] == [str(b) for b in buckets]  # the bucket column, then the bias
    assert [float(row[4]) for row in rows] == pytest.approx(bias.tolist(), abs=1e-3)
    text = flowing(views.view(result))
    assert "divided by √d_k = √4 = 2.000, plus head 1's relative position bias for the key's distance" in text
    assert "falls in one of 32 buckets, 16 for the keys before it (itself included) and 16 for those after" in text
    before = number(result.focus_biases[list(keys).index(f - 1)])
    assert f"the token before (bucket 1) {before}" in text and "bucket bias ÷√4 + bias" in text


@pytest.mark.parametrize("width", [80, 140])
def test_the_walkthrough_shows_the_embeddings_normed_narrow_then_projected_in(width):
    model = load_model(str(FIXTURES / "electra"))
    text = render_text(views.view(commands.explain(SENTENCE, model)), width=width)
    assert widest_line(text) <= width
    assert "LayerNorm(e + p + t)  (12 dimensions)" in text
    text = flowing(views.view(commands.explain(SENTENCE, model)))
    assert "each position a row p of the position embeddings (12 dimensions)." in text
    assert "Layer 0 attends over x = LayerNorm(e + p + t)·W + b: the word, position and token type 0 embeddings" in text
    assert "are summed and normed 12 wide, then W (12 × 16) and its bias b project them into the model's 16" in text
    later = flowing(views.view(commands.explain(SENTENCE, model, layer=1)))
    assert "LayerNorm(e + p + t)·W + b (projected to 16 dimensions: layer 0's input)" in later


def test_the_walkthrough_says_which_stored_layer_a_layer_that_shares_weights_runs():
    result = commands.explain(SENTENCE, load_model(str(FIXTURES / "albert-groups")), layer=3)
    text = flowing(views.view(result))
    assert "6 layers × 1 head, d_model 16, d_k 16, sharing the weights of 4 stored layers" in text
    assert "Σ weight · v over the keys; the one head's output is multiplied by W_O (16 × 16) + b." in text
    assert "concat (1 head)" in text and "heads'" not in text
    assert (
        "ALBERT's layers share their weights: its 6 layers are 3 passes through groups of 2 layers (passes 0–1 "
        "through group 0, pass 2 through group 1), 4 stored layers in all. Layer 3, pass 1's layer 1, runs group "
        "0's layer 1, as layer 1 does" in text
    )
    last = flowing(views.view(commands.explain(SENTENCE, load_model(str(FIXTURES / "albert-groups")), layer=5)))
    assert "Layer 5, pass 2's layer 1, runs group 1's layer 1: W_Q" in last
    one = flowing(views.view(commands.explain(SENTENCE, load_model(str(FIXTURES / "albert")), layer=1)))
    assert "ALBERT's 2 layers all run one stored layer's weights (group 0's layer 0)" in one


@pytest.mark.parametrize("width", [80, 140])
def test_the_walkthrough_of_a_pre_norm_encoder_shows_the_stream_its_norm_and_the_last_norm(width):
    model = load_model(str(FIXTURES / "megatron-bert"))
    result = commands.explain(SENTENCE, model, layer=1)
    text = render_text(views.view(result), width=width)
    assert widest_line(text) <= width
    assert "r  (layer 1's input, not normed)" in text and "last hidden state" in text
    text = flowing(views.view(result))
    assert "Layer 1 attends over x = LayerNorm(the residual stream after layer 0): Megatron-BERT normalises" in text
    assert "r + attention(LayerNorm(r)), then that + feed-forward(LayerNorm′(that)); one more LayerNorm" in text
    assert "The last layer's output passes one more LayerNorm: the model's last hidden state." in text
    first = flowing(views.view(commands.explain(SENTENCE, model)))
    assert "Layer 0 attends over x = LayerNorm(e + p + t): Megatron-BERT normalises before each sublayer." in first
    assert "last hidden state" not in first


def test_the_heads_table_leaves_out_entropy_and_distance_where_it_cannot_fit_and_says_so():
    measured = commands.heads(LONG, load_model(BERT))  # distances past 10, as a long text's are
    labels = np.full(measured.labels.shape, "delimiter-sink", dtype=object)  # the longest label
    result = dataclasses.replace(measured, labels=labels)
    wide = render_text(views.view(result), width=140)
    assert widest_line(wide) <= 140 and "head     H H/ln n  dist self" in wide and "Left out" not in wide
    assert " dup  ind pattern" in wide
    narrow = render_text(views.view(result), width=80)
    assert widest_line(narrow) <= 80 and "head  H/ln n  dist self prev" in narrow
    assert "Left out to fit 80 columns: H (a wider terminal or --width shows it;" in " ".join(narrow.split())
    by_entropy = render_text(views.view(commands.sort_heads(result, "entropy")), width=80)  # never the sort's column
    assert widest_line(by_entropy) <= 80 and "Sorted by H, the largest first." in by_entropy
    assert "head     H H/ln n self" in by_entropy
    assert "Left out to fit 80 columns: dist (" in " ".join(by_entropy.split())


def test_the_induction_test_view_shows_its_tokens_and_what_it_ran():
    result = commands.sort_heads(commands.induction(load_model(BERT)), "induction")
    text = " ".join(render_text(views.view(result), width=100).split())
    copy = " ".join(t.text for t in result.induction_test.copy)
    said = "Induction test: 50 random tokens of the vocabulary (seed 0), then the same 50 again, between [CLS] and"
    assert said in text
    assert f"Random tokens: {copy} " in text and "Sorted by ind, the largest first." in text
    rows = [line.split() for line in render_text(views.view(result), width=100).splitlines() if line.startswith("L")]
    scores = [float(row[-2]) for row in rows]
    assert len(rows) == 8 and scores == sorted(scores, reverse=True)


def test_compare_of_two_checkpoints_names_both_and_pairs_keys_by_position():
    model = load_model(BERT)
    text = " ".join(render_text(views.view(commands.compare_models(SENTENCE, model, model, "cat")), width=120).split())
    assert f"Text: {SENTENCE} A: {BERT} (bert)" in text and f"B: {BERT} (bert)" in text
    assert "How the attention of “cat” (token 2) changes from checkpoint A to B, head by head" in text
    assert "No partner" not in text and "No head changed; aligned, in L0 H0:" in text


def _flat(run) -> str:
    return " ".join(run.stdout.split())


@pytest.mark.parametrize("width", ["80", "140"])
def test_a_heatmap_of_norms_says_what_they_are_and_its_shades_end_at_the_largest_drawn(cli, width):
    """Norms are no weights: the view says what they are, never that rows sum to 1, and its scale runs from 0
    to the largest drawn (the shades' edges are shares of it), the same for every head drawn."""
    document = cli("heatmap", PRONOUN, "--model", BERT, "--layer", "1", "--measure", "norms", "--json").json()
    largest = np.array(document["attention"])[1].max()
    run = cli(
        "heatmap", PRONOUN, "--model", BERT, "--layer", "1", "--measure", "norms", "--no-values", env={"COLUMNS": width}
    )
    assert run.code == 0 and widest_line(run.stdout) <= int(width)
    text = _flat(run)
    assert "‖αv W_O‖ norms (Kobayashi et al., 2020): how much each key adds to a head's output" in text
    assert "sums to 1" not in text and "a row need not sum to 1" in text
    edges = " ".join(
        f"{shade} ≥{edge * largest:.3g}" for shade, edge in zip("░▒▓█", (0.01, 0.05, 0.2, 0.5), strict=True)
    )
    assert text.count(f"‖αv W_O‖: {edges}") == 4  # under each of the layer's heads


def test_a_heatmap_of_norms_writes_each_norm_in_its_cell(cli):
    document = cli("heatmap", SENTENCE, "--model", GPT2, "--head", "1", "--measure", "norms", "--json").json()
    row = np.array(document["attention"])[0, 1, -1]
    shown = cli("heatmap", SENTENCE, "--model", GPT2, "--head", "1", "--measure", "norms", env={"COLUMNS": "140"})
    last = shown.stdout.strip().splitlines()[-1]
    assert last.split()[2:] == [f"{norm:.2f}" for norm in row]


def test_query_ranks_heads_by_norm_and_says_so(cli):
    run = cli("query", PRONOUN, "--token", "it", "--model", BERT, "--measure", "norms", "--top", "3")
    document = cli("query", PRONOUN, "--token", "it", "--model", BERT, "--measure", "norms", "--json").json()
    text = _flat(run)
    assert "ranked by the norm on its strongest key" in text and "Norms ‖αv W_O‖ (Kobayashi et al., 2020)" in text
    assert "# head top key norm" in text
    first = document["heads"][0]
    assert f"1 L{first['layer']} H{first['head']} {first['top']['text']} {first['top']['weight']:.2f}" in text


def test_the_other_views_of_norms_say_what_they_made_of_them(cli):
    heads = _flat(cli("heads", PRONOUN, "--model", BERT, "--measure", "norms"))
    assert "Of norms ‖αv W_O‖ (Kobayashi et al., 2020)" in heads and "each row divided by its sum" in heads
    rollout = _flat(cli("rollout", PRONOUN, "--model", BERT, "--measure", "norms"))
    assert (
        "Of ‖αv W_O‖ norms (Kobayashi et al., 2020)" in rollout and "each head's rows divided by their sums" in rollout
    )
    grid = _flat(cli("model", PRONOUN, "--model", BERT, "--measure", "norms"))
    assert "each square is one head's 16 × 16 norms" in grid and "‖αv W_O‖: ░" in grid
    for text in (heads, rollout, grid):
        assert "weights: ░" not in text


def _attribution(name: str = "phi", **options):
    return commands.attribute(PRONOUN, load_model(str(FIXTURES / name)), **options)


@pytest.mark.parametrize("width", [80, 140])
def test_attribution_ranks_heads_each_way_and_draws_every_head_on_a_scale_centred_on_0(width):
    result = _attribution()
    text = render_text(views.view(result, top=3), width)
    assert widest_line(text) <= width
    up = [result.components[i] for i in result.ranking if result.contributions[i] > 0][:3]
    down = [result.components[i] for i in reversed(result.ranking) if result.contributions[i] < 0][:3]
    for rank, component in enumerate(up, start=1):
        value = result.contributions[result.components.index(component)]
        assert re.search(rf"\b{rank}\s+L{component.layer} H{component.head}\s+\+{value:.3f}", text), text
    for component in down:
        assert f"L{component.layer} H{component.head}" in text
    limit = np.abs([v for c, v in zip(result.components, result.contributions, strict=True) if c.kind != "bias"])
    assert f"pushes down -{limit.max():.2f} ◀ 0 ▶ +{limit.max():.2f} pushes up" in text
    assert re.search(r"^\s+H0\s+H1\s+H2\s+H3\s+b_O\s+mlp", text, re.MULTILINE)  # the grid's columns
    first_layer = [v for c, v in zip(result.components, result.contributions, strict=True) if c.layer == 0]
    assert " ".join(f"{v:+.2f}" for v in first_layer) in text  # its heads, b_O and mlp, signed, without colour
    assert f"add up to {result.logit:.3f}" in text and "\x1b" not in text


def test_attribution_says_a_soft_capped_logit_is_before_its_cap_and_names_versus():
    text = " ".join(render_text(views.view(_attribution("gemma2", versus="#4")), 100).split())  # lines wrapped
    assert "caps its logits at 30" in text and "before the cap" in text
    assert "less that of" in text and "(#4)" in text and "a logit difference" in text


def test_attribution_grid_narrows_to_bars_and_marks_with_colour_or_without():
    from attncli.widgets.diverging import DivergingGrid

    values = np.array([[0.5, -0.25, 0.01, -1.0]])
    grid = DivergingGrid(values, ["L0"], ["H0", "H1", "H2", "mlp"])
    assert render_text(grid, 40).splitlines()[1] == "L0 +0.50 -0.25 +0.01 -1.00"
    assert render_text(grid, 19).splitlines()[1] == "L0 +█  -▄  +   -██"
    assert render_text(grid, 12).splitlines() == ["   0 1 2 p", "L0 ▲ - · ▼"]
    coloured = render_text(grid, 40, color_system="truecolor")
    assert "48;2;" in coloured and ANSI.sub("", coloured).splitlines()[1] == "L0 +0.50 -0.25 +0.01 -1.00"


def test_the_lens_grid_is_a_layer_a_row_and_crops_what_the_width_cannot_hold():
    model = load_model(str(FIXTURES / "llama"))
    result = commands.lens(LONG[:200], model)
    text = render_text(views.view(result), width=80)
    rows = [line.split()[0] for line in text.splitlines() if line.startswith(("embeddings", "L"))]
    assert rows == ["embeddings", "L0", "L1", "L2"]
    tokens = len(result.tokens)
    assert f"(showing positions 0–12 of {tokens}; the width holds 13: --tokens 13:26 for the next" in text
    assert "the last row, L2, is the model's own prediction" in text
    assert "probability: ░ ≥0.01  ▒ ≥0.05  ▓ ≥0.2  █ ≥0.5" in text  # without colour, each cell's shade
    assert widest_line(text) <= 80
    wide = render_text(views.view(result, positions=slice(-5, None)), width=140)
    assert f"(showing positions {tokens - 5}–{tokens - 1} of {tokens}; --tokens A:B chooses others)" in wide
    last = next(line for line in wide.splitlines() if line.startswith("L2"))
    cells = [last[11 + 8 * i : 11 + 8 * i + 6].rstrip() for i in range(5)]  # 8 characters a cell: token, shade
    assert cells == [abbreviate(predicted_label(result, int(i)), 6) for i in result.ids[-1, -5:, 0]]


def test_the_lens_grid_colours_each_cell_by_its_probability():
    from attncli.widgets.heatmap import colour_of

    model = load_model(str(FIXTURES / "qwen2"))
    result = commands.lens(SENTENCE, model)
    text = render_text(views.view(result), width=120, color_system="truecolor")
    red, green, blue = colour_of(float(result.probabilities[-1, -1, 0])).get_truecolor()
    assert f"48;2;{red};{green};{blue}m" in text and "probability  " in ANSI.sub("", text)


def test_the_continuation_is_shown_apart_from_the_prompt_with_each_new_token_s_probability():
    model = load_model(str(FIXTURES / "gpt2"))
    result = commands.generate(SENTENCE, model, max_new_tokens=3)
    text = render_text(views.view(result), width=100)
    prompt = len(result.run.tokens) - 3
    assert f"Prompt: {SENTENCE}  ({prompt} tokens)" in text
    assert f"Continuation: {result.continuation}  (tokens {prompt} to {prompt + 2})" in text
    assert "3 new tokens, as many as --max-new-tokens asked for" in text
    for token, probability in zip(result.generated, result.probabilities, strict=True):
        assert re.search(rf"^{token.index} .* {token.id} +{number(probability)} ", text, re.M)
