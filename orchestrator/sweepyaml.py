"""Reading a sweep file's YAML: data only, and bounded so that no file can hang or crash the reader.

PyYAML's safe loader builds no Python objects, but it still accepts inputs that cost far more than
their size: aliases that expand exponentially (a 600-byte file becomes 10^8 values for OmegaConf to
copy), nesting deep enough to exhaust the interpreter's recursion limit, and duplicate keys, where
the last silently wins. ``read_yaml`` refuses each before any value is built, with the line it
found it on, so the caller can report one line.
"""
from __future__ import annotations

import re

import yaml

MAX_DEPTH = 32          # a sweep file needs about 5 levels (profiles.paper.grid.d[0])
MAX_VALUES = 10_000     # after expanding aliases; a large sweep file holds a few hundred


class Refused(Exception):
    """A YAML document this reader will not build: ``where`` is ``line N``, ``problem`` and ``allowed`` text."""

    def __init__(self, where: str, problem: str, allowed: str):
        super().__init__(f"{where}: {problem}; allowed: {allowed}")
        self.where, self.problem, self.allowed = where, problem, allowed


def _line(node_or_mark) -> str:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return f"line {mark.line + 1}" if mark is not None else "-"


class SweepLoader(yaml.SafeLoader):
    """YAML's safe loader, reading ``1e-3`` as a float as a researcher means it (YAML 1.1 needs a dot),
    with a nesting limit while composing and no duplicate keys while constructing."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise Refused(_line(self.peek_event()), f"nesting deeper than {MAX_DEPTH} levels",
                              f"at most {MAX_DEPTH} levels of mappings and lists")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node):
        _check_size(node)
        return super().construct_document(node)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *defaults` then a key of its own is an override, not a duplicate
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                if first is not key_node:
                    raise Refused(_line(key_node), f"duplicate key {key!r} (first on {_line(first)})",
                                  "each key once per mapping")
        return super().construct_mapping(node, deep)


SweepLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
               r"|\.(?:inf|Inf|INF)|[-+]\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


def _check_size(root) -> None:
    """Measure the document as it expands, each shared (aliased) node once per use, without expanding
    it: a node's size and height are computed once and reused. An alias inside its own anchor is refused."""
    measured: dict[int, tuple[int, int]] = {}
    open_nodes: set[int] = set()

    def deep(node) -> Refused:
        return Refused(_line(node), f"nesting deeper than {MAX_DEPTH} levels (after expanding aliases)",
                       f"at most {MAX_DEPTH} levels of mappings and lists")

    def measure(node, depth: int) -> tuple[int, int]:
        if id(node) in measured:
            size, height = measured[id(node)]
            if depth + height - 1 > MAX_DEPTH:
                raise deep(node)
            return size, height
        if depth > MAX_DEPTH:
            raise deep(node)
        if id(node) in open_nodes:
            raise Refused(_line(node), "an alias refers to a node that contains it (a recursive structure)",
                          "aliases of finished nodes only")
        open_nodes.add(id(node))
        children = ([v for pair in node.value for v in pair] if isinstance(node, yaml.MappingNode)
                    else node.value if isinstance(node, yaml.SequenceNode) else [])
        size, height = 1, 1
        for child in children:
            child_size, child_height = measure(child, depth + 1)
            size, height = size + child_size, max(height, child_height + 1)
            if size > MAX_VALUES:
                raise Refused(_line(node), f"the file expands to more than {MAX_VALUES} values (an alias counts "
                                           "once per use)", f"at most {MAX_VALUES} values after expanding aliases")
        open_nodes.discard(id(node))
        measured[id(node)] = size, height
        return size, height

    measure(root, 1)


def read_yaml(data: bytes):
    """The document in ``data``; raises Refused (limits, duplicates, not UTF-8) or yaml.YAMLError (syntax)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Refused("-", f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})",
                      "a UTF-8 text file") from None
    return yaml.load(text, Loader=SweepLoader)  # noqa: S506 - a SafeLoader subclass
