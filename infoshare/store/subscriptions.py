"""Subscriptions, their routing rows and their personal collections."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from .. import timestamps
from ..settings import CollectionSpec
from .schema import (
    deliveries,
    subscription_labels,
    subscription_objects,
    subscription_types,
    subscriptions,
)


def create(conn: Connection, principal_pk: int, values: dict) -> Row:
    ident = str(uuid.uuid4())
    pk = conn.execute(subscriptions.insert().values(
        id=ident, collection_id=str(uuid.uuid4()), principal_pk=principal_pk,
        created_us=timestamps.now_us(), **_columns(values))).inserted_primary_key[0]
    _side_tables(conn, pk, values)
    return by_pk(conn, pk)


def update(conn: Connection, pk: int, values: dict) -> Row:
    conn.execute(subscriptions.update().where(subscriptions.c.pk == pk)
                 .values(**_columns(values)))
    if "types" in values or "labels" in values:
        for table in (subscription_types, subscription_labels):
            conn.execute(table.delete().where(table.c.subscription_pk == pk))
        _side_tables(conn, pk, {**_row_values(by_pk(conn, pk)), **values})
    return by_pk(conn, pk)


def _columns(values: dict) -> dict:
    columns = {k: values[k] for k in ("name", "sector_mask", "kinds_mask", "min_severity",
                                      "max_tlp", "paused", "webhook_url", "webhook_secret",
                                      "areas", "has_areas", "include_unlocated", "min_lon",
                                      "min_lat", "max_lon", "max_lat")
               if k in values}
    if "types" in values:
        columns.update(types=list(values["types"]), has_types=bool(values["types"]))
    if "labels" in values:
        columns.update(labels=list(values["labels"]), has_labels=bool(values["labels"]))
    return columns


def _row_values(row: Row) -> dict:
    return {"types": row.types or [], "labels": row.labels or []}


def _side_tables(conn: Connection, pk: int, values: dict) -> None:
    types = sorted(set(values.get("types") or ()))
    labels = sorted(set(values.get("labels") or ()))
    if types:
        conn.execute(subscription_types.insert(),
                     [{"subscription_pk": pk, "type": t} for t in types])
    if labels:
        conn.execute(subscription_labels.insert(),
                     [{"subscription_pk": pk, "label": label} for label in labels])


def by_pk(conn: Connection, pk: int) -> Row | None:
    return conn.execute(sa.select(subscriptions).where(subscriptions.c.pk == pk)).first()


def by_id(conn: Connection, ident: str) -> Row | None:
    return conn.execute(sa.select(subscriptions).where(subscriptions.c.id == ident)).first()


def by_collection(conn: Connection, key: str) -> Row | None:
    return conn.execute(sa.select(subscriptions)
                        .where(subscriptions.c.collection_id == key)).first()


def of_principal(conn: Connection, principal_pk: int) -> list[Row]:
    return list(conn.execute(sa.select(subscriptions)
                             .where(subscriptions.c.principal_pk == principal_pk)
                             .order_by(subscriptions.c.created_us)))


def all_rows(conn: Connection) -> list[Row]:
    return list(conn.execute(sa.select(subscriptions).order_by(subscriptions.c.created_us)))


def delete(conn: Connection, pk: int) -> None:
    for table in (subscription_objects, subscription_types, subscription_labels):
        conn.execute(table.delete().where(table.c.subscription_pk == pk))
    conn.execute(deliveries.delete().where(deliveries.c.subscription_pk == pk))
    conn.execute(subscriptions.delete().where(subscriptions.c.pk == pk))


def collection_spec(row: Row) -> CollectionSpec:
    return CollectionSpec(
        id=row.collection_id, alias=f"subscription-{row.id}", title=f"Subscription: {row.name}",
        description="Everything your subscription matched.", kind="subscription",
        subscription_pk=row.pk, owner_pk=row.principal_pk)
