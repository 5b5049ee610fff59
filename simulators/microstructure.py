"""A 2-D section of the sintered body. (stub: being written)"""

from pydantic import BaseModel, ConfigDict


class MicrostructureConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
