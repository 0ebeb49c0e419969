"""The running engine: a database, the live compiled model, and metadata changes.

A Runtime is created explicitly and passed to whatever needs it (CLI, API, workers);
there is no module-level state. The model is swapped in one assignment after a new
revision commits, so a reader sees the old model or the new one, never a mix.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import pluggy
import sqlalchemy as sa

from metacrm.engine import i18n
from metacrm.engine.automation import follow_hooks, hooks as automation_hooks
from metacrm.engine.automation.log import ExecutionLog
from metacrm.engine.config import Settings
from metacrm.engine.identity import audit
from metacrm.engine.plugins import new_manager, plugin_actions, plugin_translations
from metacrm.engine.records.recompute import recompute
from metacrm.engine.records.rollups import refresh_all
from metacrm.engine.storage import metastore, system_migrations
from metacrm.engine.storage.columns import sqlite_limits
from metacrm.engine.storage.database import Database
from metacrm.engine.storage.decimal_upgrade import legacy_decimal_columns, upgrade_decimal_storage
from metacrm.engine.storage.migrator import StepHook, apply_plan
from metacrm.engine.storage.planner import Plan, make_plan, missing_index_changes
from metacrm.engine.storage.tables import build_tables, existing_indexes
from metacrm.metamodel.compiler import compile_model
from metacrm.metamodel.errors import MetadataError, Problem
from metacrm.metamodel.loader import Document, Template, load_directory
from metacrm.metamodel.model import Model

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


@dataclass(frozen=True)
class _State:
    model: Model
    tables: dict[str, sa.Table]


class Runtime:
    def __init__(self, db: Database, plugins: pluggy.PluginManager | None = None, settings: Settings | None = None):
        self.db = db
        #: how this process runs (engine/config.py); read by the API, the worker, token issuing
        self.settings = settings if settings is not None else Settings(database_url=db.url)
        #: this runtime's plugins (installed entry points unless a manager is given), with the
        #: built-in automation registered like any plugin (it implements the record lifecycle hooks)
        self.plugins = plugins if plugins is not None else new_manager()
        if not self.plugins.is_registered(automation_hooks):
            self.plugins.register(automation_hooks, name=automation_hooks.NAME)
        if not self.plugins.is_registered(follow_hooks):
            self.plugins.register(follow_hooks, name=follow_hooks.NAME)
        self._state = _State(Model({}, 0), {})
        self.automation_log = ExecutionLog(db)
        self.schema_steps: list[str] = []  # system schema steps this runtime applied

    @property
    def catalogue(self) -> i18n.Catalogue:
        """The message catalogue: the shipped one and this runtime's plugins' (engine/i18n)."""
        return i18n.with_directories(plugin_translations(self.plugins))

    def close(self) -> None:
        """Write what is buffered, and release the database connections."""
        self.automation_log.flush()
        self.db.dispose()

    @classmethod
    def open(cls, url: str | None = None, plugins: pluggy.PluginManager | None = None, *,
             settings: Settings | None = None) -> "Runtime":
        """Connect, bring the engine's own tables to this release's schema, load the model.
        `settings` default to `Settings()` (the documented defaults, not the environment: the
        entry points read that once, with Settings.from_env); `url`, if given, overrides theirs."""
        settings = (settings or Settings()).with_database(url)
        db = Database(settings.database_url, timeouts=settings.timeouts, pool_size=settings.pool_size)
        runtime = cls(db, plugins, settings)
        try:
            runtime.reload()
            runtime.upgrade_storage()
        except BaseException:
            runtime.db.dispose()
            raise
        return runtime

    def upgrade_system_schema(self) -> list[str]:
        """Apply the system schema steps and data upgrades the database lacks (a fresh
        database gets them all), atomically; returns their names."""
        with self.db.read() as conn:
            if system_migrations.is_current(conn):
                return []
        with self.db.schema_change() as conn:
            applied = metastore.ensure_system_tables(conn)
        self.schema_steps += applied
        return applied

    def upgrade_storage(self) -> list[str]:
        """Bring data an earlier release stored up to this release's storage (decimals on
        SQLite: engine.storage.decimal_upgrade). A read-only check when there is nothing to do."""
        if not self.db.is_sqlite:
            return []
        with self.db.read() as conn:
            if not legacy_decimal_columns(conn, self.model):
                return []
        with self.db.schema_change() as conn:
            converted = upgrade_decimal_storage(conn, self.model)
            self._recompute_converted_rollups(conn, converted)
            return converted

    def _recompute_converted_rollups(self, conn, converted: list[str]) -> None:
        """Rollups stored as floats were rounded: recompute them from the converted children, since
        count and sum rollups from now on move by delta from the stored value (engine.records.rollups)."""
        for obj in self.model.objects.values():
            for f in obj.fields:
                if f.rollup is not None and f"{obj.table_name}.{f.name}" in converted:
                    refresh_all(conn, self.model, self.tables(), obj.name, f)

    @property
    def model(self) -> Model:
        return self._state.model

    def tables(self, model: Model | None = None) -> dict[str, sa.Table]:
        state = self._state
        if model is None or model is state.model:
            return state.tables
        return build_tables(model)[1]

    def reload(self) -> Model:
        """Bring the system schema up to date (a quick read when it is), load and compile the
        newest revision, and make it live."""
        self.upgrade_system_schema()
        with self.db.read() as conn:
            model = metastore.load_model(conn)
        self._state = _State(model, build_tables(model)[1])
        return model

    def ensure_current(self, conn=None) -> Model:
        """Reload if another process applied a newer revision (one cheap query, on `conn` if given)."""
        if conn is None:
            with self.db.read() as own:
                latest = metastore.current_revision(own)
        else:
            latest = metastore.current_revision(conn)
        return self.reload() if latest != self.model.revision else self.model

    # -- metadata changes ----------------------------------------------------------------
    def compile(self, documents: Iterable[Document]) -> Model:
        """The model that results from laying `documents` over the live metadata."""
        merged: dict[str, Document] = {
            name: Document(data=dict(obj.document), source=obj.source)
            for name, obj in self.model.objects.items()
        }
        for doc in documents:
            merged[doc.data["name"]] = doc
        return compile_model(merged.values(), revision=self.model.revision + 1,
                             plugin_actions=set(plugin_actions(self.plugins)))

    def plan(self, documents: Iterable[Document], *, purge: bool = False, author: str | None = None) -> Plan:
        self.ensure_current()
        new = self.compile(documents)
        if self.db.is_sqlite and sqlite_limits(new):
            raise MetadataError([Problem(message) for message in sqlite_limits(new)])
        with self.db.engine.connect() as conn:
            archived = metastore.archived_fields(conn)
            existing = existing_indexes(conn, [obj.table_name for obj in self.model.objects.values()])
        plan = make_plan(self.model, new, archived=archived, purge=purge, author=author)
        missing = missing_index_changes(plan.changes, new, existing)
        return replace(plan, changes=plan.changes + tuple(missing)) if missing else plan

    def apply(self, plan: Plan, *, on_step: StepHook | None = None, user_id: str | None = None) -> int:
        """Apply a plan atomically, then make the new model live."""
        revision = apply_plan(self.db, plan, on_step=on_step,
                              recompute=lambda conn, model, changes: recompute(conn, model, changes))
        with self.db.begin() as conn:  # the revision row itself records who, when and what
            audit.record(conn, "metadata_apply", datetime.now(timezone.utc), user_id=user_id, detail={
                "revision": revision, "author": plan.author, "changes": plan.summary()})
        if revision == plan.new.revision:  # what was stored is the model the plan compiled: no second compile
            self._state = _State(plan.new, build_tables(plan.new)[1])
        else:
            self.reload()
        return revision

    def restore_field(self, object_name: str, field_name: str, *, author: str | None = None) -> int:
        """Bring back an archived field, with its data, as a new revision."""
        with self.db.engine.connect() as conn:
            rows = [r for r in metastore.archived_fields(conn, object_name) if r.field_name == field_name]
        if not rows:
            raise MetadataError([Problem(f"{object_name}.{field_name} is not an archived field")])
        if object_name not in self.model:
            raise MetadataError([Problem(f"object {object_name!r} does not exist")])
        obj = self.model.object(object_name)
        if obj.has_field(field_name):
            raise MetadataError([Problem(f"{object_name} already has a field {field_name!r}; rename it first")])
        document = dict(obj.document)
        document["fields"] = list(document["fields"]) + [dict(rows[0].definition)]
        plan = self.plan([Document(document, source=f"restore {object_name}.{field_name}")], author=author)
        return self.apply(plan)


def find_template(name_or_path: str) -> Template:
    """A shipped template by name (templates/NAME), or a template directory by path."""
    path = Path(name_or_path)
    if not path.exists() and (TEMPLATES_DIR / name_or_path).is_dir():
        path = TEMPLATES_DIR / name_or_path
    return load_directory(path)
