"""Structured record errors: per field, a code for programs and a message for people.

Messages are given in the actor's language where a translation exists (English,
Simplified and Traditional Chinese ship with the engine), and name the field by its
label in that language. The module sits below every engine layer (it imports only the
metamodel's `MetacrmError`), so security, the record engine, automation and the channels
raise and catch the same classes without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from metacrm.engine.i18n import localize
from metacrm.metamodel.errors import MetacrmError

MESSAGES: dict[str, dict[str, str]] = {
    "required": {"en": "is required", "zh-CN": "为必填项", "zh-TW": "為必填項"},
    "not_unique": {"en": "must be unique: {value!r} is already used", "zh-CN": "必须唯一：{value!r} 已被使用",
                   "zh-TW": "必須唯一：{value!r} 已被使用"},
    "min": {"en": "must be at least {limit}", "zh-CN": "不能小于 {limit}", "zh-TW": "不能小於 {limit}"},
    "max": {"en": "must be at most {limit}", "zh-CN": "不能大于 {limit}", "zh-TW": "不能大於 {limit}"},
    "too_short": {"en": "must be at least {limit} characters", "zh-CN": "至少 {limit} 个字符",
                  "zh-TW": "至少 {limit} 個字元"},
    "too_long": {"en": "must be at most {limit} characters", "zh-CN": "最多 {limit} 个字符",
                 "zh-TW": "最多 {limit} 個字元"},
    "pattern": {"en": "does not match the required format", "zh-CN": "格式不正确", "zh-TW": "格式不正確"},
    "read_only": {"en": "is read-only", "zh-CN": "为只读字段", "zh-TW": "為唯讀欄位"},
    "unknown_field": {"en": "is not a field of {object}", "zh-CN": "不是 {object} 的字段",
                      "zh-TW": "不是 {object} 的欄位"},
    "invalid_reference": {"en": "refers to a record that does not exist", "zh-CN": "引用的记录不存在",
                          "zh-TW": "引用的記錄不存在"},
    "invalid_choice": {"en": "{value!r} is not one of: {allowed}", "zh-CN": "{value!r} 不是可选值：{allowed}",
                       "zh-TW": "{value!r} 不是可選值：{allowed}"},
    "invalid_type": {"en": "{detail}", "zh-CN": "类型不正确（{detail}）", "zh-TW": "類型不正確（{detail}）"},
    "conflict": {"en": "was changed by someone else (your version {given}, current {current}); reload and retry",
                 "zh-CN": "已被他人修改（你的版本 {given}，当前 {current}），请刷新后重试",
                 "zh-TW": "已被他人修改（你的版本 {given}，目前 {current}），請重新整理後重試"},
    "not_found": {"en": "{object} {id} does not exist", "zh-CN": "{object} {id} 不存在", "zh-TW": "{object} {id} 不存在"},
    "illegal_transition": {"en": "cannot go from {old} to {new}", "zh-CN": "不能从 {old} 变为 {new}",
                           "zh-TW": "不能從 {old} 變為 {new}"},
    "transition_not_allowed": {"en": "your role may not move it from {old} to {new}",
                               "zh-CN": "你的角色无权从 {old} 变为 {new}", "zh-TW": "你的角色無權從 {old} 變為 {new}"},
    "transition_guard": {"en": "the conditions to go from {old} to {new} are not met",
                         "zh-CN": "不满足从 {old} 变为 {new} 的条件", "zh-TW": "不滿足從 {old} 變為 {new} 的條件"},
    "locked": {"en": "{object} is locked while it waits for approval", "zh-CN": "{object} 审批中，已锁定",
               "zh-TW": "{object} 審批中，已鎖定"},
    "owner_not_allowed": {"en": "can only be a user whose {object} records you may edit",
                          "zh-CN": "只能是你有权编辑其{object}记录的用户", "zh-TW": "只能是你有權編輯其{object}記錄的使用者"},
    "owner_not_yours": {"en": "cannot be changed by you: this {object} belongs to someone whose records "
                              "you may not edit",
                        "zh-CN": "你无权更改：此{object}属于你无权编辑其记录的用户",
                        "zh-TW": "你無權更改：此{object}屬於你無權編輯其記錄的使用者"},
    "forbidden": {"en": "you may not {action} {object} records", "zh-CN": "你无权{action}{object}记录",
                  "zh-TW": "你無權{action}{object}記錄"},
    "restricted_deeper": {"en": "cannot be deleted: other records refer to records that would be deleted with it",
                          "zh-CN": "无法删除：有其他记录引用将随之删除的记录",
                          "zh-TW": "無法刪除：有其他記錄引用將隨之刪除的記錄"},
    "restricted": {"en": "cannot be deleted: {count} {child} record(s) refer to it through {field}",
                   "zh-CN": "无法删除：有 {count} 条 {child} 记录通过 {field} 引用它",
                   "zh-TW": "無法刪除：有 {count} 筆 {child} 記錄透過 {field} 引用它"},
}


def translate(code: str, language: str | None, default: str, **params: Any) -> str:
    """The message for `code` in `language`; for a code without an entry here, `default` (the
    English message, e.g. a value rule's) translated through the message catalogue."""
    table = MESSAGES.get(code)
    if not table:
        return localize(default, language)
    template = table.get(language or "en") or table.get((language or "").split("-")[0]) or table["en"]
    try:
        return template.format(detail=localize(default, language), **params)
    except (KeyError, IndexError, ValueError):
        return localize(default, language)


@dataclass(frozen=True)
class FieldError:
    """One problem with one field (or with the record as a whole when field is None)."""

    field: str | None
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "code": self.code, "message": self.message}


class RecordError(MetacrmError):
    """Base of record errors; `errors` lists every problem found. The class says what kind of
    failure it is; channels choose how to show it (the API's statuses: engine/api/problems.py)."""

    def __init__(self, errors: list[FieldError], message: str | None = None):
        self.errors = list(errors)
        super().__init__(message or "; ".join(
            f"{e.field}: {e.message}" if e.field else e.message for e in self.errors))


class ValidationFailed(RecordError):
    """The input or the operation breaks a rule of the metadata."""


class Refused(ValidationFailed):
    """One reason an operation (approval, pool, share...) cannot be done, with its code."""

    def __init__(self, code: str, message: str):
        super().__init__([FieldError(None, code, message)])


class NotFound(RecordError):
    """The record does not exist, or the actor may not see it."""


class Conflict(RecordError):
    """The record changed since the caller read it (optimistic concurrency)."""

    def __init__(self, errors: list[FieldError], current_version: int | None):
        super().__init__(errors)
        self.current_version = current_version


class PermissionDenied(RecordError):
    """The actor may see the record (or object) but not do this with it."""


class UnknownObject(RecordError):
    """No object of that name in the metadata."""


class AutomationError(MetacrmError):
    """A rule's action failed: the triggering write is rolled back. `entries` are its execution-log
    lines, written after the rollback (engine.automation.hooks). Declared here, below the record
    engine, so that the record engine and importers can recognise it without importing automation."""

    def __init__(self, message: str, entries: list[dict[str, Any]]):
        super().__init__(message)
        self.entries = entries
