"""The described key bindings of a screen: for the help screen and the command palette."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.binding import Binding
from textual.dom import DOMNode
from textual.screen import Screen


def key_label(key: str) -> str:
    """``question_mark,q`` -> ``?, q``."""
    names = {"question_mark": "?", "plus": "+", "minus": "-", "equals_sign": "=",
             "left_square_bracket": "[", "right_square_bracket": "]"}
    return ", ".join(names.get(k, k) for k in key.split(","))


def own_nodes(screen: Screen[Any]) -> list[DOMNode]:
    """The screen and those of its widgets (ours) that define their own keys."""
    widgets = [w for w in screen.query("*") if "BINDINGS" in type(w).__dict__
               and type(w).__module__.startswith("lark_tui")]
    return [screen, *widgets]


def described(nodes: Iterable[Any]) -> list[tuple[Any, Binding]]:
    """Every binding with a description, once per action, first node wins. A node is a
    widget or screen, or a widget or screen class (for a screen that is not open)."""
    seen: set[str] = set()
    found: list[tuple[Any, Binding]] = []
    for node in nodes:
        cls: Any = node if isinstance(node, type) else type(node)
        for item in cls.BINDINGS:
            binding = item if isinstance(item, Binding) else Binding(*item)
            action = binding.action.removeprefix("screen.")
            if binding.description and action not in seen:
                seen.add(action)
                found.append((node, binding))
    return found


def display(binding: Binding) -> str:
    return binding.key_display or key_label(binding.key)
