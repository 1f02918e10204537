"""Make the mixture-of-experts benchmark's checkpoint: random weights in Qwen3-30B-A3B's shape, 4 layers, bf16.

Run by make bench in its own virtual environment (torch, transformers), once: it writes
DIR/config.json, the weights (about 5.5 GB, in shards of 4 GB with their index, as the published
checkpoint is sharded), tokenizer.json and texts.json (a text of 128 tokens) into a cache directory
outside the repository. Each layer is the real one: 128 experts of 768, 8 per token, 32 query and
4 key-value heads of 128. Four layers rather than 48 keep the file and the run to minutes; the word
embedding is tied to the output layer, which neither side reads, to leave out 0.6 GB of disk.
save_pretrained writes the experts as published checkpoints carry them, one gate/up/down triple each.
"""

import sys
from pathlib import Path

import torch
from make_decoder import save
from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM


def main(directory: Path) -> None:
    torch.manual_seed(0)
    config = Qwen3MoeConfig(
        vocab_size=151936,
        hidden_size=2048,
        intermediate_size=6144,
        moe_intermediate_size=768,
        num_experts=128,
        num_experts_per_tok=8,
        norm_topk_prob=True,
        num_hidden_layers=4,
        num_attention_heads=32,
        num_key_value_heads=4,
        head_dim=128,
        max_position_embeddings=40960,
        rope_parameters={"rope_theta": 1000000.0},
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.set_default_dtype(torch.bfloat16)  # made in bf16 directly: 11 GB in float32 first would be twice the memory
    save(Qwen3MoeForCausalLM(config), directory, (128,), max_shard_size="4GB")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
