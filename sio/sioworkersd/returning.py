"""The POST of a finished group to its ``return_url``, as the original sends
it (``reference/sioworkersd.md`` §3): ``multipart/form-data`` with the one
field ``data``, the JSON of the group environ (``json.dumps`` defaults:
ASCII-escaped). Success is status 200 and nothing else.

Unlike the original, the response has a time-out (a receiver that accepts and
never answers is a failed try, retried later), and the daemon retries for
ever (:func:`sio.sioworkersd.policy.return_delay`).
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
import uuid
from typing import Any

#: ``--return-timeout`` default (seconds): connecting and each read.
DEFAULT_RETURN_TIMEOUT_S = 60.0


class ReturnError(Exception):
    """A try that did not end with 200; the message is logged and shown in
    ``get_queue``."""


def encode(env: dict[str, Any]) -> tuple[bytes, str]:
    """The body and its Content-Type."""
    boundary = uuid.uuid4().hex
    data = json.dumps(env)  # ASCII only, as the original sends it
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n"
            f"{data}\r\n--{boundary}--\r\n").encode("ascii")
    return body, f"multipart/form-data; boundary={boundary}"


def post(url: str, env: dict[str, Any], timeout: float = DEFAULT_RETURN_TIMEOUT_S) -> None:
    """POST ``env`` to ``url``; raises :class:`ReturnError` unless the
    answer is 200."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ReturnError(f"return_url {url!r} is not an http(s) URL")
    conn_class = (http.client.HTTPSConnection if parts.scheme == "https"
                  else http.client.HTTPConnection)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    body, content_type = encode(env)
    conn = conn_class(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={
            "Content-Type": content_type, "User-Agent": "sioworkersd", "Connection": "close"})
        response = conn.getresponse()
        text = response.read(2000).decode("utf-8", "replace")
        if response.status != 200:
            raise ReturnError(f"{url} answered {response.status} {response.reason}: {text!r}")
    except (OSError, http.client.HTTPException) as e:
        raise ReturnError(f"{url}: {type(e).__name__}: {e}") from e
    finally:
        conn.close()
