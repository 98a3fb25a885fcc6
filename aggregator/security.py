"""Secrets: engine tokens and login sessions are random and stored only as SHA-256 (they carry
enough entropy that a slow hash adds nothing); passwords are chosen by people, so they get argon2."""

from __future__ import annotations

import functools
import hashlib
import secrets
from importlib import resources

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


@functools.cache
def dummy_password_hash() -> str:
    """A hash to verify against when the user name is unknown, so that a wrong name costs the
    same argon2 work as a wrong password and timing does not tell which names exist."""
    return hash_password(secrets.token_urlsafe(16))


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return PasswordHasher().verify(password_hash, _bytes(password))
    except (VerificationError, InvalidHashError):
        return False


# --- password policy ---------------------------------------------------------------------------

MIN_PASSWORD_LENGTH = 12
COMMON_PASSWORDS_FILE = "data/common-passwords.txt"
_EDGES = "0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


@functools.cache
def common_passwords() -> frozenset[str]:
    """Read once: the list ships inside the package, so a site cannot lose it."""
    text = resources.files("aggregator").joinpath(COMMON_PASSWORDS_FILE).read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("# ")
    )


def _variants(password: str) -> set[str]:
    """What a guesser tries first from a common word: it with digits or punctuation around it,
    or repeated ("monkey123456", "!!dragon!!", "passwordpassword")."""
    text = password.strip().lower()
    found = {text, text.rstrip(_EDGES), text.lstrip(_EDGES), text.strip(_EDGES)}
    for times in (2, 3, 4):
        size = len(text) // times
        if size and text == text[:size] * times:
            found.add(text[:size])
    return found


def password_problem(password: str) -> str | None:
    """Why a password is refused, or None: the one policy of the CLI and the API."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
    if not password.strip():
        return "the password must not be all whitespace"
    if _variants(password) & common_passwords():
        return "the password is too common (it is, or is built from, a well-known password)"
    return None
