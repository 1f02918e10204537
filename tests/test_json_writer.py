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


def _layers_one_at_a_time(count: int, shape: tuple[int, ...], held: list[int]):
    """`count` arrays, each made only when the one before is no longer referenced outside this generator:
    `held` gets, for each, how many earlier ones were still alive when it was made."""
    import weakref

    made = []
    for _ in range(count):
        held.append(sum(ref() is not None for ref in made))
        layer = np.zeros(shape, np.float32)
        made.append(weakref.ref(layer))
        yield layer
        del layer


def test_an_iterator_of_layers_is_written_with_one_layer_alive_at_a_time():
    from attncli.json_writer import json_chunks

    held: list[int] = []
    for _ in json_chunks({"attention": _layers_one_at_a_time(3, (2, 300, 300), held)}):
        pass
    assert held == [0, 0, 0]


def test_a_streamed_csv_holds_one_layer_at_a_time():
    from types import SimpleNamespace

    from attncli.output import attention_csv

    held: list[int] = []
    tokens = [SimpleNamespace(text=f"t{i}") for i in range(4)]
    run = SimpleNamespace(
        tokens=tokens,
        shows_norms=False,
        layers=(0, 1, 2),
        heads=(0, 1),
        written=lambda: _layers_one_at_a_time(3, (2, 4, 4), held),
    )
    rows = b"".join(attention_csv(run, None)).decode().splitlines()
    assert held == [0, 0, 0]
    assert len(rows) == 1 + 3 * 2 * 4 * 4 and rows[-1].startswith("2,1,3,t3,3,t3,")
