"""Nothing personal and no secret reaches the logs, whatever a request carries or however it fails.

Logging is configured as production configures it (JSON on stderr); everything written there and
everything any logger emits (caplog, DEBUG) is searched for canary values seeded into requests.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.db import Database
from gateway.logs import configure_logging
from gateway.services import persons as persons_service
from gateway.services.clients import Role
from tests.builders import make_case_record, make_identifiers, random_pnc
from tests.conftest import KeyMaker, bearer

SOURCE = "crc-north"
RECORDS = f"/v1/sources/{SOURCE}/records"
# LogRecord attributes that are not the message or `extra=` fields: exc_info is rendered by the
# handler's formatter, which is what the stderr capture checks.
_RECORD_INTERNALS = frozenset({"exc_info", "exc_text", "stack_info", "args", "msg"})


class CapturedLogs:
    def __init__(self, stderr: io.StringIO, caplog: pytest.LogCaptureFixture) -> None:
        self._stderr = stderr
        self._caplog = caplog

    @property
    def stderr(self) -> str:
        return self._stderr.getvalue()

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stderr.splitlines() if line.strip()]

    def access_lines(self) -> list[dict[str, Any]]:
        return [line for line in self.json_lines() if line["logger"] == "gateway.access"]

    def records(self) -> list[logging.LogRecord]:
        return list(self._caplog.records)

    def record_texts(self) -> list[str]:
        """Each record's rendered message and every field passed with it."""
        texts = []
        for record in self._caplog.records:
            fields = {
                key: value for key, value in vars(record).items() if key not in _RECORD_INTERNALS
            }
            texts.append(f"{record.getMessage()} {fields!r}")
        return texts


