"""Operations outside the records: sign-in and tokens, /me, metadata, notifications,
approval decisions, public intake forms and the document and docs page themselves."""

from __future__ import annotations

from typing import Any

from metacrm.engine.api.spec.common import (DATE_TIME, PAGE_NEXT, UUID, errors, header, json_body, json_response,
                                            nullable, obj, path_param, query_param, ref, summary)
from metacrm.engine.records.query import MAX_LIMIT

PUBLIC: list[dict[str, Any]] = []  # `security: []`: no sign-in needed
MAX_LOGIN_EMAIL = 320
MAX_TOKEN_NAME = 200
#: Text without NUL characters (the sign-in refuses them with a 400: no stored email or password has one).
NO_NUL = r"^[^\u0000]*$"


def _op(op_id: str, text: str, language: str, responses: dict[str, Any], tag: str, *,
        values: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"operationId": op_id, "summary": summary(text, language, **(values or {})), "tags": [tag],
            "responses": responses, **extra}


def auth_paths(language: str) -> dict[str, Any]:
    say = lambda text: summary(text, language)  # noqa: E731
    login_body = obj({"email": {"type": "string", "maxLength": MAX_LOGIN_EMAIL, "pattern": NO_NUL},
                      "password": {"type": "string", "pattern": NO_NUL}}, ["email", "password"])
    signed_in = obj({"user": obj({"id": UUID, "name": {"type": "string"}}, ["id", "name"]),
                     "csrf_token": {"type": "string", "description": say("send it as X-CSRF-Token on unsafe methods")}},
                    ["user", "csrf_token"])
    token = obj({"id": UUID, "name": {"type": "string"}, "created_at": DATE_TIME, "expires_at": DATE_TIME,
                 "revoked_at": nullable(DATE_TIME), "status": {"type": "string", "enum": ["active", "expired", "revoked"]}},
                ["id", "name", "created_at", "expires_at", "status"])
    new_token = obj({"name": {"type": "string", "minLength": 1, "maxLength": MAX_TOKEN_NAME, "pattern": r"\S"},
                     "expires_in_days": {"type": "integer", "minimum": 1,
                                         "description": say("capped by the server's token lifetime policy")}},
                    ["name"])
    made = obj({"id": UUID, "token": {"type": "string", "description": say("the token itself, shown only this once")},
                "name": {"type": "string"}, "expires_at": DATE_TIME}, ["id", "token", "name", "expires_at"])
    return {
        "/api/v1/auth/login": {"post": _op(
            "login", "Sign in with email and password (a session cookie and a CSRF token)", language, {
                "200": json_response(say("signed in"), signed_in, {"Set-Cookie": header("Set-Cookie")}),
                **errors(401, 429, body=True, signed_in=False)}, "auth",
            security=PUBLIC, requestBody=json_body(login_body))},
        "/api/v1/auth/logout": {"post": _op("logout", "Sign out (ends the session)", language, {
            "204": {"description": say("signed out")}, **errors()}, "auth")},
        "/api/v1/auth/tokens": {
            "get": _op("list_tokens", "Your API tokens (never the tokens themselves)", language, {
                "200": json_response(say("the tokens, newest first"), obj({"tokens": {"type": "array", "items": token}},
                                                                           ["tokens"])), **errors()}, "auth"),
            "post": _op("create_token", "Create an API token for yourself", language, {
                "201": json_response(say("the new token"), made), **errors(body=True)}, "auth",
                requestBody=json_body(new_token))},
        "/api/v1/auth/tokens/{id}": {"delete": _op("revoke_token", "Revoke an API token (yours; admins: anyone's)",
                                                   language, {"204": {"description": say("revoked")}, **errors(404)},
                                                   "auth", parameters=[path_param("id", UUID, say("the token's id"))])},
    }


def me_paths(language: str) -> dict[str, Any]:
    say = lambda text: summary(text, language)  # noqa: E731
    scope = {"type": ["string", "null"]}
    rights = obj({"read": {"type": "boolean"}, "create": {"type": "boolean"}, "update": {"type": "boolean"},
                  "delete": {"type": "boolean"}, "export": {"type": "boolean"},
                  "scope": obj({"read": scope, "update": scope, "delete": scope}, ["read", "update", "delete"])},
                 ["read", "create", "update", "delete", "export", "scope"])
    me = obj({"id": UUID, "name": {"type": "string"}, "email": {"type": "string", "format": "email"},
              "language": {"type": "string"}, "manager": nullable(UUID),
              "roles": {"type": "array", "items": {"type": "string"}},
              "groups": {"type": "array", "items": obj({"id": UUID, "name": {"type": "string"}}, ["id", "name"])},
              "permissions": {"type": "object", "additionalProperties": rights,
                              "description": say("per object the caller may read")}},
             ["id", "name", "email", "language", "manager", "roles", "groups", "permissions"])
    return {"/api/v1/me": {"get": _op("get_me", "Who you are: user, roles, groups, language and rights per object",
                                      language, {"200": json_response(say("the caller"), me), **errors()}, "auth")}}


