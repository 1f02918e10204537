"""JSON Schemas (draft 2020-12) of every command's JSON output, printed by `attncli schema`.

The schema version is the document's "schema" field, attncli/v1. Fields may be
added within v1; a change that removes or retypes one makes v2.
"""

from attncli.analysis import HEAD_COLUMNS, PATTERNS, STATISTICS, Fusion
from attncli.architectures import ROPE_TYPES, SUPPORTED
from attncli.errors import BadInput
from attncli.results import SCHEMA

__all__ = ["DRAFT", "command_schema", "schemas"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"

NUMBER = {"type": "number"}
INDEX = {"type": "integer", "minimum": 0}
STRING = {"type": "string"}
NULLABLE_NUMBER = {"type": ["number", "null"]}
ANY_ID = {"description": "batch --id: the value of that field of the input line, as it was"}


def _array(items: dict, depth: int = 1) -> dict:
    """An array nested `depth` deep whose innermost items are `items`."""
    schema = items
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


def _object(required: dict, optional: dict | None = None) -> dict:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
        "additionalProperties": False,
    }


TOKEN = _object(
    {
        "index": INDEX,
        "id": INDEX,
        "text": STRING,
        "start": INDEX,
        "end": INDEX,
        "special": {"type": "boolean"},
    }
)
TOKEN_REF = _object({"index": INDEX, "text": STRING})
# A query's token or target: one token, or a word split into several (their indices).
QUERY_REF = {"oneOf": [TOKEN_REF, _object({"indices": _array(INDEX), "text": STRING})]}
TARGET = _object({"index": INDEX, "text": STRING, "weight": NUMBER})
ROTARY = {
    "type": "object",
    "required": ["type", "theta", "dims", "scaling"],
    "properties": {
        "type": {"const": "rotary"},
        "scaling": {"enum": list(ROPE_TYPES)},
        "pairing": {"enum": ["adjacent"], "description": "left out: dimension i turns with i + n/2"},
    },
}
MODEL = _object(
    {
        "name": STRING,
        "type": {"enum": ["sample", *SUPPORTED]},
        "layers": INDEX,
        "heads": INDEX,
        "d_model": INDEX,
        "d_head": INDEX,
        "max_length": {"type": ["integer", "null"]},
        "causal": {"type": "boolean"},
    },
    {
        "positions": {"type": "boolean"},
        "seed": INDEX,
        "path": STRING,
        "family": STRING,
        "kv_heads": INDEX,
        "norm": {"enum": ["layer", "rms"]},
        "position_embeddings": {
            "oneOf": [
                {"const": "learned"},
                ROTARY,
                {**_array({"oneOf": [ROTARY, {"type": "null"}]}), "description": "each layer's; null: no RoPE"},
                {
                    "type": "object",
                    "required": ["type", "slopes", "scaled"],
                    "properties": {"type": {"const": "alibi"}, "slopes": _array(NUMBER), "scaled": {"type": "boolean"}},
                },
                {
                    **_object(
                        {
                            "type": {"const": "disentangled"},
                            "position_terms": _array({"enum": ["c2p", "p2c"]}),
                            "span": INDEX,
                            "buckets": INDEX,
                            "max_relative": INDEX,
                            "shared_key": {"type": "boolean"},
                            "normed": {"type": "boolean"},
                            "absolute": {"type": "boolean"},
                        }
                    ),
                    "description": "disentangled attention's relative positions: each score adds the position "
                    "terms listed (content to position, position to content) over a table of 2·span relative "
                    "positions, distances past buckets/2 in log buckets up to max_relative where buckets is above 0; "
                    "the table through the layers' own W_Q and W_K where shared_key, LayerNormed where normed; and "
                    "absolute: a learned table of absolute positions added to the embeddings too",
                },
            ]
        },
        "sliding_windows": {"oneOf": [{"type": "null"}, _array({"type": ["integer", "null"]})]},
        "soft_cap": NULLABLE_NUMBER,
        "relative_position_bias": {
            **_object({"buckets": INDEX, "max_distance": INDEX}),
            "description": "a relative position bias on every layer's scaled scores: each head's learned number for "
            "the bucket of the key's distance from the query (see explain --json's steps.relative_position_bias)",
        },
        "shared_layers": {
            **_array(_array(INDEX)),
            "description": "for a model whose layers share their weights: each layer's [group, layer within the "
            "group] of the stored weights it runs",
        },
        "attention_sinks": {
            "const": True,
            "description": "each head has a learned sink logit that joins every row's softmax and is dropped: "
            "a row of its attention sums to 1 less the sink's share (GPT-OSS)",
        },
        "experts": _object(
            {
                "experts": INDEX,
                "per_token": INDEX,
                "renormalized": {"type": "boolean"},
                "shared_expert": {"type": "boolean"},
                "layers": {**_array(INDEX), "description": "the layers that are mixtures of experts"},
            },
            {
                "softmax_after_top_k": {
                    "const": True,
                    "description": "the top k of the router's logits, then softmax over them (GPT-OSS)",
                },
                "swiglu_alpha": {**NUMBER, "description": "the experts' clamped SwiGLU (GPT-OSS): its sigmoid's gain"},
                "swiglu_limit": {**NUMBER, "description": "the bound the clamped SwiGLU clamps its gate and up to"},
            },
        ),
    },
)
ATTENTION = {
    **_array(NUMBER, 4),
    "description": "[layer][head][query][key]; each row sums to 1, less its head's sink's share where "
    "model.attention_sinks is true; where measure is norms, ‖α_ij v_j W_O^h‖ of 0 or more, rows summing to anything",
}
RUN = {"text": STRING, "model": MODEL, "tokens": _array(TOKEN), "attention": ATTENTION}
# Only where --layers or --heads kept some: the layers and heads the document's attention, rollout, statistics
# or steps are of.
SELECTION = {
    "layers": {
        **_array(INDEX),
        "description": "the model's layers kept (--layers), in order: those of the attention, rollout, statistics "
        "or steps, by their place",
    },
    "heads": {
        **_array(INDEX),
        "description": "the model's heads kept of each layer (--heads), in order: those of the attention or "
        "statistics, by their place (a rollout fuses them; explain's steps hold every head of a kept layer)",
    },
}
# Only where --measure norms was asked; without it, the document's numbers are the attention weights.
MEASURE = {
    "measure": {
        "const": "norms",
        "description": "the attention (a query's weights, a rollout's, the statistics) is of ‖α_ij v_j W_O^h‖ "
        "(Kobayashi et al., 2020): each key's weight times the length of its value through its head's rows of the "
        "output projection, the output bias left out, before any norm after the attention output; where a "
        "distribution is needed (heads, rollout), each row divided by its sum",
    }
}
SUMMARY = _array(
    _object(
        {
            "index": INDEX,
            "text": STRING,
            "heads": _array(_object({"head": INDEX, "index": INDEX, "text": STRING, "weight": NUMBER})),
            "mean": TARGET,
        }
    )
)
STEPS = _object(
    {
        "embeddings": _array(NUMBER, 2),
        "positions": {"oneOf": [_array(NUMBER, 2), {"type": "null"}]},
        "input": _array(NUMBER, 3),
        "q": _array(NUMBER, 4),
        "k": _array(NUMBER, 4),
        "v": _array(NUMBER, 4),
        "scores": _array(NUMBER, 4),
        "scaled": _array(NUMBER, 4),
        "head_outputs": _array(NUMBER, 4),
        "concat": _array(NUMBER, 3),
        "attention_output": _array(NUMBER, 3),
        "output": {
            **_array(NUMBER, 2),
            "description": "[token][dimension] the model's output, after its final norm where it has one; where "
            "--layers kept some, the pass stops after the last kept: that layer's output, through the final norm",
        },
    },
    # q, k and v as projected, where norms over the whole projections or clip_qkv change them
    {
        "projected": _object({name: _array(NUMBER, 3) for name in ("q", "k", "v")}),
        "experts": {
            **_array(
                {
                    "oneOf": [
                        {"type": "null"},
                        _object(
                            {"experts": _array(INDEX, 2), "weights": _array(NUMBER, 2)},
                            {"shared_gate": _array(NUMBER)},
                        ),
                    ]
                }
            ),
            "description": "per layer of a mixture-of-experts model, [token][k] the experts each token was "
            "routed to, most probable first, and their weights (and the shared expert's gate per token); "
            "null for a dense layer",
        },
        "alibi": {
            **_array(NUMBER, 2),
            "description": "[head][key] ALiBi's bias for key j, m·j (or m·j / √d_k), the same in every layer; "
            "query i's scaled scores got alibi[j] - alibi[i]",
        },
        "normed_embeddings": {
            **_array(NUMBER, 2),
            "description": "[token][dimension] the word, position and token type embeddings summed and normed, "
            "before their projection into the model's width (layer 0's input: input[0] where layer 0 is kept), for "
            "a model that projects them so",
        },
        "relative_position_buckets": {
            **_array(INDEX, 2),
            "description": "[query][key] the bucket of the key's distance from the query, for a model with a "
            "relative position bias",
        },
        "relative_position_bias": {
            **_array(NUMBER, 3),
            "description": "[head][query][key] the bias each head added to its scaled scores, the same in every "
            "layer: its learned number for relative_position_buckets[query][key]",
        },
        "sinks": {
            **_array(NUMBER, 2),
            "description": "[layer][head] the learned sink logit of each head, for a model with attention sinks "
            "(GPT-OSS): it joins each row's softmax as one more key, and its share is dropped",
        },
        "c2p": {
            **_array(NUMBER, 4),
            "description": "[layer][head][query][key] disentangled attention's content-to-position term, "
            "unscaled: the query's content against the key of the key's position relative to it; scores holds "
            "the content-to-content term, and scaled the terms' sum divided by √(d_k · terms)",
        },
        "p2c": {
            **_array(NUMBER, 4),
            "description": "[layer][head][query][key] disentangled attention's position-to-content term, "
            "unscaled: the key's content against the query of the query's position relative to it",
        },
        "relative_positions": {
            **_array({"type": "integer"}, 2),
            "description": "[query][key] disentangled attention: the relative position i − j its position terms read, "
            "log-bucketed and clipped to the table as the model has them",
        },
        "convolution": {
            **_array(NUMBER, 2),
            "description": "[token][d] the convolution beside the first layer, of its input, through its activation: "
            "the first layer's output is the LayerNorm of it added to the layer's own output",
        },
    },
)
EXPLAIN = {**RUN, "focus": TOKEN_REF, "layer": INDEX, "include_special": {"type": "boolean"}, "summary": SUMMARY}
HEAD_STATISTICS = {name: NULLABLE_NUMBER for name in STATISTICS}
# predict's list: a token id (its string null past the tokenizer's vocabulary), its logit and its probability
PREDICTIONS = _array(
    _object({"id": INDEX, "token": {"type": ["string", "null"]}, "logit": NUMBER, "probability": NUMBER})
)
OPERAND = _object({"vector": _array(NUMBER)}, {"word": STRING, "id": INDEX})


