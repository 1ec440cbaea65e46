"""The query-set format: what parses, and errors that name the file, the line and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pardus.deployments.names import QueryKind
from pardus.evaluation.queries import QuerySetError, parse_queries
from pardus.ingest.samples import draw_product


def write(path: Path, lines: list) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line)
                              for line in lines) + "\n")
    return path


@pytest.fixture()
def picture(tmp_path) -> str:
    (tmp_path / "q").mkdir()
    draw_product("mug", "red", "dotted", size=64).save(tmp_path / "q" / "mug.jpg")
    return "q/mug.jpg"


def test_every_form_of_query_parses(tmp_path, picture):
    path = write(tmp_path / "set.jsonl", [
        {"id": "t1", "text": "red mug", "relevant": ["A1", "A2"], "tag": "words"},
        "",
        {"image": picture, "relevant": {"A1": 2, "A3": 1, "A4": 0}},
        {"text": "the same in blue", "image": str(tmp_path / picture), "relevant": ["A5"]},
    ])
    queries = parse_queries(path)
    text, image, composed = queries.queries
    assert (text.id, text.line, text.kind, text.grades, text.tag) == (
        "t1", 1, QueryKind.TEXT, {"A1": 1.0, "A2": 1.0}, "words")
    assert (image.id, image.line, image.kind) == ("line-3", 3, QueryKind.IMAGE)
    assert image.image == (tmp_path / picture).resolve()
    assert image.grades == {"A1": 2.0, "A3": 1.0, "A4": 0.0}
    assert composed.kind is QueryKind.COMPOSED
    assert queries.item_ids() == ["A1", "A2", "A3", "A4", "A5"]
    assert queries.kinds() == [QueryKind.TEXT, QueryKind.IMAGE, QueryKind.COMPOSED]
    assert [q.id for q in queries.select(kinds=[QueryKind.IMAGE]).queries] == ["line-3"]
    assert [q.id for q in queries.select(tags=["words"]).queries] == ["t1"]


def problems(path: Path) -> str:
    with pytest.raises(QuerySetError) as caught:
        parse_queries(path)
    return str(caught.value)


@pytest.mark.parametrize(("line", "expected"), [
    ('{"text": "red mug", "relevant": ["A1"]', "set.jsonl:2: not JSON"),
    ('["red mug"]', "set.jsonl:2: each line must be a JSON object"),
    ('{"relevant": ["A1"]}', "set.jsonl:2: a query needs a text, an image or both"),
    ('{"text": "  ", "relevant": ["A1"]}', "set.jsonl:2: a query needs a text"),
    ('{"text": "x"}', "set.jsonl:2: relevant: Field required"),
    ('{"text": "x", "relevant": []}', "set.jsonl:2: relevant: "),
    ('{"text": "x", "relevant": {"A1": 0}}', "at least one item needs a gain above 0"),
    ('{"text": "x", "relevant": {"A1": -1}}', "set.jsonl:2: relevant.A1: "),
    ('{"text": "x", "relevant": ["bad id!"]}', "set.jsonl:2: relevant.bad id!"),
    ('{"text": "x", "relevant": [3]}', "holds item ids"),
    ('{"text": "x", "colour": "red", "relevant": ["A1"]}', "set.jsonl:2: colour: Extra inputs"),
    ('{"image": "q/none.jpg", "relevant": ["A1"]}', "set.jsonl:2: image: image file not found"),
    ('{"image": "https://x.test/a.jpg", "relevant": ["A1"]}', "give a local path"),
    ('{"id": "t1", "text": "y", "relevant": ["A1"]}',
     "set.jsonl:2: id: 't1' is also the id of line 1"),
])
def test_a_bad_line_is_named(tmp_path, line, expected):
    path = write(tmp_path / "set.jsonl", [{"id": "t1", "text": "ok", "relevant": ["A1"]}, line])
    assert expected in problems(path)


def test_a_file_that_is_not_an_image_is_named(tmp_path):
    (tmp_path / "notes.jpg").write_text("not a picture")
    path = write(tmp_path / "set.jsonl", [{"image": "notes.jpg", "relevant": ["A1"]}])
    message = problems(path)
    assert message.startswith(f"{path}:1: image: ") and "not an image" in message


def test_every_problem_is_listed_and_the_list_is_capped(tmp_path):
    path = write(tmp_path / "set.jsonl", ["{"] * 25)
    message = problems(path)
    assert message.count("not JSON") == 20 and message.endswith("... and 5 more")
    assert f"{path}:25: not JSON" not in message and f"{path}:20: not JSON" in message


def test_an_empty_or_missing_file(tmp_path):
    assert problems(write(tmp_path / "empty.jsonl", [""])).endswith("empty.jsonl: holds no queries")
    assert "cannot be read" in problems(tmp_path / "missing.jsonl")


def test_unknown_ids_name_the_lines_that_use_them(tmp_path):
    path = write(tmp_path / "set.jsonl", [
        {"text": "a", "relevant": ["A1", "GONE1"]}, {"text": "b", "relevant": ["A1"]},
        {"text": "c", "relevant": {"GONE2": 1, "GONE1": 2}}])
    error = parse_queries(path).unknown_ids({"GONE1", "GONE2"}, "the catalogue 'eval'")
    assert str(error).splitlines() == [
        f"{path}:1: relevant: unknown item id 'GONE1' (not in the catalogue 'eval')",
        f"{path}:3: relevant: unknown item ids 'GONE1', 'GONE2' (not in the catalogue 'eval')"]
