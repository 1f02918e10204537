"""Make an encoder benchmark's checkpoint: random weights in a base-sized encoder's shape.

make_encoders.py SHAPE DIR, SHAPE one of:

- mpnet: all-mpnet-base-v2's (MPNetModel: 12 layers, d_model 768, 12 heads, d_ff 3,072, relative
  position buckets, a 30,527-piece vocabulary), float32 on disk as sentence-transformers publishes it,
  with its uncased WordPiece tokenizer.json, `<s> … </s>`;
- deberta-v3: deberta-v3-base's (DebertaV2Model: the same sizes, disentangled attention over 256
  relative-position buckets, a 128,100-row embedding table), float16 on disk as Microsoft publishes
  it (a float16 pytorch_model.bin, here model.safetensors: what `AutoModel.from_pretrained(DIR)
  .save_pretrained(OUT)` makes of it with transformers 5), with a SentencePiece Unigram
  tokenizer.json of 128,000 pieces, `[CLS] … [SEP]`, as transformers converts the spm.model it ships;
- bert: bert-base-uncased's (BertModel, the same sizes, 30,522 pieces), float32.

Run by make bench in the peer's virtual environment (torch, transformers), once: it writes
DIR/config.json, model.safetensors (370 to 440 MB), tokenizer.json, tokenizer_config.json and
texts.json (the benchmark's sentence, which the tokenizer splits into ordinary pieces) into a cache
directory outside the repository. Random weights (transformers' own initialisation, seeded), as
the shape is what the timings depend on; there is no network here to fetch the real checkpoints.
The WordPiece vocabularies are BERT's own (sample_vocab/vocab.txt, with MPNet's five special tokens
around it as its real vocabulary has them); the Unigram one is generated: BERT's words, each with
and without the word-start mark, capitalised, and made-up pieces to fill it to the real size.
"""

import json
import random
import sys
from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import (
    BertConfig,
    BertModel,
    DebertaV2Config,
    DebertaV2Model,
    MPNetConfig,
    MPNetModel,
)

SENTENCE = "The animal didn't cross the street because it was too tired"  # bench.py's TEXT
BERT_VOCABULARY = Path(__file__).resolve().parent.parent / "sample_vocab" / "vocab.txt"  # bert-base-uncased's
BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)


def bert_pieces() -> list[str]:
    return BERT_VOCABULARY.read_text(encoding="utf-8").splitlines()


def wordpiece(vocabulary: list[str], wrapper: tuple[str, str], pair: str) -> Tokenizer:
    """An uncased WordPiece tokenizer over `vocabulary` (ids by position) that wraps a text in `wrapper`,
    and a pair of texts as `pair` says, as transformers' converters write BERT's and MPNet's."""
    first, last = wrapper
    tokenizer = Tokenizer(models.WordPiece({piece: i for i, piece in enumerate(vocabulary)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{first}:0 $A:0 {last}:0",
        pair=pair,
        special_tokens=[(first, vocabulary.index(first)), (last, vocabulary.index(last))],
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer


def mpnet_tokenizer() -> Tokenizer:
    """all-mpnet-base-v2's: BERT's 30,522 pieces after <s> <pad> </s> <unk>, and <mask> last (30,527)."""
    vocabulary = ["<s>", "<pad>", "</s>", "<unk>", *bert_pieces(), "<mask>"]
    tokenizer = wordpiece(vocabulary, ("<s>", "</s>"), "<s>:0 $A:0 </s>:0 </s>:0 $B:1 </s>:1")
    tokenizer.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "[UNK]"])
    tokenizer.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])  # takes the space before it
    return tokenizer


def bert_tokenizer() -> Tokenizer:
    tokenizer = wordpiece(bert_pieces(), ("[CLS]", "[SEP]"), "[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1")
    tokenizer.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    return tokenizer