VOCABULARY_TOKEN = _object(
    {"id": INDEX, "token": {"type": ["string", "null"], "description": "the vocabulary's piece; null: none for the id"}}
)
COMPONENT = _object(
    {
        "name": {**STRING, "description": "embed, L3H5 (a head), L3 attn bias, L3 mlp (or mixture of experts), bias"},
        "layer": {"type": ["integer", "null"], "minimum": 0},
        "head": {"type": ["integer", "null"], "minimum": 0, "description": "null where the component is no head"},
        "contribution": NUMBER,
    }
)
# One of a logit lens cell's most probable tokens (token: null for a row of the head past the tokenizer's vocabulary).
PREDICTION = _object({"id": INDEX, "token": {"type": ["string", "null"]}, "probability": NUMBER, "logit": NUMBER})
LENS = {
    "text": STRING,
    "model": MODEL,
    "tokens": _array(TOKEN),
    "top": {**INDEX, "minimum": 1, "description": "how many of the most probable tokens each position lists (--top)"},
    "lens": {
        **_array(
            _object(
                {
                    "layer": {"type": ["integer", "null"], "minimum": 0},
                    "positions": {
                        **_array(PREDICTION, 2),
                        "description": "[position][rank]: the most probable tokens there, the most probable first",
                    },
                }
            )
        ),
        "description": "the logit lens: a row per layer's residual stream, through the final norm and the "
        "unembedding; layer null is the embeddings, then layers 0 to L-1, the last the model's own prediction",
    },
}
GENERATE = {
    **RUN,
    "prompt": STRING,
    "prompt_tokens": {**INDEX, "description": "the first tokens are the prompt's, the rest were generated"},
    "continuation": {**STRING, "description": "the generated text: text is prompt + continuation"},
    "generated": _array(
        _object(
            {"index": INDEX, "id": INDEX, "token": STRING, "probability": NUMBER},
        )
    ),
    "stopped": {"enum": ["end_of_sequence", "max_new_tokens"]},
}


