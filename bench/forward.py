"""Time one forward pass of all-MiniLM-L6-v2 with every layer's attention, in numpy or in torch.

    python bench/forward.py numpy CHECKPOINT_DIR   # in attncli's venv
    python bench/forward.py torch CHECKPOINT_DIR   # in the peer's venv

Prints "TOKENS MILLISECONDS" for 128 and 512 tokens: the best of ten runs, after a warm-up,
with each library's default threads.
"""

import sys
import time

LENGTHS = (128, 512)
RUNS = 10


def best_of(run) -> float:
    run()
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def numpy_forward(directory: str) -> None:
    from attncli.allocator import keep_freed_memory
    from attncli.models import load_model

    keep_freed_memory()  # as the attncli command does
    model = load_model(directory)
    for length in LENGTHS:
        tokens = model.tokenize(" ".join(["word"] * (length - 2)))  # [CLS] word ... [SEP]
        print(length, f"{best_of(lambda tokens=tokens: model.run(tokens, keep_steps=False)):.1f}")


def torch_forward(directory: str) -> None:
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(directory, attn_implementation="eager").eval()
    for length in LENGTHS:
        ids = torch.full((1, length), 2773)  # "word"
        ids[0, 0], ids[0, -1] = 101, 102
        with torch.no_grad():
            print(length, f"{best_of(lambda ids=ids: model(input_ids=ids, output_attentions=True)):.1f}")


if __name__ == "__main__":
    {"numpy": numpy_forward, "torch": torch_forward}[sys.argv[1]](sys.argv[2])
