"""The decoder benchmark's peer: what a user of transformers writes to save a text's attention.

peer_decoder.py DIRECTORY TEXT OUT.npz [DTYPE]: the checkpoint in float32 (or DTYPE, a torch dtype's
name such as bfloat16) with eager attention (so that the attention weights exist), one text, every
layer's attention saved as attncli's --format npz saves it, in float32.
"""

import sys

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import AutoModel

directory, text, out = sys.argv[1:4]
dtype = getattr(torch, sys.argv[4] if len(sys.argv) > 4 else "float32")
model = AutoModel.from_pretrained(directory, attn_implementation="eager", dtype=dtype).eval()
encoding = Tokenizer.from_file(f"{directory}/tokenizer.json").encode(text)
with torch.no_grad():
    outputs = model(input_ids=torch.tensor([encoding.ids]), output_attentions=True)
np.savez_compressed(
    out,
    attention=torch.stack(outputs.attentions)[:, 0].float().numpy(),  # [L, h, T, T]
    tokens=np.array(encoding.tokens),
    ids=np.array(encoding.ids),
)