def unigram_tokenizer(size: int = 128_000) -> Tokenizer:
    """A cased SentencePiece Unigram tokenizer of `size` pieces as transformers converts deberta-v3's spm.model:
    [PAD] [CLS] [SEP] [UNK] first, [MASK] added after the last piece, Metaspace words, `[CLS] … [SEP]`.
    Whole words score above the pieces they could be made of, so a sentence of BERT's words keeps them whole."""
    rng = random.Random(0)
    words = [p for p in bert_pieces() if p.isalpha() and p.isascii()]  # whole words and single letters
    marks = sorted({p for p in bert_pieces() if len(p) == 1 and not p.isalnum()})  # punctuation: ' , . ...
    pieces = {"[PAD]": 0.0, "[CLS]": 0.0, "[SEP]": 0.0, "[UNK]": 0.0}
    for word in words:
        score = -8.0 - 4.0 * rng.random() - (0.5 * len(word) if len(word) < 3 else 0.0)
        for piece in (f"▁{word}", f"▁{word.capitalize()}", word, word.capitalize()):
            pieces.setdefault(piece, score if piece.startswith("▁") else score - 1.0)
    for mark in marks:
        pieces.setdefault(mark, -9.0)
        pieces.setdefault(f"▁{mark}", -9.5)
    pieces.setdefault("▁", -6.0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    while len(pieces) < size:  # made-up pieces, rare enough never to beat a word
        piece = "".join(rng.choice(letters) for _ in range(rng.randint(3, 9)))
        pieces.setdefault(rng.choice(("▁", "")) + piece, -14.0 - 4.0 * rng.random())
    tokenizer = Tokenizer(models.Unigram(list(pieces.items()), unk_id=3, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Strip(), normalizers.Replace(Regex(" {2,}"), " ")])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(replacement="▁")])
    tokenizer.decoder = decoders.Metaspace(replacement="▁")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 1), ("[SEP]", 2)],
    )
    tokenizer.add_special_tokens(["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"])
    return tokenizer


# shape -> (the model, its dtype on disk, its tokenizer, tokenizer_config.json as the real checkpoint ships it)
SHAPES = {
    "mpnet": (
        lambda: MPNetModel(
            MPNetConfig(
                **BASE,
                vocab_size=30527,
                max_position_embeddings=514,
                relative_attention_num_buckets=32,
                layer_norm_eps=1e-5,
                pad_token_id=1,
                bos_token_id=0,
                eos_token_id=2,
            )
        ),
        torch.float32,
        mpnet_tokenizer,
        {
            "tokenizer_class": "MPNetTokenizer",
            "do_lower_case": True,
            "bos_token": "<s>",
            "eos_token": "</s>",
            "sep_token": "</s>",
            "cls_token": "<s>",
            "unk_token": "[UNK]",
            "pad_token": "<pad>",
            "mask_token": "<mask>",
            "model_max_length": 512,
        },
    ),
    "deberta-v3": (
        lambda: DebertaV2Model(
            DebertaV2Config(
                **BASE,
                vocab_size=128100,
                max_position_embeddings=512,
                relative_attention=True,
                position_buckets=256,
                max_relative_positions=-1,
                pos_att_type=["p2c", "c2p"],
                share_att_key=True,
                norm_rel_ebd="layer_norm",
                position_biased_input=False,
                type_vocab_size=0,
                layer_norm_eps=1e-7,
                pad_token_id=0,
            )
        ),
        torch.float16,
        unigram_tokenizer,
        {"tokenizer_class": "DebertaV2Tokenizer", "do_lower_case": False, "vocab_type": "spm"},
    ),
    "bert": (
        lambda: BertModel(BertConfig(**BASE, vocab_size=30522, max_position_embeddings=512, type_vocab_size=2)),
        torch.float32,
        bert_tokenizer,
        {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512},
    ),
}


def main(shape: str, directory: Path) -> None:
    make_model, dtype, make_tokenizer, tokenizer_config = SHAPES[shape]
    tokenizer = make_tokenizer()
    encoding = tokenizer.encode(SENTENCE)
    unknown = {tokenizer.token_to_id(t) for t in ("[UNK]", "<unk>")} - {None}
    assert not unknown & set(encoding.ids), encoding.tokens  # ordinary pieces, never the unknown token
    torch.manual_seed(0)
    directory.mkdir(parents=True, exist_ok=True)
    make_model().to(dtype).save_pretrained(directory, safe_serialization=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    (directory / "texts.json").write_text(json.dumps({"sentence": SENTENCE}) + "\n")  # written last: done
    print(f"wrote {directory}: {' '.join(encoding.tokens)}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
