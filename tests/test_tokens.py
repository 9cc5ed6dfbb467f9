"""The token manager and bearer auth, one rule of SPEC "OAuth2 behaviour" at a time.

Servers are `tests.oauth_servers.FixtureServer` on real loopback sockets; the
tests under load live in test_token_concurrency.py, the end-to-end tests
against Authlib's authorization server in test_token_authlib.py. Every test
ends by searching all captured text for the client secret and every issued
token (`SecretWatch`).
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx
import pytest

from runner.client_auth import basic_credential, check_token_url, is_loopback_host
from runner.errors import TokenError
from runner.tokens import MAX_TOKEN_RESPONSE_BYTES, RetryPolicy, TokenManager
from tests.oauth_servers import (
    ABSENT,
    Reply,
    SecretWatch,
    connection_for,
    free_port,
)

APPENDIX_B_ID = "1PpG/Q 1"
APPENDIX_B_SECRET = "z/tZ9VwFZqApmIQ+ZH1I5pLk/uB4ud:X2/8bL+wfFTt1rFw="
APPENDIX_B_CREDENTIAL = (
    "MVBwRyUyRlErMTp6JTJGdFo5VndGWnFBcG1JUSUyQlpIMUk1cExrJTJGdUI0dWQlM0FYMiUyRj"
    "hiTCUyQndmRlR0MXJGdyUzRA=="
)
FAST = RetryPolicy(base_delay=0.01, max_delay=0.05, total=5.0)


# Every test is watched for leaked secrets (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("watch")


class FakeClock:
    """A monotonic clock the test moves by hand; `sleep` moves it too."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def token_error(watch: SecretWatch, manager: TokenManager) -> TokenError:
    """The TokenError `manager.token()` raises, recorded for the leak check."""
    with pytest.raises(TokenError) as caught:
        manager.token()
    watch.seen(caught.value)
    return caught.value


# Client authentication (RFC 6749 section 2.3.1) -----------------------------


def test_basic_credential_matches_rfc6749_appendix_b_vector() -> None:
    """Id and secret are form-urlencoded (a space becomes '+') before base64."""
    credential = basic_credential(APPENDIX_B_ID, APPENDIX_B_SECRET)

    assert credential == APPENDIX_B_CREDENTIAL


def test_basic_credential_raw_joins_id_and_secret_unencoded() -> None:
    credential = basic_credential("id/1", "s:+é", encode=False)

    assert credential == "aWQvMTpzOivDqQ=="  # base64 of UTF-8 "id/1:s:+é"


