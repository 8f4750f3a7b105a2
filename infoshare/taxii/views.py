"""The TAXII 2.1 blueprint: discovery, API root, status, collections, objects, manifest,
versions. Every read goes through access.visible (inside store.objects.page)."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, g, request

from .. import access, strictjson, submissions
from ..settings import CollectionSpec
from ..store import audit, claims
from ..store import objects as object_store
from ..store import statuses as status_store
from ..store import subscriptions as subscription_store
from ..store.engine import read, write
from ..store.schema import objects as objects_table
from . import cursors, params, responses
from .errors import TaxiiError, bad_request, not_found, render
from .mediatypes import STIX, TAXII, accepts_taxii, is_taxii

bp = Blueprint("taxii", __name__, url_prefix="/taxii2")
bp.register_error_handler(TaxiiError, render)

COLLECTION = "/<api_root>/collections/<collection_id>"


def _svc():
    return current_app.extensions["infoshare"]


@bp.before_request
def _negotiate_and_authenticate() -> None:
    if not accepts_taxii(request.headers.get("Accept")):
        raise TaxiiError(406, "Not acceptable",
                         f"this server answers only {TAXII}; send it in Accept")
    principal = _svc().authenticator.authenticate(request.headers.get("Authorization"),
                                                  request.remote_addr)  # or Throttled: 429
    if principal is None:
        raise TaxiiError(401, "Authentication required",
                         "send HTTP Basic credentials or Authorization: Bearer <api key>")
    g.principal = principal


def _api_root(api_root: str) -> None:
    if api_root != _svc().settings.taxii.api_root:
        raise not_found(f"no API root {api_root!r}")


def _collection(api_root: str, collection_id: str) -> CollectionSpec:
    _api_root(api_root)
    spec = _svc().settings.collection(collection_id)
    if spec is None:
        with read(_svc().engine) as conn:
            row = subscription_store.by_collection(conn, collection_id)
        spec = subscription_store.collection_spec(row) if row else None
    if spec is None or not access.can_read(g.principal, spec):
        raise not_found(f"no collection {collection_id!r}")
    return spec


def _collection_resource(spec: CollectionSpec) -> dict:
    return {
        "id": spec.id, "title": spec.title, "description": spec.description,
        "alias": spec.alias, "can_read": True,
        "can_write": access.can_write(g.principal, spec, _svc().settings.tiers),
        "media_types": [STIX],
    }


@bp.get("/")
def discovery() -> Response:
    taxii = _svc().settings.taxii
    base = _svc().settings.server.base_url or request.host_url.rstrip("/")
    root = f"{base}/taxii2/{taxii.api_root}/"
    return responses.taxii_json({
        "title": taxii.title, "description": taxii.description, "contact": taxii.contact,
        "default": root, "api_roots": [root],
    })


@bp.get("/<api_root>/")
def api_root_resource(api_root: str) -> Response:
    _api_root(api_root)
    taxii = _svc().settings.taxii
    return responses.taxii_json({
        "title": taxii.api_root_title, "description": taxii.description,
        "versions": [TAXII], "max_content_length": taxii.max_content_length,
    })


@bp.get("/<api_root>/status/<status_id>/")
def status(api_root: str, status_id: str) -> Response:
    _api_root(api_root)
    with read(_svc().engine) as conn:
        row = status_store.get(conn, status_id)
    if row is None or row.principal_pk != g.principal.pk:  # its details name the objects
        raise not_found(f"no status {status_id!r}")
    return responses.taxii_json(responses.status(row))


@bp.get("/<api_root>/collections/")
def collections(api_root: str) -> Response:
    _api_root(api_root)
    with read(_svc().engine) as conn:
        personal = [subscription_store.collection_spec(row)
                    for row in subscription_store.of_principal(conn, g.principal.pk)]
    listed = [_collection_resource(spec) for spec in [*_svc().settings.collections, *personal]
              if access.can_read(g.principal, spec)]
    return responses.taxii_json({"collections": listed} if listed else {})


@bp.get(COLLECTION + "/")
def collection(api_root: str, collection_id: str) -> Response:
    return responses.taxii_json(_collection_resource(_collection(api_root, collection_id)))


def _paged(spec: CollectionSpec, query: params.Query, scope: tuple[str, ...], fetch):
    """Run one keyset page: (page, next token, floor).

    With `next`, the query continues with the filters bound in the cursor (see
    cursors.py). `fetch(conn, query, after)` answers an object_store.Page."""
    svc = _svc()
    bound_to = cursors.fingerprint([("scope", (spec.id, *scope))])
    after = None
    if query.next:
        try:
            after, bound = cursors.decode(svc.secret, g.principal.id, bound_to, query.next)
        except cursors.CursorError as exc:
            raise bad_request(str(exc)) from None
        query = query.continued(bound)
    with read(svc.engine) as conn:
        found = fetch(conn, query, after)
    token = (cursors.encode(svc.secret, g.principal.id, bound_to, found.rows[-1].date_added,
                            query.bound()) if found.more else None)
    floor = max((x for x in (after, query.filters.added_after) if x is not None), default=None)
    return found, token, floor


def _counted(rows: list, limit: int) -> object_store.Page:
    """A page read as limit + 1 rows: the extra row only says that more follow."""
    return object_store.Page(rows[:limit], len(rows) > limit)


def _objects(spec: CollectionSpec):
    """The fetch of an objects page: capped by `limit` and by taxii.max_page_bytes."""
    max_bytes = _svc().settings.taxii.max_page_bytes
    return lambda conn, query, after: object_store.page_bytes(
        conn, g.principal, spec, query.filters, after, query.limit, max_bytes)


def _respond(body: bytes, rows, floor) -> Response:
    """Date-Added headers follow the collection's own objects, which place the cursor."""
    response = Response(body, content_type=TAXII)
    first = rows[0].date_added if rows else None
    last = rows[-1].date_added if rows else None
    return responses.date_added_headers(response, first, last, floor)


