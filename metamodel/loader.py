"""Read metadata documents from YAML and check them against the JSON Schemas.

Each document remembers the line of every node, so that later checks (names,
expressions, relations) can point at the exact line an admin has to fix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

from metacrm.metamodel.errors import MetadataError, Problem

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class Document:
    """One metadata document: its data, the file it came from, and its line map."""

    data: dict[str, Any]
    source: str | None = None
    lines: dict[PathKey, int] = field(default_factory=dict, compare=False, repr=False)

    def problem(self, message: str, path: PathKey = ()) -> Problem:
        """A Problem located at `path` inside this document."""
        return Problem(message, self.source, format_path(path), self.line_of(path))

    def line_of(self, path: PathKey) -> int | None:
        """The line of the nearest node at or above `path`."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


@dataclass(frozen=True)
class Template:
    """A template directory: its manifest and its object documents."""

    name: str
    version: str
    root: Path
    manifest: dict[str, Any]
    objects: tuple[Document, ...]

    @property
    def sample_data(self) -> Path | None:
        rel = self.manifest.get("sample_data")
        return self.root / rel if rel else None


def format_path(path: Iterable[str | int]) -> str:
    """Render ('fields', 3, 'type') as 'fields[3].type'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@lru_cache(maxsize=None)
def schema(name: str) -> dict[str, Any]:
    """A JSON Schema shipped in metamodel/schemas (cached: parsed once per process)."""
    text = resources.files("metacrm.metamodel").joinpath(f"schemas/{name}.schema.json").read_text("utf-8")
    return json.loads(text)


@lru_cache(maxsize=None)
def _validator(name: str) -> jsonschema.protocols.Validator:
    registry = _registry()
    return jsonschema.Draft202012Validator(schema(name), registry=registry)


@lru_cache(maxsize=None)
def _registry():
    from referencing import Registry, Resource

    resources_ = [
        (f"{n}.schema.json", Resource.from_contents(schema(n))) for n in ("object", "template")
    ]
    resources_ += [(schema(n)["$id"], Resource.from_contents(schema(n))) for n in ("object", "template")]
    return Registry().with_resources(resources_)


class MetadataLoader(yaml.SafeLoader):
    """YAML with the 1.2 idea of booleans: only true/false. In YAML 1.1 `on: created` would
    read as `True: created` and `message: no` as `message: False` — surprises for admins."""


MetadataLoader.yaml_implicit_resolvers = {  # dates stay text too: metadata is stored as JSON
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
MetadataLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


#: Limits on one metadata document, so that no document (an "alias bomb", 5,000 nested
#: brackets, a 10,000-digit number) can exhaust the memory or the stack of a server.
MAX_DOCUMENT = 1024 * 1024  # characters (1 MiB)
MAX_DEPTH = 64  # nested mappings and lists, aliases expanded
MAX_NODES = 100_000  # keys, values and items, aliases expanded
MAX_NUMBER = 100  # characters of one integer
MAX_FIELDS = 500  # per object: well under PostgreSQL's 1,600 columns a table, with room for system columns


class _LimitedLoader(MetadataLoader):
    """Refuses nesting deeper than MAX_DEPTH while composing, before Python's stack is at risk."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep (the limit)", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_yaml(text: str, source: str | None) -> Document:
    """Parse YAML text into a Document with its line map; syntax errors and documents over the
    limits (size, depth, alias expansion, number length) become Problems with a line."""
    if len(text) > MAX_DOCUMENT:
        raise MetadataError([Problem(f"the document has {len(text):,} characters; the limit is {MAX_DOCUMENT:,} "
                                     "(1 MiB)", source, "", None)])
    _check_flow_depth(text, source)
    loader = None
    try:
        loader = _LimitedLoader(text)  # the reader refuses control characters here, before parsing
        node = loader.get_single_node()
        if node is not None:
            _check_limits(node, source)
        data = loader.construct_document(node) if node is not None else None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise MetadataError([Problem(f"invalid YAML: character U+{exc.character:04X} is not allowed in YAML "
                                     "(control characters other than tab and newline)", source, "", line)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise MetadataError([Problem(f"invalid YAML: {reason}", source, "", line)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, dict):
        raise MetadataError([Problem("a metadata document must be a mapping", source, "", 1)])
    lines: dict[PathKey, int] = {}
    _map_lines(node, (), lines)
    return Document(data=data, source=source, lines=lines)


def _check_flow_depth(text: str, source: str | None) -> None:
    """Refuse more than MAX_DEPTH unclosed `[` / `{` before PyYAML's scanner reads them: it looks
    ahead through every one of them (time growing with the depth) before the composer could stop."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for index, char in enumerate(text):
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line = text.count("\n", 0, index) + 1
                raise MetadataError([Problem(f"invalid YAML: nested more than {MAX_DEPTH} levels deep (the limit)",
                                             source, "", line)])
        elif char in "]}" and depth:
            depth -= 1


def _check_limits(root: yaml.Node, source: str | None) -> None:
    """Measure the node graph with aliases expanded (each node once: linear in the text) and
    check every scalar; raise MetadataError naming the limit and the line."""
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, depth), aliases expanded
    ancestors: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key, children = id(node), _children(node)
        if finished:
            ancestors.discard(key)
            size = 1 + sum(measured[id(c)][0] for c in children)
            depth = 1 + max((measured[id(c)][1] for c in children), default=0)
            measured[key] = (size, depth)
            if size > MAX_NODES:
                _refuse(node, source, f"with its aliases expanded, this has more than {MAX_NODES:,} values "
                                      "(the limit)")
            if depth > MAX_DEPTH:
                _refuse(node, source, f"with its aliases expanded, this is nested more than {MAX_DEPTH} levels "
                                      "deep (the limit)")
            continue
        if key in measured:
            continue
        if key in ancestors:
            _refuse(node, source, "an alias refers to a node that contains it (a recursive structure)")
        if isinstance(node, yaml.ScalarNode):
            _check_scalar(node, source)
        ancestors.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in measured)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_scalar(node: yaml.ScalarNode, source: str | None) -> None:
    value = node.value
    if "\x00" in value:
        _refuse(node, source, "text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        _refuse(node, source, "text must be valid Unicode (it contains a lone surrogate such as \\ud800)")
    if node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") and len(value) > MAX_NUMBER:
        _refuse(node, source, f"a number has at most {MAX_NUMBER} characters")


def _refuse(node: yaml.Node, source: str | None, message: str) -> None:
    raise MetadataError([Problem(message, source, "", node.start_mark.line + 1)])


def _map_lines(node: yaml.Node | None, path: PathKey, lines: dict[PathKey, int]) -> None:
    if node is None:
        return
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                lines[path + (key.value,)] = key.start_mark.line + 1
                _map_lines(value, path + (key.value,), lines)
                lines[path + (key.value,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _map_lines(item, path + (index,), lines)


def validate(document: Document, schema_name: str = "object") -> list[Problem]:
    """Every JSON Schema violation of a document, located and readable."""
    fields = document.data.get("fields")
    if schema_name == "object" and isinstance(fields, list) and len(fields) > MAX_FIELDS:
        return [document.problem(f"{len(fields)} fields; an object has at most {MAX_FIELDS} (the limit)",
                                 ("fields",))]  # before validating thousands of them
    problems = []
    errors = sorted(_validator(schema_name).iter_errors(document.data), key=lambda e: list(e.path))
    for error in errors:
        best = jsonschema.exceptions.best_match([error])
        problems.append(document.problem(_describe(best), tuple(best.path)))
    return problems


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown key(s)")
    if error.validator == "oneOf" and error.schema.get("description"):
        return f"{error.instance!r} is not valid here: expected {error.schema['description']}"
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return f"{error.instance!r} is not one of: {allowed}"
    return error.message


def load_documents(texts: Iterable[tuple[str | None, str]]) -> list[Document]:
    """Parse and validate (source, yaml_text) pairs; raise MetadataError listing all problems."""
    documents, problems = [], []
    for source, text in texts:
        try:
            document = parse_yaml(text, source)
        except MetadataError as exc:
            problems.extend(exc.problems)
            continue
        problems.extend(validate(document))
        documents.append(document)
    if problems:
        raise MetadataError(problems)
    return documents


def read_text(path: Path) -> str:
    """A metadata file's text: UTF-8 and at most MAX_DOCUMENT characters, or a Problem naming the file."""
    try:
        if path.stat().st_size > 4 * MAX_DOCUMENT:  # do not read a huge file only to refuse it
            raise MetadataError([Problem(f"the file is larger than the limit of {MAX_DOCUMENT:,} characters (1 MiB)",
                                         str(path))])
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise MetadataError([Problem(f"the file is not UTF-8 text (byte {exc.start})", str(path), "", line)]) from None
    except OSError as exc:
        raise MetadataError([Problem(f"cannot read the file: {exc.strerror or exc}", str(path))]) from None


def load_directory(path: str | Path) -> Template:
    """Load a template directory (template.yaml + object files) or a bare folder of objects."""
    root = Path(path)
    if not root.exists():
        raise MetadataError([Problem(f"no such template or directory: {root}")])
    manifest_path = root / "template.yaml"
    if manifest_path.is_file():
        manifest_doc = parse_yaml(read_text(manifest_path), str(manifest_path))
        problems = validate(manifest_doc, "template")
        if problems:
            raise MetadataError(problems)
        manifest = manifest_doc.data
        files = [root / rel for rel in manifest["objects"]]
        missing = [
            manifest_doc.problem(f"object file {rel!r} does not exist", ("objects", i))
            for i, (rel, f) in enumerate(zip(manifest["objects"], files))
            if not f.is_file()
        ]
        if missing:
            raise MetadataError(missing)
    elif root.is_dir():
        manifest = {"name": root.name, "version": "0", "objects": []}
        files = sorted(p for p in root.rglob("*.y*ml") if p.suffix in (".yaml", ".yml"))
    else:
        files, manifest = [root], {"name": root.stem, "version": "0", "objects": [root.name]}
        root = root.parent
    texts, problems = [], []
    for f in files:  # every unreadable file and every problem of the others, in one report
        try:
            texts.append((str(f), read_text(f)))
        except MetadataError as exc:
            problems.extend(exc.problems)
    try:
        documents = load_documents(texts)
    except MetadataError as exc:
        raise MetadataError(problems + exc.problems) from None
    if problems:
        raise MetadataError(problems)
    return Template(manifest["name"], str(manifest["version"]), root, manifest, tuple(documents))
