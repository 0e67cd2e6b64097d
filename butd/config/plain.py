"""Values read from files are data: nothing in a checkpoint, a cache manifest or a run folder is
ever resolved by OmegaConf.

OmegaConf resolves `${...}` wherever a string reaches it: `${oc.env:NAME}` reads an environment
variable, `${butd.new_folder:/dir}` creates a folder, and any resolver registered in the process
runs. A config is resolved only when it comes from the command (Hydra's composition); a section
read from a file goes through `resolve_references` or `refuse_interpolations` first, and what
comes out holds no `${` at all.

The one use butd itself makes of `${...}` in a file is a checkpoint's data section, written with
its references kept (`cache_dir: ${paths.data_dir}/vqa2/cache`) so that a run moved to another
machine finds its data under that machine's `paths.data_dir`. Those plain references to
`paths.<key>` (taken from this command's config) and to keys of the section itself are
substituted here, by butd, without OmegaConf; anything else shaped like an interpolation (a
resolver call, a reference elsewhere, nesting, an escape) is refused, naming the file and key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from butd.errors import UserError

#: one `${...}` without `$`, `{` or `}` inside: the innermost interpolation of a string
_INTERPOLATION = re.compile(r"\$\{([^${}]*)\}")
#: a dotted key: `paths.data_dir`, `data.synthetic.num_boxes`
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
#: the sections of this command's config that a file's references may name
COMMAND_ROOTS = ("paths",)
#: how deep references may chain (`a: ${data.b}`, `b: ${data.c}`, ...) before it is a cycle
_MAX_DEPTH = 8


class InterpolationError(UserError):
    """A value read from a file looks like an OmegaConf interpolation that butd will not resolve."""


def _refusal(source: str, key: str, value: Any, why: str = "") -> InterpolationError:
    shown = repr(value) if len(repr(value)) <= 120 else repr(value)[:117] + "..."
    return InterpolationError(
        f"{source}: {key}={shown} looks like an OmegaConf interpolation{why}; butd reads files as data "
        "and never resolves what they hold. Use a file butd wrote, or name the setting on the command line"
    )


def looks_like_interpolation(text: str) -> bool:
    return "${" in text


def refuse_interpolations(value: Any, *, source: str, key: str = "") -> None:
    """Raise InterpolationError at the first string (value or mapping key) of `value` holding `${`.

    `source` names the file, `key` the dotted path of `value` inside it.
    """
    if isinstance(value, str):
        if looks_like_interpolation(value):
            raise _refusal(source, key or "<value>", value)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            sub = f"{key}.{k}" if key else str(k)
            if isinstance(k, str) and looks_like_interpolation(k):
                raise _refusal(source, sub, k, " (in a key)")
            refuse_interpolations(v, source=source, key=sub)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            refuse_interpolations(v, source=source, key=f"{key}[{i}]")


def resolve_references(
    section: Mapping[str, Any],
    *,
    name: str,
    lookup: Mapping[str, Callable[[str], Any]] | None = None,
    source: str,
) -> dict[str, Any]:
    """`section` (the config section `name` read from the file `source`) as plain data, its plain
    references substituted by butd: `${NAME.key...}` from the section itself, `${paths.key}` by
    calling `lookup["paths"]("key")` (this command's own `paths`; `COMMAND_ROOTS`). A string that is
    one reference takes the referenced value's type, as in OmegaConf.

    With `lookup=None` nothing is substituted: the references are only checked (a file's section
    that is not used yet, checked when the file is opened). Anything else is an InterpolationError.
    """
    roots = {name, *COMMAND_ROOTS}

    def refuse_unknown(value: Any, key: str) -> None:
        if isinstance(value, str):
            for match in _INTERPOLATION.finditer(value):
                body = match.group(1)
                if not _DOTTED.fullmatch(body) or body.split(".", 1)[0] not in roots:
                    raise _refusal(
                        source,
                        key,
                        value,
                        f" (`${{{body}}}`: only ${{{name}.KEY}} and "
                        f"${{paths.KEY}} references are read from a file)",
                    )
            if looks_like_interpolation(_INTERPOLATION.sub("", value)):
                raise _refusal(source, key, value, " (nested or unbalanced)")
            if "\\${" in value:
                raise _refusal(source, key, value, " (an escaped one)")
        elif isinstance(value, Mapping):
            for k, v in value.items():
                sub = f"{key}.{k}"
                if isinstance(k, str) and looks_like_interpolation(k):
                    raise _refusal(source, sub, k, " (in a key)")
                refuse_unknown(v, sub)
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                refuse_unknown(v, f"{key}[{i}]")

    if not isinstance(section, Mapping):
        raise UserError(f"{source}: the {name} section is a {type(section).__name__}, not a mapping")
    refuse_unknown(section, name)
    if lookup is None:
        return dict(section)

    def get(dotted: str, key: str, depth: int) -> Any:
        root, rest = dotted.split(".", 1)
        if root != name:
            value = lookup[root](rest)
            if not isinstance(value, str | int | float | bool) or value is None:
                raise _refusal(source, key, f"${{{dotted}}}", f" (this command's {dotted} is not a value)")
            return value
        node: Any = section
        for part in rest.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise _refusal(source, key, f"${{{dotted}}}", f" (the file has no {dotted})")
            node = node[part]
        if isinstance(node, Mapping | list | tuple):
            raise _refusal(source, key, f"${{{dotted}}}", " (a reference to a whole section)")
        return substitute(node, key, depth + 1)

    def substitute(value: Any, key: str, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise _refusal(source, key, value, " (references that never end: a cycle)")
        if isinstance(value, str):
            whole = _INTERPOLATION.fullmatch(value)
            if whole:
                return get(whole.group(1), key, depth)
            return _INTERPOLATION.sub(lambda m: str(get(m.group(1), key, depth)), value)
        if isinstance(value, Mapping):
            return {k: substitute(v, f"{key}.{k}", depth) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [substitute(v, f"{key}[{i}]", depth) for i, v in enumerate(value)]
        return value

    out = {k: substitute(v, f"{name}.{k}") for k, v in section.items()}
    refuse_interpolations(out, source=source, key=name)  # what the substitution made holds no `${`
    return out
