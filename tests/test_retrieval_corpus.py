"""Loading a corpus from each kind of source, chunking, and the errors a user can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ensemble_nb.core.errors import UserError
from ensemble_nb.core.retrieval.corpus import Document, chunk_text, corpus_hash, load_corpus


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("Tungsten is heavy.")
    (tmp_path / "sub" / "b.md").write_text("# Gold\n\nGold is yellow.")
    (tmp_path / "skip.pdf").write_bytes(b"%PDF")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.txt").write_text("hidden")
    return tmp_path


def test_folder_reads_text_and_markdown_recursively_in_order(tmp_path: Path) -> None:
    docs = load_corpus(_folder(tmp_path))
    assert docs == [Document("Tungsten is heavy.", "a.txt"), Document("# Gold\n\nGold is yellow.", "sub/b.md")]


def test_single_file_and_str_path(tmp_path: Path) -> None:
    path = _folder(tmp_path) / "a.txt"
    assert load_corpus(str(path)) == [Document("Tungsten is heavy.", "a.txt")]


def test_list_of_strings() -> None:
    docs = load_corpus(["one passage", "another passage"])
    assert docs == [Document("one passage", "item 0"), Document("another passage", "item 1")]
    with pytest.raises(UserError, match="item 1 is a int"):
        load_corpus(["text", 3])


class FakeSeries:
    """Shaped like a pandas Series, which is all the loader looks at."""

    def __init__(self, values: list[Any], name: str | None = "text") -> None:
        self.values, self.name, self.index = values, name, list(range(10, 10 + len(values)))

    def tolist(self) -> list[Any]:
        return list(self.values)


class FakeFrame:
    def __init__(self, **cols: list[Any]) -> None:
        self.columns = list(cols)
        self._cols = cols

    def __getitem__(self, name: str) -> FakeSeries:
        return FakeSeries(self._cols[name], name)


def test_column_is_duck_typed_and_skips_empty_cells() -> None:
    docs = load_corpus(FakeSeries(["alpha", None, float("nan"), "gamma"]))
    assert docs == [Document("alpha", "text[10]"), Document("gamma", "text[13]")]


def test_dataframe_needs_one_column_or_a_name() -> None:
    frame = FakeFrame(text=["alpha"], other=["x"])
    with pytest.raises(UserError, match="2 columns"):
        load_corpus(frame)
    assert load_corpus(frame, column="text") == [Document("alpha", "text[10]")]
    with pytest.raises(UserError, match="no column 'nope'"):
        load_corpus(frame, column="nope")
    assert load_corpus(FakeFrame(body=["b"])) == [Document("b", "body[10]")]


def test_real_pandas_column() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"text": ["Iron rusts.", "Neon glows."], "n": [26, 10]}, index=["fe", "ne"])
    assert load_corpus(frame["text"]) == [Document("Iron rusts.", "text[fe]"), Document("Neon glows.", "text[ne]")]
    assert load_corpus(frame, column="text")[1].source == "text[ne]"


def test_missing_path_is_a_one_line_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        load_corpus(tmp_path / "nope")
    assert "does not exist" in str(info.value) and "\n" not in str(info.value)


def test_folder_without_text_files(tmp_path: Path) -> None:
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    with pytest.raises(UserError, match="holds no"):
        load_corpus(tmp_path)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.txt"
    path.write_text("secret")

    def deny(self: Path, *args: Any, **kwargs: Any) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_text", deny)  # root reads any file, so chmod would not do
    with pytest.raises(UserError, match=r"cannot read .*locked\.txt .*Permission denied.*permissions"):
        load_corpus(path)


def test_empty_and_unsupported_sources() -> None:
    with pytest.raises(UserError, match="no text"):
        load_corpus(["", "   "])
    with pytest.raises(UserError, match="cannot read a int"):
        load_corpus(42)
    with pytest.raises(UserError, match="cannot read a dict"):
        load_corpus({"a": "b"})


def test_long_text_is_chunked_on_paragraphs() -> None:
    para = " ".join(["word"] * 40)
    text = "\n\n".join([para] * 5)
    chunks = chunk_text(text, max_words=100)
    assert [len(c.split()) for c in chunks] == [80, 80, 40]
    assert chunk_text(" ".join(["w"] * 250), max_words=100) == [" ".join(["w"] * 100)] * 2 + [" ".join(["w"] * 50)]
    docs = load_corpus([text], max_words=100)
    assert [d.source for d in docs] == ["item 0#1", "item 0#2", "item 0#3"]


def test_hash_depends_on_text_and_source() -> None:
    a = [Document("ab", "c")]
    assert corpus_hash(a) == corpus_hash([Document("ab", "c")])
    assert corpus_hash(a) != corpus_hash([Document("a", "bc")])
    assert corpus_hash(a) != corpus_hash([Document("ab", "d")])
