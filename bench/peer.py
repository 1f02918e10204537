"""The peer: what a user writes today to dump a checkpoint's attention as JSON, with torch and transformers.

python bench/peer.py CHECKPOINT_DIR TEXT > attention.json

The checkpoint in float32 whatever its type on disk (transformers 5 would otherwise compute in a
float16 checkpoint's float16), with eager attention, so that the attention weights exist.
"""

import json
import sys

import torch
from transformers import AutoModel, AutoTokenizer

directory, text = sys.argv[1], sys.argv[2]
tokenizer = AutoTokenizer.from_pretrained(directory)
model = AutoModel.from_pretrained(directory, attn_implementation="eager", dtype=torch.float32).eval()
with torch.no_grad():
    outputs = model(**tokenizer(text, return_tensors="pt"), output_attentions=True)
json.dump({"attention": [layer[0].tolist() for layer in outputs.attentions]}, sys.stdout)
