"""API credentials for a live session: from the environment or a 0600 file, never logged.

Why so strict: a session directory (logs, ``session.json``) is copied around for audits and
bug reports, and the logs of a process end up in journald. The key and secret therefore
live only in a :class:`Credentials` object whose ``repr`` hides them, are never put in a
config dict, and a secrets file readable by anyone but its owner is refused outright
(like ``ssh`` refuses a private key with loose permissions).

Sources, first match wins: ``--secrets FILE`` (TOML with ``api_key`` and ``api_secret``),
else ``$TICKLOOP_API_KEY`` + ``$TICKLOOP_API_SECRET``.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ConfigError

ENV_KEY = "TICKLOOP_API_KEY"
ENV_SECRET = "TICKLOOP_API_SECRET"


@dataclass(frozen=True, slots=True)
class Credentials:
    """An API key and its HMAC secret; both hidden from ``repr``/``str``."""

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    source: str = ""

    def __str__(self) -> str:
        return f"Credentials(from {self.source or 'unknown'}, key ...{self.api_key[-4:] if len(self.api_key) > 8 else ''})"

    def secret_bytes(self) -> tuple[bytes, bytes]:
        """Both values as bytes (for tests that check no file of a session contains them)."""
        return self.api_key.encode(), self.api_secret.encode()


def check_private(path: Path) -> None:
    """Refuse a secrets file that is not a regular file of mode 0600 (or stricter)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(f"--secrets {str(path)!r}: cannot read it: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"--secrets {str(path)!r}: not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"--secrets {str(path)!r}: mode {mode:04o} lets others read it; run `chmod 600 {path}` "
            "(a secrets file must be readable by its owner only)"
        )


def read_secrets_file(path: str | Path) -> Credentials:
    """``api_key`` / ``api_secret`` from a TOML file that must be mode 0600."""
    p = Path(path)
    check_private(p)
    try:
        with p.open("rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"--secrets {str(p)!r}: cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message can quote the offending line: never show it, it may hold the secret.
        line = getattr(exc, "lineno", "?")
        raise ConfigError(f"--secrets {str(p)!r}: not valid TOML (line {line})") from None
    key, secret = doc.get("api_key"), doc.get("api_secret")
    missing = [n for n, v in (("api_key", key), ("api_secret", secret)) if not isinstance(v, str) or not v]
    if missing:
        raise ConfigError(f"--secrets {str(p)!r}: missing or empty string key(s): {', '.join(missing)}")
    assert isinstance(key, str) and isinstance(secret, str)
    return Credentials(key, secret, source=f"file {p}")


def load_credentials(
    secrets_file: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Credentials | None:
    """The session's credentials, or None when neither source has any.

    Half a pair in the environment is an error (it is always a mistake, and trading with
    the wrong key is worse than not starting).
    """
    if secrets_file is not None:
        return read_secrets_file(secrets_file)
    env = os.environ if environ is None else environ
    key, secret = env.get(ENV_KEY, ""), env.get(ENV_SECRET, "")
    if key and secret:
        return Credentials(key, secret, source="environment")
    if key or secret:
        have, lack = (ENV_KEY, ENV_SECRET) if key else (ENV_SECRET, ENV_KEY)
        raise ConfigError(f"${have} is set but ${lack} is not: set both, or use --secrets FILE")
    return None
