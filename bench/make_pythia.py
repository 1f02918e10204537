"""Make the Pythia benchmark's checkpoint: random weights in pythia-410m's shape, float16 on disk.

Run by make bench in the peer's virtual environment (torch, transformers), once: it writes
DIR/config.json, model.safetensors (about 810 MB), tokenizer.json and texts.json (a text of 128
tokens) into a cache directory outside the repository. pythia-410m's shape: 24 layers, d_model
1,024, 16 heads, d_ff 4,096, a 50,304-token vocabulary, RoPE on a quarter of each head and a
parallel block, float16 as EleutherAI publishes it. Random weights (transformers' own
initialisation), as the shape is what the timings depend on; there is no network here to fetch
the real checkpoint. The tokenizer and text are the decoder benchmark's (bench/make_decoder.py).
"""

import sys
from pathlib import Path

import torch
from make_decoder import save
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM


def main(directory: Path) -> None:
    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=50304,
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        max_position_embeddings=2048,
        rope_parameters={"rope_theta": 10000.0, "partial_rotary_factor": 0.25},
        use_parallel_residual=True,
        bos_token_id=0,
        eos_token_id=0,
    )
    save(GPTNeoXForCausalLM(config).to(torch.float16), directory, (128,))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
