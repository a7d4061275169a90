"""Prompt templates: text with named inputs in braces ("Summarize {text}"), nothing more.

str.format would also apply format specs, conversions, attribute and index lookups: `{x:>1000000000}`
makes every run allocate a gigabyte. Templates are checked when saved and filled, never formatted.
"""

from __future__ import annotations

import re
import string

MAX_TEMPLATE_CHARS = 200_000
MAX_INPUT_CHARS = 1_000_000  # about the API's 8 MiB body limit in UTF-8 at worst
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TemplateError(ValueError):
    pass


def check(template: str) -> list[str]:
    """The input names of a template, or TemplateError saying what is wrong with it."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as error:
        raise TemplateError(
            f"Braces do not match: {error}. Write {{{{ and }}}} for literal braces."
        ) from None
    names: list[str] = []
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if not _NAME.match(field):
            raise TemplateError(f"“{{{field}}}” is not an input name: use letters, digits and _.")
        if conversion:
            raise TemplateError(
                f"“{{{field}!{conversion}}}”: a conversion is not allowed; write {{{field}}}."
            )
        if spec:
            raise TemplateError(f"“{{{field}:{spec}}}”: a format spec is not allowed; write {{{field}}}.")
        if field not in names:
            names.append(field)
    return names


def input_names(template: str) -> list[str]:
    """The names in a stored template, in order of first use (a malformed one has none)."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:
        return []
    return list(dict.fromkeys(field for _, field, _, _ in parts if field))


def fill(template: str, inputs: dict[str, str]) -> str:
    """The template with each {name} replaced by its input; specs and conversions are ignored."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:
        return template
    return "".join(literal + (inputs.get(field, "") if field else "") for literal, field, _, _ in parts)