def _envelope(found: object_store.Page, token: str | None) -> bytes:
    """The definitions a page's objects reference come first, then the objects."""
    raws = [r.raw for r in (*found.definitions, *found.rows)]
    return responses.envelope(raws, found.more, token)


@bp.get(COLLECTION + "/objects/")
def get_objects(api_root: str, collection_id: str) -> Response:
    spec = _collection(api_root, collection_id)
    query = params.parse(request.args, _svc().settings.taxii.max_page_size,
                         max_values=_svc().settings.taxii.max_match_values)
    found, token, floor = _paged(spec, query, ("objects",), _objects(spec))
    return _respond(_envelope(found, token), found.rows, floor)


@bp.get(COLLECTION + "/manifest/")
def get_manifest(api_root: str, collection_id: str) -> Response:
    spec = _collection(api_root, collection_id)
    query = params.parse(request.args, _svc().settings.taxii.max_page_size,
                         max_values=_svc().settings.taxii.max_match_values)
    columns = (objects_table.c.id, objects_table.c.version)
    found, token, floor = _paged(spec, query, ("manifest",), lambda conn, q, after: (
        _counted(object_store.page(conn, g.principal, spec, q.filters, after, q.limit, columns),
                 q.limit)))
    return _respond(responses.manifest(found.rows, found.more, token), found.rows, floor)


def _object_query(object_id: str, allowed: tuple[str, ...], default_versions) -> params.Query:
    query = params.parse(request.args, _svc().settings.taxii.max_page_size,
                         allowed_match=allowed, default_versions=default_versions,
                         max_values=_svc().settings.taxii.max_match_values)
    filters = object_store.Filters(
        added_after=query.filters.added_after, ids=(object_id,),
        versions=query.filters.versions, spec_versions=query.filters.spec_versions)
    return params.Query(filters, query.limit, query.next, query.sent)


def _require_visible(spec: CollectionSpec, object_id: str) -> None:
    with read(_svc().engine) as conn:
        if not object_store.exists(conn, g.principal, spec, object_id):
            raise not_found(f"no object {object_id!r} in this collection")


@bp.get(COLLECTION + "/objects/<object_id>/")
def get_object(api_root: str, collection_id: str, object_id: str) -> Response:
    spec = _collection(api_root, collection_id)
    query = _object_query(object_id, ("version", "spec_version"), ("last",))
    found, token, floor = _paged(spec, query, ("object", object_id), _objects(spec))
    if not found.rows and not query.next:
        _require_visible(spec, object_id)
    return _respond(_envelope(found, token), found.rows, floor)


