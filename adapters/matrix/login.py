"""Logging in once, then coming back as the same device.

The first start logs in with the password (from the environment) and saves the device id
and access token in ``store_dir/credentials.json`` (mode 0600). Every later start restores
that device with the saved token, so the bot keeps its encryption keys: people's clients
keep trusting one device instead of meeting a new one at every restart. The crypto store
(nio's SQLite store in the same folder) is encrypted with the passphrase from
``pickle_key_env``, never the library's default key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from nio import AsyncClient, AsyncClientConfig, LoginError, WhoamiError

from facilitator.config import MatrixConfig


class MatrixLoginError(Exception):
    """The bot cannot log in; the message says why and what to do."""


def client_config(cfg: MatrixConfig) -> AsyncClientConfig:
    """nio's settings: encryption on, our own sync-token checkpoint, our own retries."""
    return AsyncClientConfig(
        encryption_enabled=True,
        store_sync_tokens=False,  # nio saves it before handlers run; we checkpoint after (see adapter)
        pickle_key=cfg.pickle_key(),
        max_limit_exceeded=0,  # a 429 comes back to us: we honour Retry-After with bounded retries
        max_timeouts=0,  # a connection error comes back to us: we back off
        request_timeout=60,
    )


def credentials_path(cfg: MatrixConfig) -> Path:
    return cfg.store_dir / "credentials.json"


async def open_client(cfg: MatrixConfig) -> AsyncClient:
    """A logged-in client with its crypto store loaded (first log-in or restored device)."""
    cfg.store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    saved = _read_credentials(cfg)
    config = client_config(cfg)
    if saved is not None:
        client = AsyncClient(
            cfg.homeserver, cfg.user_id, device_id=saved["device_id"], store_path=str(cfg.store_dir), config=config
        )
        client.restore_login(cfg.user_id, saved["device_id"], saved["access_token"])
        who = await client.whoami()
        if isinstance(who, WhoamiError):
            await client.close()
            if who.status_code == "M_UNKNOWN_TOKEN":
                raise MatrixLoginError(
                    f"the homeserver no longer accepts the saved log-in in {credentials_path(cfg)} (M_UNKNOWN_TOKEN: "
                    "the device was logged out or deleted). Stop here, delete that folder to log in as a new "
                    f"device (set {cfg.password_env}), and tell your rooms the bot's device changed."
                )
            raise MatrixLoginError(f"checking the saved log-in failed: {who.status_code} {who.message}")
        return client
    password = cfg.password()
    if password is None:
        raise MatrixLoginError(
            f"no saved log-in in {cfg.store_dir} and no password: set the environment variable "
            f"{cfg.password_env} to the bot account's password for the first start"
        )
    client = AsyncClient(cfg.homeserver, cfg.user_id, store_path=str(cfg.store_dir), config=config)
    response = await client.login(password, device_name=cfg.device_name)
    if isinstance(response, LoginError):
        await client.close()
        raise MatrixLoginError(f"log-in as {cfg.user_id} failed: {response.status_code} {response.message}")
    _write_credentials(
        cfg, {"user_id": cfg.user_id, "device_id": response.device_id, "access_token": response.access_token}
    )
    return client


def _read_credentials(cfg: MatrixConfig) -> dict[str, str] | None:
    path = credentials_path(cfg)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise MatrixLoginError(f"{path} cannot be read ({error}); delete it to log in again") from None
    if not isinstance(data, dict) or data.get("user_id") != cfg.user_id:
        raise MatrixLoginError(
            f"{path} belongs to another account ({data.get('user_id') if isinstance(data, dict) else '?'}); "
            "give this bot its own store_dir"
        )
    return {"device_id": str(data["device_id"]), "access_token": str(data["access_token"])}


def _write_credentials(cfg: MatrixConfig, data: dict[str, str]) -> None:
    path = credentials_path(cfg)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(temporary, path)
