"""OASIS CAP 1.2 feed: the URL serves one <alert>, or an Atom or RSS index whose entries
link to alerts (each fetched in turn) or embed them.

Options: `max_alerts` (default 500) bounds the entries read per run, so a runaway index
cannot hold the feed for hours; `statuses` (default ["Actual"]) says which CAP statuses
are published; `country` places areas described only by geocodes that do not say a country
themselves (SAME, FIPS and UGC say US; CAP-CP locations Canada; EMMA_ID and NUTS codes
theirs): no country is ever assumed.

All XML is parsed with defusedxml and any DTD is refused: a source never makes the
service read a local file, call another host or expand entities. A refused or unreadable
index fails the whole fetch; a refused linked alert is one ItemError. A file may also hold
several alerts in an <alerts> wrapper; each is read on its own. The body decides the
format: XML served as text/plain or another type is read (and noted in the feed's
status), a web page (text/html) is refused. Linked alerts must be
http(s) (a local index may link local files), so a remote index cannot point the fetcher
at the service's own disk. The mapping to Notices is feeds/cap_parse.py, shared with nws.
"""

from __future__ import annotations

import logging
from urllib.parse import urljoin, urlsplit
from xml.etree.ElementTree import Element

from . import cap_parse
from .base import Context, FeedError, Fetched, ItemError
from .cap_parse import BadAlert, local

log = logging.getLogger(__name__)

OPTIONS: dict[str, type] = {"max_alerts": int, "statuses": list, "country": str}
ALERT_TYPES = ("application/cap+xml", "application/xml", "text/xml")
ACCEPT = (*ALERT_TYPES, "application/atom+xml", "application/rss+xml")

# (label for errors, source): an embedded alert, escaped alert text (bytes), or a link
Entry = tuple[str, Element | bytes | str]


# Served under these, a body is a web page (an error or a log-in page), never the feed.
PAGE_TYPES = ("text/html", "application/xhtml+xml")


def collect(ctx: Context) -> Fetched:
    url = ctx.spec.url
    notes: list[str] = []
    response = ctx.get(url, conditional=True, headers={"Accept": ", ".join(ACCEPT)})
    if response.not_modified:
        return Fetched(not_modified=True)
    try:
        root = _xml(url, response, ACCEPT, notes)
    except BadAlert as exc:
        raise FeedError(f"{url}: {exc}") from None
    if cap_parse.is_alert(root):
        entries: list[Entry] = [("alert", root)]
    elif local(root.tag) == "alerts":  # several alerts in one file
        entries = [(f"alert {i}", e) for i, e in enumerate(root) if cap_parse.is_alert(e)]
    elif local(root.tag) in ("feed", "rss", "RDF"):
        entries = [_entry(e, i, url) for i, e in enumerate(_index_items(root))]
    else:
        raise FeedError(f"{url}: <{local(root.tag)}> is neither a CAP alert nor an Atom or "
                        "RSS index")
    limit = cap_parse.max_alerts(ctx)
    if len(entries) > limit:
        log.warning("feed %s: %d entries, reading the first %d (max_alerts)",
                    ctx.spec.name, len(entries), limit)
        entries = entries[:limit]
    alerts, errors = [], []
    for label, source in entries:
        try:
            if isinstance(source, Element):
                elem = source
            elif isinstance(source, bytes):
                elem = cap_parse.parse_xml(source)
            else:
                elem = _fetch(ctx, source, url, notes)
            alerts.append(cap_parse.alert_from_xml(elem))
        except (BadAlert, FeedError) as exc:
            errors.append(ItemError(getattr(exc, "item", "") or label, str(exc)))
    fetched = cap_parse.collect_alerts(ctx, alerts, errors, len(entries))
    fetched.notes.extend(notes)
    return fetched


def _xml(url: str, response, expected: tuple[str, ...], notes: list[str]) -> Element:
    """The body as XML, whatever type it was served as: real sources send CAP as
    text/plain, application/octet-stream or a vendor type. The body decides, through the
    same hardened parser; a web page's type is refused, and any other mismatch noted."""
    media = response.content_type.split(";")[0].strip().lower()
    if media in PAGE_TYPES:
        raise FeedError(f"{url} sent {media} (a web page); expected one of "
                        + ", ".join(expected))
    root = cap_parse.parse_xml(response.body)
    if media and media not in expected:
        notes.append(f"{url} is served as {media}; its body is XML and was read as such")
    return root


def _index_items(root: Element) -> list[Element]:
    """Atom <entry>, RSS 2.0 <channel><item> and RSS 1.0 <item> elements."""
    return [e for e in root.iter() if local(e.tag) in ("entry", "item")]


def _entry(entry: Element, index: int, base: str) -> Entry:
    label = next((c.text.strip() for c in entry if local(c.tag) in ("id", "guid") and c.text),
                 f"entry {index}")
    embedded = next((e for e in entry.iter() if cap_parse.is_alert(e)), None)
    if embedded is not None:
        return label, embedded
    content = next((c for c in entry if local(c.tag) in ("content", "description")), None)
    if content is not None and content.text and "<alert" in content.text:
        return label, content.text.strip().encode()  # an alert sent as escaped text
    link = urljoin(base, _link(entry)) if _link(entry) else ""
    return (link or label), link


def _link(entry: Element) -> str:
    """The entry's alert link: a CAP-typed link, else the alternate (Atom), else <link>."""
    links = [c for c in entry if local(c.tag) in ("link", "enclosure")]
    for test in (lambda c: "cap" in c.get("type", ""),
                 lambda c: c.get("rel", "alternate") == "alternate" and c.get("href"),
                 lambda c: c.get("href") or c.get("url") or (c.text or "").strip()):
        chosen = next((c for c in links if test(c)), None)
        if chosen is not None:
            return (chosen.get("href") or chosen.get("url") or chosen.text or "").strip()
    return ""


def _fetch(ctx: Context, link: str, index_url: str, notes: list[str]) -> Element:
    if not link:
        raise BadAlert("the entry neither links to nor embeds a CAP alert")
    remote_index = urlsplit(index_url).scheme in ("http", "https")
    if remote_index and urlsplit(link).scheme not in ("http", "https"):
        raise BadAlert(f"link {link!r} is not http(s)")
    response = ctx.get(link, headers={"Accept": ", ".join(ALERT_TYPES)})
    return _xml(link, response, ALERT_TYPES, notes)
