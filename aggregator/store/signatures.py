"""Electronic signatures (21 CFR 11.50, 11.70, 11.200): what a signature covers, storing one,
and checking one again.

A signature covers the SHA-256 of its record's canonical content: the record cut into named
parts (a method version: its identity, text and author; a run: its metadata, UOD, method as run,
run log, error log and samples), each part hashed over sorted-key JSON, and the overall digest
taken over those part digests. The part digests are kept with the signature, so a verification
names the part that changed rather than only saying "different".

The signature row is also written into the hash-chained audit trail (its id, digest, signer,
meaning and time); verifying compares the row with that entry, so editing the row itself (its
meaning, say) is recognised too. Rows are only ever inserted."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from aggregator import models as m
from aggregator.store.queries import Queries
from aggregator.store.rows import AuditRow, MethodVersionRow, SignatureRow
from aggregator.store.tables import T_ERRORS, T_RUN

T_SIGNATURE = SQLModel.metadata.tables[str(m.SignatureRecord.__tablename__)]
T_AUDIT = SQLModel.metadata.tables[str(m.AuditEntry.__tablename__)]

KINDS = ("method_version", "run")
MEANINGS: dict[str, tuple[str, ...]] = {
    "method_version": ("authored", "reviewed", "approved"),
    "run": ("reviewed", "released"),
}
SAMPLE_WINDOW = 3600.0


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def overall(parts: dict[str, str]) -> str:
    return digest(parts)


def method_version_parts(version: MethodVersionRow) -> dict[str, str]:
    return {
        "identity": digest(
            {
                "kind": "method_version",
                "id": version.id,
                "method_id": version.method_id,
                "name": version.name,
                "version": version.version,
            }
        ),
        "text": digest(version.text),
        "author": digest({"author": version.author, "created": version.created}),
    }


class RunContent:
    """The parts of a run's record, read back from the store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.queries = Queries(engine)

    def parts(self, run_pk: int) -> dict[str, str] | None:
        with self.engine.connect() as conn:
            run = conn.execute(sa.select(T_RUN).where(T_RUN.c.pk == run_pk)).first()
            if run is None:
                return None
            errors = conn.execute(
                sa.select(T_ERRORS.c.time, T_ERRORS.c.level, T_ERRORS.c.source, T_ERRORS.c.message)
                .where(T_ERRORS.c.run_pk == run_pk)
                .order_by(T_ERRORS.c.id)
            ).all()
            samples = self._samples(conn, run_pk)
        methods = [
            {
                "version": x.version,
                "time": x.time,
                "user": x.user,
                "lines": x.lines_json,
            }
            for x in self.queries.run_methods(run_pk)
        ]
        return {
            "run": digest(
                {
                    key: getattr(run, key)
                    for key in (
                        "run_id",
                        "engine_id",
                        "started",
                        "stopped",
                        "stop_reason",
                        "started_by",
                        "stopped_by",
                        "uod_name",
                        "uod_hash",
                        "batch_name",
                    )
                }
            ),
            "uod": digest(run.uod_json),
            "method": digest(methods),
            "runlog": digest(self.queries.run_log(run_pk)),
            "errors": digest([list(e) for e in errors]),
            "samples": samples,
        }

    def _samples(self, conn: sa.Connection, run_pk: int) -> str:
        """Every stored sample of every tag, in order, fed to one hash window by window (memory
        stays bounded for a long run; recent rows and compacted chunks read the same)."""
        sha = hashlib.sha256()
        span = self.queries.run_time_range(conn, run_pk)
        if span is None:
            return sha.hexdigest()
        first, last = span
        for tag_id, name, _unit in self.queries.run_tags(conn, run_pk):
            sha.update(f"\x1e{name}".encode())
            start = first
            while start <= last:
                end = start + SAMPLE_WINDOW
                samples, _ = self.queries.read_samples(run_pk, tag_id, start, end, conn)
                for t, value in samples:
                    if t < end or end > last:
                        sha.update(f"\x1f{t!r}\x1f{value!r}".encode())
                start = end
        return sha.hexdigest()


