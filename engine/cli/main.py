"""`metacrm` — set up a database, evolve its metadata, and work with records.

Every command reports problems as a message on stderr and a non-zero exit, never a
traceback: 1 for refused input or data, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

import sqlalchemy as sa

from metacrm.engine import i18n, identity
from metacrm.engine.automation import manual
from metacrm.engine.automation.tables import execution_log, outbox
from metacrm.engine.automation.worker import Worker, retry_dead
from metacrm.engine.cli import acting, transfer, users
from metacrm.engine.cli.errors import UsageError
from metacrm.engine.cli.language import cli_language
from metacrm.engine.cli.output import Labels, dumps, print_records
from metacrm.engine.errors import RecordError
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.engine.records.csvio import ImportRefused
from metacrm.engine.records.query import Query
from metacrm.engine.records.service import RecordService
from metacrm.engine.config import Settings
from metacrm.engine.runtime import Runtime, find_template
from metacrm.engine.sample_data import SampleDataError, load_sample_data
from metacrm.engine.security import auth
from metacrm.engine.storage import metastore
from metacrm.engine.storage.database import DEFAULT_URL, SettingError
from metacrm.engine.storage.migrator import ApplyError
from metacrm.engine.storage.system_migrations import SchemaVersionError
from metacrm.metamodel.coercion import json_integer, json_number
from metacrm.metamodel.errors import MetadataError

FILTER = re.compile(r"^(?P<field>[a-z][a-z0-9_]*)(?::(?P<op>[a-z_]+))?(?P<sym>!=|>=|<=|=|>|<)(?P<value>.*)$", re.S)
SYMBOLS = {"=": "eq", "!=": "ne", ">": "gt", ">=": "ge", "<": "lt", "<=": "le"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metacrm", description="A metadata-driven CRM engine.")
    parser.add_argument("--database", metavar="URL",
                        help=f"database URL (default: $METACRM_DATABASE_URL or {DEFAULT_URL}); "
                             "PostgreSQL: postgresql+psycopg://user@host/db")
    parser.add_argument("--language", dest="message_language", metavar="LANGUAGE",
                        help="language of messages and labels: en, zh-CN or zh-TW (default: $METACRM_LANGUAGE, "
                             "else the locale's $LC_ALL, $LC_MESSAGES or $LANG, else en)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser("init", help="create the engine's tables in the database, or upgrade them")
    for name, text in (("plan", "show what applying metadata would change"),
                       ("apply", "apply metadata: checked first, all or nothing")):
        cmd = commands.add_parser(name, help=text, description=text)
        cmd.add_argument("path", nargs="?", default=".", help="a template directory or object YAML file (default: .)")
        cmd.add_argument("--purge", action="store_true", help="drop the data of removed fields instead of archiving")
    commands.add_parser("revisions", help="list metadata revisions")

    template = commands.add_parser("template", help="install a template").add_subparsers(dest="action", required=True)
    install = template.add_parser("install", help="install a shipped template by name, or a template directory")
    install.add_argument("name", help="e.g. crm_standard, or a path")
    install.add_argument("--sample-data", action="store_true", help="also load the template's sample records")

    records = commands.add_parser("records", help="create, read, update, delete and list records")
    actions = records.add_subparsers(dest="action", required=True)
    for action in ("create", "get", "update", "delete", "list"):
        cmd = actions.add_parser(action, help=f"{action} records")
        cmd.add_argument("object")
        if action in ("get", "update", "delete"):
            cmd.add_argument("id")
        if action in ("create", "update"):
            cmd.add_argument("--data", help="the record as JSON (default: read JSON from stdin)")
        if action in ("update", "delete"):
            cmd.add_argument("--version", type=int, help="the version you read; refused if someone changed it since")
        if action == "list":
            cmd.add_argument("--filter", action="append", default=[], metavar="COND",
                             help="field=value, field!=value, field>value, field:op=value (repeatable; all must hold)")
            cmd.add_argument("--where", help="a filter in the JSON filter language (and/or/not)")
            cmd.add_argument("--search", help="text to look for in searchable fields")
            cmd.add_argument("--sort", action="append", default=[], help="field, or -field for descending (write --sort=-field)")
            cmd.add_argument("--limit", type=int, default=50)
            cmd.add_argument("--cursor", help="next_cursor of the previous page")
            cmd.add_argument("--fields", help="comma-separated fields to show")
        if action in ("get", "list"):
            acting.add_option(cmd)
        cmd.add_argument("--format", choices=("json", "table"), default="json")
        cmd.add_argument("--labels", action="store_true",
                         help="with --format table: field labels as headings and picklist values as their "
                              "labels, in the CLI's language")

    add_csv_commands(actions)

    history = commands.add_parser("history", help="field history of a record")
    history.add_argument("object")
    history.add_argument("id")
    acting.add_option(history)
    history.add_argument("--format", choices=("json", "table"), default="json")

    field = commands.add_parser("field", help="manage fields").add_subparsers(dest="action", required=True)
    restore = field.add_parser("restore", help="bring back an archived field with its data")
    restore.add_argument("object")
    restore.add_argument("field")

    worker = commands.add_parser("worker", help="deliver emails/webhooks/notifications, fire timers and schedules")
    worker.add_argument("--once", action="store_true", help="one pass over due work, then exit")
    worker.add_argument("--poll", type=float, default=1.0, help="seconds to wait when idle (default 1)")
    worker.add_argument("--lease", type=float, default=300.0,
                        help="seconds a claimed job stays ours; after a crash it is retried once this passes")
    worker.add_argument("--batch", type=int, default=20, help="jobs claimed per pass")

    automation = commands.add_parser("automation", help="test and run automation rules")
    automation_actions = automation.add_subparsers(dest="action", required=True)
    test = automation_actions.add_parser("test", help="dry run: which records match now, what the actions would do")
    test.add_argument("rule", help="object.rule")
    test.add_argument("--record", help="only this record")
    test.add_argument("--limit", type=int, default=20)
    run_rule = automation_actions.add_parser("run", help="run a manual rule on records")
    run_rule.add_argument("rule", help="object.rule")
    run_rule.add_argument("--record", action="append", required=True, help="record id (repeatable)")
    automation_actions.add_parser("log", help="recent rule executions").add_argument("--limit", type=int, default=50)

    outbox = commands.add_parser("outbox", help="see and retry outgoing messages")
    outbox_actions = outbox.add_subparsers(dest="action", required=True)
    listing = outbox_actions.add_parser("list", help="outbox entries (default: dead letters)")
    listing.add_argument("--status", default="dead", choices=("pending", "done", "dead", "all"))
    retry = outbox_actions.add_parser("retry", help="queue dead letters again")
    retry.add_argument("ids", nargs="*", type=int, help="outbox ids (default: every dead letter)")

    serve = commands.add_parser("serve", help="run the REST API with uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="server processes (PostgreSQL for more than one)")
    serve.add_argument("--with-worker", action="store_true",
                       help="also run the automation worker in the server (default on SQLite)")

    user = commands.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    create_user = user.add_parser("create", help="create a user (the first one is usually an admin)",
                                  description="The password is asked for at a terminal, or read from "
                                              "$METACRM_PASSWORD or (--password-stdin) the first line of stdin.")
    create_user.add_argument("--name", required=True)
    create_user.add_argument("--email", required=True)
    create_user.add_argument("--password", help=argparse.SUPPRESS)  # refused: visible in ps and shell history
    create_user.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    create_user.add_argument("--role", action="append", default=[],
                             help="admin, or a role the metadata names (repeatable)")
    create_user.add_argument("--group", action="append", default=[])
    create_user.add_argument("--language", default="en")
    create_user.add_argument("--manager", help="the manager's email")
    token = user.add_parser("token", help="create an API token for a user (printed once)")
    token.add_argument("--email", required=True)
    token.add_argument("--name", default="cli")
    token.add_argument("--days", type=int, help="expires after this many days (default and maximum: "
                                                "$METACRM_TOKEN_MAX_DAYS, 90 unless set)")
    user.add_parser("tokens", help="list a user's API tokens (never their secrets)").add_argument(
        "--email", required=True)
    user.add_parser("revoke-token", help="revoke an API token by its id").add_argument("id")

    demo = commands.add_parser("demo", help="SQLite demo: crm_standard with sample data, a demo admin, the server")
    demo.add_argument("--fresh", action="store_true", help="start from an empty database file")
    demo.add_argument("--no-serve", action="store_true", help="set up, then exit instead of serving")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    return parser


def add_csv_commands(actions) -> None:
    """`records import` and `records export`: CSV in and out (the same logic as the API's)."""
    load = actions.add_parser("import", help="create or update records from a UTF-8 CSV file",
                              description="Columns are matched to fields by name or by label (any language). "
                                          "Rows that fail are reported by CSV line; the others are written.")
    load.add_argument("object")
    load.add_argument("file", help="the CSV file, or - for stdin")
    load.add_argument("--mapping", metavar="JSON", help='{"CSV column": "field", ...} instead of matching headers')
    load.add_argument("--match", metavar="FIELD", help="update the record with this key (e.g. id, email); "
                                                       "create one where none has it")
    load.add_argument("--dry-run", action="store_true", help="report what would happen; write nothing")
    dump = actions.add_parser("export", help="write records as CSV (stdout by default)")
    dump.add_argument("object")
    dump.add_argument("--filter", action="append", default=[], metavar="COND",
                      help="field=value, field!=value, field>value, field:op=value (repeatable; all must hold)")
    dump.add_argument("--where", help="a filter in the JSON filter language (and/or/not)")
    dump.add_argument("--search", help="text to look for in searchable fields")
    dump.add_argument("--sort", action="append", default=[], help="field, or -field for descending (write --sort=-field)")
    dump.add_argument("--fields", help="comma-separated fields to export (default: all, with owner and timestamps)")
    dump.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    acting.add_option(dump)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.language = cli_language(args.message_language, os.environ)
    args.catalogue = i18n.shipped()  # run() puts the runtime's (with its plugins') here
    say = lambda text: args.catalogue.localize(str(text), args.language)  # noqa: E731
    error = lambda text: print(f"metacrm: {say(text)}", file=sys.stderr)  # noqa: E731
    try:
        return run(args)
    except UsageError as exc:
        error(exc)
        return 2
    except MetadataError as exc:
        error("the metadata has problems:")
        for problem in exc.problems:
            where = str(problem)[:len(str(problem)) - len(problem.message)]
            print(f"  {where}{say(problem.message)}", file=sys.stderr)
        return 1
    except ApplyError as exc:
        error(exc)
        return 1
    except RecordError as exc:
        print("metacrm: " + "; ".join(say(e.message) if e.field is None or e.message.startswith(e.field)
                                      else f"{e.field}: {say(e.message)}" for e in exc.errors), file=sys.stderr)
        return 1
    except (SampleDataError, SchemaVersionError, SettingError, ImportRefused) as exc:
        error(exc)
        return 1
    except Exception as exc:  # a bug or an unreachable database: say what, not where
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):
            error(say(f"cannot use the database: {str(exc.orig).strip() or exc}"))
            return 1
        error(f"unexpected error: {type(exc).__name__}: {exc}")
        return 1


