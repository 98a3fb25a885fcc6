"""received_digest (issue 15 item 6): the rule-6 digests packed 64 seqs to a row, 9 bytes each,
instead of one received_message row per message (~153 bytes with its index)

The digests still kept are converted (aggregator/store/digests.py describes the layout; the
packing is copied here so that this migration does not change when that module does). The
downgrade recreates received_message empty: the digests only let a resent copy of a stored
frame be compared with the first (exactly-once storage rests on engine_seq), and the packed
8-byte digests cannot be turned back into the full ones.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 19:30:00
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BLOCK = 64
_SLOT = 9
_OLD_FORM = 0x80
_KIND_CODES = {
    "TagsUpdated": 1,
    "RunStarted": 2,
    "RunStopped": 3,
    "RunLog": 4,
    "Method": 5,
    "MethodState": 6,
    "ControlState": 7,
    "ErrorLog": 8,
    "AlarmsUpdated": 9,
}
_OTHER_KIND = 0x7F


def _slot(kind: str, digest: str) -> bytes:
    code = _KIND_CODES.get(kind, _OTHER_KIND)
    if digest.startswith("2:") and len(digest) >= 18:
        short = bytes.fromhex(digest[2:18])
    else:
        code |= _OLD_FORM
        short = hashlib.blake2b(digest.encode(), digest_size=8).digest()
    return bytes([code]) + short


def upgrade() -> None:
    digest = op.create_table(
        "received_digest",
        sa.Column("engine_id", sa.String(length=256), nullable=False),
        sa.Column("block", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("slots", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("engine_id", "block"),
    )
    received = sa.table(
        "received_message",
        sa.column("engine_id", sa.String()),
        sa.column("seq", sa.BigInteger()),
        sa.column("kind", sa.String()),
        sa.column("digest", sa.String()),
    )
    conn = op.get_bind()
    blocks: dict[tuple[str, int], bytearray] = {}
    rows = conn.execute(
        sa.select(received.c.engine_id, received.c.seq, received.c.kind, received.c.digest)
    )
    for engine_id, seq, kind, text in rows:
        block, index = divmod(int(seq), _BLOCK)
        slots = blocks.setdefault((engine_id, block), bytearray(_BLOCK * _SLOT))
        slots[index * _SLOT : (index + 1) * _SLOT] = _slot(kind or "", text)
    if blocks:
        conn.execute(
            digest.insert(),
            [{"engine_id": e, "block": b, "slots": bytes(s)} for (e, b), s in blocks.items()],
        )
    op.drop_table("received_message")


def downgrade() -> None:
    op.create_table(
        "received_message",
        sa.Column("engine_id", sa.String(length=256), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("received", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("engine_id", "seq"),
    )
    op.drop_table("received_digest")