def _document(command: str, fields: dict, optional: dict | None = None) -> dict:
    return {
        "$schema": DRAFT,
        "$id": f"https://attncli.invalid/schema/v1/{command}.json",
        "title": f"attncli {command} --json",
        **_object({"schema": {"const": SCHEMA}, "command": {"const": command}, **fields}, optional),
    }


def schemas() -> dict[str, dict]:
    """Every command's schema, by command name."""
    return {
        "explain": _document("explain", {**EXPLAIN, "steps": STEPS}, SELECTION),
        "heatmap": _document("heatmap", RUN, {**MEASURE, **SELECTION}),
        "tokenize": _document("tokenize", {"text": STRING, "model": MODEL, "tokens": _array(TOKEN)}),
        "embed": _document("embed", {"text": STRING, "tokens": _array(TOKEN), "embeddings": _array(NUMBER, 2)}),
        "similar": _document(
            "similar",
            {
                "model": MODEL,
                "word": STRING,
                "id": INDEX,
                "neighbors": _array(_object({"text": STRING, "id": INDEX, "cosine": NUMBER})),
            },
        ),
        "predict": _document(
            "predict",
            {
                "text": STRING,
                "model": MODEL,
                "tokens": _array(TOKEN),
                "predicts": {
                    "enum": ["next", "masked"],
                    "description": "next: the token after each position (a decoder); masked: the token at it",
                },
                "mask": {"type": ["string", "null"], "description": "the tokenizer's mask token; null: a decoder"},
                "vocabulary": {**INDEX, "description": "the ids the softmax runs over: the head's rows"},
                "position": {**TOKEN_REF, "description": "the position asked for (--at), else the last or first mask"},
                "predictions": {**PREDICTIONS, "description": "position's predictions, the most probable first"},
                "positions": {
                    **_array(_object({"index": INDEX, "text": STRING, "predictions": PREDICTIONS})),
                    "description": "every position predicted: the one asked for and each mask token, in order",
                },
            },
        ),
        "softmax": _document(
            "softmax",
            {
                "scores": _array(NUMBER),
                "shifted": _array(NUMBER),
                "exp": _array(NUMBER),
                "probabilities": _array(NUMBER),
            },
        ),
        "dot": _document(
            "dot", {"a": OPERAND, "b": OPERAND, "products": _array(NUMBER), "dot": NUMBER, "cosine": NUMBER}
        ),
        "query": _document(
            "query",
            {
                "text": STRING,
                "model": MODEL,
                "tokens": _array(TOKEN),
                "token": QUERY_REF,
                "include_special": {"type": "boolean"},
                "target": {"oneOf": [*QUERY_REF["oneOf"], {"type": "null"}]},
                "heads": _array(
                    _object({"layer": INDEX, "head": INDEX, "weights": _array(NUMBER), "top": TARGET}),
                ),
            },
            MEASURE,
        ),
        "compare": _document(
            "compare",
            {
                "texts": {**_array(STRING), "minItems": 2, "maxItems": 2},
                "model": MODEL,
                "tokens": _object({"a": _array(TOKEN), "b": _array(TOKEN)}),
                "token": _object({"a": TOKEN_REF, "b": TOKEN_REF}),
                "alignment": _array({"type": "array", "items": {"type": ["integer", "null"]}, "minItems": 2}),
                "unpaired": _object({"a": _array(INDEX), "b": _array(INDEX)}),
                "heads": _array(
                    _object(
                        {
                            "layer": INDEX,
                            "head": INDEX,
                            "tv": NUMBER,
                            "a": {
                                **_array(NUMBER),
                                "description": "the token's row in A, [key]: its weights, or where measure is norms "
                                "their ‖α_ij v_j W_O^h‖ as shares of the row (each divided by the row's sum)",
                            },
                            "b": {**_array(NUMBER), "description": "its partner's row in B, as a"},
                        }
                    )
                ),
            },
            {
                "models": {
                    **_object({"a": MODEL, "b": MODEL}),
                    "description": "compare TEXT --model A --model B: the two checkpoints, on one text (texts holds it "
                    "twice; model is A's)",
                },
                **MEASURE,
            },
        ),
        "heads": _document(
            "heads",
            {
                "model": MODEL,
                "texts": INDEX,
                "text": {"type": ["string", "null"]},
                "rules": _object({"share": NUMBER, "broad_entropy": NUMBER, "patterns": _array(STRING)}),
                "heads": {
                    **_array(
                        _object(
                            {
                                "layer": INDEX,
                                "head": INDEX,
                                **HEAD_STATISTICS,
                                "pattern": {"enum": list(PATTERNS)},
                                "rank": {
                                    "type": "integer",
                                    "minimum": 1,
                                    "description": "the head's place in the order sort asks for (1 first)",
                                },
                            }
                        )
                    ),
                    "description": "every head, layer by layer (heads[layer * heads + head]) whatever sort says",
                },
                "sort": {
                    "oneOf": [{"enum": list(HEAD_COLUMNS)}, {"type": "null"}],
                    "description": "heads --sort: the column the view, the CSV and rank order the heads by; null: "
                    "layer order",
                },
                "induction_test": {
                    "oneOf": [
                        _object({"seed": INDEX, "length": INDEX, "tokens": _array(TOKEN)}),
                        {"type": "null"},
                    ],
                    "description": "heads --induction: the random ids drawn with seed, length of them twice over, "
                    "between the special tokens the tokenizer adds (tokens: the whole sequence run); null for a text",
                },
                # Sums (float64) and counts behind the means, [layer][head] by statistic: they merge (with sums of
                # the same layers and heads, which a run of --layers or --heads names).
                "partial_sums": _object(
                    {
                        "texts": INDEX,
                        "sums": _object({name: _array(NUMBER, 2) for name in HEAD_STATISTICS}),
                        "counts": _object({name: _array(INDEX, 2) for name in HEAD_STATISTICS}),
                    },
                    SELECTION,
                ),
            },
            MEASURE,
        ),
        "model": _document(
            "model",
            {**RUN, "shown": _object({"layers": _array(INDEX), "heads": _array(INDEX)})},
            {**MEASURE, **SELECTION},
        ),
        "rollout": _document(
            "rollout",
            {
                "text": STRING,
                "model": MODEL,
                "tokens": _array(TOKEN),
                "head_fusion": {"enum": [fusion.value for fusion in Fusion]},
                "token": {"oneOf": [TOKEN_REF, {"type": "null"}]},
                "rollout": {
                    **_array(NUMBER, 3),
                    "description": "[layer][query][key]; each row sums to 1; where --layers kept some, of the layers "
                    "kept alone (layers names them), the first's input the identity",
                },
            },
            {**MEASURE, **SELECTION},
        ),
        "batch": {
            "$schema": DRAFT,
            "$id": "https://attncli.invalid/schema/v1/batch.json",
            "title": "attncli batch: one JSON record per line",
            "oneOf": [
                _object(
                    {"schema": {"const": SCHEMA}, "command": {"const": "batch"}, "line": INDEX, **EXPLAIN},
                    {"steps": STEPS, "id": ANY_ID, **SELECTION},
                ),
                _object(
                    {"schema": {"const": SCHEMA}, "command": {"const": "batch"}, "line": INDEX, "error": STRING},
                    {"id": ANY_ID},
                ),
                _object(
                    {
                        "schema": {"const": SCHEMA},
                        "command": {"const": "batch"},
                        "line": INDEX,
                        "text": STRING,
                        "model": MODEL,
                        "tokens": _array(TOKEN),
                        "statistics": {
                            **_object(
                                {
                                    **{name: _array(NULLABLE_NUMBER, 2) for name in STATISTICS},
                                    "pattern": _array({"enum": list(PATTERNS)}, 2),
                                }
                            ),
                            "description": "batch --summary: each of heads --json's per-head fields for this text "
                            "alone, [layer][head]; null where a statistic does not apply",
                        },
                    },
                    {"id": ANY_ID, **SELECTION},
                ),
            ],
        },
        "attribute": _document(
            "attribute",
            {
                "text": STRING,
                "model": MODEL,
                "tokens": _array(TOKEN),
                "position": {**TOKEN_REF, "description": "the token whose next-token logit is attributed"},
                "target": VOCABULARY_TOKEN,
                "versus": {
                    "oneOf": [VOCABULARY_TOKEN, {"type": "null"}],
                    "description": "the logit attributed is the target's less this token's; null: the target's",
                },
                "predicted": {"type": "boolean", "description": "the target is the token the model predicts"},
                "logit": {**NUMBER, "description": "the target's logit (less versus's), before any soft cap"},
                "soft_cap": {
                    **NULLABLE_NUMBER,
                    "description": "the head's soft cap, cap · tanh(z / cap), which is not linear: logit and the "
                    "contributions are of z, before it; null: no cap",
                },
                "components": {
                    **_array(COMPONENT),
                    "description": "each part of the residual stream at the position, through the final norm with its "
                    "scale there frozen, into the logit; in the model's order; they add up to logit",
                },
            },
        ),
        "check": _document(
            "check",
            {
                "text": STRING,
                "model": MODEL,
                "tolerance": NUMBER,
                "passed": {"type": "boolean"},
                "max_difference": NUMBER,
                "heads": _array(_object({"layer": INDEX, "head": INDEX, "max_difference": NUMBER})),
                "cells": _array(
                    _object(
                        {
                            "layer": INDEX,
                            "head": INDEX,
                            "query": INDEX,
                            "key": INDEX,
                            "saved": NUMBER,
                            "now": NUMBER,
                        }
                    )
                ),
            },
            MEASURE,
        ),
        "lens": _document("lens", LENS),
        "generate": _document("generate", GENERATE, SELECTION),
    }


def command_schema(command: str | None) -> dict:
    """The schema of one command, or of all of them (an object keyed by command)."""
    every = schemas()
    if command is None:
        return every
    if command not in every:
        raise BadInput(
            "no schema for {command!r}; commands with {json}: {commands}", command=command, commands=", ".join(every)
        )
    return every[command]
