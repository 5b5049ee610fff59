"""A live progress display of a sample's stages, fed by the RunEngine's documents."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

STAGES = ("mill", "sinter", "survey_image", "sped_scan", "measure_properties")


class StageProgress:
    """RunEngine subscriber showing one bar per stage, with the furnace temperature while it sinters."""

    def __init__(self, stages: tuple[str, ...], console: Console | None = None, label: str = "") -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self.label = label
        self._tasks: dict[str, TaskID] = {
            stage: self.progress.add_task(f"{label}{stage}", total=1, detail="", start=False) for stage in stages
        }
        self._stage_by_start: dict[str, str] = {}
        self._stage_by_descriptor: dict[str, str] = {}

    def __enter__(self) -> StageProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "start" and doc.get("stage") in self._tasks:
            stage = doc["stage"]
            self._stage_by_start[doc["uid"]] = stage
            self.progress.start_task(self._tasks[stage])
            self.progress.update(self._tasks[stage], detail="running")
        elif name == "descriptor" and doc["run_start"] in self._stage_by_start:
            self._stage_by_descriptor[doc["uid"]] = self._stage_by_start[doc["run_start"]]
        elif name == "event":
            stage = self._stage_by_descriptor.get(doc["descriptor"])
            data = doc["data"]
            if stage == "sinter" and "furnace_temperature_c" in data:
                self.progress.update(self._tasks[stage], detail=f"{data['furnace_temperature_c']:.0f} °C")
            elif stage == "mill" and "mill_vial_temperature_c" in data:
                self.progress.update(self._tasks[stage], detail=f"vial {data['mill_vial_temperature_c']:.0f} °C")
        elif name == "stop" and doc["run_start"] in self._stage_by_start:
            stage = self._stage_by_start[doc["run_start"]]
            ok = doc.get("exit_status") == "success"
            self.progress.update(self._tasks[stage], completed=1, detail="done" if ok else doc.get("exit_status", "?"))
