"""STEM survey imaging. (stub: being written)"""

from pydantic import BaseModel, ConfigDict


class StemConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
