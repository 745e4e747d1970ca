"""YAML read with limits: configs and class maps are small, so a file that is not is refused at once.

``yaml.safe_load`` runs no code, but it still builds whatever the document describes: a 50 MB quoted
scalar takes minutes to scan, and a "billion laughs" document (aliases of aliases) is a few hundred
bytes that expand to billions of values when anything walks them. Here the text is capped in size,
the parsed node graph is measured with every alias expanded (without building it) and capped in
values and depth, and only then is the document built.
"""

from __future__ import annotations

import os

import yaml

MAX_BYTES = 1 << 20        # 1 MiB: the packaged default config is 6 KB, a 255-class map about 20 KB
MAX_VALUES = 100_000       # scalars + lists + mappings, aliases expanded
MAX_DEPTH = 64             # nesting of lists and mappings


class YamlLimitError(ValueError):
    """A YAML document over the limits above; the message names the source and the limit."""


def _children(node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [c for pair in node.value for c in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _measure(node, source: str) -> None:
    """Count the values ``node`` expands to (an alias counted each time it is used) and its depth, and
    raise :class:`YamlLimitError` past the limits or on a recursive alias. Each node is visited once."""
    counts: dict[int, int] = {}
    on_path: set[int] = {id(node)}
    stack = [(node, iter(_children(node)))]
    while stack:
        n, pending = stack[-1]
        child = next(pending, None)
        if child is None:
            stack.pop()
            on_path.discard(id(n))
            counts[id(n)] = 1 + sum(counts[id(c)] for c in _children(n))
            if counts[id(n)] > MAX_VALUES:
                raise YamlLimitError(f"{source}: refused: the document expands to more than {MAX_VALUES:,} values "
                                     "(aliases repeated inside aliases?); a landseg config or class map is far smaller")
        elif id(child) in on_path:
            raise YamlLimitError(f"{source}: refused: a recursive alias (a value that contains itself)")
        elif id(child) not in counts:
            if len(stack) >= MAX_DEPTH:
                raise YamlLimitError(f"{source}: refused: values nested more than {MAX_DEPTH} levels deep")
            on_path.add(id(child))
            stack.append((child, iter(_children(child))))


def safe_load(text: str, source: str = "<text>"):
    """``yaml.safe_load(text)`` within the limits; YAML syntax errors propagate as ``yaml.YAMLError``."""
    if len(text) > MAX_BYTES:
        raise YamlLimitError(f"{source}: refused: {len(text):,} characters, more than a landseg config or class map "
                             f"can be ({MAX_BYTES:,})")
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise YamlLimitError(f"{source}: refused: values nested too deeply") from None
        if node is None:
            return None
        _measure(node, source)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_file(path: str | os.PathLike):
    """A YAML file within the limits (its size is checked before it is read)."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    if size > MAX_BYTES:
        raise YamlLimitError(f"{path}: refused: {size:,} bytes, more than a landseg config or class map can be "
                             f"({MAX_BYTES:,})")
    with open(path, encoding="utf-8") as f:
        return safe_load(f.read(), path)