def meta_paths(language: str, objects: list[str]) -> dict[str, Any]:
    say = lambda text: summary(text, language)  # noqa: E731
    permissions = obj({"create": {"type": "boolean"}, "read": {"type": "string"}, "edit": {"type": "string"},
                       "delete": {"type": "string"}, "export": {"type": "boolean"}})
    summary_schema = obj({"name": {"type": "string"}, "label": {"type": "string"}, "title_field": {"type": "string"},
                          "permissions": permissions}, ["name", "label", "title_field", "permissions"])
    field = obj({"name": {"type": "string"}, "id": {"type": "string"}, "type": {"type": "string"},
                 "label": {"type": "string"}, "required": {"type": "boolean"}, "unique": {"type": "boolean"},
                 "read_only": {"type": "boolean"}, "searchable": {"type": "boolean"},
                 "options": {"type": "array", "items": obj({"value": {"type": "string"}, "label": {"type": "string"},
                                                             "color": {"type": ["string", "null"]}},
                                                            ["value", "label"])},
                 "target": {"type": "string"}}, ["name", "type", "label", "required"])
    described = {"allOf": [summary_schema, obj({"fields": {"type": "array", "items": field},
                                                "layouts": {"type": "object"}}, ["fields", "layouts"])]}
    return {
        "/api/v1/meta/objects": {"get": _op("list_objects", "The objects you may see, with your rights", language, {
            "200": json_response(say("the objects"), obj({"objects": {"type": "array", "items": summary_schema},
                                                          "revision": {"type": "integer"}}, ["objects", "revision"])),
            **errors()}, "meta")},
        "/api/v1/meta/objects/{object}": {"get": _op(
            "get_object", "An object's fields, labels and layouts, as you may see them", language, {
                "200": json_response(say("the object"), described), **errors(404)}, "meta",
            parameters=[path_param("object", {"type": "string", "enum": objects} if objects else {"type": "string"},
                                   say("the object's name"))])},
    }


def notification_paths(language: str) -> dict[str, Any]:
    say = lambda text: summary(text, language)  # noqa: E731
    item = obj({"id": {"type": "integer"}, "message": {"type": "string"}, "object": {"type": ["string", "null"]},
                "record_id": nullable(UUID), "created_at": DATE_TIME, "read": {"type": "boolean"}},
               ["id", "message", "object", "record_id", "created_at", "read"])
    unread = {"type": "integer", "minimum": 0}
    page = obj({"items": {"type": "array", "items": item}, "next": PAGE_NEXT, "unread": unread},
               ["items", "next", "unread"])
    return {
        "/api/v1/notifications": {"get": _op("list_notifications", "Your notifications, newest first", language, {
            "200": json_response(say("a page of notifications"), page), **errors(400, 422)}, "notifications",
            parameters=[query_param("unread", {"type": "boolean"}, say("only unread (true) or only read (false) ones")),
                        query_param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
                                    say("notifications per page")),
                        query_param("cursor", {"type": "string"}, say("from the next link of the previous page"))])},
        "/api/v1/notifications/unread-count": {"get": _op(
            "count_unread_notifications", "How many of your notifications are unread", language, {
                "200": json_response(say("the count"), obj({"unread": unread}, ["unread"])), **errors()},
            "notifications")},
        "/api/v1/notifications/{id}/read": {"post": _op(
            "mark_notification_read", "Mark one of your notifications read", language, {
                "204": {"description": say("marked read")}, **errors(404)}, "notifications",
            parameters=[path_param("id", {"type": "integer", "minimum": 1}, say("the notification's id"))])},
        "/api/v1/notifications/read-all": {"post": _op(
            "mark_all_notifications_read", "Mark all your notifications read", language, {
                "204": {"description": say("all marked read")}, **errors()}, "notifications")},
    }


def approval_paths(language: str) -> dict[str, Any]:
    say = lambda text: summary(text, language)  # noqa: E731
    body = obj({"comment": {"type": "string"}})
    return {"/api/v1/approvals/{id}/{decision}": {"post": _op(
        "decide_approval", "Approve, reject or recall a pending approval", language, {
            "200": json_response(say("decided"), obj({"approval": {"type": "integer"}, "status": {"type": "string"}},
                                                     ["approval", "status"])),
            **errors(404, 409, 412, 422, body=True)}, "approvals",
        parameters=[path_param("id", {"type": "integer", "minimum": 1}, say("the approval's id")),
                    path_param("decision", {"type": "string", "enum": ["approve", "reject", "recall"]},
                               say("what to do"))],
        requestBody=json_body(body))}}


def intake_paths(language: str, forms: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One public form per object that declares `intake`; `forms` maps the object to its label
    (in `language`) and the schema of the fields it accepts."""
    say = lambda text, **v: summary(text, language, **v)  # noqa: E731
    made = {}
    for name, (label, schema) in forms.items():
        made[f"/api/v1/intake/{name}"] = {"post": _op(
            f"intake_{name}", "Submit a public {label} form (no sign-in)", language, {
                "201": json_response(say("received"), obj({"id": UUID, "received": {"type": "boolean"}},
                                                          ["id", "received"])),
                **errors(404, 422, 429, body=True, signed_in=False)}, "intake",
            values={"label": label}, security=PUBLIC, requestBody=json_body(schema))}
    return made


def document_paths(language: str) -> dict[str, Any]:
    say = lambda text: summary(text, language)  # noqa: E731
    return {
        "/api/v1/openapi.json": {"get": _op("get_openapi", "This document, as you may see it", language, {
            "200": json_response(say("the OpenAPI 3.1 document"), {"type": "object"}), **errors()}, "meta")},
        "/api/v1/docs": {"get": _op("get_docs_page", "The interactive API documentation page", language, {
            "200": {"description": say("an HTML page"), "content": {"text/html": {"schema": {"type": "string"}}}}},
            "meta", security=PUBLIC)},
    }


__all__ = ["auth_paths", "me_paths", "meta_paths", "notification_paths", "approval_paths", "intake_paths",
           "document_paths", "ref"]
