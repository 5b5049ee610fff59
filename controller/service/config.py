"""The service's settings: `GRAINLOOP_*` environment variables over a TOML file over embedded defaults.

Everything the service keeps lives under `data_dir` unless a URL points elsewhere. Ports bind
`bind_host` (loopback by default). `load_settings` turns every validation problem into one
`SettingsError` line naming the field.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Port = int


class SettingsError(ValueError):
    """Settings that cannot be used, with a one-line reason."""


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRAINLOOP_", extra="forbid")

    data_dir: Path = Field(Path("grainloop-data"), description="state, runs, campaign files, logs")
    bind_host: str = Field("127.0.0.1", description="interface every port binds")
    api_port: Port = Field(8600, description="REST API, docs, /metrics")
    tiled_port: Port = Field(8601, description="the embedded Tiled server")
    worker_port: Port = Field(8602, description="manager ↔ worker command socket")
    zmq_in_port: Port = Field(5577, description="document publishers → proxy")
    zmq_out_port: Port = Field(5578, description="proxy → subscribers (agents)")
    state_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in data_dir")
    tiled_uri: str | None = Field(None, description="API root (…/api/v1) of an external Tiled server")
    tiled_api_key: str | None = Field(None, description="API key of an external Tiled server")
    heartbeat_interval_s: float = Field(0.5, gt=0, le=60)
    heartbeat_timeout_s: float = Field(5.0, gt=0, le=600)
    world_file: Path | None = Field(None, description="the simulated world (TOML); default: the embedded one")
    agents: list[str] = Field(default_factory=lambda: ["segmentation", "orientation"])
    open_environment: bool = Field(True, description="start the worker when the service starts")

    @field_validator("api_port", "tiled_port", "worker_port", "zmq_in_port", "zmq_out_port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError(f"a port is 1–65535, got {value}")
        return value

    @field_validator("agents")
    @classmethod
    def _agents(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - {"segmentation", "orientation"})
        if unknown:
            raise ValueError(f"unknown agent(s) {', '.join(unknown)}; known: segmentation, orientation")
        return value

    @model_validator(mode="after")
    def _distinct_ports(self) -> ServiceSettings:
        seen: dict[int, str] = {}
        for name, port in self.listener_ports.items():
            if port in seen:
                raise ValueError(f"{seen[port]} and {name} are both {port}: every listener needs its own port")
            seen[port] = name
        return self

    @property
    def listener_ports(self) -> dict[str, int]:
        """The ports the service listens on, by setting name (no embedded Tiled with `tiled_uri`)."""
        names = ["api_port", "worker_port", "zmq_in_port", "zmq_out_port"]
        if not self.tiled_uri:
            names.insert(1, "tiled_port")
        return {name: int(getattr(self, name)) for name in names}

    @property
    def resolved_state_url(self) -> str:
        return self.state_url or f"sqlite:///{(self.data_dir / 'state.sqlite').resolve()}"


def load_settings(config_file: Path | None = None) -> ServiceSettings:
    """File values (flat keys = field names) overridden by `GRAINLOOP_*` environment variables."""
    file_values: dict[str, Any] = {}
    path = config_file or (Path(os.environ["GRAINLOOP_CONFIG"]) if os.environ.get("GRAINLOOP_CONFIG") else None)
    if path is not None:
        try:
            file_values = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise SettingsError(f"settings file {path} not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    from_env = {name for name in ServiceSettings.model_fields if f"GRAINLOOP_{name.upper()}" in os.environ}
    try:
        # init values beat the environment in pydantic-settings; pass only what the environment does not set
        return ServiceSettings(**{k: v for k, v in file_values.items() if k not in from_env})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        source = f" in {path}" if path else ""
        raise SettingsError(f"invalid setting {where}{source}: {first['msg']}") from None
