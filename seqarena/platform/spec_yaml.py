"""Reading a spec's YAML text with limits, so that hostile text is refused quickly in bounded memory.

`yaml.safe_load` builds no objects of arbitrary classes but has no limits: an alias bomb (`a: &a
[1, 1]`, `b: &b [*a, *a]`, ... nine levels) became a list of 10**9 items once validated or printed
(8.4 GB for `validate`), 20,000 nested `[` hit Python's recursion limit, and a key written twice
silently kept the second value. `parse` refuses, each as a one-line `BadInput`:

* text over `MAX_BYTES` (UTF-8 bytes): a spec is a page of YAML;
* any alias (`*name`): every value is written out, so what is validated is what was written;
* nesting deeper than `MAX_DEPTH` collections (the deepest spec field, `space.MODEL.HP.choices`, is 4);
* a key written twice in one mapping (named, with its line);
* numbers Python cannot hold as written (an integer of more than 4,300 digits), impossible dates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from seqarena.errors import BadInput

#: Largest spec text, in UTF-8 bytes.
MAX_BYTES = 64 * 1024
#: Deepest nesting of mappings and lists (the spec's own fields nest at most 4 deep).
MAX_DEPTH = 12

_MAPPING = "a YAML mapping of spec fields (name, task, seq_lens, models, budget, search, ...)"


class _LimitedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses aliases, deep nesting and duplicate keys while it composes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise BadInput("spec", f"alias *{event.anchor} at line {event.start_mark.line + 1}",
                           "a spec without YAML aliases (*name): write each value out")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise BadInput("spec", f"nesting deeper than {MAX_DEPTH} levels at line {mark.line + 1}",
                               f"at most {MAX_DEPTH} nested mappings and lists")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a collection as a key: SafeLoader refuses it as unhashable
            key = (key_node.tag, key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise BadInput("spec", f"key {key_node.value!r} twice (lines {seen[key]} and {line})",
                               "each key once in a mapping")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def check_size(size: int) -> None:
    """`BadInput` when a spec of `size` UTF-8 bytes is over `MAX_BYTES`."""
    if size > MAX_BYTES:
        raise BadInput("spec", f"{size:,} bytes of text", f"at most {MAX_BYTES:,} bytes")


def parse(text: str) -> Mapping[str, Any]:
    """The mapping in `text`, within the module's limits; anything else is a one-line `BadInput`."""
    check_size(len(text.encode("utf-8", errors="replace")))
    loader = None
    try:
        loader = _LimitedLoader(text)
        data = loader.get_single_data()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or (str(error).splitlines() or [type(error).__name__])[0]
        raise BadInput("spec", f"invalid YAML{where}: {problem}", _MAPPING) from None
    except (ValueError, OverflowError, TypeError) as error:  # a value Python cannot hold as written
        if isinstance(error, BadInput):
            raise
        raise BadInput("spec", f"a value YAML cannot read: {error}", _MAPPING) from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, Mapping):
        raise BadInput("spec", data if isinstance(data, str | int | float | None) else f"a {type(data).__name__}",
                       _MAPPING)
    return data
