"""Make the large-model benchmark's checkpoint: random weights in Llama-3.1-8B's shape, bf16, sharded.

Run by make bench, once: it writes DIR/config.json, the weights (about 16 GB, in four shards with
their index, as the published checkpoint is sharded), tokenizer.json and texts.json (a text of 128
tokens) into a cache directory outside the repository. numpy alone makes it: bf16 is float32's upper
half, so each tensor is drawn in float32, rounded to its nearest bf16 and written as those 16 bits, a
tensor at a time (torch would hold the model, 16 GB, before writing it). Weights are drawn as
transformers initialises them (normal, standard deviation 0.02; norms 1), small enough that the
activations stay finite.
"""

import json
import sys
from pathlib import Path

import numpy as np
from make_decoder import text_of, tokenizer

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "hidden_act": "silu",
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "rope_scaling": {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
    "attention_bias": False,
    "mlp_bias": False,
    "tie_word_embeddings": False,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "torch_dtype": "bfloat16",
}
SHARDS = 4
STANDARD_DEVIATION = 0.02
ROWS_AT_ONCE = 4096  # rows drawn and written together: 4096 × 14,336 float32 is 235 MB


def shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Every tensor's name and shape, in the published checkpoint's order (torch's [out, in] layout)."""
    d, f, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    q = config["num_attention_heads"] * config["head_dim"]
    kv = config["num_key_value_heads"] * config["head_dim"]
    tensors = {"model.embed_tokens.weight": (vocab, d)}
    for i in range(config["num_hidden_layers"]):
        layer = f"model.layers.{i}"
        tensors |= {
            f"{layer}.input_layernorm.weight": (d,),
            f"{layer}.self_attn.q_proj.weight": (q, d),
            f"{layer}.self_attn.k_proj.weight": (kv, d),
            f"{layer}.self_attn.v_proj.weight": (kv, d),
            f"{layer}.self_attn.o_proj.weight": (d, q),
            f"{layer}.post_attention_layernorm.weight": (d,),
            f"{layer}.mlp.gate_proj.weight": (f, d),
            f"{layer}.mlp.up_proj.weight": (f, d),
            f"{layer}.mlp.down_proj.weight": (d, f),
        }
    return tensors | {"model.norm.weight": (d,), "lm_head.weight": (vocab, d)}


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 `x` rounded to the nearest bf16 (ties to even), as the 16 bits bf16 stores: uint16."""
    bits = x.view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def write_tensor(file, shape: tuple[int, ...], rng: np.random.Generator) -> None:
    """A tensor of `shape` written to `file` as bf16: ones for a norm's gain, else normal(0, 0.02) draws."""
    if len(shape) == 1:
        file.write(bf16_bits(np.ones(shape, dtype=np.float32)).tobytes())
        return
    for start in range(0, shape[0], ROWS_AT_ONCE):
        rows = rng.standard_normal((min(ROWS_AT_ONCE, shape[0] - start), *shape[1:]), dtype=np.float32)
        rows *= np.float32(STANDARD_DEVIATION)
        file.write(bf16_bits(rows).tobytes())


def shard_names(tensors: dict[str, tuple[int, ...]], shards: int) -> dict[str, str]:
    """Each tensor's shard file, filled in order to about an equal share of the bytes each."""
    sizes = {name: 2 * int(np.prod(shape)) for name, shape in tensors.items()}
    share = sum(sizes.values()) / shards
    numbers, written = {}, 0
    for name, size in sizes.items():
        numbers[name] = min(int(written // share), shards - 1)
        written += size
    count = len(set(numbers.values()))  # fewer than asked where one tensor is bigger than a share
    used = {number: i for i, number in enumerate(sorted(set(numbers.values())))}
    return {name: f"model-{used[number] + 1:05d}-of-{count:05d}.safetensors" for name, number in numbers.items()}


def write_shard(path: Path, tensors: dict[str, tuple[int, ...]], rng: np.random.Generator) -> None:
    """A safetensors file of `tensors`: its header (JSON, padded to 8 bytes), then each tensor's bytes."""
    header, offset = {}, 0
    for name, shape in tensors.items():
        size = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as file:
        file.write(len(encoded).to_bytes(8, "little"))
        file.write(encoded)
        for shape in tensors.values():
            write_tensor(file, shape, rng)


def main(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tensors = shapes(CONFIG)
    shards = shard_names(tensors, SHARDS)
    rng = np.random.default_rng(0)
    for shard in sorted(set(shards.values())):
        write_shard(directory / shard, {name: tensors[name] for name in tensors if shards[name] == shard}, rng)
        print(f"wrote {directory / shard}", file=sys.stderr)
    total = sum(2 * int(np.prod(shape)) for shape in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": shards}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    (directory / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    bpe = tokenizer()
    bpe.save(str(directory / "tokenizer.json"))
    # written last: make bench takes a directory with texts.json for a finished checkpoint
    (directory / "texts.json").write_text(json.dumps({"128": text_of(bpe, 128)}) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
