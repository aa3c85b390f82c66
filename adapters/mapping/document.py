"""Reading a mapping file: YAML into plain data, remembering the line of every node.

Scalars are kept as the text written (only an empty value, `~` or `null` becomes None), so a
code such as `NO` or `01` means exactly what it says; typed settings are converted by the
pydantic models, and values bound for the canonical record by its own validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Loc = tuple[str | int, ...]

# Deeper than any sensible mapping; stops an alias cycle (`&a [*a]`) from recursing forever.
_MAX_DEPTH = 48
_NULL_TAG = "tag:yaml.org,2002:null"


@dataclass(frozen=True)
class Problem:
    """One mistake in a mapping file, at a 1-based line and column (0 when unknown)."""

    line: int
    column: int
    message: str


class MappingFileError(ValueError):
    """A mapping file that cannot be used; the message names the file, line and column."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        super().__init__("\n".join(_describe(file, problem) for problem in problems))


def _describe(file: str, problem: Problem) -> str:
    if problem.line <= 0:
        return f"{file}: {problem.message}"
    return f"{file}:{problem.line}:{problem.column}: {problem.message}"


@dataclass
class Document:
    """A mapping file's content as plain data, with where each value and key was written."""

    file: str
    data: Any = None
    value_marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def where(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """Line and column of the node at `loc` (its key's when `key`), else its nearest parent."""
        if key and loc in self.key_marks:
            return self.key_marks[loc]
        probe = loc
        while probe not in self.value_marks and probe:
            probe = probe[:-1]
        return self.value_marks.get(probe, (1, 1))

    def report(self, loc: Loc, message: str, *, key: bool = False) -> None:
        line, column = self.where(loc, key=key)
        self.problems.append(Problem(line, column, message))

    def fail_if_problems(self) -> None:
        if self.problems:
            ordered = sorted(self.problems, key=lambda problem: (problem.line, problem.column))
            raise MappingFileError(self.file, ordered)


def read_document(path: Path) -> Document:
    """Read and compose a mapping file; raise MappingFileError naming the line on a YAML error."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        problem = Problem(0, 0, f"cannot read the mapping file: {reason}")
        raise MappingFileError(file, [problem]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        reason = error.problem or error.context or "not valid YAML"
        problem = Problem(line, column, f"YAML syntax error: {reason}")
        raise MappingFileError(file, [problem]) from None
    except yaml.YAMLError as error:
        raise MappingFileError(file, [Problem(0, 0, f"YAML syntax error: {error}")]) from None
    document = Document(file=file)
    if root is None:
        document.problems.append(Problem(0, 0, "the mapping file is empty"))
    else:
        document.data = _plain(root, (), document, 0)
    document.fail_if_problems()
    return document


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _plain(node: yaml.Node, loc: Loc, document: Document, depth: int) -> Any:
    document.value_marks[loc] = _mark(node)
    if depth > _MAX_DEPTH:
        document.report(loc, "nested too deeply (is there an alias that refers to itself?)")
        return None
    if isinstance(node, yaml.ScalarNode):
        return None if node.tag == _NULL_TAG else str(node.value)
    if isinstance(node, yaml.SequenceNode):
        return [
            _plain(child, (*loc, index), document, depth + 1)
            for index, child in enumerate(node.value)
        ]
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line, column = _mark(key_node)
                document.problems.append(Problem(line, column, "a key must be plain text"))
                continue
            key = str(key_node.value)
            if key in result:
                first_line, _ = document.key_marks[(*loc, key)]
                line, column = _mark(key_node)
                document.problems.append(
                    Problem(
                        line, column, f"duplicate key {key!r} (first written on line {first_line})"
                    )
                )
                continue
            document.key_marks[(*loc, key)] = _mark(key_node)
            result[key] = _plain(value_node, (*loc, key), document, depth + 1)
        return result
    return None
