"""The request bodies of the JSON routes as OpenAPI schemas, written from the data contract and the mapper's vocabulary.

The routes read their bodies themselves (serving.api.routing.json_body, then the contract checks, which name every
bad field in one 422), so FastAPI cannot see what they take. These schemas only describe the bodies, for clients
and for the fuzz test (tests/service/test_fuzz.py), whose generated bodies then reach the checks rather than stop
at the shape; they never validate anything. `add_request_bodies` puts them into the app's OpenAPI document.
"""
from __future__ import annotations

from typing import Any

from features import vocabulary as V
from features.contract import ID_MAX, NAME_MAX, REPORTS, TEXT_MAX, Column, Table
from policy.penalty import APPEALS, STAGES
from serving.api.auth import ROLES
from serving.api.penalty_bodies import TEXT_LIMITS
from serving.market.events import KINDS

JsonSchema = dict[str, Any]
TIME: JsonSchema = {"type": "string", "format": "date-time"}
ID: JsonSchema = {"type": "string", "minLength": 1, "maxLength": ID_MAX}
TEXT: JsonSchema = {"type": "string", "minLength": 1, "maxLength": TEXT_MAX}
ACTOR: JsonSchema = {"type": "string", "minLength": 1, "maxLength": NAME_MAX}


def _enum(values: tuple[str, ...]) -> JsonSchema:
    return {"type": "string", "enum": list(values)}


def obj(properties: dict[str, JsonSchema], required: tuple[str, ...] = ()) -> JsonSchema:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


def column_schema(column: Column) -> JsonSchema:
    """One contract column as JSON Schema (null allowed where the contract allows it)."""
    kind = column.kind
    schema: JsonSchema = (
        {"type": "string", "maxLength": column.max_length} if kind == "str"
        else _enum(column.allowed or ()) if kind == "category"
        else TIME if kind == "timestamp"
        else {"type": {"float": "number", "int": "integer", "bool": "boolean"}[kind]}
    )
    return {"anyOf": [schema, {"type": "null"}]} if column.nullable else schema


def table_schema(table: Table) -> JsonSchema:
    """A record of a contract table: every non-nullable column required, nothing else allowed."""
    return obj({c.name: column_schema(c) for c in table.columns},
               tuple(c.name for c in table.columns if not c.nullable))


def _batch(table: Table) -> JsonSchema:
    return {"type": "array", "items": table_schema(table), "minItems": 1}


ACCOUNT = obj({"account_id": ID, "role": _enum(V.ROLES)}, ("account_id", "role"))
VIOLATION = obj({"family": _enum(V.FAMILIES), "category": _enum(V.CATEGORIES), "severity": _enum(V.SEVERITIES),
                 "occurred_at": TIME, "stage": _enum(STAGES), "remedial_completed_at": TIME},
                ("family", "category", "severity", "occurred_at"))
PAST = obj({"occurred_at": TIME, "family": _enum(V.FAMILIES), "category": _enum(V.CATEGORIES),
            "severity": _enum(V.SEVERITIES), "appeal": {"anyOf": [_enum(APPEALS), {"type": "null"}]},
            "actions": {"type": "array", "items": obj({"type": _enum(V.ACTIONS), "days": {"type": "integer", "minimum": 1},
                                                       "feature": ID}, ("type",))}},
           ("occurred_at", "family", "category", "severity"))
REPORTS_BODY = obj({"reports": _batch(REPORTS)}, ("reports",))

# (method, path) -> the body that route reads
REQUEST_BODIES: dict[tuple[str, str], JsonSchema] = {
    ("post", "/score"): REPORTS_BODY,
    ("post", "/rank"): REPORTS_BODY,
    ("post", "/reports"): REPORTS_BODY,
    ("post", "/predict/fraud"): obj({"dataframe_split": obj(
        {"columns": {"type": "array", "items": {"type": "string", "maxLength": ID_MAX}},
         "data": {"type": "array", "items": {"type": "array", "items": {"type": ["number", "string", "null"]}}}},
        ("columns", "data"))}, ("dataframe_split",)),
    ("post", "/events"): obj({kind: _batch(table) for kind, table in KINDS.items()}),
    ("post", "/penalty"): obj({"as_of": TIME, "account": ACCOUNT, "violation": VIOLATION,
                               "history": {"type": "array", "items": PAST}}, ("as_of", "account", "violation")),
    ("post", "/violations"): obj({"violation_id": ID, "actor": ACTOR, "as_of": TIME, "account": ACCOUNT,
                                  "violation": VIOLATION, "source_report_id": ID,
                                  "model_versions": {"type": "object", "additionalProperties": ID, "maxProperties": 16}},
                                 ("violation_id", "account", "violation")),
    ("post", "/violations/{violation_id}/appeal"): obj({"outcome": _enum(APPEALS), "actor": ACTOR, "why": TEXT,
                                                        "at": TIME}, ("outcome", "why")),
    ("post", "/violations/{violation_id}/remedial"): obj({"completed_at": TIME, "actor": ACTOR, "why": TEXT},
                                                         ("completed_at", "why")),
    ("post", "/queue/claim"): obj({"case_id": {"type": "string", "minLength": 1, "maxLength": TEXT_LIMITS["case_id"]}}),
    ("post", "/cases/{case_id}/resolve"): obj({"valid": {"type": "boolean"}, "severity": _enum(V.SEVERITIES),
                                               "fraud_confirmed": {"type": "boolean"}, "notes": TEXT}, ("valid",)),
    ("post", "/keys"): obj({"role": _enum(ROLES), "expires_at": TIME}, ("role",)),
}


def add_request_bodies(openapi: JsonSchema) -> JsonSchema:
    """`openapi` (FastAPI's document) with each route's JSON request body; the routes' own checks still decide."""
    for (method, path), schema in REQUEST_BODIES.items():
        operation = openapi.get("paths", {}).get(path, {}).get(method)
        if operation is not None:
            operation["requestBody"] = {"required": path not in ("/queue/claim",),
                                        "content": {"application/json": {"schema": schema}}}
    return openapi
