"""Reading README.md (and docs/*.md) as the tests of its examples and links need it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)(?P<lang>[^\s`]*)[^\n]*$")
# ``curl`` as a command: at the start of a line or after a shell operator or ``$(``.
_CURL = re.compile(r"(?:^|[;&|(]|\$\()\s*curl\s")
_EXPECT = re.compile(r"^#\s*expect\s+(?P<status>[1-5][0-9][0-9])\b")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, first line number (1-based) and text."""

    lang: str
    line: int
    text: str

    @property
    def has_curl(self) -> bool:
        return bool(curl_commands(self.text)) or "curl " in self.text


def fenced_blocks(markdown: str) -> list[Block]:
    """Every fenced block, also those indented inside list items (dedented)."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        blocks.append(Block(opening["lang"], i + 1, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def logical_lines(script: str) -> list[str]:
    """The script's lines with backslash continuations joined."""
    out: list[str] = []
    pending = ""
    for line in script.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        out.append(pending)
    return out


def curl_commands(script: str) -> list[tuple[str, int | None]]:
    """Each ``curl`` command in order, with the status its ``# expect NNN`` comment
    (a comment line after it, before the next command) says it answers; None: a 2xx."""
    commands: list[tuple[str, int | None]] = []
    for line in logical_lines(script):
        stripped = line.strip()
        expect = _EXPECT.match(stripped)
        if expect is not None:
            if not commands or commands[-1][1] is not None:
                raise ValueError(f"'# expect' follows no curl command: {stripped!r}")
            commands[-1] = (commands[-1][0], int(expect["status"]))
            continue
        if stripped.startswith("#"):
            continue
        for _ in _CURL.finditer(stripped):
            commands.append((stripped, None))
    return commands


# ------------------------------------------------------------------------- links

_LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_INLINE_CODE = re.compile(r"`[^`\n]*`")


def links(markdown: str) -> list[tuple[int, str]]:
    """(line number, target) of every inline link and image outside code."""
    found: list[tuple[int, str]] = []
    in_fence: str | None = None
    for number, line in enumerate(markdown.splitlines(), 1):
        opening = _FENCE.match(line)
        if opening is not None:
            fence = opening["fence"]
            if in_fence is None:
                in_fence = fence
                continue
            if line.strip() == in_fence:
                in_fence = None
                continue
        if in_fence is not None:
            continue
        text = _INLINE_CODE.sub("", line)
        found += [(number, m["target"]) for m in _LINK.finditer(text)]
    return found


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings: lower case, punctuation dropped,
    spaces to hyphens, ``-1``, ``-2`` for repeats."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    in_fence: str | None = None
    for line in markdown.splitlines():
        opening = _FENCE.match(line)
        if opening is not None:
            if in_fence is None:
                in_fence = opening["fence"]
            elif line.strip() == in_fence:
                in_fence = None
            continue
        if in_fence is not None:
            continue
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading is None:
            continue
        title = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading[1])
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out
