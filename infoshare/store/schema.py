"""The tables. Times are integer microseconds since the epoch (see timestamps.py)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (and so auto-incrementing).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

schema_info = sa.Table(
    "schema_info",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

# One row; its value only grows. Writers of objects lock it, which both hands out strictly
# increasing date_added values and makes commit order equal date_added order, so a poller
# reading "added after X" can never miss a row committed late with an earlier stamp.
store_clock = sa.Table(
    "store_clock",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("last_us", sa.BigInteger, nullable=False),
)

principals = sa.Table(
    "principals",
    metadata,
    sa.Column("pk", BigId, primary_key=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),  # public uuid
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("org", sa.String(200), nullable=False),
    sa.Column("tier", sa.String(64), nullable=False),
    sa.Column("all_sectors", sa.Boolean, nullable=False, default=False),
    sa.Column("sector_mask", sa.Integer, nullable=False, default=0),
    sa.Column("compartments", sa.JSON, nullable=False, default=list),
    sa.Column("roles", sa.JSON, nullable=False, default=list),
    sa.Column("password_hash", sa.String(300)),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("pk", BigId, primary_key=True),
    sa.Column("principal_pk", sa.BigInteger, sa.ForeignKey("principals.pk"), nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False, unique=True),
    sa.Column("secret_hash", sa.String(300), nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False, default=False),
    # Updated at most once a minute per key and worker (authn.py), not on every request.
    sa.Column("last_used_us", sa.BigInteger),
    sa.Index("ix_api_keys_principal", "principal_pk"),
)

# Console sessions, held on the server: the cookie carries a random token whose SHA-256
# is the id here, so log-out, disabling a principal, a new password or a revoked key end
# them at once, even for a cookie copied before.
sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("principal_pk", sa.BigInteger, sa.ForeignKey("principals.pk"), nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("expires_us", sa.BigInteger, nullable=False),
    sa.Index("ix_sessions_principal", "principal_pk"),
)

# Failed authentications per key ("client:<address>", "name:<principal name>") in the
# current window (authn.Guard); only failures write here.
throttle = sa.Table(
    "throttle",
    metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("window_us", sa.BigInteger, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
)

objects = sa.Table(
    "objects",
    metadata,
    sa.Column("pk", BigId, primary_key=True),
    sa.Column("id", sa.String(120), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("spec_version", sa.String(8), nullable=False),
    sa.Column("version", sa.String(40), nullable=False),  # modified (or created) as written
    sa.Column("version_us", sa.BigInteger, nullable=False),
    sa.Column("date_added", sa.BigInteger, nullable=False),
    sa.Column("is_latest", sa.Boolean, nullable=False),
    sa.Column("is_first", sa.Boolean, nullable=False),
    sa.Column("raw", sa.LargeBinary, nullable=False),  # the exact bytes served
    # Audience (docs/ARCHITECTURE.md "Access"): the facts access.py decides on.
    sa.Column("tlp_rank", sa.SmallInteger, nullable=False),
    sa.Column("all_sectors", sa.Boolean, nullable=False),
    sa.Column("sector_mask", sa.Integer, nullable=False),
    sa.Column("has_compartments", sa.Boolean, nullable=False),
    sa.Column("has_recipients", sa.Boolean, nullable=False),
    # Where it came from: None for the service's own, else the submitting principal.
    sa.Column("submitted_by", sa.BigInteger, sa.ForeignKey("principals.pk")),
    # Who owns the id: "service", "feed:<name>" or "principal:<id>". An id belongs to the
    # origin that first stored it and only that origin adds versions (store/objects.py),
    # so every id has one lineage and exactly one latest version.
    sa.Column("origin", sa.String(120), nullable=False, server_default="service"),
    # For a third-party object carrying the service's signature extension: whether it
    # verified against the service's keys (verified | bad | unknown-key); else NULL.
    sa.Column("signature", sa.String(16)),
    # For "submitted" collections: the collection it was posted into.
    sa.Column("collection_id", sa.String(64)),
    # The service's own definitions (markings, extension definitions, its identity) that
    # every collection carries so that its content can be read and verified.
    sa.Column("everywhere", sa.Boolean, nullable=False, default=False),
    sa.Index("uq_objects_id_origin_version", "id", "origin", "version_us", unique=True),
    sa.Index("ix_objects_date_added", "date_added", unique=True),
    # Partial: only "latest" reads use it, and a planner cannot mistake it for a way to
    # find an id (a plain (is_latest, date_added) index made SQLite scan every latest row
    # to look up one id).
    sa.Index("ix_objects_latest_added", "date_added", sqlite_where=sa.text("is_latest = 1"),
             postgresql_where=sa.text("is_latest")),
    sa.Index("ix_objects_type_added", "type", "date_added"),
    sa.Index("ix_objects_collection_added", "collection_id", "date_added"),
    # The interned audience (the `audiences` table): a narrow reader's page walks this
    # index once per audience it may see, from its cursor on (store/keyset.py); the flags
    # a plain listing tests and the pk it joins back by ride along, so those walks need not
    # read the rows they skip (SQLite keeps the rowid in every index anyway; PostgreSQL
    # can then scan the index only).
    sa.Column("audience_pk", sa.BigInteger),
    sa.Index("ix_objects_audience_added", "audience_pk", "date_added", "is_latest",
             "everywhere", "pk"),
)

# Each distinct audience once (store/audiences.py): who an object version is for, by its
# tlp, sectors, compartments and named recipients. A row never changes and is never
# deleted, so a process may keep what it has read of this table; `objects` counts the
# versions stored for it (a planning estimate, kept by insert and delete).
audiences = sa.Table(
    "audiences",
    metadata,
    sa.Column("pk", BigId, primary_key=True),
    sa.Column("key", sa.String(64), nullable=False, unique=True),  # sha256 of the form
    sa.Column("tlp_rank", sa.SmallInteger, nullable=False),
    sa.Column("all_sectors", sa.Boolean, nullable=False),
    sa.Column("sector_mask", sa.Integer, nullable=False),
    sa.Column("compartments", sa.JSON, nullable=False),
    sa.Column("recipient_orgs", sa.JSON, nullable=False),
    sa.Column("recipient_principals", sa.JSON, nullable=False),
    sa.Column("objects", sa.BigInteger, nullable=False, default=0),
)

object_compartments = sa.Table(
    "object_compartments",
    metadata,
    sa.Column("object_pk", sa.BigInteger, sa.ForeignKey("objects.pk", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
)

# Named recipients of TLP:AMBER+STRICT (kind "org") and TLP:RED (kind "principal") objects.
object_recipients = sa.Table(
    "object_recipients",
    metadata,
    sa.Column("object_pk", sa.BigInteger, sa.ForeignKey("objects.pk", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
)

statuses = sa.Table(
    "statuses",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("principal_pk", sa.BigInteger, sa.ForeignKey("principals.pk"), nullable=False),
    sa.Column("collection_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("request_us", sa.BigInteger, nullable=False),
    sa.Column("total_count", sa.Integer, nullable=False),
    sa.Column("success_count", sa.Integer, nullable=False),
    sa.Column("failure_count", sa.Integer, nullable=False),
    sa.Column("pending_count", sa.Integer, nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Index("ix_statuses_request", "request_us"),
)

# TAXII envelopes accepted for processing in the background (status `pending`): the body
# as received, until one transaction stores its objects, completes its status and deletes
# the row. A claim is a lease: a worker that dies leaves the row to be claimed again.
ingest_jobs = sa.Table(
    "ingest_jobs",
    metadata,
    sa.Column("status_id", sa.String(64), sa.ForeignKey("statuses.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("principal_pk", sa.BigInteger, sa.ForeignKey("principals.pk"), nullable=False),
    sa.Column("collection_id", sa.String(64), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("queued_us", sa.BigInteger, nullable=False),
    sa.Column("claimed_by", sa.String(200)),
    sa.Column("claimed_until_us", sa.BigInteger),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Index("ix_ingest_jobs_queued", "queued_us"),
)

# One row per notice the service published (bulletins and feed notices): the accepted
# document, so a revoke or an update re-converts the notice rather than editing STIX.
notices = sa.Table(
    "notices",
    metadata,
    sa.Column("report_id", sa.String(120), primary_key=True),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("source_id", sa.String(500), nullable=False),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("tlp", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("sector_mask", sa.Integer, nullable=False),
    sa.Column("all_sectors", sa.Boolean, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False, default=False),
    sa.Column("published_by", sa.BigInteger, sa.ForeignKey("principals.pk")),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("modified_us", sa.BigInteger, nullable=False),
    sa.Column("version", sa.String(40), nullable=False),
    sa.Column("object_ids", sa.JSON, nullable=False),
    sa.Column("document", sa.JSON, nullable=False),
    # The organisation the notice belongs to ("" for the service's own: feeds, the CLI).
    # source_ids are per organisation; only its publishers (and admins) change it.
    sa.Column("org", sa.String(200), nullable=False, server_default=""),
    # The namespace its STIX ids were made in: NULL for the installation's own (see
    # stix/ids.py); notices from before that namespace existed keep the legacy one.
    sa.Column("id_namespace", sa.String(36)),
    # When the source issued it (the report's published: CAP sent, KEV dateAdded, RSS
    # pubDate; a bulletin's first publication): what the console tells and sorts by.
    sa.Column("issued_us", sa.BigInteger),
    sa.Index("uq_notices_source_org", "source", "org", "source_id", unique=True),
    sa.Index("ix_notices_modified", "modified_us"),
)

# Facts of the installation that every host must agree on (installation.py).
installation = sa.Table(
    "installation",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(500), nullable=False),
)

# Versions that lost their id to its first owner when a store that let several origins
# share an id was upgraded (migrate.py): kept for the operator, never read by a client.
displaced_objects = sa.Table(
    "displaced_objects",
    metadata,
    sa.Column("pk", BigId, primary_key=True),
    sa.Column("id", sa.String(120), nullable=False),
    sa.Column("origin", sa.String(120), nullable=False),
    sa.Column("version", sa.String(40), nullable=False),
    sa.Column("date_added", sa.BigInteger, nullable=False),
    sa.Column("submitted_by", sa.BigInteger),
    sa.Column("raw", sa.LargeBinary, nullable=False),
    sa.Column("displaced_us", sa.BigInteger, nullable=False),
)

# Subscriptions: a principal's standing filter over what it may see. The filter columns
# are shaped for matching in SQL (routing.py), never by scanning subscriptions in Python:
# 0 in a mask means "any", and has_types/has_labels say whether the side tables apply.
subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("pk", BigId, primary_key=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("collection_id", sa.String(64), nullable=False, unique=True),
    sa.Column("principal_pk", sa.BigInteger, sa.ForeignKey("principals.pk"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("sector_mask", sa.Integer, nullable=False, default=0),
    sa.Column("kinds_mask", sa.Integer, nullable=False, default=0),
    sa.Column("min_severity", sa.SmallInteger, nullable=False, default=0),
    sa.Column("max_tlp", sa.SmallInteger, nullable=False, default=4),
    sa.Column("has_types", sa.Boolean, nullable=False, default=False),
    sa.Column("has_labels", sa.Boolean, nullable=False, default=False),
    sa.Column("types", sa.JSON, nullable=False, default=list),
    sa.Column("labels", sa.JSON, nullable=False, default=list),
    sa.Column("paused", sa.Boolean, nullable=False, default=False),
    sa.Column("webhook_url", sa.String(2000)),
    sa.Column("webhook_secret", sa.String(500)),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    # Where (geo/areas.py): the items as given, and their bounding box, routing's first cut.
    sa.Column("areas", sa.JSON),
    sa.Column("has_areas", sa.Boolean, nullable=False, default=False),
    sa.Column("include_unlocated", sa.Boolean, nullable=False, default=True),
    sa.Column("min_lon", sa.Float), sa.Column("min_lat", sa.Float),
    sa.Column("max_lon", sa.Float), sa.Column("max_lat", sa.Float),
    sa.Index("ix_subscriptions_principal", "principal_pk"),
    # routing's first cut by place: boxes west of a notice's east edge, then the rest
    sa.Index("ix_subscriptions_area_box", "min_lon", "max_lon", "min_lat", "max_lat"),
)

subscription_types = sa.Table(
    "subscription_types",
    metadata,
    sa.Column("subscription_pk", sa.BigInteger,
              sa.ForeignKey("subscriptions.pk", ondelete="CASCADE"), primary_key=True),
    sa.Column("type", sa.String(64), primary_key=True),
)

subscription_labels = sa.Table(
    "subscription_labels",
    metadata,
    sa.Column("subscription_pk", sa.BigInteger,
              sa.ForeignKey("subscriptions.pk", ondelete="CASCADE"), primary_key=True),
    sa.Column("label", sa.String(200), primary_key=True),
)

# Routing rows: which stored object versions each subscription matched. Keyed by the
# object's date_added (unique), which is also the keyset of the personal collection.
subscription_objects = sa.Table(
    "subscription_objects",
    metadata,
    sa.Column("subscription_pk", sa.BigInteger,
              sa.ForeignKey("subscriptions.pk", ondelete="CASCADE"), primary_key=True),
    sa.Column("date_added", sa.BigInteger, primary_key=True),
)

# Webhook deliveries, queued in the transaction that stored the objects.
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("subscription_pk", sa.BigInteger,
              sa.ForeignKey("subscriptions.pk", ondelete="CASCADE"), nullable=False),
    sa.Column("date_added", sa.JSON, nullable=False),  # the matched object versions
    sa.Column("state", sa.String(16), nullable=False),  # pending | delivered | dead
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_us", sa.BigInteger, nullable=False),
    sa.Column("lease_until_us", sa.BigInteger, nullable=False, default=0),
    sa.Column("lease_holder", sa.String(200)),  # host:pid sending it, while leased
    sa.Column("last_error", sa.String(1000)),
    sa.Column("last_status", sa.Integer),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("delivered_us", sa.BigInteger),
    sa.Index("ix_deliveries_due", "state", "next_attempt_us"),
    sa.Index("ix_deliveries_subscription", "subscription_pk", "created_us"),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("pk", BigId, primary_key=True),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),  # principal name, or "service"
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(300), nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Index("ix_audit_at", "at_us"),
)

# The public (TLP:CLEAR, all-sector) vulnerability object for a CVE: every later notice
# that mentions the CVE references it instead of minting its own.
public_cves = sa.Table(
    "public_cves",
    metadata,
    sa.Column("cve", sa.String(40), primary_key=True),
    sa.Column("object_id", sa.String(120), nullable=False),
)

# Where a relayed object came from (feeds/relay.py): the feed that brought it and the
# pinned key it verified with, naming the hub that signed it; by the row's date_added.
relayed = sa.Table(
    "relayed",
    metadata,
    sa.Column("date_added", sa.BigInteger, primary_key=True),
    sa.Column("feed", sa.String(100), nullable=False),
    sa.Column("kid", sa.String(100), nullable=False),
    sa.Column("origin_identity", sa.String(100), nullable=False),
    sa.Column("origin_name", sa.String(500), nullable=False),
    sa.Column("hops", sa.Integer, nullable=False),
)

# Leases on scheduled jobs, so each runs in exactly one process across all hosts.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("until_us", sa.BigInteger, nullable=False),
)

# One row per configured feed: HTTP validators and the adapter's cursor (so a restart
# resumes where it stopped), and what the last run did.
feed_state = sa.Table(
    "feed_state",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("etag", sa.String(500)),
    sa.Column("last_modified", sa.String(100)),
    sa.Column("cursor", sa.JSON, nullable=False, default=dict),
    sa.Column("last_run_us", sa.BigInteger),
    sa.Column("last_success_us", sa.BigInteger),
    sa.Column("counts", sa.JSON, nullable=False, default=dict),
    sa.Column("last_error", sa.String(2000)),
    sa.Column("errors", sa.JSON, nullable=False, default=list),  # offending items, standing
    sa.Column("notes", sa.JSON),  # what the last run saw worth a look (a content type)
)

# Where each file import stands (`infoshare import`), per collection, principal and file:
# written in the transaction that stores each batch, so an import interrupted at any point
# resumes after the last batch it committed. `identity` is the file's size, mtime and a
# hash of its first bytes: a file that changed starts over.
import_checkpoints = sa.Table(
    "import_checkpoints",
    metadata,
    sa.Column("pk", BigId, primary_key=True),
    sa.Column("collection_id", sa.String(64), nullable=False),
    sa.Column("principal_pk", sa.BigInteger, sa.ForeignKey("principals.pk"), nullable=False),
    sa.Column("source_key", sa.String(64), nullable=False),  # sha256 of the absolute path
    sa.Column("source", sa.String(4000), nullable=False),
    sa.Column("identity", sa.String(200), nullable=False),
    sa.Column("form", sa.String(20), nullable=False),
    sa.Column("done", sa.BigInteger, nullable=False),  # objects read and committed
    sa.Column("position", sa.JSON, nullable=False),  # {offset, ordinal, line}
    sa.Column("counts", sa.JSON, nullable=False),  # {stored, duplicates, rejected}
    sa.Column("finished", sa.Boolean, nullable=False, default=False),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("collection_id", "principal_pk", "source_key",
                        name="uq_import_checkpoints_source"),
)
