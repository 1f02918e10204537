"""The logit lens's view: each layer's most probable tokens, a layer a row and a position a column."""

from rich.console import Group, RenderableType
from rich.text import Text

from attncli.results import LensResult
from attncli.terminal import token_label
from attncli.views.common import model_line, text_line
from attncli.widgets.lens import LensGrid

__all__ = ["lens_grid", "lens_rows", "lens_view", "predicted_label"]


def lens_rows(layers: int) -> list[str]:
    """The lens's row labels: the embeddings, then L0 to L{layers - 1}."""
    return ["embeddings", *(f"L{layer}" for layer in range(layers))]


def predicted_label(result: LensResult, token_id: int) -> str:
    """A predicted token as the terminal shows it; a row of the head past the tokenizer's vocabulary by its id."""
    piece = result.pieces[token_id]
    return f"#{token_id}" if piece is None else token_label(piece)


def lens_grid(result: LensResult, **options) -> LensGrid:
    """The grid of `result`'s most probable tokens (see LensGrid, which `options` are given to)."""
    tokens = [[predicted_label(result, int(i)) for i in row] for row in result.ids[:, :, 0]]
    inputs = [token_label(token.text) for token in result.tokens]
    return LensGrid(tokens, result.probabilities[:, :, 0], lens_rows(result.model.layers), inputs, **options)


def lens_view(result: LensResult, positions: slice | None = None) -> RenderableType:
    last = f"L{result.model.layers - 1}"
    predicts = "the next token" if result.model.causal else "the token at each position (a masked-LM head)"
    return Group(
        text_line(result.text),
        model_line(result.model),
        Text(
            "The logit lens (nostalgebraist, 2020): each layer's residual stream at each position, read through "
            f"the final norm and the unembedding as the model reads its last. Each cell is the most probable token, "
            f"predicting {predicts}, coloured by its probability; the last row, {last}, is the model's own "
            "prediction. --json has each cell's top tokens (--top K), their probabilities and logits.",
            style="italic",
        ),
        Text(""),
        lens_grid(result, columns=result.window(positions, "shown_tokens")),
    )
