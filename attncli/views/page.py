"""The interactive HTML page of a run (`--export FILE.html`): one self-contained file, its script,
style and data inline, no font or library fetched from anywhere, so it works with no network.

The page has three views of the same weights: a head view (tokens in two columns joined by
lines whose opacity is the weight), a model grid of every layer × head, and a matrix whose cells
give their weight on hover; or of a run's ‖α v W_O‖ norms, on scales from 0 to the largest. The
weights travel rounded (to 1/65535 for a small run, 1/255 past SIXTEEN_BIT_LIMIT numbers, which
keeps a 512-token MiniLM page near 2 MB; norms to as much of their largest), deflated and in
base64; the page says which. Masks come from ModelInfo.mask and the colours from the terminal's viridis
stops, so the page draws what the terminal views draw.
"""

import base64
import html
import json
import zlib
from importlib.resources import files
from string import Template

import numpy as np

from attncli.results import AttentionRun
from attncli.views.common import figure_name, markup_text, scale_top, token_texts
from attncli.widgets.heatmap import LOG_FLOOR, VIRIDIS

__all__ = ["SIXTEEN_BIT_LIMIT", "page_html"]

SIXTEEN_BIT_LIMIT = 1_000_000  # weights (MiniLM at 117 tokens); past this they travel in 8 bits


def _packed(array: np.ndarray) -> str:
    """`array`'s bytes (little-endian), deflated and in base64."""
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return base64.b64encode(zlib.compress(little.tobytes(), 6)).decode()


def page_data(run: AttentionRun, title: str, start: dict, prompt_tokens: int | None = None) -> dict:
    """What the page's script reads: the tokens, the model's shape, the rounded weights, the masks,
    and where it opens (`start`: layer, head, colour scale and, from query, the query token); for a
    generated sequence, how many of its first tokens were the prompt. A run of ‖α v W_O‖ norms travels as
    fractions of its largest norm, which `largest_norm` gives (its scales end there)."""
    weights = run.attention
    largest = scale_top(run, [weights])
    bits = 16 if weights.size <= SIXTEEN_BIT_LIMIT else 8
    top = 2**bits - 1
    fractions = weights if largest == 1.0 else weights / largest
    rounded = np.rint(np.clip(fractions, 0.0, 1.0) * top).astype(np.uint16 if bits == 16 else np.uint8)
    tokens = len(run.tokens)
    masks = None
    if run.model.causal or run.model.windows is not None:  # some layer's queries do not see every key
        every = np.ones((tokens, tokens), dtype=bool)
        layers = [run.model.mask(layer, tokens) for layer in range(run.model.layers)]  # None: every key
        masks = _packed(np.packbits(np.stack([every if mask is None else mask for mask in layers])))
    generated = {} if prompt_tokens is None else {"prompt_tokens": prompt_tokens}
    return {
        **generated,
        "title": title,
        "text": run.text,
        "model": figure_name(run.model),
        "layers": run.model.layers,
        "heads": run.model.heads,
        "tokens": token_texts(run),
        "special": [token.special for token in run.tokens],
        "bits": bits,
        "attention": _packed(rounded),  # [layer][head][query][key]
        "masks": masks,  # [layer][query][key] bits, 1 where the key is seen; null: every key
        "viridis": [[int(c) for c in stop] for stop in VIRIDIS],
        "log_floor": LOG_FLOOR,
        "start": start,
        **({"largest_norm": largest} if run.shows_norms else {}),
    }


def page_html(run: AttentionRun, title: str, start: dict, prompt_tokens: int | None = None) -> str:
    """The whole page: page.html with its style, script and data put in; for a generated sequence
    (`prompt_tokens`: the prompt's), page_prompt.js and .css, which mark where the prompt ends."""
    title = markup_text(title)  # a typed title may hold anything, even what no encoding can write
    assets = files("attncli.views")
    parts = ("page",) if prompt_tokens is None else ("page", "page_prompt")
    style = "\n".join(assets.joinpath(f"{part}.css").read_text(encoding="utf-8") for part in parts)
    script = "\n".join(assets.joinpath(f"{part}.js").read_text(encoding="utf-8") for part in parts)
    # Inside a <script> element "</script" ends it and "<!--" changes how the rest is read: JSON's
    # own escapes for <, > and & keep every such sequence out of the markup, whatever the text holds.
    data = json.dumps(page_data(run, title, start, prompt_tokens), ensure_ascii=False)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    page = Template(assets.joinpath("page.html").read_text(encoding="utf-8"))
    return page.substitute(title=html.escape(title), text=html.escape(run.text), style=style, script=script, data=data)