def test_client_secret_basic_sends_the_appendix_b_credential(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server(
        client_id=APPENDIX_B_ID, client_secret=APPENDIX_B_SECRET
    )
    manager = watch.manager(server)

    token = manager.token()

    assert token == server.issued[0]
    assert server.token_authorizations == [f"Basic {APPENDIX_B_CREDENTIAL}"]
    assert server.token_forms == [{"grant_type": "client_credentials"}]


def test_client_secret_basic_with_non_ascii_secret_authenticates(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server(
        client_id="clïent 1", client_secret="sécrèt-ünïcode ß"
    )
    manager = watch.manager(server)

    assert manager.token() == server.issued[0]


def test_client_secret_raw_sends_basic_without_urlencoding(watch: SecretWatch) -> None:
    server = watch.fixture_server(
        client_id="raw-id",
        client_secret="raw+secret/é",
        auth_method="client_secret_raw",
    )
    manager = watch.manager(server)

    manager.token()

    expected = basic_credential("raw-id", "raw+secret/é", encode=False)
    assert server.token_authorizations == [f"Basic {expected}"]


def test_client_secret_post_sends_credentials_in_the_form(watch: SecretWatch) -> None:
    server = watch.fixture_server(auth_method="client_secret_post")
    manager = watch.manager(server)

    manager.token()

    assert server.token_authorizations == [None]
    assert server.token_forms == [
        {
            "grant_type": "client_credentials",
            "client_id": server.client_id,
            "client_secret": server.client_secret,
        }
    ]


def test_token_request_is_the_same_on_every_fetch(watch: SecretWatch) -> None:
    """Scope (a list, space-joined) and token_params go with refreshes too."""
    server = watch.fixture_server(expires_in=10)
    clock = FakeClock()
    manager = watch.manager(
        server,
        scope=["invoices:read", "invoices:write"],
        token_params={"audience": "https://api.example.com"},
        clock=clock,
    )

    manager.token()
    clock.now += 10
    manager.token()

    expected = {
        "grant_type": "client_credentials",
        "scope": "invoices:read invoices:write",
        "audience": "https://api.example.com",
    }
    assert server.token_forms == [expected, expected]
    assert server.token_authorizations[0] == server.token_authorizations[1]


def test_token_request_asks_for_json_uncompressed(watch: SecretWatch) -> None:
    server = watch.fixture_server()
    manager = watch.manager(server)

    manager.token()

    headers = server.token_headers[0]
    assert headers["accept"] == "application/json"
    assert headers["accept-encoding"] == "identity"
    assert headers["content-type"] == "application/x-www-form-urlencoded"


def test_client_secret_and_basic_credential_are_registered_with_the_redactor(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server(
        client_id=APPENDIX_B_ID, client_secret=APPENDIX_B_SECRET
    )
    watch.manager(server)

    text = f"secret {APPENDIX_B_SECRET} basic {APPENDIX_B_CREDENTIAL}"

    assert watch.redactor.redact(text) == "secret *** basic ***"


# token_url ------------------------------------------------------------------


@pytest.mark.parametrize(
    "token_url",
    [
        "http://127.0.0.1:9/token",
        "http://127.8.9.10/token",
        "http://localhost:8080/token",
        "http://[::1]:8080/token",
        "https://auth.example.com/token",
    ],
)
def test_check_token_url_accepts_https_and_loopback_http(token_url: str) -> None:
    connection = connection_for(FixtureServerStub(), token_url=token_url)

    assert check_token_url(connection) is None


@pytest.mark.parametrize(
    ("token_url", "expected"),
    [
        ("http://auth.example.com/token", "plain http to auth.example.com"),
        ("http://10.0.0.1/token", "plain http to 10.0.0.1"),
        ("http://localhost.example.com/token", "plain http"),
        ("https://user:pw@auth.example.com/token", "user name or password"),
    ],
)
def test_token_manager_refuses_an_unsafe_token_url(
    watch: SecretWatch, token_url: str, expected: str
) -> None:
    connection = connection_for(FixtureServerStub(), token_url=token_url)

    with pytest.raises(TokenError, match=expected) as caught:
        TokenManager(connection, watch.redactor, name="api")

    watch.seen(caught.value)
    assert caught.value.connection == "api"


def test_is_loopback_host_knows_mapped_ipv4() -> None:
    assert is_loopback_host("[::ffff:127.0.0.1]")
    assert not is_loopback_host("[::ffff:10.0.0.1]")


class FixtureServerStub:
    """Enough of a server for `connection_for` when nothing is sent."""

    client_id = "stub-client"
    client_secret = "stub-secret-value"
    auth_method = "client_secret_basic"
    api_url = "https://api.example.com/v1"
    token_url = "https://auth.example.com/token"


# Lifetimes (RFC 6749 section 5.1) -------------------------------------------


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [(3600, 3600.0), ("3600", 3600.0), ("3600.5", 3600.5), (90.0, 90.0)],
)
def test_numeric_expires_in_is_reused_until_the_margin(
    watch: SecretWatch, expires_in: Any, lifetime: float
) -> None:
    """Renewed 60 s before expiry, never more than half the lifetime before."""
    server = watch.fixture_server(expires_in=expires_in)
    clock = FakeClock()
    manager = watch.manager(server, clock=clock)
    renew_after = lifetime - min(60.0, lifetime / 2)

    first = manager.token()
    clock.now += renew_after - 0.01
    assert manager.token() == first
    clock.now += 0.02
    second = manager.token()

    assert second != first
    assert manager.fetches == server.token_requests == 2


@pytest.mark.parametrize("expires_in", [ABSENT, None])
def test_unknown_lifetime_keeps_the_token_until_a_401(
    watch: SecretWatch, expires_in: Any
) -> None:
    server = watch.fixture_server(expires_in=expires_in)
    clock = FakeClock()
    manager = watch.manager(server, clock=clock)

    first = manager.token()
    clock.now += 10 * 365 * 24 * 3600.0

    assert manager.token() == first
    assert manager.renew(first) != first
    assert server.token_requests == 2


@pytest.mark.parametrize(
    ("expires_in", "expected"),
    [
        (0, "expires_in is 0: a token must live a positive"),
        (0.0, "expires_in is 0: a token must live a positive"),
        (-1, "expires_in is -1: a token must live a positive"),
        ("-1", "expires_in is -1: a token must live a positive"),
        ("0", "expires_in is 0: a token must live a positive"),
        (True, "expires_in is true, not a number of seconds"),
        (False, "expires_in is false, not a number of seconds"),
        ("soon", "expires_in is a string that is not a number of seconds"),
        ("1e3", "expires_in is a string that is not a number of seconds"),
        ("nan", "expires_in is a string that is not a number of seconds"),
        ([3600], "expires_in is an array, not a number of seconds"),
        ({"s": 1}, "expires_in is an object, not a number of seconds"),
        ("--1", "expires_in is a string that is not a number of seconds"),
        (" 3600", "expires_in is a string that is not a number of seconds"),
        pytest.param(10**400, "more than ten years", id="10**400"),
        (1.7e12, "more than ten years"),
    ],
)
def test_invalid_expires_in_is_a_token_error(
    watch: SecretWatch, expires_in: Any, expected: str
) -> None:
    server = watch.fixture_server(expires_in=expires_in)
    manager = watch.manager(server)

    error = token_error(watch, manager)

    assert expected in error.message
    assert server.issued[0] not in error.message
    assert server.token_requests == 1


def test_short_token_is_reused_for_half_its_lifetime(watch: SecretWatch) -> None:
    server = watch.fixture_server(expires_in=10)
    clock = FakeClock()
    manager = watch.manager(server, clock=clock)

    first = manager.token()
    clock.now += 4.99
    assert manager.token() == first
    clock.now += 0.02

    assert manager.token() != first


def test_lifetime_counts_from_when_the_request_was_sent(watch: SecretWatch) -> None:
    """A slow token endpoint eats into the lifetime."""
    server = watch.fixture_server(expires_in=100)
    clock = FakeClock()

    def slow_transport_clock() -> float:
        return clock.now

    manager = watch.manager(server, clock=slow_transport_clock)
    original_send = manager._client.send

    def send_taking_30_s(request: httpx.Request, **options: Any) -> httpx.Response:
        clock.now += 30
        return original_send(request, **options)

    manager._client.send = send_taking_30_s  # type: ignore[method-assign]
    first = manager.token()  # sent at 1000, lifetime 100, renewed at 1050
    clock.now = 1049.9
    assert manager.token() == first
    clock.now = 1050.1

    assert manager.token() != first


def test_token_lifetime_of_one_second_over_three_seconds_never_fails(
    watch: SecretWatch,
) -> None:
    """The API enforces the lifetime; renewal at half of it keeps every request good.

    A 1 s token is renewed 0.5 s after its request was sent, so a 3.2 s run
    needs about 3.2 / 0.5 = 6.4 fetches: between 6 and 9 (a fetch takes a
    little time too, so never fewer than the run's length over the reuse).
    """
    server = watch.fixture_server(expires_in=1)
    manager = watch.manager(server)
    client = watch.client(manager)

    statuses = []
    started = time.monotonic()
    for _ in range(2000):
        if time.monotonic() - started > 3.2:
            break
        statuses.append(client.get(f"{server.api_url}/items").status_code)
        time.sleep(0.01)
    elapsed = time.monotonic() - started

    assert elapsed > 3.0
    assert set(statuses) == {200}
    assert server.api_statuses[401] == 0
    assert 6 <= manager.fetches <= 9, manager.fetches
    assert manager.fetches == server.token_requests == manager.tokens_issued


# The token response (RFC 6749 section 5.1) -----------------------------------


def test_token_type_any_case_of_bearer_is_accepted(watch: SecretWatch) -> None:
    server = watch.fixture_server(token_type="BeArEr")
    manager = watch.manager(server)

    assert manager.token() == server.issued[0]


def test_missing_token_type_means_bearer(watch: SecretWatch) -> None:
    server = watch.fixture_server(token_type=ABSENT)
    manager = watch.manager(server)

    assert manager.token() == server.issued[0]


@pytest.mark.parametrize(
    ("token_type", "shown"), [("mac", "'mac'"), ("DPoP", "'DPoP'"), (7, "a number")]
)
def test_other_token_type_is_a_token_error(
    watch: SecretWatch, token_type: Any, shown: str
) -> None:
    server = watch.fixture_server(token_type=token_type)
    manager = watch.manager(server)

    error = token_error(watch, manager)

    assert f"token_type is {shown}, not bearer" in error.message


def test_html_page_with_200_is_a_clear_error_that_does_not_quote_the_body(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server()
    server.replies.append(Reply.html(200, "Please sign in MARKER-HTML-BODY"))
    manager = watch.manager(server)

    error = token_error(watch, manager)

    assert error.message == (
        f"token request to {server.token_url} failed: the token endpoint answered "
        "200 with text/html, not a JSON object holding a token"
    )
    assert server.token_requests == 1


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"token_type": "bearer", "note": "MARKER-JSON-BODY"}, "has no access_token"),
        ({"access_token": "", "note": "MARKER-JSON-BODY"}, "is not a non-empty string"),
        ({"access_token": 12345, "note": "MARKER-JSON-BODY"}, "not a non-empty string"),
        (["MARKER-JSON-BODY"], "not a JSON object holding a token"),
        ({"access_token": "has space MARKER-JSON-BODY"}, "cannot carry"),
    ],
)
def test_json_without_a_usable_access_token_is_an_error_that_does_not_quote_it(
    watch: SecretWatch, document: Any, expected: str
) -> None:
    server = watch.fixture_server()
    server.replies.append(Reply.json(200, document))
    manager = watch.manager(server)

    error = token_error(watch, manager)

    assert expected in error.message
    assert "MARKER" not in error.message


