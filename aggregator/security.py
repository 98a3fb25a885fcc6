"""Secrets: engine tokens and login sessions are random and stored only as SHA-256 (they carry
enough entropy that a slow hash adds nothing); passwords are chosen by people, so they get argon2."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ROLES = ("viewer", "operator", "admin")


def new_token(prefix: str = "spt") -> str:
    """A random token with a fixed prefix: it never starts with "-" (so it survives being passed
    as a command-line argument), and a leaked one is recognisable in logs and secret scanners."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def _bytes(text: str) -> bytes:
    """UTF-8 that never fails: JSON and HTTP headers can carry lone surrogates, and a bad
    password must be a failed login, not a server error."""
    return text.encode("utf-8", "surrogatepass")


def token_hash(token: str) -> str:
    return hashlib.sha256(_bytes(token)).hexdigest()


def hash_password(password: str) -> str:
    return PasswordHasher().hash(_bytes(password))


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return PasswordHasher().verify(password_hash, _bytes(password))
    except (VerificationError, InvalidHashError):
        return False
