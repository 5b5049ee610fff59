"""Furnace plant (FOPDT + radiation), PID with ramp/soak programmer, thermocouple, pressure. (stub: being written)"""

from pydantic import BaseModel, ConfigDict


class FurnaceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
