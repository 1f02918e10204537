"""results.py: a result whose JSON would be too large to be useful is refused."""

from helpers import (
    BERT,
)


def test_explain_json_too_large_to_be_useful_is_refused(cli, monkeypatch):
    monkeypatch.setattr("attncli.results.EXPLAIN_JSON_LIMIT", 1000)
    run = cli("explain", "The cat sat on the mat.", "--model", BERT, "--json")
    assert run.code == 2
    assert run.stdout == ""
    assert "use heatmap --json" in run.stderr
