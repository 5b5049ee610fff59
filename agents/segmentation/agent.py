"""The segmentation agent: an image in, a `MicrostructureReport` out — directly, or on the document stream.

Directly: `agent.analyze(image_or_path)`. On the stream the agent is a bluesky callback
(`RE.subscribe(agent)` in-process, or behind a 0MQ `RemoteDispatcher` in its own process). It follows
each run's start, descriptor, resource, datum and event (or event_page) documents; for every event
that holds `…haadf` / `…bf` datum ids it reads the frame from the HDF5 file the resource names and
publishes the report as a run of its own:

- start: `parent_uid` = the source run's start uid, `sample_id`, `campaign_id`, `step` when the source
  has them, `agent="segmentation"`, `model`, `source_event_uid`;
- one descriptor (stream "primary") and one event with `MicrostructureReport.event_data()`;
- stop: exit_status "success", or "fail" with the reason when the frame could not be read or analysed.

Nothing raises out of `__call__`: bad input, a missing file or a failing subscriber is logged, and the
agent keeps listening.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.analysis_stream import AssetError, Callback, StreamAnalysisAgent
from agents.segmentation.grains import GrainMap, find_grains, grain_statistics
from agents.segmentation.image_input import ImageError, load_image, survey_pixel_nm, validate_image
from agents.segmentation.report import MicrostructureReport, Timings
from agents.segmentation.segmenter import Segmenter
from agents.segmentation.sim_data import DEFAULT_PIXEL_NM

log = logging.getLogger(__name__)

CHANNEL_SUFFIXES = ("haadf", "bf")
"""Event fields whose names end in these hold the survey channels, in this order."""


@dataclass(frozen=True)
class Analysis:
    """A report with the maps behind it (for overlays and benchmarks)."""

    report: MicrostructureReport
    image: np.ndarray
    class_map: np.ndarray
    grain_map: GrainMap | None


@dataclass
class _SourceRun:
    start: dict[str, Any]
    image_keys: dict[str, list[str]] = field(default_factory=dict)  # descriptor uid → [haadf key, bf key]
    pixel_nm: dict[str, float] = field(default_factory=dict)  # descriptor uid → pixel size from configuration
    frames: int = 0


class SegmentationAgent(StreamAnalysisAgent):
    """Segments STEM images with `segmenter` and reports their microstructure (see the module docstring)."""

    agent_name = "segmentation"

    def __init__(
        self,
        segmenter: Segmenter,
        pixel_nm: float = DEFAULT_PIXEL_NM,
        subscribers: list[Callback] | None = None,
    ) -> None:
        super().__init__(subscribers)
        self.segmenter = segmenter
        self.pixel_nm = float(pixel_nm)
        self.reports: list[MicrostructureReport] = []
        self._runs: dict[str, _SourceRun] = {}

    # -- direct use ------------------------------------------------------------------------------------

    def analyze(self, image_or_path: np.ndarray | str | Path, pixel_nm: float | None = None) -> MicrostructureReport:
        """The report of an image array (C, H, W) / (H, W) or an image file. Raises `ImageError` on bad input."""
        return self.analyze_full(image_or_path, pixel_nm).report

    def analyze_full(
        self, image_or_path: np.ndarray | str | Path, pixel_nm: float | None = None, *, pixel_nm_source: str = ""
    ) -> Analysis:
        """`analyze`, also returning the image, class map and grain map."""
        t0 = time.perf_counter()
        warnings: list[str] = []
        source = None
        if isinstance(image_or_path, (str, Path)):
            source = str(image_or_path)
            image = load_image(image_or_path)
            file_pixel_nm = survey_pixel_nm(image_or_path) if pixel_nm is None else None
            if file_pixel_nm is not None:
                pixel_nm, pixel_nm_source = file_pixel_nm, "file"
        else:
            image = validate_image(image_or_path)
        if pixel_nm is None:
            pixel_nm, pixel_nm_source = self.pixel_nm, "default"
            warnings.append(f"pixel size unknown: assumed {pixel_nm:g} nm")
        if not np.isfinite(pixel_nm) or pixel_nm <= 0:
            raise ImageError(f"pixel size must be a positive number of nm, got {pixel_nm}")
        image = self._fit_channels(image, warnings)
        if float(image.max()) == float(image.min()):
            raise ImageError("the image is blank (every pixel has the same value)")
        t1 = time.perf_counter()
        class_map = np.asarray(self.segmenter.predict(image))
        t2 = time.perf_counter()
        classes = tuple(self.segmenter.classes)
        grain_map = find_grains(class_map, classes) if "grain_boundary" in classes else None
        stats = grain_statistics(class_map, classes, float(pixel_nm), grain_map=grain_map)
        t3 = time.perf_counter()
        report = MicrostructureReport.from_stats(
            stats,
            model=self.segmenter.name,
            image_shape_px=(int(image.shape[1]), int(image.shape[2])),
            channels=int(image.shape[0]),
            pixel_nm=float(pixel_nm),
            pixel_nm_source=pixel_nm_source or "argument",
            timings=Timings(segmentation_s=t2 - t1, statistics_s=t3 - t2, total_s=t3 - t0),
            source=source,
            warnings=warnings,
        )
        return Analysis(report, image, class_map, grain_map)

    def _fit_channels(self, image: np.ndarray, warnings: list[str]) -> np.ndarray:
        need = self.segmenter.in_channels
        if image.shape[0] == need:
            return image
        if need == 1:
            warnings.append(f"{self.segmenter.name} segments one channel: used the first of {image.shape[0]}")
            return image[:1]
        raise ImageError(f"{self.segmenter.name} needs {need} channels (HAADF, BF), the image has {image.shape[0]}")

    # -- the document stream ---------------------------------------------------------------------------

    def _start(self, doc: dict[str, Any]) -> None:
        self._runs[doc["uid"]] = _SourceRun(start=doc)

    def _descriptor(self, doc: dict[str, Any]) -> None:
        run = self._runs.get(doc["run_start"])
        if run is None:
            return
        keys = _image_keys(doc.get("data_keys", {}))
        if keys:
            self._descriptor_run[doc["uid"]] = doc["run_start"]
            run.image_keys[doc["uid"]] = keys
            pixel = _configured_pixel_nm(doc)
            if pixel is not None:
                run.pixel_nm[doc["uid"]] = pixel

    def _event(self, doc: dict[str, Any]) -> None:
        run_uid = self._descriptor_run.get(doc["descriptor"])
        if run_uid is None or run_uid not in self._runs:
            return
        run = self._runs[run_uid]
        run.frames += 1
        keys = run.image_keys[doc["descriptor"]]
        try:
            channels = [self._resolve(doc["data"][key]) for key in keys]
            if len({c.shape for c in channels}) != 1:
                raise ImageError(f"survey channels differ in shape: {[c.shape for c in channels]}")
            pixel_nm, source = self._frame_pixel_nm(doc, keys, run)
            analysis = self.analyze_full(np.stack(channels), pixel_nm, pixel_nm_source=source)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ImageError) else str(exc)
            log.warning("segmentation agent: frame %s of run %s failed: %s", doc.get("seq_num"), run_uid, reason)
            self._publish(run, doc, None, reason)
        else:
            self._publish(run, doc, analysis.report, "")

    def _stop(self, doc: dict[str, Any]) -> None:
        run = self._end_run(doc["run_start"])
        if run is not None and run.image_keys and run.frames == 0:
            self._publish(run, None, None, "the run ended without a survey frame")

    def _resolve(self, datum_id: Any) -> np.ndarray:
        """The 2-D frame a datum id points to (HDF5 file and dataset named by its resource)."""
        try:
            array = self._assets.read(datum_id)
        except AssetError as exc:
            raise ImageError(str(exc)) from exc
        if array.ndim != 2:
            raise ImageError(f"datum {datum_id}: expected one 2-D frame, got shape {array.shape}")
        return array

    def _frame_pixel_nm(self, event: dict[str, Any], keys: list[str], run: _SourceRun) -> tuple[float, str]:
        try:
            from_file = survey_pixel_nm(self._assets.locate(event["data"][keys[0]]).path)
        except AssetError:
            from_file = None
        if from_file is not None:
            return from_file, "file"
        if event["descriptor"] in run.pixel_nm:
            return run.pixel_nm[event["descriptor"]], "documents"
        return self.pixel_nm, "default"

    def _publish(
        self, run: _SourceRun, event: dict[str, Any] | None, report: MicrostructureReport | None, reason: str
    ) -> None:
        metadata = {"analysis": "microstructure", "model": self.segmenter.name, "plan_name": "segmentation_analysis"}
        self._emit(run.start, metadata, report, reason, event)


def _image_keys(data_keys: dict[str, Any]) -> list[str]:
    """[haadf key, bf key] of an external-array descriptor, or [] if it has no survey image."""
    keys = []
    for suffix in CHANNEL_SUFFIXES:
        match = [k for k, v in data_keys.items() if k.endswith(suffix) and v.get("external")]
        if not match:
            return []
        keys.append(sorted(match)[0])
    return keys


def _configured_pixel_nm(descriptor: dict[str, Any]) -> float | None:
    for device in descriptor.get("configuration", {}).values():
        for key, value in device.get("data", {}).items():
            if key.endswith("pixel_nm"):
                try:
                    return float(value)
                except (TypeError, ValueError):
                    return None
    return None
