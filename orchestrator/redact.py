"""Credentials never shown or stored: ``user:password@`` in a URI becomes ``***@`` in every line printed
and every file, row, tag or artifact written (the lock file, the invocations table, the report, MLflow).

A tracking server's credentials belong in the environment MLflow reads, ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD``; one written into an ``http(s)://`` URI is moved there for this process and
dropped from the URI. A database URI (``postgresql://user:password@host/db``) keeps them for the
connection only, in memory.
"""
from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

# scheme://USERINFO@ : the userinfo (user, user:password or a token) up to the last '@' of the authority.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<info>[^/?#\s'\"@]*(?:@[^/?#\s'\"@]*)*)@")
# ?password=... / &token=... in a URI's query string
_QUERY = re.compile(r"(?P<key>[?&](?:password|passwd|pwd|token|secret|api_key|access_token)=)[^&#\s'\"]*", re.I)
HIDDEN = "***"


def redact(text: str) -> str:
    """``text`` with the credentials of every URI in it replaced by ``***``."""
    if not isinstance(text, str) or ("://" not in text and "=" not in text):
        return text
    return _QUERY.sub(lambda m: m.group("key") + HIDDEN, _USERINFO.sub(lambda m: m.group("scheme") + HIDDEN + "@", text))


def redact_data(value: Any) -> Any:
    """A copy of nested dicts, lists and strings with every string redacted."""
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_data(v) for v in value)
    return redact(value) if isinstance(value, str) else value


def has_credentials(uri: str | None) -> bool:
    return bool(uri) and redact(uri) != uri


def server_uri(uri: str) -> str:
    """An ``http(s)://user:password@host`` URI without its credentials, which go to the environment
    variables MLflow reads (only where they are not set already); other URIs as they are."""
    if not uri.lower().startswith(("http://", "https://")):
        return uri
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    info, host = parts.netloc.rsplit("@", 1)
    user, _, password = info.partition(":")
    if user:
        os.environ.setdefault("MLFLOW_TRACKING_USERNAME", unquote(user))
    if password:
        os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", unquote(password))
    return urlunsplit(parts._replace(netloc=host))
