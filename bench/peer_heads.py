"""The peer of `attncli heads --file`: torch + transformers over a corpus, 32 padded lines at a time
(eager attention, the padding masked), each head's mean entropy and mean largest weight over the
lines, printed as JSON.

python bench/peer_heads.py CHECKPOINT_DIR FILE
"""

import json
import sys

import torch
from transformers import AutoModel, AutoTokenizer

directory, source = sys.argv[1], sys.argv[2]
tokenizer = AutoTokenizer.from_pretrained(directory)
model = AutoModel.from_pretrained(directory, attn_implementation="eager").eval()
with open(source, encoding="utf-8") as file:
    texts = [line.rstrip("\n") for line in file if line.strip()]
entropy = largest = None
with torch.no_grad():
    for start in range(0, len(texts), 32):
        inputs = tokenizer(texts[start : start + 32], return_tensors="pt", padding=True)
        attentions = torch.stack(model(**inputs, output_attentions=True).attentions, dim=1)  # [B, L, h, T, T]
        real = inputs["attention_mask"].bool()  # [B, T]
        rows = real[:, None, None, :].float()  # each line's real query rows
        per_row = -(attentions * torch.log(attentions.clamp_min(1e-12))).sum(-1)  # [B, L, h, T]
        line_entropy = (per_row * rows).sum(-1) / rows.sum(-1)  # [B, L, h]
        line_largest = (attentions.amax(-1) * rows).sum(-1) / rows.sum(-1)
        entropy = line_entropy.sum(0) if entropy is None else entropy + line_entropy.sum(0)
        largest = line_largest.sum(0) if largest is None else largest + line_largest.sum(0)
print(
    json.dumps(
        {"texts": len(texts), "entropy": (entropy / len(texts)).tolist(), "max": (largest / len(texts)).tolist()}
    )
)