def say(args: argparse.Namespace, text: str) -> str:
    """An English message of the command line in its language (engine/i18n)."""
    return args.catalogue.localize(text, args.language)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()  # the one read of the environment's settings (engine/config.py)
    if args.command == "demo":
        return demo(args, settings)
    runtime = Runtime.open(settings=settings.with_database(args.database))
    args.catalogue = runtime.catalogue
    # the command line works on the database directly, as its administrator
    actor = Actor(language=args.language, system=True, channel="cli")
    try:
        handler = COMMANDS[args.command]
        return handler(runtime, args, actor)
    finally:
        runtime.close()


def cmd_init(runtime: Runtime, args, actor: Actor) -> int:
    for step in runtime.schema_steps:
        print(f"system schema: applied {step}")
    print(say(args, f"ready: {runtime.db.url} (metadata revision {runtime.model.revision})"))
    return 0


def author() -> str:
    """Who applies metadata from the command line: $METACRM_AUTHOR, else the OS user."""
    return os.environ.get("METACRM_AUTHOR") or getpass.getuser()


def cmd_plan(runtime: Runtime, args, actor: Actor) -> int:
    plan = runtime.plan(find_template(args.path).objects, purge=args.purge)
    print(plan.render())
    return 0


def cmd_apply(runtime: Runtime, args, actor: Actor) -> int:
    plan = runtime.plan(find_template(args.path).objects, purge=args.purge, author=author())
    print(plan.render())
    if plan.is_empty:
        return 0
    revision = runtime.apply(plan)
    print(say(args, f"applied: metadata revision {revision}"))
    return 0


