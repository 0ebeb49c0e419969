"""schemathesis over every operation of the OpenAPI document, with every check it has, against
a live uvicorn server on SQLite and on PostgreSQL.

The server holds the crm_standard template with its sample records and an `inquiry` object
with a public form, a manual rule and an approval process (tests/live_api.py). The document
is read as an administrator sees it, so the admin operations are in it too. For each operation
schemathesis generates valid and invalid requests (half of those for one record name a real
record) and every check runs on each answer: no server error, documented status, content
type, headers and body, invalid data refused, valid data accepted, unsupported methods
answered with 405, authentication not ignored.

`positive_data_acceptance` also accepts the refusals no schema can foresee: a record or
approval that does not exist (404), a value that must be unique or a stale version
(409/412), a rule of the data such as "a lookup names an existing record" (422), and the
sign-in throttle (429) after the generated wrong passwords. Hypothesis runs derandomized,
with no example database and a fixed number of examples, so CI makes the same requests
every run.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks, positive_data_acceptance
from schemathesis.config import SchemathesisConfig
from schemathesis.errors import FailureGroup

from tests.live_api import live_on

MAX_EXAMPLES = 3  # per operation and mode: ~140 operations x 2 modes x 3, some 800 cases (and the checks' own requests) per database
CONFIG = SchemathesisConfig.from_dict({
    "analysis": {"constants": {"enabled": False}},  # examples independent of the engine's string constants
    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "412", "422",
                                                                  "429"]},
               # 207: a bulk write or an import that refuses each invalid record or row by itself;
               # 412: an If-Match that names another record
               "negative_data_rejection": {"expected-statuses": ["207", "400", "401", "403", "404", "405", "406",
                                                                 "409", "412", "413", "415", "422", "428", "429"]}},
})
HYPOTHESIS = settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None, print_blob=False,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request, tmp_path_factory):
    yield from live_on(request, tmp_path_factory)


@pytest.fixture(autouse=True)
def many_intake_submissions(monkeypatch):
    monkeypatch.setenv("METACRM_INTAKE_PER_HOUR", "100000")


def all_checks() -> list:
    load_all_checks()
    return CHECKS.get_all()


def json_text_or_file(case) -> bool:
    """A request whose content a schema cannot fully describe: a filter or mapping is JSON text in
    a query parameter, an import a CSV file, metadata YAML documents. Valid by the schema, such a
    request may still be malformed (400)."""
    path = case.operation.path
    return bool(set(case.query or {}) & {"filter", "mapping"}) or path.endswith("/import") \
        or path.startswith("/api/v1/admin/metadata/")


def record_ids(live) -> dict[str, list[str]]:
    with live.client() as http:
        return {name: [r["id"] for r in http.get(f"/api/v1/records/{name}", params={"limit": 20, "fields": "id"})
                       .json()["records"]] for name in live.runtime.model.objects}


def strategy(operation, mode, ids: list[str]):
    generated = operation.as_strategy(generation_mode=mode)
    if "{id}" in operation.path and ids and operation.path.startswith("/api/v1/records/"):
        real = st.sampled_from(ids).flatmap(
            lambda rid: operation.as_strategy(generation_mode=mode, path_parameters={"id": rid}))
        generated = st.one_of(generated, real)

    return generated


def test_every_operation_answers_as_documented(live):
    headers = {"Authorization": f"Bearer {live.tokens['admin']}", "Accept-Language": "en"}
    schema = schemathesis.openapi.from_url(f"{live.url}/api/v1/openapi.json", headers=headers, config=CONFIG)
    checks = all_checks()
    ids = record_ids(live)
    operations = [r.ok() for r in schema.get_all_operations()]
    tested = operations
    assert len(tested) > 100, [op.label for op in tested]
    statuses: Counter = Counter()
    failures: list[str] = []
    for operation in tested:
        obj = operation.path.split("/")[4] if operation.path.startswith("/api/v1/records/") else None
        has_input = bool(operation.definition.raw.get("parameters") or operation.definition.raw.get("requestBody"))
        for mode in MODES if has_input else MODES[:1]:  # nothing to make invalid in a request without input
            @HYPOTHESIS
            @given(case=strategy(operation, mode, ids.get(obj, [])))
            def check(case):
                response = case.call(headers=headers)
                statuses[response.status_code] += 1
                run = checks
                if response.status_code == 400 and json_text_or_file(case):
                    run = [c for c in checks if c is not positive_data_acceptance]
                case.validate_response(response, checks=run, headers=headers)

            try:
                check()
            except (Exception, FailureGroup, BaseExceptionGroup) as exc:  # go on: report every operation
                failures.append(f"--- {operation.label} ({mode.value})\n"
                                + "\n".join(line[:300] for line in str(exc).splitlines()[:40]))
    if os.environ.get("METACRM_SCHEMATHESIS_REPORT"):
        Path(os.environ["METACRM_SCHEMATHESIS_REPORT"]).write_text("\n\n".join(failures), "utf-8")
    assert not failures, f"{len(failures)} operation(s) answered outside the document:\n\n" + "\n\n".join(failures)
    assert statuses[200] and statuses[201] and statuses[204], statuses
    assert not [s for s in statuses if s >= 500], statuses
