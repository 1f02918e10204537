"""json_writer.py: JSON streamed in slices is JSON written whole, with invisible characters escaped."""

import numpy as np

from attncli.json_writer import json_bytes


def test_json_escapes_invisible_characters_and_keeps_the_rest_readable():
    text = json_bytes({"t": "é\u202e\x1b"}).decode()
    assert text == '{"t":"é\\u202e\\u001b"}'


def test_json_in_slices_is_the_same_as_json_whole():
    import orjson

    big = np.random.default_rng(0).random((3, 2, 700, 800)).astype(np.float32)  # over the slicing size
    document = {"schema": "x", "attention": big, "rows": [big[0, 0, :2], {"a": [1, None, True]}], "empty": {}}
    expected = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    assert json_bytes(document) == expected


def test_every_unsafe_character_is_escaped_beside_readable_word_pieces():
    from attncli.escapes import UNSAFE

    for char in (char for char in UNSAFE if char >= "\x7f"):  # JSON escapes the controls below itself
        text = json_bytes({"t": ["▁the", "Ġcat", "é" + char]}).decode()
        assert text == f'{{"t":["▁the","Ġcat","é\\u{ord(char):04x}"]}}', repr(char)
    assert json_bytes(["▁the", "Ġcat", "—", "\u00a0"]) == '["▁the","Ġcat","—","\u00a0"]'.encode()