def cmd_revisions(runtime: Runtime, args, actor: Actor) -> int:
    with runtime.db.engine.connect() as conn:
        for rev in metastore.revisions(conn):
            print(f"{rev.id}  {rev.created_at:%Y-%m-%d %H:%M:%S}  {rev.author or '-'}  {len(rev.summary)} change(s)")
            for line in rev.summary:
                print(f"    {line}")
    return 0


def cmd_template(runtime: Runtime, args, actor: Actor) -> int:
    template = find_template(args.name)
    plan = runtime.plan(template.objects, author=author())
    print(plan.render())
    if not plan.is_empty:
        print(say(args, f"installed {template.name} {template.version}: metadata revision {runtime.apply(plan)}"))
    if args.sample_data:
        if template.sample_data is None:
            raise UsageError(f"template {template.name} has no sample data")
        counts = load_sample_data(RecordService(runtime), template.sample_data, actor)
        print("sample data: " + ", ".join(f"{n} {o}" for o, n in counts.items()))
    return 0


def cmd_records(runtime: Runtime, args, actor: Actor) -> int:
    actor = acting.acting(runtime, args, actor)
    if args.action in ("import", "export"):
        if args.action == "import":
            return transfer.import_file(runtime, args, actor)
        args.limit, args.cursor = None, None
        return transfer.export_file(runtime, args, actor, list_query(args))
    service = RecordService(runtime)
    out = sys.stdout
    show = lambda rows, columns=None: print_records(rows, args.format, out, columns,  # noqa: E731
                                                    labels_for(runtime, args, actor))
    if args.action == "create":
        show([service.create(args.object, read_data(args.data), actor=actor)])
    elif args.action == "get":
        show([service.get(args.object, args.id, actor=actor)])
    elif args.action == "update":
        show([service.update(args.object, args.id, read_data(args.data), actor=actor, version=args.version)])
    elif args.action == "delete":
        service.delete(args.object, args.id, actor=actor, version=args.version)
        print(dumps({"deleted": args.id}))
    else:
        page = service.list(args.object, list_query(args), actor=actor)
        show(page.records, ["id", *args.fields.split(",")] if args.fields else None)
        if page.next_cursor:
            print(say(args, f"next cursor: {page.next_cursor}"), file=sys.stderr)
    return 0


