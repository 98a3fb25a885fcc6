"""Request and response models of the method library and electronic signatures (issue 16)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from aggregator.api.schemas import Request
from protocol import Finding

VersionState = Literal["draft", "reviewed", "approved", "retired"]
Meaning = Literal["authored", "reviewed", "approved", "released"]


class MethodCreate(Request):
    name: str = Field(min_length=1, max_length=256)
    text: str = Field(max_length=1_000_000)

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the name must not be blank")
        return value.strip()


class MethodVersionPut(Request):
    text: str = Field(max_length=1_000_000)
    expected_version: int = Field(ge=0, description="the newest version the edit started from")


class MethodLoad(Request):
    method_id: int = Field(ge=1, le=2**62)
    version: int = Field(ge=1, le=2**62)


class SignatureView(BaseModel):
    """A signature with its manifestation (21 CFR 11.50): printed name, UTC time, meaning."""

    id: int
    kind: str
    record_id: int
    label: str
    meaning: str
    user: str
    full_name: str
    time: float
    time_utc: str = Field(description="the time as ISO 8601 UTC")
    sha256: str
    comment: str
    valid: bool | None = Field(
        default=None, description="the signed record and the signature are unchanged"
    )
    reason: str = ""


class LibraryVersion(BaseModel):
    id: int
    method_id: int
    name: str
    version: int
    state: VersionState
    author: str
    created: float
    text: str
    sha256: str = Field(description="SHA-256 of the text (line ends normalised)")
    signatures: list[SignatureView] = Field(default_factory=list)


class LibraryMethod(BaseModel):
    id: int
    name: str
    created: float
    created_by: str
    versions: list[LibraryVersion]


class LibraryMethodSummary(BaseModel):
    id: int
    name: str
    created: float
    created_by: str
    latest_version: int
    latest_state: str
    updated: float
    approved_version: int | None


class UnitMethodSource(BaseModel):
    """The library version loaded on a unit; `modified`: the unit's text differs from it."""

    method_id: int
    name: str
    version: int
    state: VersionState
    loaded: float
    loaded_by: str
    modified: bool
    require_approved: bool


class UnitSourceView(BaseModel):
    source: UnitMethodSource | None = Field(description="null: no library version loaded")


class MethodLoaded(BaseModel):
    version: int = Field(description="the unit's method version after the load")
    findings: list[Finding] = Field(default_factory=list)
    findings_omitted: int = 0
    source: UnitMethodSource | None = None


class SignedRecord(Request):
    kind: Literal["method_version", "run"]
    id: int | str = Field(description="the method's id, or the run's id")
    version: int | None = Field(default=None, ge=1, description="the method version")


class SignRequest(Request):
    record: SignedRecord
    meaning: Meaning
    password: str = Field(min_length=1, max_length=1024)
    comment: str = Field(default="", max_length=2000)


class Verification(BaseModel):
    id: int
    valid: bool
    changed: list[str] = Field(
        description="what changed: parts of the record (text, run, samples...), 'signature' "
        "for the signature row itself, or 'record' when it is gone"
    )
    reason: str
    sha256: str
    signature: SignatureView
