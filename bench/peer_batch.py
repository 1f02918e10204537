"""The peer of `attncli batch`: a torch + transformers loop writing each line's attention as JSON Lines.

python bench/peer_batch.py CHECKPOINT_DIR FILE > out.jsonl
"""

import json
import sys

import torch
from transformers import AutoModel, AutoTokenizer

directory, source = sys.argv[1], sys.argv[2]
tokenizer = AutoTokenizer.from_pretrained(directory)
model = AutoModel.from_pretrained(directory, attn_implementation="eager").eval()
with open(source, encoding="utf-8") as lines, torch.no_grad():
    for number, text in enumerate(lines, start=1):
        if text.strip():
            outputs = model(**tokenizer(text.rstrip("\n"), return_tensors="pt"), output_attentions=True)
            record = {"line": number, "attention": [layer[0].tolist() for layer in outputs.attentions]}
            sys.stdout.write(json.dumps(record) + "\n")
