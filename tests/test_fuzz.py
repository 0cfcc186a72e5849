"""schemathesis over the running service's own OpenAPI document (a real uvicorn server on loopback,
the real model over the real index of the bundled corpus, the admin routes mounted).

Every operation gets FUZZ_EXAMPLES generated requests, valid and invalid (derandomized, so a
failure replays): none may be a 5xx, every status and body must be the documented one, and
every error must be JSON whose `detail` is a readable sentence, not a trace. About two minutes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("schemathesis")

import schemathesis  # noqa: E402
from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service_fixtures import TRACE_MARKERS, LiveServer  # noqa: E402

pytestmark = [pytest.mark.fuzz, pytest.mark.model]
FUZZ_EXAMPLES = int(os.environ.get("BOARDPAPERS_FUZZ_EXAMPLES", "25"))
sent = {"requests": 0, "errors_4xx": 0}


@pytest.fixture(scope="module")
def live_service(real_index):
    from service.app import create_app
    from service.config import ServiceSettings

    app = create_app(ServiceSettings(index_dir=real_index, admin_token=ADMIN_TOKEN))
    with LiveServer(app) as live:
        yield live.url
    print(f"\nfuzzed: {sent['requests']} requests, {sent['errors_4xx']} of them answered 4xx")
    if os.environ.get("BOARDPAPERS_FUZZ_REPORT"):  # for the README's table
        Path(os.environ["BOARDPAPERS_FUZZ_REPORT"]).write_text(json.dumps(sent) + "\n")


def _schema():
    # The document the server will serve, taken from the app itself (no index needed to write it),
    # so the operations are known when tests are collected; requests go to the live server.
    from service.app import create_app
    from service.config import ServiceSettings

    return schemathesis.openapi.from_dict(create_app(ServiceSettings(admin_token=ADMIN_TOKEN)).openapi())


ADMIN_TOKEN = "fuzz-token-not-guessable"
schema = _schema()


def readable_errors(ctx, response, case):
    """An error is JSON with one plain sentence in `detail`."""
    sent["requests"] += 1
    if response.status_code < 400:
        return None
    sent["errors_4xx"] += 1
    try:
        body = response.json()
    except ValueError as e:
        raise AssertionError(f"{response.status_code} is not JSON: {response.text[:200]!r}") from e
    detail = body.get("detail") if isinstance(body, dict) else None
    if not (isinstance(detail, str) and detail.strip()):
        raise AssertionError(f"{response.status_code} has no readable detail: {body!r}"[:300])
    if any(m in detail for m in TRACE_MARKERS):
        raise AssertionError(f"{response.status_code} detail holds a trace: {detail[:300]!r}")
    return None


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate, Phase.shrink])
def test_api_against_its_schema(case, live_service):
    case.call_and_validate(base_url=live_service, timeout=120, checks=[not_a_server_error, status_code_conformance,
                                                content_type_conformance, response_schema_conformance,
                                                readable_errors])
