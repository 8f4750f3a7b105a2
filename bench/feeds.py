"""Benchmark feeds through the whole path: fetch, parse, convert, sign, store, route.

Generates a 5,000-entry KEV catalog and a 1,000-alert CAP Atom index whose entries link
to their alerts, serves them from a loopback HTTP server, and runs each feed once with
the real runner (then once more, unchanged, to time the no-op path). Prints JSON:
items/s and stored objects/s per feed.

    python bench/feeds.py [--kev 5000] [--cap 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow
# the `feeds` package it measures.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from werkzeug.serving import make_server  # noqa: E402
from werkzeug.wrappers import Request, Response  # noqa: E402

from feeds.runner import run_feed  # noqa: E402
from infoshare.app import create_app  # noqa: E402
from infoshare.server import prepare  # noqa: E402
from infoshare.settings import load_settings  # noqa: E402

ATOM = "http://www.w3.org/2005/Atom"
CAP = "urn:oasis:names:tc:emergency:cap:1.2"


def kev_catalog(count: int) -> bytes:
    entries = [{
        "cveID": f"CVE-2024-{10000 + i}", "vendorProject": f"Vendor {i % 97}",
        "product": f"Product {i % 31}", "vulnerabilityName": f"Example flaw {i}",
        "dateAdded": "2024-05-01", "shortDescription": "Remote code execution in a service.",
        "requiredAction": "Apply the vendor update.", "dueDate": "2024-05-22",
        "knownRansomwareCampaignUse": "Known" if i % 7 == 0 else "Unknown",
        "notes": f"https://vendor.example/advisory/{i}", "cwes": ["CWE-78"],
    } for i in range(count)]
    return json.dumps({"catalogVersion": "2024.05.01", "dateReleased": "2024-05-01T00:00:00Z",
                       "count": count, "vulnerabilities": entries}).encode()


def cap_alert(i: int) -> bytes:
    lat, lon = 30 + (i % 15), -100 + (i % 20)
    polygon = f"{lat},{lon} {lat},{lon + 1} {lat + 1},{lon + 1} {lat + 1},{lon} {lat},{lon}"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="{CAP}"><identifier>BENCH-{i}</identifier><sender>nws@example.gov</sender>
<sent>2024-07-01T09:00:00-04:00</sent><status>Actual</status><msgType>Alert</msgType>
<scope>Public</scope><info><category>Met</category><event>Severe Thunderstorm</event>
<urgency>Immediate</urgency><severity>Severe</severity><certainty>Observed</certainty>
<effective>2024-07-01T09:00:00-04:00</effective><expires>2030-07-01T10:00:00-04:00</expires>
<headline>Severe thunderstorm warning {i}</headline><description>Hail and wind.</description>
<area><areaDesc>County {i}</areaDesc><polygon>{polygon}</polygon>
<geocode><valueName>SAME</valueName><value>0{i:05d}</value></geocode></area></info></alert>
""".encode()


def cap_index(count: int, base: str) -> bytes:
    entries = "".join(
        f'<entry><id>urn:bench:{i}</id><title>Alert {i}</title>'
        f'<updated>2024-07-01T13:00:00Z</updated>'
        f'<link rel="alternate" type="application/cap+xml" href="{base}/alerts/{i}.xml"/>'
        f'</entry>' for i in range(count))
    return (f'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="{ATOM}"><id>urn:bench</id>'
            f'<title>Bench</title><updated>2024-07-01T14:00:00Z</updated>{entries}</feed>'
            ).encode()


class Source:
    """Loopback server for the generated documents."""

    def __init__(self, kev_count: int, cap_count: int):
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.kev = kev_catalog(kev_count)
        self.index = cap_index(cap_count, self.base)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _app(self, environ, start_response):
        path = Request(environ).path
        if path == "/kev.json":
            response = Response(self.kev, content_type="application/json")
        elif path == "/index.atom":
            response = Response(self.index, content_type="application/atom+xml")
        else:
            number = int(path.rsplit("/", 1)[-1].split(".")[0])
            response = Response(cap_alert(number), content_type="application/cap+xml")
        return response(environ, start_response)


def timed_run(services, spec) -> dict:
    start = time.perf_counter()
    counts = run_feed(services, spec)
    elapsed = time.perf_counter() - start
    return {**counts, "seconds": round(elapsed, 3),
            "items_per_s": round(counts["fetched"] / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kev", type=int, default=5000)
    parser.add_argument("--cap", type=int, default=1000)
    args = parser.parse_args()
    source = Source(args.kev, args.cap)
    results = {}
    with tempfile.TemporaryDirectory(prefix="infoshare-feeds-bench-") as tmp:
        feeds = [
            {"name": "kev", "kind": "kev", "url": f"{source.base}/kev.json", "interval": 3600},
            {"name": "cap", "kind": "cap", "url": f"{source.base}/index.atom",
             "interval": 3600, "max_alerts": args.cap},
        ]
        settings = load_settings(environ={"INFOSHARE_DATA_DIR": tmp,
                                          "INFOSHARE_DATABASE_URL": ""},
                                 overlay={"feeds": feeds})
        prepare(settings)
        services = create_app(settings).extensions["infoshare"]
        for spec in settings.feeds:
            print(f"running {spec.name}...", file=sys.stderr)
            first = timed_run(services, spec)
            again = timed_run(services, spec)
            results[spec.name] = {"first_run": first, "unchanged_rerun": again}
        services.engine.dispose()
    source.server.shutdown()
    print(json.dumps({"machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
                      "engine": "sqlite", "feeds": results}, indent=2))


if __name__ == "__main__":
    main()
