"""Time one forward pass with every layer's attention, in numpy or in torch, weights in memory.

    python bench/forward.py numpy CHECKPOINT_DIR   # in attncli's venv
    python bench/forward.py torch CHECKPOINT_DIR   # in the peer's venv

Prints "TOKENS MILLISECONDS" for texts of 128 and 512 tokens: the best of ten runs, after a
warm-up, with each library's default threads. The texts are the checkpoint's texts.json
when it has one (the decoder benchmark's), else "word" repeated between [CLS] and [SEP]
(all-MiniLM-L6-v2). Both sides compute in float32; attncli's layers are read once and kept,
as torch's are, so that reading them from disk is not part of the time; attncli's OpenBLAS and
allocator are set as the attncli command sets them.
"""

import json
import sys
import time
from pathlib import Path

LENGTHS = (128, 512)
RUNS = 10


def texts(directory: str) -> dict[int, str]:
    given = Path(directory) / "texts.json"
    if given.is_file():
        return {int(length): text for length, text in json.loads(given.read_text()).items()}
    return {length: " ".join(["word"] * (length - 2)) for length in LENGTHS}


def best_of(run) -> float:
    run()
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def numpy_forward(directory: str) -> None:
    import os

    from attncli import _BLAS_SPIN

    # As the attncli command does, before numpy loads OpenBLAS: idle BLAS threads that spin for a tenth of a
    # second after each product take a core from the softmax and activations that run between products.
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", _BLAS_SPIN)
    from attncli.allocator import keep_freed_memory, no_huge_pages
    from attncli.models import load_model

    keep_freed_memory()  # as the attncli command does
    no_huge_pages()
    model = load_model(directory)
    if hasattr(model.weights.blocks, "keep"):
        model.weights.blocks.keep()
    for length, text in texts(directory).items():
        tokens = model.tokenize(text)
        assert len(tokens) == length, (len(tokens), length)
        print(length, f"{best_of(lambda tokens=tokens: model.run(tokens, keep_steps=False)):.1f}")


def torch_forward(directory: str) -> None:
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    model = AutoModel.from_pretrained(directory, attn_implementation="eager", dtype=torch.float32).eval()
    tokenizer = Tokenizer.from_file(f"{directory}/tokenizer.json")
    tokenizer.no_truncation()  # MiniLM's file truncates at 128 tokens; attncli reads every token
    for length, text in texts(directory).items():
        ids = torch.tensor([tokenizer.encode(text).ids])
        assert ids.shape[1] == length, (ids.shape, length)
        with torch.no_grad():
            print(length, f"{best_of(lambda ids=ids: model(input_ids=ids, output_attentions=True)):.1f}")


if __name__ == "__main__":
    {"numpy": numpy_forward, "torch": torch_forward}[sys.argv[1]](sys.argv[2])
