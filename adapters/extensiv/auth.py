"""Extensiv's OAuth2 client-credentials tokens, fetched once and reused until shortly before expiry.

`POST /AuthServer/api/Token` with a Basic header of the client id and secret and a JSON body
`{grant_type: "client_credentials", tpl: "{GUID}", user_login_id}` answers `access_token` and
`expires_in`. Tokens live 30 to 60 minutes; Extensiv's guidance is to refresh at least every 30,
so a token is used for at most `MAX_TOKEN_AGE_S` and replaced `REFRESH_MARGIN_S` before its end.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable

from adapters.extensiv.config import ExtensivConfig
from adapters.http import HttpClient
from connector.errors import ConfigurationError, PermanentError, TransientError
from connector.redact import Redactor

TOKEN_PATH = "/AuthServer/api/Token"
MAX_TOKEN_AGE_S = 30 * 60
REFRESH_MARGIN_S = 120.0


def basic_auth(client_id: str, client_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


class TokenSource:
    """The current access token of one Extensiv login, shared by every call of an adapter.

    Concurrent callers wait on one refresh instead of each fetching a token; `refresh(stale)`
    after a 401 replaces the token only if nobody replaced it already.
    """

    def __init__(
        self,
        http: HttpClient,
        config: ExtensivConfig,
        *,
        redactor: Redactor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.http = http  # an HttpClient whose default headers carry the Basic credentials
        self.config = config
        self.redactor = redactor
        self.clock = clock
        self._token = ""
        self._renew_at = 0.0
        self._lock = asyncio.Lock()
        self.fetched = 0  # tokens obtained (tests, metrics)

    async def token(self) -> str:
        if self._token and self.clock() < self._renew_at:
            return self._token
        async with self._lock:
            if self._token and self.clock() < self._renew_at:
                return self._token  # another caller refreshed while we waited
            return await self._fetch()

    async def refresh(self, stale: str) -> str:
        """A new token after `stale` was refused (401); one fetch however many callers ask."""
        async with self._lock:
            if self._token and self._token != stale and self.clock() < self._renew_at:
                return self._token
            return await self._fetch()

    async def _fetch(self) -> str:
        body = {"grant_type": "client_credentials", "tpl": self.config.tpl_key, "user_login_id": str(self.config.user_login_id).strip()}
        try:
            # Asking for a token changes nothing at Extensiv: safe to retry on 5xx and timeouts.
            response = await self.http.request("POST", TOKEN_PATH, json=body, idempotent=True, ok=(200,))
        except PermanentError as exc:
            # 400 invalid_grant / invalid_client: the credentials, tpl or user are wrong. That is
            # the merchant's configuration, never the fault of the order being sent.
            raise ConfigurationError(
                f"Extensiv refused the credentials (client_id, client_secret, tpl, user_login_id): {exc.message}",
                vendor="extensiv",
                status=exc.status,
                request_id=exc.request_id,
            ) from exc
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"Extensiv refused the client id/secret: {exc.message}", vendor="extensiv", status=exc.status
            ) from exc
        try:
            data = response.json()
            token = str(data["access_token"]).strip()
            lifetime = float(data.get("expires_in") or MAX_TOKEN_AGE_S)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise TransientError("Extensiv's token answer has no access_token", vendor="extensiv", status=response.status_code) from None
        if not token:
            raise TransientError("Extensiv answered an empty access_token", vendor="extensiv", status=response.status_code)
        lifetime = min(lifetime, MAX_TOKEN_AGE_S)
        # Renew a little early so no call is sent with a token about to lapse; a token too short
        # for the margin is used for half its life.
        margin = REFRESH_MARGIN_S if lifetime > 2 * REFRESH_MARGIN_S else lifetime / 2
        self._token = token
        self._renew_at = self.clock() + lifetime - margin
        self.fetched += 1
        if self.redactor is not None:
            self.redactor.add(token)
        return token