class Signatures:
    def __init__(self, engine: Engine, clock: Callable[[], float]) -> None:
        self.engine = engine
        self._clock = clock
        self.runs = RunContent(engine)

    def insert(
        self,
        *,
        kind: str,
        record_id: int,
        label: str,
        meaning: str,
        user: str,
        full_name: str,
        time: float,
        parts: dict[str, str],
        comment: str,
        audit_id: int | None,
    ) -> int:
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    T_SIGNATURE.insert()
                    .values(
                        kind=kind,
                        record_id=record_id,
                        label=label,
                        meaning=meaning,
                        user=user,
                        full_name=full_name,
                        time=time,
                        sha256=overall(parts),
                        parts_json=json.dumps(parts, sort_keys=True),
                        comment=comment,
                        audit_id=audit_id,
                    )
                    .returning(T_SIGNATURE.c.id)
                ).scalar_one()
            )

    def set_audit_id(self, signature_id: int, audit_id: int) -> None:
        """Once, right after the insert: the id of the audit entry that repeats the row."""
        with self.engine.begin() as conn:
            conn.execute(
                T_SIGNATURE.update()
                .where(T_SIGNATURE.c.id == signature_id, T_SIGNATURE.c.audit_id.is_(None))
                .values(audit_id=audit_id)
            )

    def of_record(self, kind: str, record_id: int) -> list[SignatureRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(T_SIGNATURE)
                .where(T_SIGNATURE.c.kind == kind, T_SIGNATURE.c.record_id == record_id)
                .order_by(T_SIGNATURE.c.id)
            ).all()
        return [SignatureRow.from_row(r) for r in rows]

    def of_records(self, kind: str, record_ids: list[int]) -> dict[int, list[SignatureRow]]:
        out: dict[int, list[SignatureRow]] = {i: [] for i in record_ids}
        if not record_ids:
            return out
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(T_SIGNATURE)
                .where(T_SIGNATURE.c.kind == kind, T_SIGNATURE.c.record_id.in_(record_ids))
                .order_by(T_SIGNATURE.c.id)
            ).all()
        for row in rows:
            out[int(row.record_id)].append(SignatureRow.from_row(row))
        return out

    def get(self, signature_id: int) -> SignatureRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(T_SIGNATURE).where(T_SIGNATURE.c.id == signature_id)
            ).first()
        return None if row is None else SignatureRow.from_row(row)

    def audit_entry(self, audit_id: int | None) -> AuditRow | None:
        if audit_id is None:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(T_AUDIT).where(T_AUDIT.c.id == audit_id)).first()
        return None if row is None else AuditRow.from_row(row)


def audit_fields(signature: SignatureRow) -> dict[str, Any]:
    """What of a signature row its audit entry repeats (and verification compares)."""
    return {
        "signature_id": signature.id,
        "kind": signature.kind,
        "record_id": signature.record_id,
        "meaning": signature.meaning,
        "user": signature.user,
        "full_name": signature.full_name,
        "time": signature.time,
        "sha256": signature.sha256,
    }


def check(
    signature: SignatureRow, current: dict[str, str] | None, entry: AuditRow | None
) -> tuple[bool, list[str], str]:
    """(valid, changed parts, one-line reason) of a stored signature against the record's
    current parts and the signature's audit entry."""
    try:
        stored = json.loads(signature.parts_json)
    except ValueError:
        stored = {}
    if not isinstance(stored, dict):
        stored = {}
    if current is None:
        return False, ["record"], "the signed record no longer exists"
    if overall(stored) != signature.sha256:
        return False, ["signature"], "the signature row was altered (its digests disagree)"
    if entry is not None:
        try:
            noted = json.loads(entry.detail_json).get("new") or {}
        except (ValueError, AttributeError):
            noted = {}
        fields = audit_fields(signature)
        differ = sorted(k for k, v in fields.items() if noted.get(k) != v)
        if differ:
            return (
                False,
                ["signature"],
                "the signature row differs from its audit entry in " + ", ".join(differ),
            )
    else:
        return False, ["signature"], "the signature's audit entry is missing"
    changed = sorted(k for k in current.keys() | stored.keys() if current.get(k) != stored.get(k))
    if changed:
        return (
            False,
            changed,
            "the signed record changed since it was signed: " + ", ".join(changed),
        )
    return True, [], "valid: the record is unchanged since it was signed"
