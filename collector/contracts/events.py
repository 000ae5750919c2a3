"""Production and material events: discrete, weighed quantities with an idempotency key.

They come from weighbridges and the MES over MQTT, or as manual entries through the API. An
event with the same key and the same content is the same event (a retry); a correction is a
new version of the same key.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


class EventKind(StrEnum):
    CROWN_DISCHARGED = "crown_discharged"    # crude-Mg crown out of a retort, t
    INGOT_CAST = "ingot_cast"                # refined Mg ingots weighed, t
    FESI_CONSUMED = "fesi_consumed"          # 75 % ferrosilicon charged, t
    DOLOMITE_CONSUMED = "dolomite_consumed"  # raw dolomite fed to the kiln, t
    FLUORITE_CONSUMED = "fluorite_consumed"  # fluorite (CaF2) charged, t
    SLAG_DISCHARGED = "slag_discharged"      # reduction slag out of a retort, t
    SLAG_SHIPPED = "slag_shipped"            # slag leaving the yard to a user or a stockpile, t
    GAS_LHV_LAB = "gas_lhv_lab"              # laboratory LHV of the fuel gas, MJ/Nm³


EVENT_UNITS: dict[EventKind, str] = {kind: "t" for kind in EventKind} | {
    EventKind.GAS_LHV_LAB: "MJ/Nm³"
}


class SlagDestination(StrEnum):
    CEMENT = "cement"
    CONCRETE_BRICKS = "concrete_bricks"
    BACKFILL = "backfill"
    OTHER_USE = "other_use"
    STOCKPILE = "stockpile"  # not a use: it stays in the slag balance as stock


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("time must carry a time zone (e.g. 2026-11-01T08:00:00+08:00)")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_utc)]


class MaterialEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1, max_length=200, description="idempotency key from the sender")
    kind: EventKind
    time: AwareDatetime
    asset: str = Field(min_length=1)
    quantity: float = Field(ge=0.0, allow_inf_nan=False)
    unit: str
    destination: SlagDestination | None = None
    ticket: str | None = None
    version: int = Field(default=1, ge=1)
    origin: str = ""

    @model_validator(mode="after")
    def _unit_and_destination_fit_the_kind(self) -> MaterialEvent:
        expected = EVENT_UNITS[self.kind]
        if self.unit != expected:
            raise ValueError(f"{self.kind} is recorded in {expected!r}, not {self.unit!r}")
        if (self.kind is EventKind.SLAG_SHIPPED) != (self.destination is not None):
            raise ValueError("a destination is given with slag_shipped and only with it")
        return self
