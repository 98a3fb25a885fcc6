"""Web Push: VAPID identification (RFC 8292) and the encrypted payload (RFC 8291, aes128gcm of
RFC 8188), with `cryptography` only.

A push service (the browser vendor's) stores and forwards the message; it cannot read it: the
payload is encrypted to the keys the browser gave when it subscribed. The VAPID key pair says the
messages come from this aggregator; it is made once in the data directory (0600), because every
subscription is bound to its public key.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import ClientError, ClientSession, ClientTimeout
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_FILE = "vapid_private.pem"
RECORD_SIZE = 4096
MAX_PAYLOAD = RECORD_SIZE - 16 - 1 - 86
"""Bytes of JSON that fit in the single record push services accept (4096 with the header)."""
PUSH_TIMEOUT = 30.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


class VapidKey:
    """The aggregator's P-256 key pair for VAPID."""

    def __init__(self, private: ec.EllipticCurvePrivateKey) -> None:
        self.private = private
        self.public_b64 = b64url(_point(private.public_key()))
        """What the browser passes as applicationServerKey."""

    @classmethod
    def generate(cls) -> VapidKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def load_or_create(cls, directory: Path) -> VapidKey:
        path = directory / KEY_FILE
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{path} is not an EC private key")
            return cls(key)
        made = cls.generate()
        pem = made.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        return made

    def authorization(self, endpoint: str, subject: str, now: float | None = None) -> str:
        """The `Authorization: vapid t=<JWT>, k=<public key>` header for one push service."""
        parts = urlsplit(endpoint)
        claims = {
            "aud": f"{parts.scheme}://{parts.netloc}",
            "exp": int((time.time() if now is None else now) + 12 * 3600),
            "sub": subject,
        }
        header = b64url(json.dumps({"typ": "JWT", "alg": "ES256"}).encode())
        body = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{body}".encode()
        r, s = decode_dss_signature(self.private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"vapid t={header}.{body}.{b64url(signature)}, k={self.public_b64}"


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def encrypt(payload: bytes, p256dh: str, auth: str, *, salt: bytes | None = None) -> bytes:
    """The request body of RFC 8291: the aes128gcm header (salt, record size, our ephemeral
    public key) and one record holding the payload."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"push payload of {len(payload)} bytes is over {MAX_PAYLOAD}")
    ua_public_bytes = unb64url(p256dh)
    auth_secret = unb64url(auth)
    if len(auth_secret) != 16:
        raise ValueError("the subscription's auth secret is not 16 bytes")
    ua_public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public_bytes)
    as_private = ec.generate_private_key(ec.SECP256R1())
    as_public_bytes = _point(as_private.public_key())
    shared = as_private.exchange(ec.ECDH(), ua_public)
    ikm = _hkdf(auth_secret, shared, b"WebPush: info\x00" + ua_public_bytes + as_public_bytes, 32)
    salt = salt or os.urandom(16)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    record = AESGCM(cek).encrypt(nonce, payload + b"\x02", None)
    header = salt + RECORD_SIZE.to_bytes(4, "big") + bytes([len(as_public_bytes)]) + as_public_bytes
    return header + record


@dataclass(frozen=True)
class Subscription:
    endpoint: str
    p256dh: str
    auth: str


class PushGone(Exception):
    """The push service no longer knows the subscription (404/410): forget it."""


class PushRefused(Exception):
    """The push service refused the message for good (another 4xx): retrying will not help."""


class PushSender:
    def __init__(self, key: VapidKey, subject: str, *, ttl: int = 24 * 3600) -> None:
        self.key = key
        self.subject = subject
        self.ttl = ttl
        self._session: ClientSession | None = None

    async def send(self, subscription: Subscription, payload: dict[str, object]) -> None:
        body = encrypt(
            json.dumps(payload, separators=(",", ":")).encode(),
            subscription.p256dh,
            subscription.auth,
        )
        headers = {
            "Authorization": self.key.authorization(subscription.endpoint, self.subject),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(self.ttl),
            "Urgency": "high" if payload.get("urgent") else "normal",
        }
        if self._session is None:
            self._session = ClientSession(timeout=ClientTimeout(total=PUSH_TIMEOUT))
        try:
            async with self._session.post(subscription.endpoint, data=body, headers=headers) as r:
                text = (await r.text())[:200]
                if r.status in (404, 410):
                    raise PushGone(f"push service answered {r.status}: subscription expired")
                if r.status == 429 or r.status >= 500:
                    raise ConnectionError(f"push service answered {r.status} {text}".strip())
                if r.status >= 400:
                    raise PushRefused(f"push service refused: {r.status} {text}".strip())
        except ClientError as exc:
            raise ConnectionError(f"push service unreachable: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
