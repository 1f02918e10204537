"""The predict benchmark's peer: what a user of transformers writes for a text's next-token distribution.

peer_predict.py DIRECTORY TEXT OUT.npz [K]: the checkpoint in float32 as AutoModelForCausalLM loads it, one
text, the softmax of the last position's logits and its K most probable ids (default 10), saved with that
position's logits for the comparison with attncli's.
"""

import sys

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

directory, text, out = sys.argv[1:4]
k = int(sys.argv[4]) if len(sys.argv) > 4 else 10
model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
encoding = Tokenizer.from_file(f"{directory}/tokenizer.json").encode(text)
with torch.no_grad():
    logits = model(input_ids=torch.tensor([encoding.ids]), logits_to_keep=1).logits[0, -1]  # [vocab]
probabilities = torch.softmax(logits.double(), dim=-1)
top = torch.topk(probabilities, k)
np.savez(out, ids=top.indices.numpy(), probabilities=top.values.numpy(), logits=logits.numpy())
