"""The words a user types for a Loom kind (`isvc/movie-recommender`, `tj/x`, `trainingjobs/x`) and the
kind each names."""

from __future__ import annotations

from loom.api.kinds import INFERENCESERVICE, KINDS, Kind

# KServe's short name, which Loom's CRD leaves to KServe; inside `kubectl loom` nothing else claims it.
EXTRA_NAMES = {"isvc": INFERENCESERVICE, "isvcs": INFERENCESERVICE}
NAMES: dict[str, Kind] = {
    **{name: kind for kind in KINDS for name in (kind.singular, kind.plural, *kind.short_names)},
    **EXTRA_NAMES,
}


class BadReference(ValueError):
    """A reference that names no Loom kind, or no object; the message says what is accepted."""


def kind_named(word: str) -> Kind:
    """The kind a word names: its Kind, singular, plural or a short name, in any case, with or without
    the API group (`inferenceservices.loom.dev`)."""
    found = NAMES.get(word.lower().split(".", 1)[0])
    if found is None:
        raise BadReference(f"{word!r} is no Loom kind; use one of {', '.join(sorted(NAMES))}")
    return found


def parse(text: str, default: Kind | None = None) -> tuple[Kind, str]:
    """`<kind>/<name>`, or a bare name of the `default` kind."""
    word, slash, name = text.partition("/")
    if not slash:
        if default is None:
            raise BadReference(f"{text!r} names no kind; write <kind>/<name>, e.g. isvc/{text}")
        return default, text
    if not name:
        raise BadReference(f"{text!r} names no object; write <kind>/<name>")
    return kind_named(word), name


def expect(text: str, kind: Kind) -> str:
    """The name of an object that must be of `kind` (a bare name, or `<kind>/<name>` naming that kind)."""
    found, name = parse(text, kind)
    if found is not kind:
        raise BadReference(f"{text!r} is of kind {found.kind}; this command takes one of kind {kind.kind}")
    return name
