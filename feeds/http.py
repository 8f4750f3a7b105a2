"""Fetching a feed's source: timeouts, a size limit, conditional GET, retries.

Every request and redirect obeys infoshare/outbound.py's rule (the session comes from
there); a refusal is a FeedError that says so. Transient failures (connection errors,
timeouts, 429 and 5xx) are retried with exponential backoff; anything else fails the
fetch at once with a FeedError that says what happened. Local paths (and file:// URLs)
are read with the same size limit, for sources an operator drops on disk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from infoshare import outbound

from .base import FeedError

TRANSIENT = {429, 500, 502, 503, 504}


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str
    etag: str | None = None
    last_modified: str | None = None
    headers: dict = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass
class Fetcher:
    timeout: float = 30.0
    max_bytes: int = 20 * 1024 * 1024
    retries: int = 3
    backoff: float = 0.5
    user_agent: str = "infoshare-feeds/1 (critical-infrastructure information sharing)"
    session: requests.Session = field(default_factory=requests.Session)

    def get(self, url: str, *, accept: tuple[str, ...] = (), etag: str | None = None,
            last_modified: str | None = None, headers: dict | None = None,
            auth=None) -> Response:
        if _is_local(url):
            return self._read_file(url)
        request_headers = {"User-Agent": self.user_agent, **(headers or {})}
        if accept:
            request_headers.setdefault("Accept", ", ".join(accept))
        if etag:
            request_headers["If-None-Match"] = etag
        if last_modified:
            request_headers["If-Modified-Since"] = last_modified
        for attempt in range(self.retries + 1):
            try:
                response = self._once(url, request_headers, auth)
            except outbound.Refused as exc:  # the URL or a redirect: never retried
                raise FeedError(f"refused: {exc}") from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt == self.retries:
                    raise FeedError(f"cannot reach {url}: {type(exc).__name__}") from None
            else:
                if response.status not in TRANSIENT or attempt == self.retries:
                    return self._check(url, response, accept)
            time.sleep(self.backoff * 2 ** attempt)
        raise FeedError(f"cannot fetch {url}")  # not reached

    def _once(self, url: str, headers: dict, auth) -> Response:
        with self.session.get(url, headers=headers, timeout=self.timeout, stream=True,
                              auth=auth, allow_redirects=True) as response:
            body = bytearray()
            for chunk in response.iter_content(65536):
                body += chunk
                if len(body) > self.max_bytes:
                    raise FeedError(f"{url} is larger than the limit of {self.max_bytes} bytes")
            return Response(response.status_code, bytes(body),
                            response.headers.get("Content-Type", ""),
                            response.headers.get("ETag"), response.headers.get("Last-Modified"),
                            dict(response.headers))

    def _check(self, url: str, response: Response, accept: tuple[str, ...]) -> Response:
        if response.status == 304:
            return response
        if not 200 <= response.status < 300:
            raise FeedError(f"{url} answered HTTP {response.status}")
        media = response.content_type.split(";")[0].strip().lower()
        if accept and media not in accept:
            raise FeedError(f"{url} sent {media or 'no content type'}; expected one of "
                            + ", ".join(accept))
        return response

    def _read_file(self, url: str) -> Response:
        path = Path(urlsplit(url).path if url.startswith("file:") else url)
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise FeedError(f"{path} is larger than the limit of {self.max_bytes} bytes")
            return Response(200, path.read_bytes(), "")
        except OSError as exc:
            raise FeedError(f"cannot read {path}: {exc.strerror}") from None


def _is_local(url: str) -> bool:
    return url.startswith("file:") or "://" not in url