@bp.get(COLLECTION + "/objects/<object_id>/versions/")
def get_versions(api_root: str, collection_id: str, object_id: str) -> Response:
    spec = _collection(api_root, collection_id)
    query = _object_query(object_id, ("spec_version",), ("all",))
    found, token, floor = _paged(spec, query, ("versions", object_id), lambda conn, q, after: (
        _counted(object_store.versions_page(conn, g.principal, spec, object_id, q.filters,
                                            after, q.limit), q.limit)))
    if not found.rows and not query.next:
        _require_visible(spec, object_id)
    return _respond(responses.versions(found.rows, found.more, token), found.rows, floor)


@bp.post(COLLECTION + "/objects/")
def add_objects(api_root: str, collection_id: str) -> Response:
    svc = _svc()
    spec = _collection(api_root, collection_id)
    if not access.can_write(g.principal, spec, svc.settings.tiers):
        raise TaxiiError(403, "Forbidden", "you may read this collection but not write to it")
    limit = svc.settings.taxii.max_content_length
    if (request.content_length or 0) > limit:
        raise TaxiiError(413, "Request too large", f"the API root takes at most {limit} bytes")
    if not is_taxii(request.headers.get("Content-Type")):
        raise TaxiiError(415, "Unsupported media type", f"send the envelope as {TAXII}")
    body = request.get_data()
    try:
        status_id = submissions.submit(svc, spec, g.principal, body, _envelope_objects(body))
    except submissions.QueueFull as exc:
        raise TaxiiError(429, "Too many pending envelopes", str(exc),
                         {"Retry-After": str(exc.RETRY_AFTER)}) from None
    with read(svc.engine) as conn:
        row = status_store.get(conn, status_id)
    return responses.taxii_json(responses.status(row), status=202)


def _envelope_objects(data: bytes) -> list:
    """The envelope's objects; a body that is not one is refused whole, before anything is
    stored, so a client is never told that nothing at all worked."""
    try:
        envelope = strictjson.loads(data)
    except strictjson.StrictJSONError as exc:
        raise bad_request(f"the body is not strict JSON: {exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise bad_request("the body nests too deeply to be a STIX envelope") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("objects"), list):
        what = ("a bare STIX object" if isinstance(envelope, dict) and "type" in envelope
                else "no objects list")
        raise TaxiiError(422, "Unprocessable envelope",
                         f'expected a TAXII envelope {{"objects": [ ... ]}}; got {what}')
    return envelope["objects"]


@bp.delete(COLLECTION + "/objects/<object_id>/")
def delete_object(api_root: str, collection_id: str, object_id: str) -> Response:
    """TAXII 2.1 5.7: needs can_read and can_write. match[version] defaults to all here:
    deleting an object means all its versions unless the client names some."""
    svc = _svc()
    spec = _collection(api_root, collection_id)
    if not access.can_write(g.principal, spec, svc.settings.tiers):
        raise TaxiiError(403, "Forbidden", "you may read this collection but not delete from it")
    query = params.parse(request.args, svc.settings.taxii.max_page_size,
                         allowed_match=("version", "spec_version"), default_versions=("all",),
                         max_values=svc.settings.taxii.max_match_values)
    with write(svc.engine) as conn:
        rows = object_store.visible_versions(conn, g.principal, spec, object_id, query.filters)
        if rows:  # claimed only once seen: waiting for a hidden id's writer would tell
            claims.claim(conn, [object_id])
            rows = object_store.visible_versions(conn, g.principal, spec, object_id,
                                                 query.filters)
        if not rows:
            raise not_found(f"no object {object_id!r} in this collection")
        if not g.principal.has_role("admin"):
            rows = [r for r in rows if r.submitted_by == g.principal.pk]
            if not rows:
                raise TaxiiError(403, "Forbidden", "only an admin may delete objects that "
                                                   "another principal submitted")
        object_store.delete(conn, [r.pk for r in rows])
        audit.record(conn, g.principal.name, "delete", object_id, collection=spec.alias,
                     versions=len(rows))
    return Response(b"", status=200, content_type=TAXII)