def labels_for(runtime: Runtime, args, actor: Actor) -> Labels | None:
    """`--labels`: what a table shows for the object's fields (None: raw names and values).
    A lookup shows its record's title field, read (once per record) as `actor`."""
    if not getattr(args, "labels", False) or args.format != "table" or args.object not in runtime.model:
        return None
    service, names = RecordService(runtime), {}

    def name_of(target: str, record_id: str) -> str | None:
        if (target, record_id) not in names:
            title = runtime.model.object(target).title_field
            try:
                names[target, record_id] = service.get(target, record_id, actor=actor).get(title)
            except RecordError:
                names[target, record_id] = None
        return names[target, record_id]

    return Labels(runtime.model.object(args.object), args.language, name_of)


def cmd_history(runtime: Runtime, args, actor: Actor) -> int:
    actor = acting.acting(runtime, args, actor)
    print_records(RecordService(runtime).history(args.object, args.id, actor=actor), args.format, sys.stdout)
    return 0


def cmd_field(runtime: Runtime, args, actor: Actor) -> int:
    revision = runtime.restore_field(args.object, args.field, author=author())
    print(say(args, f"restored {args.object}.{args.field}: metadata revision {revision}"))
    return 0


DEMO_EMAIL, DEMO_PASSWORD = "demo@example.com", "demo-password"


