"""End to end against a real authorization server: Authlib's, from PyPI.

`tests.oauth_servers.AuthlibServer` runs Authlib's Flask authorization
server with its Client Credentials grant and its resource protector, on a
loopback socket; the token manager authenticates with each client
authentication method Authlib implements and the API accepts the tokens it
issued. The fault cases use our own fixture server (test_tokens.py).
"""

from __future__ import annotations

import pytest

from runner.errors import TokenError
from tests.oauth_servers import AuthlibClient, SecretWatch

METHODS = ["client_secret_basic", "client_secret_post"]


# Every test is watched for leaked secrets (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("watch")


@pytest.mark.parametrize("auth_method", METHODS)
def test_authlib_issues_a_token_the_api_accepts(
    watch: SecretWatch, auth_method: str
) -> None:
    client = AuthlibClient("billing-runner", "s3cr3t/+:=value", auth_method)
    server = watch.authlib_server([client])
    manager = watch.manager(server)
    api = watch.client(manager)

    statuses = [api.get(f"{server.api_url}/invoices/{n}").status_code for n in range(3)]

    assert statuses == [200, 200, 200]
    assert server.token_requests == manager.fetches == 1
    assert server.issued == [manager.token()]


@pytest.mark.parametrize("auth_method", METHODS)
def test_authlib_accepts_a_secret_with_non_ascii_letters(
    watch: SecretWatch, auth_method: str
) -> None:
    client = AuthlibClient("clïent-ü", "sécrèt-Øre/ß+:é", auth_method)
    server = watch.authlib_server([client])
    manager = watch.manager(server)

    assert manager.token() == server.issued[0]


@pytest.mark.parametrize("auth_method", METHODS)
def test_authlib_refusing_a_wrong_secret_fails_with_its_message(
    watch: SecretWatch, auth_method: str
) -> None:
    server = watch.authlib_server(
        [AuthlibClient("runner", "right-secret-1", auth_method)]
    )
    manager = watch.manager(server, client_secret="wrong-secret-2")
    watch.secret_values.add("wrong-secret-2")

    with pytest.raises(TokenError) as caught:
        manager.token()
    watch.seen(caught.value)

    assert (
        "the token endpoint refused the request: invalid_client" in caught.value.message
    )
    assert caught.value.message.endswith("(HTTP 401)")
    assert server.token_requests == 1


def test_authlib_refuses_a_client_using_another_auth_method(watch: SecretWatch) -> None:
    server = watch.authlib_server(
        [AuthlibClient("runner", "secret-value-3", "client_secret_post")]
    )
    manager = watch.manager(server, auth_method="client_secret_basic")

    with pytest.raises(TokenError, match="invalid_client") as caught:
        manager.token()

    watch.seen(caught.value)


def test_authlib_grants_the_scope_asked_for(watch: SecretWatch) -> None:
    client = AuthlibClient(
        "runner", "secret-value-4", scope="invoices:read invoices:write"
    )
    server = watch.authlib_server([client])
    manager = watch.manager(server, scope=["invoices:read"])
    api = watch.client(manager)

    assert api.get(f"{server.api_url}/invoices").status_code == 200
    assert server.token_requests == 1


def test_token_revoked_by_authlib_is_renewed_once(watch: SecretWatch) -> None:
    server = watch.authlib_server([AuthlibClient("runner", "secret-value-5")])
    manager = watch.manager(server)
    api = watch.client(manager)
    assert api.get(f"{server.api_url}/a").status_code == 200

    server.revoke_all()
    response = api.get(f"{server.api_url}/b")

    assert response.status_code == 200
    assert [past.status_code for past in response.history] == [401]
    assert server.token_requests == 2
    assert server.api_requests == 3
