"""A real Synapse homeserver for the tests: started on 127.0.0.1 by the suite, stopped after.

``./dev test`` installs Synapse into its own virtualenv, ``.venv-synapse/`` (kept apart from
``.venv`` so Synapse's pinned dependencies never clash with the bot's), and points
``FACILITATOR_SYNAPSE_PYTHON`` at its Python. Outside CI a machine without it skips the Matrix
tests with a message; in CI (``CI=true``) that is a failure (see the ``synapse`` fixture).

The server is configured for tests: SQLite, no federation, no presence, rate limits raised out
of the way (a test may lower one again through ``extra_config``), no sync response cache, cheap
password hashing. Users are registered through the shared-secret admin API, with the standard
library only.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

SERVER_NAME = "localhost"

# Every rate limiter the Synapse 1.163 config knows (synapse/config/ratelimiting.py), raised so
# that no test trips one by accident. A test may lower one again through ``extra_config``.
_HIGH = {"per_second": 10_000, "burst_count": 100_000}
_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _HIGH,
    "rc_registration": _HIGH,
    "rc_registration_token_validity": _HIGH,
    "rc_login": {"address": _HIGH, "account": _HIGH, "failed_attempts": _HIGH},
    "rc_admin_redaction": _HIGH,
    "rc_joins": {"local": _HIGH, "remote": _HIGH},
    "rc_joins_per_room": _HIGH,
    "rc_key_requests": _HIGH,
    "rc_3pid_validation": _HIGH,
    "rc_invites": {"per_room": _HIGH, "per_user": _HIGH, "per_issuer": _HIGH},
    "rc_third_party_invite": _HIGH,
    "rc_media_create": _HIGH,
    "rc_presence": {"per_user": _HIGH},
    "rc_delayed_event_mgmt": _HIGH,
    "rc_room_creation": _HIGH,
    "rc_reports": _HIGH,
    "rc_user_directory": _HIGH,
    "rc_profile": _HIGH,
}

# The child must run with Synapse's own virtualenv only, never the test runner's.
_ENV_DROP = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONSAFEPATH")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in: nested mappings are merged, anything else replaced."""
    merged: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in extra.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class SynapseError(RuntimeError):
    """Synapse failed to start, or refused a request the harness made."""


