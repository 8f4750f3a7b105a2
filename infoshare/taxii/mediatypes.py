"""TAXII 2.1 media types and content negotiation (TAXII 2.1 section 1.6.8, 3.1)."""

from __future__ import annotations

TAXII = "application/taxii+json;version=2.1"
STIX = "application/stix+json;version=2.1"


def _parse(header: str) -> list[tuple[str, dict[str, str]]]:
    ranges = []
    for part in header.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        if not media:
            continue
        values = {}
        for param in params:
            key, _, value = param.partition("=")
            values[key.strip().lower()] = value.strip().strip('"')
        ranges.append((media.lower(), values))
    return ranges


def _q(params: dict[str, str]) -> float:
    try:
        return float(params.get("q", "1"))
    except ValueError:
        return 0.0


def _specificity(media: str, params: dict[str, str]) -> int:
    """How closely a media range names TAXII 2.1 JSON; -1 when it does not match at all."""
    if media == "application/taxii+json":
        version = params.get("version")
        if version is None:
            return 2
        return 3 if version == "2.1" else -1
    return {"application/*": 1, "*/*": 0}.get(media, -1)


def accepts_taxii(header: str | None) -> bool:
    """Whether an Accept header admits TAXII 2.1 JSON (a missing header admits anything).

    The most specific matching range decides (RFC 9110 12.5.1), so
    `*/*, application/taxii+json;q=0` refuses TAXII.
    """
    if header is None or not header.strip():
        return True
    best = (-1, 0.0)
    for media, params in _parse(header):
        specificity = _specificity(media, params)
        if specificity > best[0]:
            best = (specificity, _q(params))
    return best[0] >= 0 and best[1] > 0


def is_taxii(content_type: str | None) -> bool:
    """Whether a request body is declared TAXII 2.1 JSON."""
    if not content_type:
        return False
    parsed = _parse(content_type)
    if len(parsed) != 1:
        return False
    media, params = parsed[0]
    return media == "application/taxii+json" and params.get("version", "2.1") == "2.1"
