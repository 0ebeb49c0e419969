"""The operations under /api/v1/records/{object}, one set of paths per object the caller may
see: list and create, get (with include=), update and delete (with If-Match), bulk, CSV import
and export, field history, shares, approvals and manual rules."""

from __future__ import annotations

from typing import Any

from metacrm.engine.api.spec.common import (DATE_TIME, HEADERS, PAGE_NEXT, UUID, errors, header, json_body,
                                            json_response, nullable, obj, path_param, query_param, ref, summary)
from metacrm.engine.automation.manual import may_run
from metacrm.engine.records.query import MAX_LIMIT
from metacrm.engine.security.access import Access
from metacrm.metamodel.model import ObjectDef
from metacrm.engine.api.layouts import visible_layouts

BULK_LIMIT = 1000
RULE_IDS_LIMIT = 500
FILTERABLE_SYSTEM = ("owner", "id", "created_at", "updated_at")
INCLUDE_LIMIT = 10
#: An ETag we gave ("<id>.<version>", with a digest for records with read-time formulas), a bare
#: version, or * (any version).
IF_MATCH = r'^(\*|(W/)?"[0-9a-fA-F-]{36}\.[0-9]{1,18}(\.[0-9a-f]{12})?"|"?[0-9]{1,18}"?)$'


