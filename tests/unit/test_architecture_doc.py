"""docs/architecture.md names files and functions; each must exist as named.

A reference is a code span like `relay.py:Relay._step` or
`services/interviews/feed.py`: the file (a path relative to the root, or the end
of a path under ``services/``) must exist, and every name after the colon must be
defined in it (a ``def``, a ``class`` or an assignment). When the code moves,
this test says which lines of the map to correct.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.readme import ROOT

DOC = ROOT / "docs" / "architecture.md"
_REFERENCE = re.compile(r"`(?P<path>[\w./]+\.py)(?::(?P<names>[A-Za-z_][\w.]*))?")


def _candidates(path: str) -> list[Path]:
    direct = ROOT / path
    if direct.is_file():
        return [direct]
    return [p for p in (ROOT / "services").rglob("*.py") if p.as_posix().endswith("/" + path)]


def _defines(source: str, name: str) -> bool:
    pattern = rf"^\s*(?:async\s+def|def|class)\s+{re.escape(name)}\b|^\s*{re.escape(name)}\s*[:=]"
    return re.search(pattern, source, re.MULTILINE) is not None


def problems(text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in _REFERENCE.finditer(line):
            path, names = match["path"], match["names"]
            files = _candidates(path)
            if not files:
                found.append(f"line {number}: no file {path}")
                continue
            for name in (names or "").split("."):
                if name and not any(_defines(f.read_text(), name) for f in files):
                    found.append(f"line {number}: {path} defines no {name}")
    return found


def test_every_file_and_name_the_map_gives_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert len(_REFERENCE.findall(text)) >= 40
    assert problems(text) == []


def test_a_moved_function_or_file_is_reported() -> None:
    text = (
        "`relay.py:Relay._step` and `services/interviews/feed.py`\n"
        "`relay.py:Relay._gone` `nowhere.py` `application.py:NoSuchUseCase`\n"
    )
    assert problems(text) == [
        "line 2: relay.py defines no _gone",
        "line 2: no file nowhere.py",
        "line 2: application.py defines no NoSuchUseCase",
    ]