def demo(args, settings: Settings) -> int:
    """The standard CRM with sample data in a SQLite file, a demo admin, and the server."""
    url = args.database or "sqlite:///metacrm-demo.db"
    path = url.split(":///", 1)[1] if url.startswith("sqlite:///") else None
    if args.fresh and path and Path(path).exists():
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)
    settings = settings.with_database(url)
    runtime = Runtime.open(settings=settings)
    try:
        actor = Actor(language=args.language, system=True, channel="cli")
        if "account" not in runtime.model:
            args.name, args.sample_data = "crm_standard", True
            cmd_template(runtime, args, actor)
        token = _demo_admin(runtime)
        service = RecordService(runtime)
        print(f"\ndemo database: {url}")
        for name, obj in runtime.model.objects.items():
            print(f"  {obj.label(args.language):<16} {service.count(name, actor=SYSTEM):>4} record(s)")
        print(f"\nweb:  http://{args.host}:{args.port}/   (sign in as {DEMO_EMAIL} / {DEMO_PASSWORD})")
        print(f"admin: {DEMO_EMAIL} / {DEMO_PASSWORD}")
        if token:
            print(f"API token (shown once): {token}")
        else:
            print(f"API token: metacrm --database {url} user token --email {DEMO_EMAIL}")
        print(f"API:  http://{args.host}:{args.port}/api/v1/docs   "
              f"(curl -H 'Authorization: Bearer <token>' http://{args.host}:{args.port}/api/v1/records/account)")
        print("CLI:  metacrm --database " + url + " records list opportunity --sort=-amount --format table "
              "--fields name,stage,amount")
    finally:
        runtime.close()
    if args.no_serve:
        return 0
    args.database, args.workers, args.with_worker = url, 1, True
    return cmd_serve(Runtime.open(settings=settings), args, actor)


def _demo_admin(runtime: Runtime) -> str | None:
    """Create the demo admin once; returns a new API token the first time."""
    with runtime.db.begin() as conn:
        if conn.execute(sa.select(identity.users.c.id).where(identity.users.c.email == DEMO_EMAIL)).first():
            return None
        admin = identity.create_user(conn, "Demo Admin", DEMO_EMAIL, roles=["admin"], groups_=["sales"])
        auth.set_password(conn, admin.id, DEMO_PASSWORD)
        return auth.create_token(conn, admin.id, "demo", auth.utcnow(), longest=runtime.settings.token_lifetime)


