"""The module works on workers: wherever /login is served, logins get base_cs_url.

A real Synapse main process and a real generic worker serving the ``client`` resource (so
``/login``) share one homeserver.yaml with the module, on throwaway PostgreSQL and Redis
servers. Logins through the worker's own listener, and through the main process's, must both
carry the configured URL, and the worker's own log must show the module loaded there.

Needs PostgreSQL and Redis servers from Debian's packages (``bash .ci/install-services``)
and Synapse's ``redis`` extra plus psycopg2 (the ``test`` extra). Where the servers are
missing the tests are skipped, so ``python3 dev.py test`` works on a machine with only
Python; CI installs them and sets SYNAPSE_BASE_CS_URL_REQUIRE_SERVICES=1, which turns the
skip into a failure.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest

from tests.harness.constants import PASSWORD, REPO_ROOT
from tests.harness.services import INSTALL_HINT, missing_prerequisites, skip_or_fail
from tests.harness.synapse import module_entry
from tests.harness.worker import WorkerDeployment

pytestmark = pytest.mark.integration

BASE_CS_URL = "https://matrix-cs.example.com"
LOGIN_PATH = "/_matrix/client/v3/login"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerDeployment]:
    missing = missing_prerequisites()
    if missing:
        skip_or_fail("Synapse worker tests need: " + "; ".join(missing) + ". " + INSTALL_HINT)
    # A trailing slash in the config: the response must still carry it without one.
    deployment = WorkerDeployment(
        "workers.test",
        modules=[module_entry(base_cs_url=BASE_CS_URL + "/")],
        workdir=tmp_path_factory.mktemp("workers"),
        extra_pythonpath=[str(REPO_ROOT)],
    )
    with deployment:
        deployment.main.register_user("alice", PASSWORD)  # type: ignore[union-attr]
        yield deployment


@contextlib.contextmanager
def logs_on_failure(request: pytest.FixtureRequest, deployment: WorkerDeployment) -> Iterator[None]:
    """On failure, attach the worker's, main process's, PostgreSQL's and Redis's logs."""
    try:
        yield
    except BaseException:
        for title, text in deployment.log_sections():
            request.node.add_report_section("call", title, text)
        raise


def assert_login_has_base_cs_url(result: object) -> None:
    status = getattr(result, "status", None)
    assert status == 200, result
    body = result.json()  # type: ignore[attr-defined]
    assert body["base_cs_url"] == BASE_CS_URL
    assert body["well_known"]["m.homeserver"]["base_url"] == BASE_CS_URL
    assert body["user_id"] == "@alice:workers.test"


def module_loaded(log: str) -> bool:
    """Whether a process's log has Synapse's own "Loaded module" line for this module."""
    return re.search(r"synapse\.app\._base - .* - Loaded module .*BaseCsUrlModule", log) is not None


def login_requests_in(log: str) -> int:
    """How many POST /login requests a process's access log shows it answered."""
    return len(re.findall(r"POST " + re.escape(LOGIN_PATH), log))


def test_login_on_worker_gets_base_cs_url(
    deployment: WorkerDeployment, request: pytest.FixtureRequest
) -> None:
    worker, main = deployment.worker, deployment.main
    assert worker is not None and main is not None
    with logs_on_failure(request, deployment):
        logins_on_main_before = login_requests_in(main.log_path.read_text())

        result = worker.password_login("alice", PASSWORD)

        assert_login_has_base_cs_url(result)
        worker_log = worker.log_text()
        # The worker (not the main process) loaded the module and answered the login.
        assert module_loaded(worker_log), "the worker's log shows no BaseCsUrlModule loaded"
        assert login_requests_in(worker_log) >= 1
        assert login_requests_in(main.log_path.read_text()) == logins_on_main_before
        # The access token the worker handed out works on the main process too.
        token = result.json()["access_token"]
        whoami = main.get(
            "/_matrix/client/v3/account/whoami", headers={"Authorization": f"Bearer {token}"}
        )
        assert whoami.status == 200, whoami
        assert whoami.json()["user_id"] == "@alice:workers.test"


def test_login_on_main_gets_base_cs_url(
    deployment: WorkerDeployment, request: pytest.FixtureRequest
) -> None:
    main = deployment.main
    assert main is not None
    with logs_on_failure(request, deployment):
        result = main.password_login("alice", PASSWORD)

        assert_login_has_base_cs_url(result)
        main_log = main.log_path.read_text()
        assert module_loaded(main_log), "the main process's log shows no BaseCsUrlModule loaded"
