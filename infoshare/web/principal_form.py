"""The admin area's principal forms: posted fields -> the arguments of store/accounts.py,
which alone judges them (the CLI calls the same functions). Pure: no Flask, no database."""

from __future__ import annotations

from werkzeug.datastructures import MultiDict

from .. import sectors


def empty() -> dict:
    return {"name": "", "org": "", "tier": "", "sectors": [], "all_sectors": False,
            "compartments": [], "roles": ["reader"]}


def from_form(form: MultiDict) -> dict:
    return {"name": form.get("name", "").strip(), "org": form.get("org", "").strip(),
            "tier": form.get("tier", "").strip(), "sectors": form.getlist("sectors"),
            "all_sectors": bool(form.get("all_sectors")),
            "compartments": form.getlist("compartments"), "roles": form.getlist("roles")}


def from_row(row) -> dict:
    """A stored principal as the edit form's values."""
    return {"name": row.name, "org": row.org, "tier": row.tier,
            "sectors": sectors.codes(row.sector_mask), "all_sectors": row.all_sectors,
            "compartments": list(row.compartments or ()), "roles": list(row.roles or ())}


def clearance(values: dict) -> dict:
    """The keyword arguments accounts.update (and, with name and org, accounts.add) take."""
    return {"tier": values["tier"], "sector_codes": values["sectors"],
            "all_sectors": values["all_sectors"], "compartments": values["compartments"],
            "roles": values["roles"]}