def read_data(text: str | None) -> Any:
    if text is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("give the record as --data '{...}' or JSON on stdin")
        text = sys.stdin.read()
    try:
        data = json.loads(text, parse_float=json_number, parse_int=json_integer)  # exact: 1e-999 is not 0
    except json.JSONDecodeError as exc:
        raise UsageError(f"the record is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # a number past 4,300 digits, nesting past the stack
        raise UsageError(f"the record is not usable JSON: {exc or 'nested too deeply'}") from None
    if not isinstance(data, dict):
        raise UsageError("the record must be a JSON object such as {\"name\": \"Acme\"}")
    return data


def parse_filter(text: str) -> list[Any]:
    """`stage=won`, `amount>=1000`, `close_date:last_n_days=30`, `stage:in=new,won` -> a condition."""
    match = FILTER.match(text.strip())
    if not match:
        raise UsageError(f"cannot read filter {text!r}: use field=value, field>value or field:op=value")
    op = match["op"] or SYMBOLS[match["sym"]]
    value: Any = match["value"]
    if op in ("in", "not_in", "between"):
        value = value.split(",")
    elif value == "" and op in ("eq", "ne"):
        value = None
    return [match["field"], op, value]


def list_query(args) -> Query:
    conditions: list[Any] = [parse_filter(f) for f in args.filter]
    if args.where:
        try:
            conditions.append(json.loads(args.where, parse_float=json_number, parse_int=json_integer))
        except json.JSONDecodeError as exc:
            raise UsageError(f"--where is not valid JSON: {exc.msg}") from None
        except (ValueError, RecursionError) as exc:
            raise UsageError(f"--where is not usable JSON: {exc or 'nested too deeply'}") from None
    return Query(filter=conditions or None, sort=tuple(args.sort), search=args.search, limit=args.limit,
                 cursor=args.cursor, fields=tuple(args.fields.split(",")) if args.fields else None)


def cmd_worker(runtime: Runtime, args, actor: Actor) -> int:
    from datetime import timedelta

    worker = Worker(runtime, lease=timedelta(seconds=args.lease), batch=args.batch)
    if args.once:
        handled = worker.run_once()
        print(f"handled {handled} item(s): {worker.stats}")
        return 0
    print(f"worker {worker.name} polling every {args.poll}s (Ctrl-C to stop)")
    try:
        worker.run_forever(args.poll)
    except KeyboardInterrupt:
        pass
    return 0


def cmd_automation(runtime: Runtime, args, actor: Actor) -> int:
    service = RecordService(runtime)
    if args.action == "test":
        for entry in manual.dry_run(service, args.rule, args.record, args.limit, actor):
            print(dumps(entry))
    elif args.action == "run":
        outcomes = manual.run_manual(service, args.rule, args.record, actor)
        summary = {"rule": args.rule, "matched": sum(o.matched for o in outcomes), "records": len(outcomes)}
        errors = {o.id: str(o.error) for o in outcomes if o.error is not None}
        print(dumps(dict(summary, errors=errors) if errors else summary))
        if errors:
            return 1
    else:
        with runtime.db.engine.connect() as conn:
            rows = conn.execute(sa.select(execution_log).order_by(execution_log.c.id.desc()).limit(args.limit))
            print_records([dict(r._mapping) for r in rows], "table", sys.stdout,
                          ["at", "object", "rule", "record_id", "trigger", "result", "duration_ms", "error"])
    return 0


def cmd_outbox(runtime: Runtime, args, actor: Actor) -> int:
    if args.action == "retry":
        print(f"queued again: {retry_dead(runtime, args.ids)} dead letter(s)")
        return 0
    query = sa.select(outbox.c.id, outbox.c.kind, outbox.c.status, outbox.c.attempts, outbox.c.rule,
                      outbox.c.last_error, outbox.c.created_at).order_by(outbox.c.id)
    if args.status != "all":
        query = query.where(outbox.c.status == args.status)
    with runtime.db.engine.connect() as conn:
        print_records([dict(r._mapping) for r in conn.execute(query)], "table", sys.stdout)
    return 0


def cmd_serve(runtime: Runtime, args, actor: Actor) -> int:
    # lazy: the web server (uvicorn, Starlette) is loaded only by the command that serves
    import uvicorn

    from metacrm.engine.api.server import PROTOCOL, WORKER_ENV, build_app
    from metacrm.engine.ui.site import create_site

    with_worker = args.with_worker or runtime.db.is_sqlite
    if runtime.db.is_sqlite and args.workers > 1:
        raise UsageError("several server processes need PostgreSQL; SQLite serves from one")
    settings = runtime.settings
    runtime.close()
    if args.workers == 1:
        uvicorn.run(build_app(settings, with_worker=with_worker, factory=create_site), host=args.host,
                    port=args.port, log_level="info", http=PROTOCOL)
        return 0
    # uvicorn starts each process from an import string, which takes no arguments: the settings
    # go down as the environment variables they were read from (engine/api/server.py)
    os.environ.update(settings.environment(), **{WORKER_ENV: "1" if with_worker else "0"})
    uvicorn.run("metacrm.engine.ui.site:site_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level="info", http=PROTOCOL)
    return 0


def cmd_user(runtime: Runtime, args, actor: Actor) -> int:
    return users.run(runtime, args)


COMMANDS = {
    "serve": cmd_serve,
    "user": cmd_user,
    "worker": cmd_worker,
    "automation": cmd_automation,
    "outbox": cmd_outbox,
    "init": cmd_init,
    "plan": cmd_plan,
    "apply": cmd_apply,
    "revisions": cmd_revisions,
    "template": cmd_template,
    "records": cmd_records,
    "history": cmd_history,
    "field": cmd_field,
}


if __name__ == "__main__":
    sys.exit(main())
