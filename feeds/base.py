"""What every adapter shares: the items it yields and the errors it reports.

An adapter turns one fetched source into items: Notices (converted and signed by the
service) or third-party STIX objects (validated and stored as received). A bad entry
becomes an ItemError that names it; the good entries of the same fetch still go through.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError

from infoshare import outbound
from infoshare.notices import Notice
from infoshare.settings import CollectionSpec, FeedSpec


class FeedError(Exception):
    """The whole fetch failed (unreachable, oversize, wrong type, unparseable)."""


@dataclass(frozen=True)
class ItemError:
    item: str  # which entry: an id, a line number, an index
    message: str


@dataclass(frozen=True)
class StixObjects:
    objects: list[dict]
    raws: list[bytes] | None = None  # each object's bytes as received, where known


Item = Notice | StixObjects


@dataclass
class Fetched:
    """One run's output. `cursor` is saved only after the items are stored."""

    items: list[Item] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)
    fetched: int = 0  # entries seen in the source, good and bad
    cursor: Mapping[str, Any] | None = None  # None: keep the old cursor
    not_modified: bool = False
    skipped: int = 0  # entries the feed's options leave out (CAP statuses Test, Exercise)
    notes: list[str] = field(default_factory=list)  # worth an operator's eye, not errors
    # A source read past a cursor sends each item once: its rejections stay listed until
    # an operator clears them. A whole document (CAP file, catalog) is judged anew on
    # each fetch, so its last fetch's rejections are the ones that stand.
    incremental: bool = False


@dataclass(frozen=True)
class Context:
    spec: FeedSpec
    cursor: Mapping[str, Any]
    get: Callable[..., Any]  # feeds.http.Fetcher.get, bound to this feed's limits
    # The outbound rule, for adapters that bring their own HTTP client (taxii).
    policy: outbound.Policy = field(default_factory=outbound.Policy)

    def option(self, key: str, default: Any = None) -> Any:
        return self.spec.options.get(key, default)


def validation_text(exc: Exception) -> str:
    """An error as one line; marshmallow's nested messages as "field.index: message; ..."."""
    if isinstance(exc, ValidationError):
        return "; ".join(_flatten(exc.messages))
    return str(exc)


def _flatten(messages, path: str = "") -> list[str]:
    if isinstance(messages, Mapping):
        return [line for key, value in messages.items()
                for line in _flatten(value, f"{path}.{key}" if path else str(key))]
    if isinstance(messages, list):
        return [line for m in messages for line in _flatten(m, path)]
    return [f"{path}: {messages}" if path and path != "_schema" else str(messages)]


def notices_from(entries: list, label_of: Callable[[Any, int], str],
                 to_notice: Callable[[Any], Notice]) -> Fetched:
    """A Fetched of one Notice per entry: a bad entry, or a second entry with the same
    source id, becomes an ItemError naming it, and the rest still go through."""
    fetched = Fetched(fetched=len(entries))
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        label = label_of(entry, index)
        try:
            notice = to_notice(entry)
        except (ValidationError, ValueError) as exc:
            fetched.errors.append(ItemError(label, validation_text(exc)))
            continue
        if notice.source_id in seen:
            fetched.errors.append(ItemError(label, "the same id appears twice; kept the first"))
            continue
        seen.add(notice.source_id)
        fetched.items.append(notice)
    return fetched


def feed_collection(spec: FeedSpec) -> CollectionSpec:
    """The lens a feed's third-party objects are stored through (its default TLP)."""
    return CollectionSpec(id=f"feed:{spec.name}", alias=f"feed-{spec.name}",
                          title=spec.name, description="", kind="feed", default_tlp=spec.tlp)


def count_outcomes(outcomes, counts: dict, errors: list) -> None:
    """A run's counts from publish.ingest's outcomes; each failure named in `errors`."""
    for outcome in outcomes:
        if outcome.stored:
            counts["updated" if outcome.new_version else "created"] += 1
        elif outcome.duplicate:
            counts["unchanged"] += 1
        else:
            counts["rejected"] += 1
            errors.append(ItemError(outcome.id, outcome.message))
