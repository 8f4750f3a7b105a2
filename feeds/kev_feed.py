"""CISA Known Exploited Vulnerabilities catalog (JSON) -> one Notice per vulnerability.

Each entry is a fact partners act on by a due date, so it becomes a report with the CVE as
a vulnerability and the required action as a course of action that mitigates it. The CVE
id is the entry's source id: a catalog that changes an entry's text updates the same STIX
objects. Every Notice goes through schemas.load_bulletin, so a feed can never publish
what an analyst could not; an entry that fails is reported by its CVE id (or its index)
and the rest of the catalog still goes through. Fields the catalog adds later are ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace

from marshmallow import ValidationError
from marshmallow.validate import URL

from infoshare import schemas
from infoshare.notices import Notice
from infoshare.settings import FeedSpec

from .base import Context, FeedError, Fetched, notices_from

OPTIONS: dict[str, type] = {}
ACCEPT = ("application/json",)
_URLS = re.compile(r"https?://[^\s;,<>\"']+")
_IS_URL = URL(schemes={"http", "https"}, require_tld=True)


def collect(ctx: Context) -> Fetched:
    response = ctx.get(ctx.spec.url, conditional=True, accept=ACCEPT)
    if response.not_modified:
        return Fetched(not_modified=True)
    return notices_from(_entries(response.body), _label,
                        lambda entry: _notice(ctx.spec, entry))


def _entries(body: bytes) -> list:
    try:
        catalog = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FeedError(f"the catalog is not valid JSON: {exc}") from None
    if not isinstance(catalog, Mapping) or not isinstance(catalog.get("vulnerabilities"), list):
        raise FeedError("the catalog is not a KEV catalog: no `vulnerabilities` list")
    return catalog["vulnerabilities"]


def _label(entry: object, index: int) -> str:
    cve = entry.get("cveID") if isinstance(entry, Mapping) else None
    return cve.strip() if isinstance(cve, str) and cve.strip() else f"vulnerabilities[{index}]"


def _text(entry: Mapping, key: str) -> str:
    value = entry.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value.strip()


def _notice(spec: FeedSpec, entry: object) -> Notice:
    if not isinstance(entry, Mapping):
        raise ValueError("an entry must be a JSON object")
    cve = _text(entry, "cveID")
    if not schemas.CVE.match(cve):
        raise ValueError(f"cveID {cve!r} is missing or not a CVE id like CVE-2024-12345")
    name = _text(entry, "vulnerabilityName")
    if not name:
        raise ValueError("vulnerabilityName is missing")
    action, due, added = (_text(entry, k) for k in ("requiredAction", "dueDate", "dateAdded"))
    ransomware = _text(entry, "knownRansomwareCampaignUse")
    labels = ["kev"] + (["known-ransomware-use"] if ransomware.lower() == "known" else [])
    bulletin = {
        "title": name[:500], "summary": _summary(entry, ransomware), "kind": "cyber",
        "tlp": spec.tlp, "sectors": list(spec.sectors) or "all", "vulnerabilities": [cve],
        "mitigations": [f"{action} (due {due})" if due else action] if action else [],
        "labels": labels, "references": _references(_text(entry, "notes")), "source_id": cve,
    }
    if added:  # the catalog gives a date; STIX wants a timestamp
        bulletin["valid_from"] = added if "T" in added else f"{added}T00:00:00Z"
    notice = schemas.load_bulletin(bulletin, ())
    return replace(notice, published=notice.valid_from, extra={"kev": {cve: _facts(entry)}})


def _facts(entry: Mapping) -> dict:
    """The catalog's facts about the CVE, for the vulnerability object itself."""
    cwes = entry.get("cwes")
    return {
        "description": _text(entry, "shortDescription") or None,
        "vendor_project": _text(entry, "vendorProject"), "product": _text(entry, "product"),
        "date_added": _text(entry, "dateAdded"), "due_date": _text(entry, "dueDate"),
        "required_action": _text(entry, "requiredAction"),
        "known_ransomware_campaign_use": _text(entry, "knownRansomwareCampaignUse"),
        "notes": _text(entry, "notes"),
        "cwes": [c for c in cwes if isinstance(c, str) and c.startswith("CWE-")]
        if isinstance(cwes, list) else [],
    }


def _summary(entry: Mapping, ransomware: str) -> str:
    parts = [_text(entry, "shortDescription")]
    affected = " ".join(p for p in (_text(entry, "vendorProject"), _text(entry, "product")) if p)
    if affected:
        parts.append(f"Affects: {affected}.")
    cwes = entry.get("cwes")
    if isinstance(cwes, list) and cwes:
        parts.append("Weaknesses: " + ", ".join(str(c) for c in cwes) + ".")
    if ransomware:
        parts.append(f"Known ransomware campaign use: {ransomware}.")
    return "\n\n".join(p for p in parts if p)[:20000]


def _references(notes: str) -> list[str]:
    """The http(s) URLs in `notes` (KEV separates them with " ; "), valid ones only: a
    malformed link in free text is no reason to drop the whole entry."""
    found = []
    for url in _URLS.findall(notes):
        url = url.rstrip(".)]")
        try:
            _IS_URL(url)
        except ValidationError:
            continue
        if url not in found:
            found.append(url)
    return found
