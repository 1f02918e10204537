"""schema.py: every command's JSON output valid against its JSON Schema, and `attncli schema` printing them."""

import json

import jsonschema
import pytest
from helpers import BERT, FIXTURES, GPT2, SENTENCE

from attncli.schema import schemas

EVERY_COMMAND = {
    "explain": ["explain", SENTENCE, "--json"],
    "explain-checkpoint": ["explain", "The cat sat.", "--model", BERT, "--json"],
    "heatmap": ["heatmap", SENTENCE, "--model", GPT2, "--json"],
    "tokenize": ["tokenize", SENTENCE, "--model", BERT, "--json"],
    "embed": ["embed", SENTENCE, "--json"],
    "similar": ["similar", "king", "--json"],
    "softmax": ["softmax", "2", "1", "0.5", "--json"],
    "dot": ["dot", "1,2,3", "4,5,6", "--json"],
    "dot-words": ["dot", "king", "queen", "--json"],
    "query": ["query", "The cat sat on the mat.", "--token", "cat", "--model", BERT, "--json"],
    "compare": ["compare", "The cat sat.", "The cat sat down.", "--token", "cat", "--json"],
    "heads": ["heads", "The cat sat on the mat.", "--model", BERT, "--json"],
    "model": ["model", SENTENCE, "--json"],
    "rollout": ["rollout", SENTENCE, "--token", "cat", "--json"],
    "explain-decoder": ["explain", SENTENCE, "--model", str(FIXTURES / "gemma2"), "--json"],
    "heatmap-decoder": ["heatmap", SENTENCE, "--model", str(FIXTURES / "llama"), "--json"],
    "heads-decoder": ["heads", SENTENCE, "--model", str(FIXTURES / "qwen2"), "--json"],
    "heatmap-layer-ropes": ["heatmap", SENTENCE, "--model", str(FIXTURES / "gemma3"), "--json"],
    "explain-clipped": ["explain", SENTENCE, "--model", str(FIXTURES / "olmo"), "--json"],
    "explain-whole-qk-norm": ["explain", SENTENCE, "--model", str(FIXTURES / "olmo2"), "--json"],
    "heatmap-layers-without-rope": ["heatmap", SENTENCE, "--model", str(FIXTURES / "smollm3"), "--json"],
    "explain-longrope": ["explain", SENTENCE, "--model", str(FIXTURES / "phi3-longrope"), "--json"],
    "explain-experts": ["explain", SENTENCE, "--model", str(FIXTURES / "qwen2-moe"), "--json"],
    "heatmap-experts": ["heatmap", SENTENCE, "--model", str(FIXTURES / "mixtral"), "--json"],
    "explain-alibi": ["explain", SENTENCE, "--model", str(FIXTURES / "falcon-alibi"), "--json"],
    "explain-projected": ["explain", SENTENCE, "--model", str(FIXTURES / "opt-post-norm"), "--json"],
    "explain-sinks": ["explain", SENTENCE, "--model", str(FIXTURES / "gpt-oss-mxfp4"), "--json"],
    "heads-sinks": ["heads", SENTENCE, "--model", str(FIXTURES / "gpt-oss"), "--json"],
    "explain-adjacent-rope": ["explain", SENTENCE, "--model", str(FIXTURES / "cohere"), "--json"],
    "explain-disentangled": ["explain", SENTENCE, "--model", str(FIXTURES / "deberta-v3"), "--json"],
    "explain-convolution": ["explain", SENTENCE, "--model", str(FIXTURES / "deberta-v2"), "--json"],
    "explain-relative-bias": ["explain", SENTENCE, "--model", str(FIXTURES / "mpnet"), "--json"],
    "explain-shared-layers": ["explain", SENTENCE, "--model", str(FIXTURES / "albert-groups"), "--json"],
    "explain-projected-embeddings": ["explain", SENTENCE, "--model", str(FIXTURES / "electra"), "--json"],
    "heads-pre-norm-encoder": ["heads", SENTENCE, "--model", str(FIXTURES / "megatron-bert"), "--json"],
    "heads-induction": ["heads", "--induction", "--model", str(FIXTURES / "llama"), "--sort", "induction", "--json"],
    "heads-sorted": ["heads", SENTENCE, "--sort", "pattern", "--json"],
    "compare-checkpoints": ["compare", "The cat sat.", "--token", "cat", "--model", BERT, "--model", BERT, "--json"],
    "heatmap-norms": ["heatmap", SENTENCE, "--model", GPT2, "--measure", "norms", "--json"],
    "model-norms": ["model", SENTENCE, "--measure", "norms", "--json"],
    "query-norms": [
        "query",
        "The cat sat on the mat.",
        "--token",
        "cat",
        "--model",
        BERT,
        "--measure",
        "norms",
        "--json",
    ],
    "heads-norms": ["heads", SENTENCE, "--model", str(FIXTURES / "gpt-oss"), "--measure", "norms", "--json"],
    "rollout-norms": ["rollout", SENTENCE, "--token", "cat", "--measure", "norms", "--json"],
    "compare-checkpoints-norms": [
        *("compare", "The cat sat.", "--token", "cat", "--model", str(FIXTURES / "gpt-oss")),
        *("--model", str(FIXTURES / "gpt-oss"), "--measure", "norms", "--json"),
    ],
    "predict-decoder": ["predict", SENTENCE, "--model", str(FIXTURES / "qwen2"), "--json"],
    "predict-masks": ["predict", "The [MASK] sat on the [MASK].", "--model", str(FIXTURES / "bert-mlm"), "--json"],
    "attribute": ["attribute", SENTENCE, "--model", str(FIXTURES / "phi"), "--json"],
    "attribute-versus-capped": ["attribute", SENTENCE, "--model", str(FIXTURES / "gemma2"), "--versus", "#4", "--json"],
    "lens": ["lens", SENTENCE, "--model", str(FIXTURES / "llama"), "--top", "3", "--json"],
    "lens-projected-out": ["lens", SENTENCE, "--model", str(FIXTURES / "opt-post-norm"), "--json"],
    "generate": ["generate", SENTENCE, "--model", str(FIXTURES / "qwen2"), "--max-new-tokens", "3", "--json"],
    "heatmap-kept": ["heatmap", SENTENCE, "--model", GPT2, "--layers", "1:", "--heads", "0,2", "--json"],
    "model-kept": ["model", SENTENCE, "--layers", "0", "--heads", "1:3", "--measure", "norms", "--json"],
    "explain-kept": ["explain", SENTENCE, "--model", GPT2, "--layers", "1:", "--heads", "0,2", "--json"],
    "rollout-kept": ["rollout", SENTENCE, "--model", GPT2, "--layers", "1:", "--heads", "0,2", "--json"],
    "compare-kept": [
        "compare",
        SENTENCE,
        "The cat sat on a mat",
        "--token",
        "cat",
        "--model",
        BERT,
        "--heads",
        "1:3",
        "--json",
    ],
    "generate-kept": [
        "generate",
        SENTENCE,
        "--model",
        str(FIXTURES / "qwen2"),
        "--max-new-tokens",
        "2",
        "--layers",
        "1",
        "--json",
    ],
}


@pytest.mark.parametrize("case", list(EVERY_COMMAND))
def test_every_json_output_matches_its_schema(cli, case):
    run = cli(*EVERY_COMMAND[case])
    assert run.code == 0, run.stderr
    document = run.json()
    schema = schemas()[document["command"]]
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)


def test_the_schema_command_prints_them(cli):
    every = json.loads(cli("schema").stdout)
    assert set(every) == set(schemas())
    assert json.loads(cli("schema", "rollout").stdout)["title"] == "attncli rollout --json"
    assert cli("schema", "frobnicate").code == 2


@pytest.mark.parametrize("case", [case for case in EVERY_COMMAND if case.endswith("-norms")])
def test_a_document_of_norms_says_so_and_one_of_weights_has_no_measure(cli, case):
    assert cli(*EVERY_COMMAND[case]).json()["measure"] == "norms"
    weights = [argument for argument in EVERY_COMMAND[case] if argument not in ("--measure", "norms")]
    assert "measure" not in cli(*weights).json()
