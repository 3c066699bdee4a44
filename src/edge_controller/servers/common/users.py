"""Users, their roles, password hashes and API tokens: one JSON file, stdlib only.

```json
{"users": {"ada": {"role": "installer",
                   "password": {"kdf": "scrypt", "n": 16384, "r": 8, "p": 1,
                                "salt": "base64", "hash": "base64"},
                   "tokens": {"t1a2b3c4": {"hash": "sha256 hex", "created": "ISO time"}}}}}
```

Passwords are hashed with `hashlib.scrypt` (a memory-hard KDF in the standard
library), a random 16-byte salt per user and the parameters stored beside the hash,
so stronger parameters later do not invalidate older hashes. API tokens are 32
random bytes shown once; only their SHA-256 is stored (a token has full entropy, so a
fast hash is enough) and their id is the token's first 8 characters.

Roles are ordered: a role may do what every role before it may. `ROLES` is the
console's order, `MARKET_ROLES` the market dashboard's (it passes them to `Users`);
both are here so that `edge-controller user` manages either file without importing
the market server.

The file is written atomically (temporary file + rename) with mode 0600; the daemon
re-reads it when it changes, so `edge-controller user add` works while it runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

ROLES: Final = ("guest", "owner", "installer", "admin")
"""The console's roles, least first: guest reads, owner also runs dispatches, installer
also changes the controls, admin also manages users."""

MARKET_ROLES: Final = ("viewer", "prosumer", "manager")
"""The market dashboard's roles, least first: a viewer reads; a prosumer also changes
the controls of the prosumers it owns; the manager also runs the coal plant and adds
and changes members."""

SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
_SALT_BYTES: Final = 16
_HASH_BYTES: Final = 32
_NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-@")
MIN_PASSWORD_LENGTH: Final = 8


class UsersFileError(ValueError):
    """The users file cannot be read or written; the message names the file."""


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """An scrypt hash with everything needed to check a password against it."""

    salt: bytes
    hash: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    @classmethod
    def of(cls, password: str, *, n: int = SCRYPT_N) -> PasswordHash:
        """Hash `password` with a fresh random salt."""
        salt = secrets.token_bytes(_SALT_BYTES)
        return cls(salt, _scrypt(password, salt, n, SCRYPT_R, SCRYPT_P), n, SCRYPT_R, SCRYPT_P)

    def matches(self, password: str) -> bool:
        """Whether `password` is the one hashed (constant-time comparison)."""
        return hmac.compare_digest(_scrypt(password, self.salt, self.n, self.r, self.p), self.hash)

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "kdf": "scrypt",
            "n": self.n,
            "r": self.r,
            "p": self.p,
            "salt": base64.b64encode(self.salt).decode("ascii"),
            "hash": base64.b64encode(self.hash).decode("ascii"),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PasswordHash:
        """Read the stored form.

        Raises:
            ValueError: not an scrypt hash this module wrote.
        """
        if raw.get("kdf") != "scrypt":
            raise ValueError(f"unknown kdf {raw.get('kdf')!r}")
        return cls(
            base64.b64decode(raw["salt"]),
            base64.b64decode(raw["hash"]),
            int(raw["n"]),
            int(raw["r"]),
            int(raw["p"]),
        )


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=2**26, dklen=_HASH_BYTES
    )


def token_digest(token: str) -> str:
    """The stored form of an API token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class User:
    """One user: name, role, password hash, API tokens (id → SHA-256 hex)."""

    name: str
    role: str
    password: PasswordHash
    tokens: Mapping[str, str] = field(default_factory=dict)


def check_name(name: str) -> str:
    """Return `name` if it is a usable user name.

    Raises:
        ValueError: empty, longer than 64, or characters beyond a-z 0-9 _ . - @.
    """
    if not name or len(name) > 64 or not set(name) <= _NAME_CHARS:
        raise ValueError(
            f"name: expected 1-64 characters of a-z, 0-9, '_', '.', '-', '@', got {name!r}"
        )
    return name


