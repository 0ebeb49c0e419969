"""Administration operations, described to administrators only: metadata plan and apply, the
audit log and privacy requests."""

from __future__ import annotations

from typing import Any

from metacrm.engine.api.spec.common import (DATE_TIME, UUID, errors, header, json_body, json_response, nullable, obj,
                                            path_param, query_param, ref, summary)

MAX_AUDIT = 1000


def admin_paths(language: str, objects: list[str]) -> dict[str, Any]:
    say = lambda text, **v: summary(text, language, **v)  # noqa: E731
    op = lambda op_id, text, responses, **extra: {  # noqa: E731
        "operationId": op_id, "summary": say(text), "tags": ["admin"], "responses": responses, **extra}
    documents = {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"},
                 "description": say("file name -> YAML text of every object document")}
    plan_body = obj({"documents": documents, "purge": {"type": "boolean", "default": False}}, ["documents"],
                    closed=True)
    apply_body = obj({**plan_body["properties"], "base_revision": {
        "type": "integer", "description": say("the base_revision of the plan you reviewed: 409 if it moved on")}},
        ["documents"], closed=True)
    change = obj({"action": {"type": "string"}, "object": {"type": ["string", "null"]},
                  "safety": {"type": "string"}, "description": {"type": "string"}})
    plan = obj({"base_revision": {"type": "integer"}, "changes": {"type": "array", "items": change},
                "destructive": {"type": "boolean"}, "needs_data_check": {"type": "boolean"},
                "warnings": {"type": "array", "items": {"type": "string"}}, "text": {"type": "string"}},
               ["base_revision", "changes", "destructive", "needs_data_check", "warnings", "text"])
    applied = obj({"revision": {"type": "integer"}, "changes": {"type": "array", "items": {"type": "string"}}}, ["revision", "changes"])
    entry = obj({"id": {"type": "integer"}, "at": DATE_TIME, "event": {"type": "string"},
                 "user_id": nullable(UUID), "object_name": {"type": ["string", "null"]},
                 "record_id": {"type": ["string", "null"]}, "detail": {},
                 "address": {"type": ["string", "null"]}}, ["id", "at", "event"])
    person = [path_param("object", {"type": "string", "enum": objects} if objects else {"type": "string"},
                         say("the object holding the person (contact, lead, ...)")),
              path_param("id", UUID, say("the person's record id"))]
    return {
        "/api/v1/admin/metadata/plan": {"post": op(
            "plan_metadata", "What applying these metadata documents would change", {
                "200": json_response(say("the plan"), plan), **errors(422, body=True)},
            requestBody=json_body(plan_body))},
        "/api/v1/admin/metadata/apply": {"post": op(
            "apply_metadata", "Plan and apply metadata documents atomically", {
                "200": json_response(say("applied: the new revision"), applied),
                **errors(409, 422, body=True)}, requestBody=json_body(apply_body))},
        "/api/v1/admin/audit": {"get": op("list_audit", "The newest audit log entries", {
            "200": json_response(say("the entries, newest first"), obj({"entries": {"type": "array", "items": entry}},
                                                                       ["entries"])), **errors(400)},
            parameters=[query_param("event", {"type": "string"}, say("only entries of this event")),
                        query_param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_AUDIT, "default": 100},
                                    say("how many entries"))])},
        "/api/v1/privacy/{object}/{id}/export": {"get": op(
            "privacy_export", "Everything stored about a person (a privacy request)", {
                "200": json_response(say("the person's data"), obj({"object": {"type": "string"}, "id": UUID,
                                                                    "exported_at": DATE_TIME, "record": {"type": "object"}},
                                                                   ["object", "id", "record"]),
                                     {"Content-Disposition": header("Content-Disposition")}),
                **errors(400, 404, 422)}, parameters=person)},
        "/api/v1/privacy/{object}/{id}/erase": {"post": op(
            "privacy_erase", "Erase a person's data (anonymize the record, audited)", {
                "200": json_response(say("what was erased"), {"type": "object"}), **errors(404, 409, 422, body=True)},
            parameters=person, requestBody=json_body(obj({"reason": {"type": "string", "minLength": 1}}, ["reason"])))},
    }


__all__ = ["admin_paths", "ref"]
