"""The attribute benchmark's peer: direct logit attribution as a user of transformers computes it.

peer_attribute.py DIRECTORY TEXT: the checkpoint (a Llama-like decoder, Qwen2's module names) as
AutoModelForCausalLM in float32, one text; forward hooks keep each layer's attention input to o_proj (the heads'
z side by side) and its MLP's output at the last position, TransformerLens-style: each head's output is
z_h W_O^h, the final RMSNorm's scale at that position is frozen, and each part through it into W_U's row of the
predicted token is its contribution. Prints {"logit", "components": [{"name", "contribution"}]} as JSON, the
components named as attncli names them.
"""

import json
import sys

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

directory, text = sys.argv[1:3]
model = AutoModelForCausalLM.from_pretrained(directory, attn_implementation="eager", dtype=torch.float32).eval()
ids = torch.tensor([Tokenizer.from_file(f"{directory}/tokenizer.json").encode(text).ids])
layers = model.model.layers
kept = {}
hooks = []
for index, layer in enumerate(layers):
    hooks.append(
        layer.self_attn.o_proj.register_forward_pre_hook(
            lambda module, args, index=index: kept.__setitem__(("z", index), args[0][0, -1])
        )
    )
    hooks.append(
        layer.mlp.register_forward_hook(
            lambda module, args, out, index=index: kept.__setitem__(("mlp", index), out[0, -1])
        )
    )
norm = model.model.norm
hooks.append(norm.register_forward_pre_hook(lambda module, args: kept.__setitem__("x", args[0][0, -1])))
with torch.no_grad():
    outputs = model(input_ids=ids, output_hidden_states=True)
    logits = outputs.logits[0, -1]
    target = int(logits.argmax())
    x = kept["x"]  # [d] the last residual stream, before the final norm
    scale = torch.rsqrt(x.square().mean() + norm.variance_epsilon)  # frozen at this position
    direction = norm.weight * scale * model.lm_head.weight[target]  # [d]: a part c contributes c · direction
    heads = model.config.num_attention_heads
    names, parts = ["embed"], [outputs.hidden_states[0][0, -1]]
    for index, layer in enumerate(layers):
        o_proj = layer.self_attn.o_proj
        z = kept[("z", index)].view(heads, -1)  # [h, d_k]
        w_o = o_proj.weight.view(o_proj.weight.shape[0], heads, -1)  # [d, h, d_k]
        names += [f"L{index}H{head}" for head in range(heads)]
        parts.append(torch.einsum("hk,dhk->hd", z, w_o))  # [h, d] each head's z_h W_O^h
        if o_proj.bias is not None:
            names.append(f"L{index} attn bias")
            parts.append(o_proj.bias)
        names.append(f"L{index} mlp")
        parts.append(kept[("mlp", index)])
    contributions = torch.cat([part.reshape(-1, x.shape[0]) for part in parts]) @ direction
print(
    json.dumps(
        {
            "logit": float(logits[target]),
            "components": [
                {"name": name, "contribution": float(value)} for name, value in zip(names, contributions, strict=True)
            ],
        }
    )
)