class ObjectPaths:
    """The paths of one object for one caller (`access`), with summaries in `language`."""

    def __init__(self, obj_def: ObjectDef, access: Access, actor, language: str, related: list[str]) -> None:
        self.obj, self.access, self.actor, self.language = obj_def, access, actor, language
        self.name, self.label = obj_def.name, obj_def.label(language)
        self.related = related  # the names include= accepts for this caller
        self.base = f"/api/v1/records/{self.name}"

    def say(self, text: str, **values: Any) -> str:
        return summary(text, self.language, label=self.label, **values)

    def op(self, verb: str, text: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"operationId": f"{verb}_{self.name}", "summary": self.say(text), "tags": [self.name],
                "responses": responses, **extra}

    # -- parameters -------------------------------------------------------------------------
    def id_param(self) -> dict[str, Any]:
        return path_param("id", UUID, self.say("the id of the {label} record"))

    def list_params(self) -> list[dict[str, Any]]:
        say = self.say
        params = [
            query_param("filter", {"type": "string", "contentMediaType": "application/json"},
                        say("conditions as JSON, e.g. [[\"name\",\"contains\",\"ac\"]] (see docs/records.md)")),
            query_param("sort", {"type": "string"}, say("comma-separated field names, - for descending: -created_at,name")),
            query_param("search", {"type": "string"}, say("text searched in the searchable fields")),
            query_param("fields", {"type": "string"},
                        say("comma-separated fields to return; id and version are always returned")),
            query_param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
                        say("records per page")),
            query_param("cursor", {"type": "string"}, say("the next_cursor of the previous page")),
        ]
        views = [v["name"] for v in self.list_views()]
        if views:  # an object without list views takes no view= value at all (400 for any)
            params.append(query_param("view", {"type": "string", "enum": views}, say(
                "a list view by name: its filter, sort and columns; filter= and field=value are added to its filter, "
                "sort= and fields= replace its own")))
        hidden = self.access.hidden
        names = [n for n in FILTERABLE_SYSTEM] + [f.name for f in self.obj.fields if f.name not in hidden]
        for name in names:
            params.append(query_param(name, {"type": "string"}, say(
                "only records whose {field} equals this value" + (" (me: the caller)" if name == "owner" else ""),
                field=name)))
        return params

    def list_views(self) -> list[dict[str, Any]]:
        return visible_layouts(self._model, self.obj, self.actor).get("list_views", [])

    # -- operations -------------------------------------------------------------------------
    def paths(self, model) -> dict[str, Any]:
        self._model = model
        rights = self.access.rights
        made: dict[str, Any] = {self.base: {}, f"{self.base}/{{id}}": {}}
        if rights.read != "none":
            made[self.base]["get"] = self.list_op()
            made[f"{self.base}/{{id}}"]["get"] = self.get_op()
            made[f"{self.base}/export"] = {"get": self.export_op()}
            made[f"{self.base}/{{id}}/history"] = {"get": self.history_op()}
            made[f"{self.base}/{{id}}/shares"] = self.share_ops()
            made[f"{self.base}/{{id}}/approvals"] = {"get": self.approval_history_op()}
        made[self.base]["post"] = self.create_op()
        made[f"{self.base}/{{id}}"]["patch"] = self.update_op()
        made[f"{self.base}/{{id}}"]["delete"] = self.delete_op()
        made[f"{self.base}/bulk"] = {"post": self.bulk_op("create"), "patch": self.bulk_op("update")}
        made[f"{self.base}/import"] = {"post": self.import_op()}
        made.setdefault(f"{self.base}/{{id}}/approvals", {})["post"] = self.submit_op()
        rules = [r.name for r in self.obj.automations if r.trigger.on == "manual" and may_run(r, self.actor)]
        if rules:
            made[f"{self.base}/rules/{{rule}}"] = {"post": self.rule_op(rules)}
        return {path: ops for path, ops in made.items() if ops}

    def page_schema(self) -> dict[str, Any]:
        return obj({"records": {"type": "array", "items": ref(self.name)},
                    "next_cursor": {"type": ["string", "null"]},
                    "next": {"type": "string", "description": "the URL of the next page (absent on the last)"}},
                   ["records", "next_cursor"])

    def list_op(self) -> dict[str, Any]:
        return self.op("list", "List {label} records", {
            "200": json_response(self.say("a page of records"), self.page_schema()), **errors(400, 404, 422)},
            parameters=self.list_params())

    def create_op(self) -> dict[str, Any]:
        created = json_response(self.say("created"), ref(self.name),
                                {"ETag": header("ETag"), "Location": header("Location")})
        return self.op("create", "Create a {label} record", {"201": created, **errors(404, 409, 422, body=True)},
                       requestBody=json_body(ref(f"{self.name}_create")))

    def get_op(self) -> dict[str, Any]:
        record = ref(self.name)
        if self.related:
            related = {"type": "object", "additionalProperties": ref("RelatedList"), "description": self.say(
                "per name given in include= (one of: {names}), the first page of that list; a list you may not "
                "read is absent", names=", ".join(self.related))}
            record = {"allOf": [ref(self.name), obj({"_related": related})]}
        params = [self.id_param(),
                  query_param("fields", {"type": "string"},
                              self.say("comma-separated fields to return; id and version are always returned")),
                  {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
                   "description": self.say("the ETag you have: 304 if the record is unchanged")}]
        if self.related:  # an object with no related list the caller may read takes no include= value
            params.insert(2, query_param("include", {
                "type": "array", "items": {"type": "string", "enum": self.related}, "minItems": 1, "uniqueItems": True},
                self.say("related lists (by name, or a child object's name) to return in _related: the first {n} "
                         "records of each", n=INCLUDE_LIMIT), style="form", explode=False))
        return self.op("get", "Get a {label} record", {
            "200": json_response(self.say("the record"), record, {"ETag": header("ETag")}),
            "304": {"description": self.say("not modified since the ETag you sent"), "headers": {"ETag": header("ETag")}},
            **errors(400, 404, 422)}, parameters=params)

    def if_match(self) -> dict[str, Any]:
        return {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string", "pattern": IF_MATCH},
                "description": self.say("the ETag you read (or its version number): 412 if the record changed since")}

    def update_op(self) -> dict[str, Any]:
        return self.op("update", "Update a {label} record", {
            "200": json_response(self.say("updated"), ref(self.name), {"ETag": header("ETag")}),
            **errors(404, 409, 412, 422, body=True)},
            parameters=[self.id_param(), self.if_match()], requestBody=json_body(ref(f"{self.name}_update")))

    def delete_op(self) -> dict[str, Any]:
        return self.op("delete", "Delete a {label} record", {
            "204": {"description": self.say("deleted")}, **errors(400, 404, 409, 412, 422)},
            parameters=[self.id_param(), self.if_match()])

    def bulk_op(self, kind: str) -> dict[str, Any]:
        if kind == "create":
            item = ref(f"{self.name}_create")
        else:
            item = {"allOf": [ref(f"{self.name}_update"), obj({"id": UUID, "version": {"type": "integer"}}, ["id"])]}
        body = obj({"records": {"type": "array", "items": item, "maxItems": BULK_LIMIT},
                    "all_or_none": {"type": "boolean", "default": False,
                                    "description": self.say("write all records or none (422 naming each failing index)")}},
                   ["records"], closed=True)
        result = ref("BulkResult")
        text = ("Create many {label} records" if kind == "create" else "Update many {label} records (each with id)")
        return self.op(f"bulk_{kind}", text, {
            "200": json_response(self.say("every record was written"), result),
            "207": json_response(self.say("some records were written; errors lists the others by index"), result),
            **errors(404, 422, body=True)}, requestBody=json_body(body))

    def import_op(self) -> dict[str, Any]:
        columns = ["id"] + [f.name for f in self.obj.fields if f.name not in self.access.hidden]
        params = [
            query_param("mapping", {"type": "string", "contentMediaType": "application/json"},
                        self.say("JSON object from CSV column to field name, for columns not named like fields")),
            query_param("match", {"type": "string", "enum": columns},
                        self.say("a unique field: rows whose value exists update that record")),
            query_param("dry_run", {"type": "boolean", "default": False},
                        self.say("check every row and report, writing nothing")),
        ]
        body = {"required": True, "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}}}
        return self.op("import", "Import {label} records from CSV (UTF-8)", {
            "200": json_response(self.say("every row was imported (or would be, on a dry run)"), ref("ImportResult")),
            "207": json_response(self.say("some rows were refused; errors lists them by line"), ref("ImportResult")),
            **errors(404, 422, body=True)}, parameters=params, requestBody=body)

    def export_op(self) -> dict[str, Any]:
        params = [p for p in self.list_params() if p["name"] not in ("limit", "cursor")]
        return self.op("export", "Export {label} records as CSV", {
            "200": {"description": self.say("the records as CSV, with a header row"),
                    "headers": {"Content-Disposition": header("Content-Disposition")},
                    "content": {"text/csv": {"schema": {"type": "string"}}}},
            **errors(400, 404, 422)}, parameters=params)

    def history_op(self) -> dict[str, Any]:
        entry = obj({"at": DATE_TIME, "user": nullable(dict(UUID, **{"x-lookup": "user"})),
                     "field": {"type": "string"}, "old": {}, "new": {}}, ["at", "user", "field", "old", "new"])
        page = obj({"items": {"type": "array", "items": entry}, "next": PAGE_NEXT}, ["items", "next"])
        return self.op("history", "Field history of a {label} record, newest first", {
            "200": json_response(self.say("changes to the fields the caller may read"), page),
            **errors(400, 404, 422)},
            parameters=[self.id_param(),
                        query_param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
                                    self.say("entries per page")),
                        query_param("cursor", {"type": "string"}, self.say("from the next link of the previous page (422 if damaged or another record's)"))])

    def share_ops(self) -> dict[str, Any]:
        share = ref("Share")
        access = {"type": "string", "enum": ["read", "edit"]}
        body = obj({"user_id": UUID, "group": {"type": "string"}, "access": access}, closed=True)
        who = [query_param("user_id", UUID, self.say("the user to stop sharing with")),
               query_param("group", {"type": "string"}, self.say("the group to stop sharing with"))]
        return {
            "get": self.op("list_shares", "Shares of a {label} record", {
                "200": json_response(self.say("the shares"), obj({"shares": {"type": "array", "items": share}},
                                                                  ["shares"])), **errors(400, 404)},
                parameters=[self.id_param()]),
            "post": self.op("share", "Share a {label} record with a user or a group", {
                "201": json_response(self.say("shared"), obj({"share": share}, ["share"])),
                **errors(404, 422, body=True)}, parameters=[self.id_param()], requestBody=json_body(body)),
            "delete": self.op("unshare", "Stop sharing a {label} record with a user or a group", {
                "200": json_response(self.say("removed"), obj({"removed": {"type": "integer"}}, ["removed"])),
                **errors(400, 404, 422)}, parameters=[self.id_param(), *who]),
        }

    def approval_history_op(self) -> dict[str, Any]:
        step = obj({"approval_id": {"type": "integer"}, "process": {"type": "string"}, "status": {"type": "string"},
                    "step": {"type": ["string", "null"]}, "user_id": nullable(UUID),
                    "decision": {"type": "string"}, "comment": {"type": ["string", "null"]}, "at": DATE_TIME},
                   ["approval_id", "process", "status", "decision", "at"])
        return self.op("approval_history", "Approval history of a {label} record", {
            "200": json_response(self.say("each decision, oldest first"),
                                 obj({"history": {"type": "array", "items": step}}, ["history"])),
            **errors(400, 404)}, parameters=[self.id_param()])

    def submit_op(self) -> dict[str, Any]:
        processes = [p.name for p in self.obj.approval_processes]
        process = {"type": "string", "enum": processes} if processes else {
            "type": "string", "description": self.say("the {label} object has no approval process today")}
        body = obj({"process": process, "comment": {"type": "string"}}, ["process"])
        return self.op("submit_approval", "Submit a {label} record for approval", {
            "201": json_response(self.say("submitted"), obj({"approval": {"type": "integer"},
                                                            "status": {"type": "string", "enum": ["pending"]}},
                                                           ["approval", "status"])),
            **errors(404, 409, 422, body=True)}, parameters=[self.id_param()], requestBody=json_body(body))

    def rule_op(self, rules: list[str]) -> dict[str, Any]:
        body = obj({"ids": {"type": "array", "items": UUID, "minItems": 1, "maxItems": RULE_IDS_LIMIT}}, ["ids"])
        result = obj({"id": {"type": "string"}, "matched": {"type": "boolean"}, "status": {"type": "integer"},
                      "errors": {"type": "array", "items": ref("FieldError")}}, ["id"])
        outcome = obj({"rule": {"type": "string"}, "matched": {"type": "integer"}, "records": {"type": "integer"},
                       "results": {"type": "array", "items": result}}, ["rule", "matched", "records", "results"])
        return self.op("run_rule", "Run a manual rule on {label} records", {
            "200": json_response(self.say("the rule ran on every record"), outcome),
            "207": json_response(self.say("some records were refused; results says why"), outcome),
            **errors(404, 409, 412, 422, body=True)},
            parameters=[path_param("rule", {"type": "string", "enum": rules}, self.say("the manual rule"))],
            requestBody=json_body(body))


