"""The README and the documents under docs/ link only to files in the repository,
and every link resolves: the file exists, and so does the heading an anchor names."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.readme import README, ROOT, anchors, curl_commands, fenced_blocks, links

DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]


def _problems(document: Path) -> list[str]:
    text = document.read_text(encoding="utf-8")
    problems = []
    for line, target in links(text):
        where = f"{document.relative_to(ROOT)}:{line}: {target}"
        if "://" in target or target.startswith(("mailto:", "//")):
            problems.append(f"{where}: links outside the repository")
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (document.parent / unquote(path_part)).resolve() if path_part else document
        if not resolved.is_relative_to(ROOT):
            problems.append(f"{where}: points outside the repository")
            continue
        if not resolved.exists():
            problems.append(f"{where}: no such file")
            continue
        if anchor:
            if resolved.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not Markdown")
            elif anchor not in anchors(resolved.read_text(encoding="utf-8")):
                problems.append(f"{where}: no heading with anchor #{anchor}")
    return problems


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves_to_a_file_in_the_repository(document: Path) -> None:
    assert _problems(document) == []


def test_the_readme_links_the_design_and_the_architecture() -> None:
    targets = {target.partition("#")[0] for _, target in links(README.read_text())}
    assert {"docs/design.md", "docs/architecture.md"} <= targets


def test_the_link_check_finds_broken_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check itself: a missing file, a missing anchor, an escape and a URL are caught."""
    import tests.unit.test_readme_links as module

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A title, with `code`\n\n## Same\n## Same\n")
    doc = tmp_path / "README.md"
    doc.write_text(
        "[ok](docs/a.md#a-title-with-code) [ok](docs/a.md#same-1) [ok](#top)\n"
        "# Top\n"
        "[gone](docs/b.md) [anchor](docs/a.md#nope) [out](../shared/DESIGN.md)\n"
        "[web](https://example.com/design) `[in code](nowhere.md)`\n"
        "```\n[in a fence](nowhere.md)\n```\n"
    )
    monkeypatch.setattr(module, "ROOT", tmp_path)
    problems = module._problems(doc)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "docs/b.md: no such file",
        "docs/a.md#nope: no heading with anchor #nope",
        "../shared/DESIGN.md: points outside the repository",
        "https://example.com/design: links outside the repository",
    ]


def test_every_block_with_curl_is_a_tested_sh_block() -> None:
    """``tests/e2e/test_readme_examples.py`` runs the ``sh`` blocks; a ``curl`` in a
    block of another language would escape it. The blocks take the port from PORT
    and never fix their own ``-w`` (the test counts statuses with it)."""
    blocks = [b for b in fenced_blocks(README.read_text()) if b.has_curl]
    assert len(blocks) >= 5
    for block in blocks:
        assert block.lang == "sh", f"README line {block.line}: curl in a {block.lang!r} block"
        assert "BASE=http://127.0.0.1:${PORT:-8000}" in block.text, f"README line {block.line}"
        assert "localhost:8000" not in block.text, f"README line {block.line}"
        for command, _ in curl_commands(block.text):
            assert " -w " not in command and "--write-out" not in command, command


def test_expect_comments_belong_to_the_curl_command_before_them() -> None:
    script = (
        'ID=$(curl -s -X POST "$BASE/x" \\\n     -d "{}" | field id)\n'
        "# a note, not an expectation\n"
        'curl -s "$BASE/y"; echo\n'
        '# expect 409 {"code":"transition_not_allowed"}\n'
        'curl -s "$BASE/z"; echo\n'
    )
    assert [status for _, status in curl_commands(script)] == [None, 409, None]
    with pytest.raises(ValueError, match="follows no curl"):
        curl_commands("# expect 404\n")
