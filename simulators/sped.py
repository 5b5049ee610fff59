"""SPED 4D scans. (stub: being written)"""

from pydantic import BaseModel, ConfigDict


class SpedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