def shared_schemas() -> dict[str, Any]:
    """Schemas every object's operations refer to."""
    return {
        "Share": obj({"id": {"type": "integer"}, "record_id": UUID, "user_id": nullable(UUID),
                      "group": {"type": ["string", "null"]}, "access": {"type": "string", "enum": ["read", "edit"]},
                      "granted_by": nullable(UUID), "granted_at": DATE_TIME}, ["id", "access", "granted_at"]),
        "BulkResult": obj({
            "ids": {"type": "array", "items": nullable(UUID),
                    "description": "per record in the request: its id, or null when it was not written"},
            "written": {"type": "integer"},
            "errors": {"type": "array", "items": obj({"index": {"type": "integer", "minimum": 0},
                                                      "errors": {"type": "array", "items": ref("FieldError")}},
                                                     ["index", "errors"])}}, ["ids", "written", "errors"]),
        "ImportResult": obj({
            "created": {"type": "integer"}, "updated": {"type": "integer"}, "dry_run": {"type": "boolean"},
            "ignored_columns": {"type": "array", "items": {"type": "string"}},
            "errors": {"type": "array", "items": obj({"row": {"type": "integer"},
                                                      "errors": {"type": "array", "items": ref("FieldError")}},
                                                     ["row", "errors"])},
            "error_rows": {"type": "integer", "description": "how many rows failed, when more than are listed"}},
            ["created", "updated", "errors", "dry_run", "ignored_columns"]),
        "RelatedList": obj({"object": {"type": "string"},
                            "items": {"type": "array", "items": {"type": "object", "required": ["id", "version"],
                                                                 "properties": {"id": UUID,
                                                                                "version": {"type": "integer"}}}},
                            "next": PAGE_NEXT}, ["object", "items", "next"]),
    }


__all__ = ["ObjectPaths", "shared_schemas", "HEADERS"]
