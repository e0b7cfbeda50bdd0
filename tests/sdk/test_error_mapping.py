"""Each status maps to its typed error; non-JSON pages keep the status and a snippet."""

from __future__ import annotations

import pytest

import portside
from tests.sdk.flaky import js, scripted_server


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, portside.ValidationError),
        (401, portside.AuthenticationError),
        (403, portside.PermissionDeniedError),
        (404, portside.NotFoundError),
        (409, portside.ConflictError),
        (422, portside.ValidationError),
        (429, portside.RateLimitError),
        (500, portside.ServerError),
        (503, portside.ServerError),
        (418, portside.APIError),
    ],
)
def test_status_maps_to_error(status: int, cls: type[portside.APIError]) -> None:
    body = {"error": {"code": f"c{status}", "message": f"m{status}", "details": {"k": 1}, "request_id": "req_b"}}
    with scripted_server([js(status, body, **{"X-Request-ID": "req_h"})]) as (url, _):
        with portside.Client(url, "sk_x", max_retries=0) as c, pytest.raises(cls) as ei:
            c.health()
    err = ei.value
    assert type(err) is cls
    assert isinstance(err, portside.APIError) and isinstance(err, portside.PortsideError)
    assert (err.status_code, err.code, err.message, err.request_id) == (status, f"c{status}", f"m{status}", "req_h")
    assert err.details == {"k": 1}


def test_non_json_error_page_keeps_status_and_snippet() -> None:
    page = b"<html><body>" + b"Bad Gateway " * 200 + b"</body></html>"
    with scripted_server([(404, {"Content-Type": "text/html"}, page)]) as (url, _):
        with portside.Client(url, "sk_x", max_retries=0) as c, pytest.raises(portside.NotFoundError) as ei:
            c.health()
    snippet = ei.value.details["raw_response_snippet"]
    assert snippet.startswith("<html>") and len(snippet) <= 500