def check_password(password: str) -> str:
    """Return `password` if it is long enough.

    Raises:
        ValueError: shorter than `MIN_PASSWORD_LENGTH`.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password: expected at least {MIN_PASSWORD_LENGTH} characters")
    return password


class Users:
    """The users of one file, with their roles in `roles` order (least first).

    ```python
    users = Users.load(Path("console-users.json"))
    users.add("ada", "installer", "correct horse")
    token = users.new_token("ada")      # shown once
    users.save()
    users.authenticate("ada", "correct horse")  # -> User or None
    ```
    """

    def __init__(
        self, path: Path, users: Mapping[str, User] | None = None, roles: tuple[str, ...] = ROLES
    ) -> None:
        """Hold `users` of `path` (nothing is read or written here)."""
        self.path = path
        self.roles = roles
        self._users: dict[str, User] = dict(users or {})
        self._token_owner = {d: u.name for u in self._users.values() for d in u.tokens.values()}

    @classmethod
    def load(cls, path: Path, roles: tuple[str, ...] = ROLES) -> Users:
        """Read `path`; a missing file is no users.

        Raises:
            UsersFileError: unreadable, not JSON, or an entry that is not a user.
        """
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path, roles=roles)
        except OSError as error:
            raise UsersFileError(f"{path}: cannot read: {error.strerror}") from None
        try:
            document = json.loads(text)
            found = {}
            for name, raw in document["users"].items():
                if raw["role"] not in roles:
                    raise ValueError(f"user {name!r}: unknown role {raw['role']!r}")
                found[name] = User(
                    name,
                    raw["role"],
                    PasswordHash.from_json(raw["password"]),
                    {str(k): str(v["hash"]) for k, v in raw.get("tokens", {}).items()},
                )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise UsersFileError(f"{path}: not a users file: {error}") from None
        return cls(path, found, roles)

    def save(self) -> None:
        """Write the file atomically, mode 0600.

        Raises:
            UsersFileError: the directory is not writable.
        """
        document = {
            "users": {
                u.name: {
                    "role": u.role,
                    "password": u.password.to_json(),
                    "tokens": {tid: {"hash": digest} for tid, digest in u.tokens.items()},
                }
                for u in self._users.values()
            }
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".users-", dir=self.path.parent)
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    json.dump(document, out, indent=2, sort_keys=True)
                    out.write("\n")
                os.chmod(temporary, 0o600)
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as error:
            raise UsersFileError(f"{self.path}: cannot write: {error.strerror}") from None

    # ------------------------------------------------------------- reading

    def __len__(self) -> int:
        """The number of users."""
        return len(self._users)

    def get(self, name: str) -> User | None:
        """The user called `name`, or None."""
        return self._users.get(name)

    def all(self) -> list[User]:
        """Every user, by name."""
        return [self._users[n] for n in sorted(self._users)]

    def at_least(self, role: str, wanted: str) -> bool:
        """Whether `role` may do what `wanted` may (unknown roles may nothing)."""
        if role not in self.roles or wanted not in self.roles:
            return False
        return self.roles.index(role) >= self.roles.index(wanted)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password is theirs, else None.

        An unknown name costs the same scrypt, so timing does not tell which exist.
        """
        user = self._users.get(name)
        if user is None:
            _DUMMY.matches(password)
            return None
        return user if user.password.matches(password) else None

    def by_token(self, token: str) -> User | None:
        """The owner of an API token, or None."""
        owner = self._token_owner.get(token_digest(token))
        return None if owner is None else self._users.get(owner)

    # ------------------------------------------------------------- changing

    def add(self, name: str, role: str, password: str, *, replace: bool = False) -> User:
        """Add a user (or, with `replace`, set an existing one's role and password).

        Raises:
            ValueError: a bad name, an unknown role, a short password, or an existing
                user without `replace`.
        """
        check_name(name)
        if role not in self.roles:
            raise ValueError(f"role: expected one of {list(self.roles)}, got {role!r}")
        check_password(password)
        old = self._users.get(name)
        if old is not None and not replace:
            raise ValueError(f"name: user {name!r} exists already")
        user = User(name, role, PasswordHash.of(password), old.tokens if old else {})
        self._users[name] = user
        return user

    def remove(self, name: str) -> None:
        """Remove a user and their tokens.

        Raises:
            KeyError: no such user.
        """
        user = self._users.pop(name)
        for digest in user.tokens.values():
            self._token_owner.pop(digest, None)

    def new_token(self, name: str) -> str:
        """Make an API token for `name`; return it (only its hash is kept).

        Raises:
            KeyError: no such user.
        """
        user = self._users[name]
        token = secrets.token_urlsafe(32)
        digest = token_digest(token)
        tokens = {**user.tokens, token[:8]: digest}
        self._users[name] = User(user.name, user.role, user.password, tokens)
        self._token_owner[digest] = name
        return token


_DUMMY = PasswordHash(b"\0" * _SALT_BYTES, b"\0" * _HASH_BYTES)


def created_now() -> str:
    """Now as ISO text (for audit fields)."""
    return datetime.now(UTC).isoformat(timespec="seconds")