@pytest.fixture
def logs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CapturedLogs]:
    """Production logging (JSON to stderr) and caplog at DEBUG; restores the root logger after."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    touched = ("uvicorn", "uvicorn.error", "uvicorn.access")
    saved_loggers = {
        name: (
            logging.getLogger(name).handlers[:],
            logging.getLogger(name).propagate,
            logging.getLogger(name).disabled,
        )
        for name in touched
    }
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    # The test's own HTTP client logs every URL it requests, query string included; it is not
    # part of the gateway, so it is kept out of what is searched.
    monkeypatch.setattr(logging.getLogger("httpx"), "disabled", True)
    try:
        configure_logging(fmt="json")
        # configure_logging replaced the root handlers, caplog's among them: put it back.
        root.addHandler(caplog.handler)
        caplog.set_level(logging.DEBUG)
        yield CapturedLogs(stderr, caplog)
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)
        for name, (handlers, propagate, disabled) in saved_loggers.items():
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate, logger.disabled = handlers, propagate, disabled


def assert_no_canary(logs: CapturedLogs, canaries: dict[str, str]) -> None:
    stderr = logs.stderr
    texts = logs.record_texts()
    for label, value in canaries.items():
        assert value not in stderr, f"the {label} was written to stderr"
        for text in texts:
            assert value not in text, f"the {label} was logged: {text}"


@pytest.mark.anyio
async def test_no_personal_data_or_secret_reaches_the_logs(
    logs: CapturedLogs,
    client: httpx.AsyncClient,
    make_key: KeyMaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    surname, forename, date_of_birth = "Quillfeatherstone", "Xanthippe", "1961-07-23"
    identifiers = make_identifiers()
    source_key = make_key(Role.SOURCE, source=SOURCE)
    central_key = make_key(Role.CENTRAL)
    operator_key = make_key(Role.OPERATOR)
    bogus_key = "crcgw_deadbeef_" + uuid.uuid4().hex
    canaries = {
        "surname": surname,
        "forename": forename,
        "date of birth": date_of_birth,
        "CRN": identifiers["crn"],
        "PNC": identifiers["pnc"],
        "NOMS": identifiers["noms"],
        "source key": source_key,
        "source key secret": source_key.split("_", 2)[2],
        "central key secret": central_key.split("_", 2)[2],
        "bogus key": bogus_key,
    }
    person = {
        "surname": surname,
        "forenames": [forename],
        "date_of_birth": date_of_birth,
        "identifiers": identifiers,
    }
    valid = make_case_record(person=person)
    # A bad PNC is kept as a data-quality warning with its raw value, never logged; a rejected
    # record's raw payload, names and all, is quarantined, never logged.
    invalid_pnc = make_case_record(
        person={**person, "identifiers": {**identifiers, "pnc": identifiers["pnc"][:-1] + "?"}}
    )
    unknown_field = make_case_record(person={**person, "favourite_colour": surname})
    source = {**bearer(source_key), "Content-Type": "application/json"}
    central = bearer(central_key)

    pushed = await client.post(
        RECORDS,
        content=json.dumps({"records": [valid, invalid_pnc, unknown_field]}).encode(),
        headers={**source, "Idempotency-Key": f"push-{identifiers['crn']}"},
    )
    assert pushed.json()["summary"] == {
        "received": 3,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "rejected": 1,
    }
    person_id = pushed.json()["results"][0]["person_id"]
    # A whole-body refusal and a malformed body that quotes the canaries.
    await client.post(
        RECORDS, content=f'{{"records": [], "{surname}": 1}}'.encode(), headers=source
    )
    await client.post(RECORDS, content=f'{{"records": ["{surname}'.encode(), headers=source)

    feed = await client.get("/v1/changes", headers=central)
    assert feed.status_code == 200
    for kind in ("crn", "pnc", "noms"):
        found = await client.get("/v1/persons", params={kind: identifiers[kind]}, headers=central)
        assert [item["id"] for item in found.json()["items"]] == [person_id]
    assert (await client.get(f"/v1/persons/{person_id}", headers=central)).status_code == 200
    # Identifiers that fail validation, in the query string.
    bad_lookup = await client.get(
        "/v1/persons", params={"pnc": identifiers["pnc"][:-1] + "?"}, headers=central
    )
    assert bad_lookup.status_code == 422
    assert (await client.get("/v1/status", headers=bearer(operator_key))).status_code == 200
    assert (await client.get(f"/v1/sources/{SOURCE}/status", headers=source)).status_code == 200
    assert (await client.get("/v1/changes", headers=bearer(bogus_key))).status_code == 401
    assert (
        await client.get("/v1/changes", headers={"Authorization": f"Basic {bogus_key}"})
    ).status_code == 401

    # Identity resolution: a rival record under the same name goes to review; an operator reads
    # the queue, the decision, the person's sources, asks for an explanation and settles it.
    rival = copy.deepcopy(valid)
    rival["provenance"]["external_id"] = f"rival-{uuid.uuid4().hex[:8]}"
    rival["person"]["identifiers"] = {"pnc": random_pnc()}
    await client.post(RECORDS, json={"records": [rival]}, headers=source)
    operator = bearer(operator_key)
    queue = await client.get("/v1/review", headers=operator)
    [item] = queue.json()["items"]
    decision = item["decision"]["id"]
    assert (
        await client.get(f"/v1/match-decisions/{decision}", headers=operator)
    ).status_code == 200
    explained = await client.post(
        "/v1/match/explain",
        json={"left": valid["person"], "right": rival["person"]},
        headers=operator,
    )
    assert explained.status_code == 200
    sources = await client.get(f"/v1/persons/{person_id}/sources", headers=operator)
    assert sources.status_code == 200
    settled = await client.post(
        f"/v1/review/{decision}",
        json={"decision": "not_a_match", "note": f"{surname} {date_of_birth}"},
        headers=operator,
    )
    assert settled.status_code == 200

    # A server error whose exception quotes the data that caused it (as database drivers do).
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(f"no index for {surname} {forename} {identifiers['crn']}")

    monkeypatch.setattr(persons_service, "find_persons", broken)
    with pytest.raises(RuntimeError):
        await client.get("/v1/persons", params={"crn": identifiers["crn"]}, headers=central)

    assert_no_canary(logs, canaries)

    # The search above looked at real output: the access lines and the error line are there.
    routes = {(line["method"], line["route"], line["status"]) for line in logs.access_lines()}
    assert {
        ("POST", "/v1/sources/{source}/records", 200),
        ("POST", "/v1/sources/{source}/records", 400),
        ("GET", "/v1/changes", 200),
        ("GET", "/v1/changes", 401),
        ("GET", "/v1/persons", 200),
        ("GET", "/v1/persons", 422),
        ("GET", "/v1/persons", 500),
        ("GET", "/v1/persons/{person_id}", 200),
        ("GET", "/v1/status", 200),
        ("GET", "/v1/sources/{source}/status", 200),
        ("GET", "/v1/review", 200),
        ("POST", "/v1/review/{decision_id}", 200),
        ("GET", "/v1/match-decisions/{decision_id}", 200),
        ("POST", "/v1/match/explain", 200),
        ("GET", "/v1/persons/{person_id}/sources", 200),
    } <= routes
    [error] = [line for line in logs.json_lines() if line["level"] == "error"]
    assert error["exc_type"] == "RuntimeError"
    assert any(record.exc_info for record in logs.records())


@pytest.mark.anyio
async def test_access_lines_carry_the_request_context(
    logs: CapturedLogs, client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    source_key = make_key(Role.SOURCE, source=SOURCE)
    pushed = await client.post(
        RECORDS,
        json={"records": [make_case_record()]},
        headers={**bearer(source_key), "X-Request-Id": "req-from-source-1"},
    )
    generated = await client.get("/v1/changes", headers=bearer(make_key(Role.CENTRAL)))
    anonymous = await client.get("/v1/changes")
    assert (pushed.status_code, generated.status_code, anonymous.status_code) == (200, 200, 401)

    lines = {line["request_id"]: line for line in logs.access_lines()}
    push_line = lines["req-from-source-1"]
    assert push_line["route"] == "/v1/sources/{source}/records"
    assert push_line["source"] == SOURCE
    assert push_line["status"] == 200
    assert isinstance(push_line["duration_ms"], float | int)
    # The client id is our own id for the caller, so an operator can tell who did what.
    assert uuid.UUID(push_line["client_id"])

    feed_line = lines[generated.headers["x-request-id"]]
    assert feed_line["route"] == "/v1/changes"
    assert uuid.UUID(feed_line["client_id"]) != uuid.UUID(push_line["client_id"])
    anonymous_line = lines[anonymous.headers["x-request-id"]]
    assert anonymous_line["status"] == 401
    assert "client_id" not in anonymous_line


@pytest.mark.anyio
async def test_an_unmatched_path_is_logged_as_unmatched(
    logs: CapturedLogs, client: httpx.AsyncClient
) -> None:
    crn = make_identifiers()["crn"]
    response = await client.get(f"/v1/persons-by-crn/{crn}", params={"crn": crn})
    assert response.status_code == 404
    [line] = logs.access_lines()
    assert line["route"] == "unmatched"
    assert crn not in logs.stderr


def test_the_json_formatter_keeps_only_the_type_of_an_exception(logs: CapturedLogs) -> None:
    try:
        raise ValueError("Quillfeatherstone 1961-07-23")
    except ValueError:
        logging.getLogger("gateway.test").exception("failed")
    [line] = [line for line in logs.json_lines() if line["logger"] == "gateway.test"]
    assert line["exc_type"] == "ValueError"
    assert line["level"] == "error"
    assert "Quillfeatherstone" not in logs.stderr


@pytest.mark.anyio
async def test_webhook_delivery_and_write_back_log_nothing_personal_or_secret(
    logs: CapturedLogs, client: httpx.AsyncClient, make_key: KeyMaker, db: Database
) -> None:
    import respx

    from gateway.models import utcnow
    from gateway.services import webhooks
    from gateway.services.delivery import DeliveryWorker
    from gateway.services.golden import DEFAULT_POLICY
    from gateway.settings import WebhookSettings
    from tests.builders import random_crn

    surname, date_of_birth = "Wolstenholme-Quaye", "1958-11-30"
    identifiers = make_identifiers()
    assigned, refused = random_crn(), random_crn()
    settings = WebhookSettings(
        allowed_hosts=["central.test"], retry_schedule_seconds=[0, 0], jitter=0
    )
    created = db.write(
        lambda session: webhooks.create_subscription(
            session,
            name="central",
            url="https://central.test/hooks?token=query-canary",
            event_types=[],
            sources=[],
            secret=None,
            client_id=None,
            settings=settings,
            principal=None,
            now=utcnow(),
        )
    )
    canaries = {
        "surname": surname,
        "date of birth": date_of_birth,
        "CRN": identifiers["crn"],
        "PNC": identifiers["pnc"],
        "assigned CRN": assigned,
        "refused CRN": refused,
        "webhook secret": created.secret.removeprefix("whsec_"),
        "URL query": "query-canary",
    }
    source = bearer(make_key(Role.SOURCE, source=SOURCE))
    records = [
        make_case_record(
            person={"surname": surname, "date_of_birth": date_of_birth, "identifiers": identifiers}
        ),
        make_case_record(),
        make_case_record(),
    ]
    pushed = await client.post(RECORDS, json={"records": records}, headers=source)
    person_ids = [result["person_id"] for result in pushed.json()["results"]]
    answers = iter(
        [
            httpx.Response(200, json={"crn": assigned}),
            httpx.Response(500, text=f"internal error for {surname}"),
            httpx.Response(410, text=surname),
        ]
    )

    def answer(request: httpx.Request) -> httpx.Response:
        return next(answers, httpx.Response(503, json={"crn": refused, "surname": surname}))

    worker = DeliveryWorker(db, settings, policy=DEFAULT_POLICY)
    with respx.mock() as mock:
        mock.post(url__startswith="https://central.test/hooks").mock(side_effect=answer)
        for _ in range(4):
            await worker.run_once()
    await worker.aclose()
    central = bearer(make_key(Role.CENTRAL))
    # A malformed CRN quoting a surname is refused without either reaching the logs.
    put = await client.put(
        f"/v1/persons/{person_ids[1]}/identifiers", json={"crn": surname}, headers=central
    )
    assert put.status_code == 422
    written = await client.put(
        f"/v1/persons/{person_ids[2]}/identifiers", json={"crn": random_crn()}, headers=central
    )
    assert written.status_code == 200
    assert_no_canary(logs, canaries)
