"""Make the decoder benchmark's checkpoint: random weights in Qwen2.5-0.5B's shape, bf16 on disk.

Run by make bench in its own virtual environment (torch, transformers), once: it writes
DIR/config.json, model.safetensors (about 1 GB), tokenizer.json and texts.json (a text of
128 and one of 512 tokens) into a cache directory outside the repository. Random weights,
drawn small enough that the activations stay finite, as the real checkpoint's shape is what
the timings depend on; there is no network here to fetch the real one.
"""

import json
import sys
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

WORDS = [
    "the",
    "animal",
    "did",
    "not",
    "cross",
    "street",
    "because",
    "it",
    "was",
    "too",
    "tired",
    "wide",
    "cat",
    "sat",
    "on",
    "mat",
    "dog",
    "bird",
]


def tokenizer() -> Tokenizer:
    """A small byte-level BPE tokenizer (Qwen's kind; the real 151,665-token one is not to be had here)."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator([" ".join(WORDS)] * 20, trainer)
    return bpe


def text_of(bpe: Tokenizer, tokens: int) -> str:
    """Words from WORDS, cycled, until the text is exactly `tokens` tokens."""
    words: list[str] = []
    while len(bpe.encode(" ".join(words)).ids) < tokens:
        words.append(WORDS[len(words) * 7 % len(WORDS)])
    while len(bpe.encode(" ".join(words)).ids) > tokens:
        words.pop()
    text = " ".join(words)
    assert len(bpe.encode(text).ids) == tokens, tokens
    return text


def main(directory: Path) -> None:
    import torch  # here, so that make_llama8b.py borrows the tokenizer without torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rope_parameters={"rope_theta": 1000000.0},
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
    )
    save(Qwen2ForCausalLM(config).to(torch.bfloat16), directory, (128, 512))


def save(model, directory: Path, lengths: tuple[int, ...], **options) -> None:
    """`model` saved into `directory` (save_pretrained with `options`) with the tokenizer, and texts.json:
    a text of each of `lengths` tokens."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True, **options)
    bpe = tokenizer()
    bpe.save(str(directory / "tokenizer.json"))
    texts = {str(n): text_of(bpe, n) for n in lengths}
    (directory / "texts.json").write_text(json.dumps(texts) + "\n")
    for extra in directory.glob("generation_config.json"):
        extra.unlink()
    print(f"wrote {directory}", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