class SynapseServer:
    """One Synapse homeserver with its data in ``base_dir``, on a free 127.0.0.1 port.

    ``start()`` and ``stop()`` may be called repeatedly; ``restart()`` keeps the port and the
    data, so a test can take the server away mid-conversation and bring it back.
    """

    def __init__(self, base_dir: Path, python: str, extra_config: dict[str, Any] | None = None) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.python = python
        self.port = _free_port()
        self.server_name = SERVER_NAME
        self.registration_shared_secret = secrets.token_hex(32)
        self.config_path = self.base_dir / "homeserver.yaml"
        self.log_path = self.base_dir / "homeserver.log"
        self.output_path = self.base_dir / "synapse.out"
        self.signing_key_path = self.base_dir / f"{self.server_name}.signing.key"
        self.config: dict[str, Any] = deep_merge(self._base_config(), extra_config or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._written = False
        self._admin_token: str | None = None

    # -- configuration ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The client-server API base URL, ``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    def user_id(self, localpart: str) -> str:
        """The full Matrix id for ``localpart`` on this server, e.g. ``@alice:localhost``."""
        return f"@{localpart}:{self.server_name}"

    def _base_config(self) -> dict[str, Any]:
        return {
            "server_name": self.server_name,
            "public_baseurl": f"{self.url}/",
            "pid_file": str(self.base_dir / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {"name": "sqlite3", "args": {"database": str(self.base_dir / "homeserver.db")}},
            "media_store_path": str(self.base_dir / "media_store"),
            "log_config": str(self.base_dir / "log.config"),
            "signing_key_path": str(self.signing_key_path),
            "report_stats": False,
            "enable_registration": False,
            "registration_shared_secret": self.registration_shared_secret,
            "macaroon_secret_key": secrets.token_hex(32),
            "form_secret": secrets.token_hex(32),
            "bcrypt_rounds": 4,
            "caches": {"sync_response_cache_duration": 0},
            "use_presence": False,
            "enable_metrics": False,
            "url_preview_enabled": False,
            "suppress_key_server_warning": True,
            "trusted_key_servers": [],
            # No federation: no federation listener, and no remote server is allowed.
            "federation_domain_whitelist": [],
            "allow_public_rooms_over_federation": False,
            **_RATE_LIMITS,
        }

    def _log_config(self) -> dict[str, Any]:
        return {
            "version": 1,
            "formatters": {"precise": {"format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s"}},
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": str(self.log_path),
                    "level": "WARNING",
                    "encoding": "utf8",
                }
            },
            "root": {"level": "WARNING", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }

    def _prepare(self) -> None:
        """Write the config files (once) and generate the signing key (once per ``base_dir``)."""
        if self._written:
            return
        self.base_dir.mkdir(parents=True, exist_ok=True)
        (self.base_dir / "media_store").mkdir(exist_ok=True)
        (self.base_dir / "log.config").write_text(yaml.safe_dump(self._log_config(), sort_keys=False))
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        if not self.signing_key_path.exists():
            done = subprocess.run(
                [*self._command(), "--generate-keys"],
                cwd=self.base_dir,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if done.returncode != 0 or not self.signing_key_path.exists():
                raise SynapseError(
                    f"Synapse could not generate its signing key (exit {done.returncode}):\n"
                    f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
                )
        self._written = True

    def _command(self) -> list[str]:
        return [self.python, "-m", "synapse.app.homeserver", "--config-path", str(self.config_path)]

    def _env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in _ENV_DROP}
        env.setdefault("HOME", str(self.base_dir))
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    # -- running ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Start Synapse and wait until its client API answers (at most ``timeout`` seconds)."""
        if self.running:
            return
        self._prepare()
        # A stale pid file (from a killed run) would make Synapse refuse to start.
        (self.base_dir / "homeserver.pid").unlink(missing_ok=True)
        with self.output_path.open("ab") as out:
            self._process = subprocess.Popen(
                self._command(),
                cwd=self.base_dir,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches every child
            )
        deadline = time.monotonic() + timeout
        while True:
            code = self._process.poll()
            if code is not None:
                self._process = None
                raise SynapseError(f"Synapse exited with code {code} while starting.\n{self.log_tail()}")
            if self._answers():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise SynapseError(f"Synapse did not answer on {self.url} within {timeout:.0f}s.\n{self.log_tail()}")
            time.sleep(0.05)  # polling the server until it answers

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/_matrix/client/versions", timeout=2) as response:
                return int(response.status) == 200
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Synapse: SIGTERM, then SIGKILL if it has not exited after ``timeout`` seconds."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            self._signal(process, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(process, signal.SIGKILL)
                process.wait(timeout=timeout)

    @staticmethod
    def _signal(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)

    def restart(self, timeout: float = 60.0) -> None:
        """Stop and start again, on the same port with the same data."""
        self.stop()
        self.start(timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of Synapse's output and of its log, for error messages."""
        parts = []
        for path in (self.output_path, self.log_path):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(parts) or "(Synapse wrote no output)"

    def __enter__(self) -> SynapseServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- users --------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise SynapseError(f"{method} {path} failed: {error.code} {detail}") from None
        if not isinstance(answer, dict):
            raise SynapseError(f"{method} {path} answered {answer!r}")
        return answer

    def register(self, localpart: str, password: str = "pw", admin: bool = False) -> str:
        """Create a user through the shared-secret admin API; return its full user id."""
        nonce = str(self._request("GET", "/_synapse/admin/v1/register")["nonce"])
        message = "\x00".join((nonce, localpart, password, "admin" if admin else "notadmin"))
        mac = hmac.new(self.registration_shared_secret.encode(), message.encode("utf8"), hashlib.sha1)
        answer = self._request(
            "POST",
            "/_synapse/admin/v1/register",
            {"nonce": nonce, "username": localpart, "password": password, "admin": admin, "mac": mac.hexdigest()},
        )
        return str(answer["user_id"])

    def login(self, localpart: str, password: str = "pw") -> str:
        """Log ``localpart`` in with a password; return a fresh access token."""
        answer = self._request(
            "POST",
            "/_matrix/client/v3/login",
            {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": localpart}, "password": password},
        )
        return str(answer["access_token"])

    def logout(self, access_token: str) -> None:
        """Log out the device that holds ``access_token`` (as its owner would, from another client)."""
        self._request("POST", "/_matrix/client/v3/logout", {}, token=access_token)

    def admin_token(self) -> str:
        """An access token of a server admin (registered on first use)."""
        if self._admin_token is None:
            localpart = f"admin-{secrets.token_hex(4)}"
            self.register(localpart, admin=True)
            self._admin_token = self.login(localpart)
        return self._admin_token

    def unlimit(self, user_id: str) -> None:
        """Exempt ``user_id`` from the message rate limit (``rc_message``), through the admin API."""
        path = f"/_synapse/admin/v1/users/{urllib.parse.quote(user_id)}/override_ratelimit"
        self._request("POST", path, {"messages_per_second": 0, "burst_count": 0}, token=self.admin_token())
