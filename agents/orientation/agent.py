"""The orientation agent: a SPED scan in, an `OrientationReport` out — directly, or on the document stream.

Directly: `agent.analyze(scan_or_path)`. The scan is indexed row by row (`OrientationIndexer`, memory
bounded by one chunk of rows), the rows become an orix `CrystalMap`, and grains and boundary statistics
follow (`agents.orientation.report`).

On the stream the agent is a bluesky callback (`RE.subscribe(agent)` in-process, or behind a 0MQ
`RemoteDispatcher`). An event field whose name ends in `patterns` and that is external holds SPED data:

- a whole scan (ny, nx, qy, qx) in one datum — indexed in chunks of rows as soon as the event arrives;
- or one row (nx, qy, qx) per event (`datum_kwargs["row"]` gives its row, else the arrival order) —
  indexed as each row arrives; the map is finished when the descriptor's `ny` rows are in (from the
  configuration's `…scan_px` / `…scan_ny`), or at a successful stop with the rows that came (a run that
  stops aborted or failed before its last row gets a failed analysis run).

The calibration (Å⁻¹ per detector pixel) comes from the event's `…calibration_a_inv_per_px` field, else
the HDF5 file's attributes; the step from the configuration's `…step_nm`, else the file. Each map is
published as a run of its own (`agents.analysis_stream`: `parent_uid`, `agent="orientation"`). Nothing
raises out of `__call__`: bad input is logged, published as a failed run, and the agent keeps listening.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from orix.crystal_map import CrystalMap

from agents.analysis_stream import AssetError, AssetRef, Callback, StreamAnalysisAgent
from agents.orientation.crystal_map import to_crystal_map
from agents.orientation.grains import Grains, map_arrays, reconstruct_grains
from agents.orientation.indexing import IndexResult, OrientationIndexer, RowStream
from agents.orientation.phases import MATRIX_PHASE
from agents.orientation.report import OrientationReport, orientation_report
from agents.orientation.scan_input import ScanData, ScanError, load_scan

log = logging.getLogger(__name__)

DEFAULT_PHASES = (MATRIX_PHASE,)
DEFAULT_THRESHOLD_DEG = 2.0
"""Grain threshold for SPED maps: below θc = 9° so that low-angle boundaries stay boundaries."""
CHUNK_ROWS = 8
"""Rows indexed per batch when a whole scan arrives at once: bounds memory to 8·nx patterns."""

Progress = Callable[[int, int], None]
"""progress(rows_done, rows_total)."""


@dataclass(frozen=True)
class OrientationAnalysis:
    """A report with the map and grains behind it (for figures, `.ang` output and benchmarks)."""

    report: OrientationReport
    crystal_map: CrystalMap
    grains: Grains


@dataclass
class _RowScan:
    """Rows of one SPED stream as they arrive."""

    descriptor_uid: str
    key: str
    calibration_key: str | None
    step_nm: float | None
    rows_expected: int | None
    results: dict[int, IndexResult] = field(default_factory=dict)
    nx: int | None = None
    calibration: float | None = None
    first_event: dict[str, Any] | None = None
    indexer: OrientationIndexer | None = None
    stream: RowStream | None = None
    index_s: float = 0.0


@dataclass
class _SourceRun:
    start: dict[str, Any]
    scans: dict[str, _RowScan] = field(default_factory=dict)  # descriptor uid → its SPED stream
    published: int = 0


class OrientationAgent(StreamAnalysisAgent):
    """Indexes SPED scans and reports grains and boundaries (see the module docstring)."""

    agent_name = "orientation"

    def __init__(
        self,
        phases: Sequence[str] = DEFAULT_PHASES,
        *,
        resolution_deg: float = 1.0,
        threshold_deg: float = DEFAULT_THRESHOLD_DEG,
        critical_deg: float = 9.0,
        min_grain_px: int = 4,
        subscribers: list[Callback] | None = None,
    ) -> None:
        super().__init__(subscribers)
        self.phases = tuple(phases)
        self.resolution_deg = float(resolution_deg)
        self.threshold_deg, self.critical_deg, self.min_grain_px = threshold_deg, critical_deg, min_grain_px
        self.reports: list[OrientationReport] = []
        self._indexers: dict[tuple[float, int, float], OrientationIndexer] = {}
        self._runs: dict[str, _SourceRun] = {}

    def indexer(self, calibration_a_inv_per_px: float, pattern_px: int, center_px: float) -> OrientationIndexer:
        """The indexer for this detector geometry (built once: template libraries come from the disk cache)."""
        key = (round(float(calibration_a_inv_per_px), 9), int(pattern_px), round(float(center_px), 3))
        if key not in self._indexers:
            self._indexers[key] = OrientationIndexer(
                self.phases,
                calibration_a_inv_per_px,
                pattern_px,
                center_px=center_px,
                resolution_deg=self.resolution_deg,
            )
        return self._indexers[key]

    # -- direct use ------------------------------------------------------------------------------------

    def analyze(self, scan: ScanData | str | Path) -> OrientationReport:
        """The report of a scan (`ScanData` or a file `load_scan` reads). Raises `ScanError` on bad input."""
        return self.analyze_full(scan).report

    def analyze_full(self, scan: ScanData | str | Path, progress: Progress | None = None) -> OrientationAnalysis:
        """`analyze`, also returning the crystal map and grains; `progress(rows_done, rows)` after each chunk."""
        t0 = time.perf_counter()
        source = None
        if isinstance(scan, (str, Path)):
            source = str(scan)
            with load_scan(scan) as opened:
                return self._analyze_scan(opened, progress, source, t0)
        return self._analyze_scan(scan, progress, source, t0)

    def _analyze_scan(
        self, scan: ScanData, progress: Progress | None, source: str | None, t0: float
    ) -> OrientationAnalysis:
        indexer = self.indexer(scan.calibration_a_inv_per_px, scan.pattern_px, scan.center_px)
        ny, nx = scan.scan_shape
        stream = RowStream(indexer)
        parts = []
        t_load = 0.0
        for y0 in range(0, ny, CHUNK_ROWS):
            t = time.perf_counter()
            rows = np.stack([scan.row(y) for y in range(y0, min(y0 + CHUNK_ROWS, ny))])
            t_load += time.perf_counter() - t
            parts.append(stream.push(rows, first_row=y0))
            if progress is not None:
                progress(min(y0 + CHUNK_ROWS, ny), ny)
        result = IndexResult.concatenate(parts)
        return self._finish(result, (ny, nx), scan.step_nm, indexer, source, t_load, time.perf_counter() - t0)

    def _finish(
        self,
        result: IndexResult,
        scan_shape: tuple[int, int],
        step_nm: float,
        indexer: OrientationIndexer,
        source: str | None,
        load_s: float,
        index_total_s: float,
    ) -> OrientationAnalysis:
        xmap = to_crystal_map(result, scan_shape, step_nm, indexer.phase_objects)
        t = time.perf_counter()
        grains = reconstruct_grains(map_arrays(xmap), self.threshold_deg, self.min_grain_px)
        grains_s = time.perf_counter() - t
        report = orientation_report(
            xmap,
            grains,
            threshold_deg=self.threshold_deg,
            min_grain_px=self.min_grain_px,
            critical_deg=self.critical_deg,
            source=source,
            load_s=load_s,
            grains_s=grains_s,
        )
        indexing_s = max(index_total_s - load_s, 1e-9)
        timings = report.timings.model_copy(
            update={"indexing_s": indexing_s, "total_s": report.timings.total_s + indexing_s}
        )
        report = report.model_copy(update={"timings": timings, "patterns_per_s": len(result) / indexing_s})
        return OrientationAnalysis(report, xmap, grains)

    # -- the document stream ---------------------------------------------------------------------------

    def _start(self, doc: dict[str, Any]) -> None:
        self._runs[doc["uid"]] = _SourceRun(start=doc)

    def _descriptor(self, doc: dict[str, Any]) -> None:
        run = self._runs.get(doc["run_start"])
        if run is None:
            return
        data_keys = doc.get("data_keys", {})
        keys = sorted(k for k, v in data_keys.items() if k.endswith("patterns") and v.get("external"))
        if not keys:
            return
        calibration = [k for k in data_keys if k.endswith("calibration_a_inv_per_px")]
        config = _configuration(doc)
        self._descriptor_run[doc["uid"]] = doc["run_start"]
        run.scans[doc["uid"]] = _RowScan(
            descriptor_uid=doc["uid"],
            key=keys[0],
            calibration_key=calibration[0] if calibration else None,
            step_nm=_first(config, "step_nm"),
            rows_expected=_int_or_none(_first(config, "scan_ny") or _first(config, "scan_px")),
        )

    def _event(self, doc: dict[str, Any]) -> None:
        run_uid = self._descriptor_run.get(doc["descriptor"])
        if run_uid is None or run_uid not in self._runs:
            return
        run = self._runs[run_uid]
        scan = run.scans[doc["descriptor"]]
        scan.first_event = scan.first_event or doc
        try:
            ref = self._assets.locate(doc["data"][scan.key])
            row = ref.datum_kwargs.get("row")
            if row is None and _dataset_ndim(ref) == 4:
                with load_scan(ref.path) as whole:
                    self._publish_whole(run, scan, whole, doc)
            else:
                self._add_row(run, scan, doc, row)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, (ScanError, AssetError)) else f"{type(exc).__name__}: {exc}"
            log.warning("orientation agent: event %s of run %s failed: %s", doc.get("seq_num"), run_uid, reason)
            self._publish(run, doc, None, reason)

    def _publish_whole(self, run: _SourceRun, scan: _RowScan, whole: ScanData, event: dict[str, Any]) -> None:
        calibration = _event_number(event, scan.calibration_key)
        if calibration is not None and calibration > 0:
            whole.calibration_a_inv_per_px = calibration
        if scan.step_nm:
            whole.step_nm = float(scan.step_nm)
        analysis = self._analyze_scan(whole, None, whole.source, time.perf_counter())
        self._publish(run, event, analysis.report, "")

    def _add_row(self, run: _SourceRun, scan: _RowScan, event: dict[str, Any], row: Any) -> None:
        array = self._assets.read(event["data"][scan.key])
        if array.ndim != 3:
            raise ScanError(f"a SPED row must be (nx, qy, qx), got shape {array.shape}")
        if scan.nx is not None and array.shape[0] != scan.nx:
            raise ScanError(f"row of {array.shape[0]} points after rows of {scan.nx}")
        scan.nx = array.shape[0]
        calibration = _event_number(event, scan.calibration_key) or scan.calibration
        if calibration is None:
            raise ScanError("no calibration_a_inv_per_px in the event; cannot index the row")
        scan.calibration = calibration
        t = time.perf_counter()
        if scan.indexer is None or scan.stream is None:
            scan.indexer = self.indexer(calibration, array.shape[-1], (array.shape[-1] - 1) / 2.0)
            scan.stream = RowStream(scan.indexer)
        y = int(row) if row is not None else len(scan.results)
        scan.results[y] = scan.stream.push(array, first_row=y)
        scan.index_s += time.perf_counter() - t
        if scan.rows_expected is not None and len(scan.results) >= scan.rows_expected:
            self._publish_rows(run, scan)

    def _publish_rows(self, run: _SourceRun, scan: _RowScan) -> None:
        rows = sorted(scan.results)
        if rows != list(range(len(rows))):
            raise ScanError(f"rows {rows[0]}…{rows[-1]} arrived with gaps: cannot build a map")
        assert scan.nx is not None and scan.indexer is not None
        result = IndexResult.concatenate([scan.results[y] for y in rows])
        scan.results.clear()
        step_nm = scan.step_nm or 1.0
        analysis = self._finish(result, (len(rows), scan.nx), step_nm, scan.indexer, None, 0.0, scan.index_s)
        self._publish(run, scan.first_event, analysis.report, "")

    def _stop(self, doc: dict[str, Any]) -> None:
        run = self._end_run(doc["run_start"])
        if run is None:
            return
        status = doc.get("exit_status", "success")
        for scan in run.scans.values():
            if not scan.results:
                continue
            if status != "success":  # an aborted scan's rows are not a map of the specimen
                got = f"{len(scan.results)} of {scan.rows_expected or '?'} rows"
                self._publish(run, scan.first_event, None, f"the SPED run ended '{status}' after {got}")
                continue
            try:
                self._publish_rows(run, scan)
            except Exception as exc:
                self._publish(run, scan.first_event, None, str(exc))
        if run.scans and run.published == 0:
            self._publish(run, None, None, "the run ended without a SPED scan")

    def _publish(
        self, run: _SourceRun, event: dict[str, Any] | None, report: OrientationReport | None, reason: str
    ) -> None:
        run.published += 1
        metadata = {"analysis": "orientation_map", "phases": list(self.phases), "plan_name": "orientation_analysis"}
        self._emit(run.start, metadata, report, reason, event)


def _dataset_ndim(ref: AssetRef) -> int:
    """Dimensions of the dataset a datum points to (0 when it cannot be read)."""
    try:
        with h5py.File(ref.path, "r") as fh:
            return int(fh[ref.dataset].ndim)
    except Exception:
        return 0


def _configuration(descriptor: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for device in descriptor.get("configuration", {}).values():
        flat.update(device.get("data", {}))
    return flat


def _first(config: dict[str, Any], suffix: str) -> Any:
    return next((v for k, v in sorted(config.items()) if k.endswith(suffix)), None)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _event_number(event: dict[str, Any], key: str | None) -> float | None:
    if key is None or key not in event.get("data", {}):
        return None
    try:
        value = float(event["data"][key])
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) and value > 0 else None
