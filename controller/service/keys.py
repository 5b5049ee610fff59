"""API keys and roles: `gl_<key_id>_<secret>`, shown once, stored as a salted scrypt hash.

Roles: observer < operator < admin (each may do what the one before may), and `agent`, which stands
apart: it may only propose recipes. A presented key is looked up by its id (one indexed read, which
also sees a revocation at once) and verified against the hash; a successful verification is
remembered in memory (as a SHA-256 of the key) so that scrypt runs once per key and process, not
once per request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from controller.service.state import api_keys

PREFIX = "gl"
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class Role(StrEnum):
    observer = "observer"
    operator = "operator"
    admin = "admin"
    agent = "agent"

    def allows(self, required: Role) -> bool:
        """Whether this role may do what `required` may (agent only what agent may)."""
        if Role.agent in (self, required):
            return self == required
        order = [Role.observer, Role.operator, Role.admin]
        return order.index(self) >= order.index(required)


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    role: Role


def _hash(secret: str, salt: bytes) -> str:
    digest = hashlib.scrypt(secret.encode(), salt=salt, **SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def _verify(secret: str, stored: str) -> bool:
    try:
        _, salt_hex, digest_hex = stored.split("$")
        expected = bytes.fromhex(digest_hex)
        got = hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt_hex), **SCRYPT)
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


def create_key(engine: Engine, role: Role | str, name: str) -> str:
    """A new key (returned once, never stored); its hash, name and role go to the database."""
    role = Role(role)
    if not name.strip():
        raise ValueError("a key needs a name")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(24)
    with engine.begin() as conn:
        conn.execute(
            insert(api_keys).values(
                key_id=key_id,
                name=name.strip(),
                role=role.value,
                secret_hash=_hash(secret, secrets.token_bytes(16)),
                created_s=time.time(),
            )
        )
    return f"{PREFIX}_{key_id}_{secret}"


def revoke_key(engine: Engine, key_id: str) -> bool:
    with engine.begin() as conn:
        return bool(
            conn.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_s.is_(None))
                .values(revoked_s=time.time())
            ).rowcount
        )


def list_keys(engine: Engine) -> list[dict[str, Any]]:
    """Every key without its hash."""
    cols = [api_keys.c.key_id, api_keys.c.name, api_keys.c.role, api_keys.c.created_s, api_keys.c.revoked_s]
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(*cols).order_by(api_keys.c.created_s)).mappings()]


_verified: dict[str, bytes] = {}


def authenticate(engine: Engine, header: str | None) -> Principal | None:
    """The principal of an `Authorization: ApiKey gl_…` header, or None (missing, malformed, unknown, revoked)."""
    if not header:
        return None
    scheme, _, key = header.strip().partition(" ")
    if scheme.lower() != "apikey" or not key.startswith(f"{PREFIX}_"):
        return None
    key_id, _, secret = key[len(PREFIX) + 1 :].partition("_")
    if not key_id or not secret:
        return None
    with engine.connect() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings().first()
    if row is None or row["revoked_s"] is not None:
        return None
    fingerprint = hashlib.sha256(key.encode()).digest()
    known = _verified.get(key_id)
    if known is None or not hmac.compare_digest(known, fingerprint):
        if not _verify(secret, row["secret_hash"]):
            return None
        _verified[key_id] = fingerprint
    return Principal(key_id=key_id, name=row["name"], role=Role(row["role"]))


def hash_lock_key(lock_key: str) -> str:
    return _hash(lock_key, secrets.token_bytes(16))


def verify_lock_key(lock_key: str, stored: str) -> bool:
    return _verify(lock_key, stored)