def test_token_response_larger_than_64_kib_is_refused(watch: SecretWatch) -> None:
    server = watch.fixture_server()
    padding = "x" * (MAX_TOKEN_RESPONSE_BYTES + 10)
    server.replies.append(Reply.json(200, {"access_token": "abcdefgh", "pad": padding}))
    manager = watch.manager(server)

    error = token_error(watch, manager)

    assert "larger than 64 KiB" in error.message
    assert server.token_requests == 1


def test_refresh_and_id_tokens_in_the_response_are_masked_too(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server()
    document = {
        "access_token": "access-token-value-1",
        "refresh_token": "refresh-token-value-1",
        "id_token": "id-token-value-1",
    }
    server.replies.append(Reply.json(200, document))
    watch.secret_values.update(document.values())
    manager = watch.manager(server)

    manager.token()

    assert watch.redactor.redact(" ".join(document.values())) == "*** *** ***"


# Errors of the token endpoint (RFC 6749 section 5.2) ------------------------


def test_invalid_client_fails_cleanly_with_the_providers_message(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server()
    manager = watch.manager(server, client_secret="a-wrong-secret-value")
    watch.secret_values.add("a-wrong-secret-value")

    error = token_error(watch, manager)

    assert error.message == (
        f"token request to {server.token_url} failed: the token endpoint refused "
        "the request: invalid_client: Client authentication failed. (HTTP 401)"
    )
    assert error.connection == "api"
    assert server.token_requests == 1


def test_endpoint_error_stops_the_connection_without_asking_again(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server()
    server.replies.append(Reply.json(400, {"error": "invalid_scope"}))
    manager = watch.manager(server)

    first = token_error(watch, manager)
    second = token_error(watch, manager)
    with pytest.raises(TokenError):
        manager.renew("anything")

    assert first.message == second.message
    assert first is not second
    assert manager.failure is not None
    assert server.token_requests == 1


def test_error_description_is_truncated_and_masks_the_secret(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server()
    description = f"secret {server.client_secret} is wrong\n" + "blah " * 200
    server.replies.append(
        Reply.json(401, {"error": "invalid_client", "error_description": description})
    )
    manager = watch.manager(server)

    error = token_error(watch, manager)

    assert "invalid_client: secret *** is wrong blah" in error.message
    assert error.message.endswith("… (HTTP 401)")
    assert len(error.message) < 350


def test_error_object_answered_with_200_is_reported_as_the_providers_error(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server()
    document = {"error": "invalid_grant", "error_description": "Grant not allowed"}
    server.replies.append(Reply.json(200, document))
    manager = watch.manager(server)

    error = token_error(watch, manager)

    assert error.message.endswith(
        "refused the request: invalid_grant: Grant not allowed (HTTP 200)"
    )


def test_4xx_without_an_error_object_is_not_retried(watch: SecretWatch) -> None:
    server = watch.fixture_server()
    server.replies.append(Reply.html(404, "Not here MARKER-404"))
    manager = watch.manager(server)

    error = token_error(watch, manager)

    assert "answered 404 with text/html, not a JSON object holding an error" in (
        error.message
    )
    assert server.token_requests == 1


# Retries --------------------------------------------------------------------


def test_503_503_then_200_passes(watch: SecretWatch) -> None:
    server = watch.fixture_server()
    server.replies.extend([Reply.json(503, {}), Reply.html(503, "down")])
    manager = watch.manager(server, retry=FAST)

    assert manager.token() == server.issued[0]
    assert manager.fetches == server.token_requests == 3
    assert manager.tokens_issued == 1


def test_5xx_retries_are_bounded_in_count_and_then_stop_the_connection(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server()
    server.replies.extend(Reply.json(500, {}) for _ in range(10))
    manager = watch.manager(server, retry=FAST)

    error = token_error(watch, manager)
    token_error(watch, manager)

    assert "answered 500; gave up after 4 attempts" in error.message
    assert server.token_requests == 4


def test_retry_after_two_seconds_is_waited(watch: SecretWatch) -> None:
    server = watch.fixture_server()
    server.replies.append(Reply.json(429, {}, {"Retry-After": "2"}))
    manager = watch.manager(server)

    started = time.monotonic()
    token = manager.token()
    elapsed = time.monotonic() - started

    assert token == server.issued[0]
    assert 2.0 <= elapsed < 4.0
    assert server.token_requests == 2


def test_retry_after_as_an_http_date_is_honoured(watch: SecretWatch) -> None:
    server = watch.fixture_server()
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    server.replies.append(Reply.json(503, {}, {"Retry-After": when}))
    clock = FakeClock()
    manager = watch.manager(server, clock=clock, sleep=clock.sleep)

    manager.token()

    assert len(clock.sleeps) == 1
    assert 3.0 <= clock.sleeps[0] <= 5.0


def test_retry_after_is_capped(watch: SecretWatch) -> None:
    server = watch.fixture_server()
    server.replies.append(Reply.json(429, {}, {"Retry-After": "86400"}))
    clock = FakeClock()
    policy = RetryPolicy(max_retry_after=30.0, total=60.0)
    manager = watch.manager(server, clock=clock, sleep=clock.sleep, retry=policy)

    manager.token()

    assert clock.sleeps == [30.0]


def test_retry_that_would_pass_the_total_bound_is_not_waited_for(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server()
    server.replies.append(Reply.json(503, {}, {"Retry-After": "20"}))
    clock = FakeClock()
    policy = RetryPolicy(total=10.0)
    manager = watch.manager(server, clock=clock, sleep=clock.sleep, retry=policy)

    error = token_error(watch, manager)

    assert clock.sleeps == []
    assert "later than 10 s after the first" in error.message
    assert server.token_requests == 1


def test_backoff_grows_with_jitter_and_stays_within_the_total_bound(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server()
    server.replies.extend(Reply.json(502, {}) for _ in range(3))
    clock = FakeClock()
    manager = watch.manager(server, clock=clock, sleep=clock.sleep)

    manager.token()

    assert len(clock.sleeps) == 3
    for retry, delay in enumerate(clock.sleeps):
        ceiling = 0.5 * 2**retry
        assert ceiling / 2 <= delay <= ceiling
    assert sum(clock.sleeps) <= RetryPolicy().total


def test_network_errors_are_retried_then_reported_without_the_url_query(
    watch: SecretWatch,
) -> None:
    server = FixtureServerStub()
    token_url = f"http://127.0.0.1:{free_port()}/token?key=abc"
    clock = FakeClock()
    connection = connection_for(server, token_url=token_url)
    manager = TokenManager(
        connection, watch.redactor, name="api", clock=clock, sleep=clock.sleep
    )
    watch.secret_values.add(server.client_secret)

    try:
        error = token_error(watch, manager)
    finally:
        manager.close()

    assert error.message.startswith(
        f"token request to http://127.0.0.1:{token_url.split(':')[2].split('/')[0]}"
        "/token failed: could not reach the token endpoint (connect error); "
        "gave up after 4 attempts"
    )
    assert manager.fetches == 4
    assert len(clock.sleeps) == 3


# Redirects ------------------------------------------------------------------


def test_307_to_another_host_is_never_followed(watch: SecretWatch) -> None:
    server = watch.fixture_server()
    other = watch.fixture_server(client_id=server.client_id)
    server.replies.append(Reply.redirect(307, other.token_url + "?from=redirect"))
    manager = watch.manager(server)

    error = token_error(watch, manager)

    assert error.message == (
        f"token request to {server.token_url} failed: the token endpoint answered "
        f"307 to {other.token_url}; redirects of the token endpoint are never "
        "followed (the client secret would go along), so set token_url to the "
        "final address"
    )
    assert server.token_requests == 1
    assert other.token_requests == 0


def test_redirect_location_masks_secrets_and_handles_relative_and_missing(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server()
    server.replies.append(Reply.redirect(302, f"/login/{server.client_secret}"))
    manager = watch.manager(server)

    error = token_error(watch, manager)

    assert f"answered 302 to {server.url}/login/***;" in error.message

    server.replies.append(Reply(301))
    fresh = watch.manager(server, name="again")
    assert "answered 301 without a Location" in token_error(watch, fresh).message


# Bearer auth and the 401 path (RFC 6750) ------------------------------------


def test_token_goes_only_to_the_connection_origin(watch: SecretWatch) -> None:
    server = watch.fixture_server()
    other = watch.fixture_server()
    manager = watch.manager(server)
    client = watch.client(manager)

    same = client.get(f"{server.url}/api/x")
    elsewhere = client.get(f"{other.url}/api/x")
    https_same_host = httpx.Request("GET", server.url.replace("http:", "https:"))
    sent = next(client.auth.sync_auth_flow(https_same_host))

    assert same.status_code == 200
    assert elsewhere.status_code == 401
    assert other.api_authorizations == [None]
    assert "Authorization" not in sent.headers
    assert server.api_authorizations == [f"Bearer {server.issued[0]}"]


def test_request_to_another_origin_does_not_fetch_a_token(watch: SecretWatch) -> None:
    server = watch.fixture_server()
    other = watch.fixture_server()
    manager = watch.manager(server)
    client = watch.client(manager)

    client.get(f"{other.url}/api/x")

    assert manager.fetches == 0


def test_request_with_its_own_authorization_header_is_left_alone(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server()
    manager = watch.manager(server)
    client = watch.client(manager)

    response = client.get(
        f"{server.api_url}/x", headers={"Authorization": "Bearer chosen-by-the-suite"}
    )

    assert response.status_code == 401
    assert server.api_authorizations == ["Bearer chosen-by-the-suite"]
    assert manager.fetches == 0


def test_revoked_token_is_renewed_once_and_the_request_resent(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server()
    manager = watch.manager(server)
    client = watch.client(manager)
    assert client.get(f"{server.api_url}/a").status_code == 200

    server.revoke_all()
    response = client.get(f"{server.api_url}/b", params={"n": "1"})

    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert server.token_requests == 2
    assert server.api_authorizations[-1] == f"Bearer {server.issued[1]}"


def test_api_that_always_answers_401_costs_two_fetches_in_all(
    watch: SecretWatch,
) -> None:
    """Sequential requests: each is sent twice, the token endpoint hit twice.

    The first request's 401 renews the token; the renewed token is refused
    too, so the API refuses fresh tokens and renewing again cannot help.
    Every later request is still resent once (the rule is "send once more"),
    with the current token.
    """
    server = watch.fixture_server(api_always_401=True)
    manager = watch.manager(server)
    client = watch.client(manager)

    statuses = [client.get(f"{server.api_url}/{n}").status_code for n in range(5)]

    assert statuses == [401] * 5
    assert server.api_requests == 10
    assert server.token_requests == 2


def test_api_accepting_a_renewed_token_makes_it_renewable_again(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server()
    manager = watch.manager(server)
    client = watch.client(manager)
    client.get(f"{server.api_url}/a")

    for _ in range(3):
        server.revoke_all()
        assert client.get(f"{server.api_url}/b").status_code == 200

    assert server.token_requests == 4


def test_403_is_never_retried(watch: SecretWatch) -> None:
    server = watch.fixture_server()
    manager = watch.manager(server)
    client = watch.client(manager)

    response = client.get(f"{server.api_url}/forbidden")

    assert response.status_code == 403
    assert server.api_requests == 1
    assert server.token_requests == 1


def test_renew_with_a_stale_token_returns_the_current_one(watch: SecretWatch) -> None:
    server = watch.fixture_server()
    manager = watch.manager(server)
    first = manager.token()
    second = manager.renew(first)

    assert manager.renew(first) == second
    assert server.token_requests == 2


def test_resent_request_carries_its_body_again(watch: SecretWatch) -> None:
    server = watch.fixture_server()
    manager = watch.manager(server)
    client = watch.client(manager)
    manager.token()
    server.revoke_all()

    response = client.post(f"{server.api_url}/items", json={"amount": 10})

    assert response.status_code == 200
    assert response.request.content == b'{"amount":10}'


def test_token_error_reaches_the_caller_of_the_api_client(watch: SecretWatch) -> None:
    server = watch.fixture_server()
    manager = watch.manager(server, client_secret="another-wrong-secret")
    watch.secret_values.add("another-wrong-secret")
    client = watch.client(manager)

    with pytest.raises(TokenError, match="invalid_client") as caught:
        client.get(f"{server.api_url}/x")

    watch.seen(caught.value)
    assert server.api_requests == 0


# Reprs and the client of the token endpoint ---------------------------------


def test_reprs_show_neither_secret_nor_token(watch: SecretWatch) -> None:
    server = watch.fixture_server()
    manager = watch.manager(server)
    client = watch.client(manager)
    client.get(f"{server.api_url}/x")

    shown = repr(manager) + repr(client.auth)

    assert shown == (
        f"<TokenManager 'api' {server.token_url} fetches=1 token>"
        f"<BearerAuth for http://127.0.0.1:{server.url.rsplit(':', 1)[1]}>"
    )


def test_token_client_is_its_own_and_never_follows_redirects(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server()
    manager = watch.manager(server, timeout=7.5, verify_ssl=False)

    token_client = manager._client

    assert token_client.follow_redirects is False
    assert token_client.timeout == httpx.Timeout(7.5)
    assert token_client.event_hooks == {"request": [], "response": []}
    assert "authorization" not in token_client.headers


def test_async_client_is_refused_with_a_message(watch: SecretWatch) -> None:
    server = watch.fixture_server()
    manager = watch.manager(server)
    flow = watch.client(manager).auth.async_auth_flow(httpx.Request("GET", server.url))

    with pytest.raises(NotImplementedError, match=r"use it with httpx\.Client"):
        flow.__anext__().send(None)


def test_secret_watch_finds_a_token_printed_by_mistake(watch: SecretWatch) -> None:
    """The leak check itself works: a printed token is found."""
    server = watch.fixture_server()
    manager = watch.manager(server)

    print(f"debug: {manager.token()}")

    assert watch.leaks() == [f"{server.issued[0][:3]}... (35 chars)"]
