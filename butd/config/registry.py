"""One registry per switch: the names a config key accepts, each with its properties, declared once.

A switch (`debias.name`, `model.attention`, `data.format`, ...) is a `Registry` of entries in the
config module of its group (`butd.config.debias`, `butd.config.model`, `butd.config.data`). Each
entry is a frozen dataclass with a `name` and the properties the rest of the code asks about
(whether a debias method reads the question-type prior, whether it changes inference, ...). The
config's validation reads the registry, so an unknown value is a ConfigError that lists the
names and suggests the closest.

The code that implements an entry sits where torch may be imported (a model part in
`butd.models`, a debias loss in `butd.training.debias`) and binds itself to its entry with
`@REGISTRY.implements(name)`; `REGISTRY.implementation(name)` then gives it back. The entries
live here, beneath everything, because the config is checked before torch is imported and may
import nothing but `butd.errors`; `tests/config/test_registry.py` checks that every entry has an
implementation and every implementation an entry.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from butd.errors import ConfigError


@dataclass(frozen=True)
class Option:
    """An entry with no properties beyond its name."""

    name: str


E = TypeVar("E", bound=Option)
F = TypeVar("F", bound=Callable[..., Any])


def closest(word: str, options: list[str]) -> list[str]:
    """The option most like `word` (difflib), and a second one only when it is about as close."""
    scored = sorted(
        ((difflib.SequenceMatcher(None, word, o).ratio(), o) for o in options), key=lambda x: -x[0]
    )
    return [o for r, o in scored[:2] if r >= 0.6 and r >= scored[0][0] - 0.05]


class Registry(Generic[E]):
    """The entries of the config key `key` (e.g. `debias.name`), in declaration order, and the
    implementation bound to each (`implements`)."""

    def __init__(self, key: str, entries: list[E]) -> None:
        self.key = key
        self._entries = {e.name: e for e in entries}
        if len(self._entries) != len(entries):
            raise ValueError(f"{key}: an entry is declared twice")
        self._implementations: dict[str, Any] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[E]:
        return iter(self._entries.values())

    def __getitem__(self, name: str) -> E:
        """The entry `name`, or a ConfigError naming the key, the valid names and the closest."""
        if not isinstance(name, str) or name not in self._entries:
            near = closest(name, list(self._entries)) if isinstance(name, str) else []
            hint = f"; did you mean {' or '.join(near)}?" if near else ""
            raise ConfigError(f"{self.key}={name!r} is invalid; expected one of {list(self._entries)}{hint}")
        return self._entries[name]

    def implements(self, *names: str) -> Callable[[F], F]:
        """Decorator: the class or function it decorates implements the entries `names`."""

        def bind(impl: F) -> F:
            for name in names:
                if name not in self._entries:
                    raise ValueError(f"{impl!r} implements {self.key}={name!r}, which is not declared")
                if name in self._implementations:
                    raise ValueError(f"{self.key}={name!r} is implemented twice")
                self._implementations[name] = impl
            return impl

        return bind

    def implementation(self, name: str) -> Any:
        """What implements entry `name` (the entry is checked first: an unknown name is a
        ConfigError)."""
        self[name]
        return self._implementations[name]

    @property
    def implemented(self) -> tuple[str, ...]:
        """The names bound so far (every name, once the implementing modules are imported)."""
        return tuple(self._implementations)
