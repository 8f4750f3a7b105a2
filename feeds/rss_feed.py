"""Security advisories from RSS or Atom -> one Notice per entry.

feedparser reads every RSS and Atom dialect, but it is a lenient parser built on expat;
so the raw body is first parsed with defusedxml, which refuses DTD entity declarations
and external references. A billion-laughs or XXE document therefore fails the whole fetch
before feedparser sees it, and so does anything that is not well-formed XML.

Each entry's id (else its link) is its source id, so an edited advisory updates the same
objects. CVE ids named in the title or summary become vulnerabilities; the summary is
reduced to plain text, since STIX descriptions are not HTML.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import replace
from html.parser import HTMLParser
from xml.etree.ElementTree import ParseError

import defusedxml
import defusedxml.ElementTree
import feedparser
from marshmallow import ValidationError
from marshmallow.validate import URL

from infoshare import schemas, timestamps
from infoshare.notices import Notice
from infoshare.settings import FeedSpec

from .base import Context, FeedError, Fetched, notices_from

OPTIONS: dict[str, type] = {}
ACCEPT = ("application/rss+xml", "application/atom+xml", "application/rdf+xml",
          "application/xml", "text/xml")
CVE = re.compile(r"\bCVE-\d{4}-\d{4,}\b", re.IGNORECASE)
_IS_URL = URL(schemes={"http", "https"}, require_tld=False)


def collect(ctx: Context) -> Fetched:
    response = ctx.get(ctx.spec.url, conditional=True, accept=ACCEPT)
    if response.not_modified:
        return Fetched(not_modified=True)
    parsed = _parse(response.body, response.content_type)
    return notices_from(
        list(parsed.entries),
        lambda entry, index: entry.get("id") or entry.get("link") or f"entry {index + 1}",
        lambda entry: _notice(ctx.spec, entry))


def _parse(body: bytes, content_type: str):
    try:
        defusedxml.ElementTree.fromstring(body)
    except defusedxml.DefusedXmlException as exc:
        raise FeedError(f"refused: the document declares entities or external references "
                        f"({type(exc).__name__})") from None
    except ParseError as exc:
        raise FeedError(f"not well-formed XML: {exc}") from None
    parsed = feedparser.parse(body, response_headers={"content-type": content_type})
    if not parsed.version:
        raise FeedError("the document is neither RSS nor Atom")
    return parsed


def _notice(spec: FeedSpec, entry: Mapping) -> Notice:
    source_id = entry.get("id") or entry.get("link")
    if not source_id:
        raise ValueError("the entry has neither an id nor a link")
    title = plain_text(entry.get("title", ""))
    if not title:
        raise ValueError("the entry has no title")
    summary = plain_text(entry.get("summary") or _content(entry))
    bulletin = {
        "title": title[:500], "summary": summary[:20000], "kind": "cyber", "tlp": spec.tlp,
        "sectors": list(spec.sectors) or "all", "source_id": source_id,
        "vulnerabilities": list(dict.fromkeys(m.upper() for m in
                                              CVE.findall(f"{title}\n{summary}"))),
        "references": [link] if (link := _url(entry.get("link"))) else [],
    }
    when = entry.get("published_parsed") or entry.get("updated_parsed")
    if when:
        bulletin["valid_from"] = timestamps.format_stix(calendar.timegm(when) * 1_000_000)
    notice = schemas.load_bulletin(bulletin, ())
    return replace(notice, published=notice.valid_from)  # the item's own date


def _content(entry: Mapping) -> str:
    content = entry.get("content") or []
    return content[0].get("value", "") if content else ""


def _url(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return _IS_URL(value)
    except ValidationError:
        return None


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in ("p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4"):
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def plain_text(html: str) -> str:
    """Text of an HTML fragment: tags dropped, entities resolved, blank runs collapsed."""
    parser = _Text()
    parser.feed(html or "")
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)
