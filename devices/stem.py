"""STEM with a 4D-STEM (SPED) detector: a HAADF/BF survey image and a precession-diffraction scan.

`set(sample_id)` loads a sample (the beam is blanked while the holder moves); `survey.trigger()` acquires
a frame into an HDF5 file referenced by resource/datum documents. The SPED detector is a step scan of
rows: each `sped.trigger()` acquires the row `sped.row` (set by the plan), so a run gets one event per
row as the rows are acquired and an agent can index them while the scan goes on; all rows land in one
HDF5 file (one resource, one datum per row). `stop()` blanks the beam. Sim flavour: images drawn from
the sample's hidden section; the truth behind them (labels, grain ids, true orientations) is kept aside,
written only to `truth_dir` when one is given.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, Signal
from ophyd.status import DeviceStatus

from devices.assets import ExternalArraySignal, HDF5AssetWriter, HDF5RowFile
from devices.base import InterlockError, LabDevice, SimBacked, complete_in_thread
from devices.envelope import LimitError, check_range
from simulators.lab import SimLab
from simulators.sped import PORE_PHASE_ID, SpedFaults, iter_scan_rows
from simulators.stem import StemFaults, acquire_survey

LOAD_S = 600.0
"""Loading a holder, pumping and finding the area: ten simulated minutes."""
ACQUISITION_SLACK_WALL_S = 60.0
"""Wall time allowed beyond the instrument time: rendering a simulated frame or writing its file."""
FLYBACK_FACTOR = 1.1
MAX_PROBE_CURRENT_PA = 200.0


class _Detector(Device):
    """Shared trigger/asset machinery; `_acquire()` does the work in a thread and returns datum ids."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writer: HDF5AssetWriter | None = None

    def collect_asset_docs(self):
        if self.writer is not None:
            yield from self.writer.collect_asset_docs()

    def trigger(self) -> DeviceStatus:
        stem = self.parent
        assert isinstance(stem, Stem)
        if not stem.loaded_sample.get():
            raise LimitError(f"{stem.name}: no sample loaded")
        self.check_settings()
        status = stem.timed_status(self.expected_instrument_s())
        return complete_in_thread(status, lambda: self._acquire(stem), f"{self.name}-acquire")

    def _acquire(self, stem: Stem) -> None:
        raise NotImplementedError

    def check_settings(self) -> None:
        """Refuse settings outside the detector's envelope before the beam is unblanked."""
        raise NotImplementedError

    def expected_instrument_s(self) -> float:
        """How long the acquisition takes on the instrument (sets its timeout)."""
        raise NotImplementedError


class SurveyDetector(_Detector):
    """HAADF and BF survey images."""

    haadf = Cpt(ExternalArraySignal, shape=(1024, 1024), kind="normal")
    bf = Cpt(ExternalArraySignal, shape=(1024, 1024), kind="normal")
    pixel_nm = Cpt(Signal, value=2.0, kind="config")
    shape_px = Cpt(Signal, value=1024, kind="config")
    dwell_us = Cpt(Signal, value=10.0, kind="config")

    def _acquire(self, stem: Stem) -> None:
        n = int(self.shape_px.get())
        self.haadf.shape = self.bf.shape = (n, n)
        stem.acquire_survey(self, n, float(self.pixel_nm.get()), float(self.dwell_us.get()))

    def check_settings(self) -> None:
        check_range("survey pixel size", float(self.pixel_nm.get()), 0.05, 50.0, "nm")
        check_range("survey frame", float(self.shape_px.get()), 16, 4096, "px")
        check_range("survey dwell", float(self.dwell_us.get()), 0.1, 1000.0, "µs")

    def expected_instrument_s(self) -> float:
        n = int(self.shape_px.get())
        return n * n * float(self.dwell_us.get()) * 1e-6 * FLYBACK_FACTOR


class SpedDetector(_Detector):
    """A scanning precession electron diffraction scan (n, n, qy, qx), acquired one row (n, qy, qx) per trigger.

    Row 0 starts a scan, each next row continues it, and the row just acquired may come again (a resume
    re-takes the interrupted row); other rows are refused. `stage()`, `unstage()` and the STEM's `stop()`
    (unless it is a pause's) give up a scan in progress: its file keeps the rows written so far.
    """

    patterns = Cpt(ExternalArraySignal, shape=(40, 128, 128), dtype_numpy="<u2", kind="normal")
    calibration_a_inv_per_px = Cpt(Signal, value=0.0, kind="normal")
    row = Cpt(Signal, value=0, kind="normal")
    step_nm = Cpt(Signal, value=10.0, kind="config")
    scan_px = Cpt(Signal, value=40, kind="config")
    dwell_ms = Cpt(Signal, value=20.0, kind="config")

    def stage(self) -> list[Any]:
        self._abandon()
        return super().stage()

    def unstage(self) -> list[Any]:
        self._abandon()
        return super().unstage()

    def _abandon(self) -> None:
        stem = self.parent
        if isinstance(stem, Stem):
            stem.abandon_sped()

    def _acquire(self, stem: Stem) -> None:
        n = int(self.scan_px.get())
        stem.acquire_sped_row(self, int(self.row.get()), n, float(self.step_nm.get()), float(self.dwell_ms.get()))

    def check_settings(self) -> None:
        check_range("SPED step", float(self.step_nm.get()), 0.5, 100.0, "nm")
        check_range("SPED scan", float(self.scan_px.get()), 2, 512, "px")
        check_range("SPED dwell", float(self.dwell_ms.get()), 0.1, 1000.0, "ms")
        row, n = int(self.row.get()), int(self.scan_px.get())
        if not 0 <= row < n:
            raise LimitError(f"SPED row {row} is outside the scan's rows 0–{n - 1}")

    def expected_instrument_s(self) -> float:
        """One row: n points of `dwell_ms` each."""
        n = int(self.scan_px.get())
        return n * float(self.dwell_ms.get()) * 1e-3 * FLYBACK_FACTOR


class Stem(LabDevice):
    """What every STEM flavour exposes."""

    loaded_sample = Cpt(Signal, value="", kind="config")
    probe_current_pa = Cpt(Signal, value=10.0, kind="config")
    beam_blanked = Cpt(Signal, value=True, kind="normal")
    state = Cpt(Signal, value="idle", kind="normal")
    survey = Cpt(SurveyDetector, "survey")
    sped = Cpt(SpedDetector, "sped")
    timeout_margin = 3.0
    timeout_slack_wall_s = ACQUISITION_SLACK_WALL_S

    def __init__(self, *args: Any, data_dir: Path | str = "data", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.survey.writer = HDF5AssetWriter(data_dir)
        self.sped.writer = HDF5AssetWriter(data_dir)

    def set(self, value: str) -> DeviceStatus:  # type: ignore[override]
        """Load sample `value` into the column (beam blanked while the holder moves)."""
        if not value:
            raise LimitError(f"{self.name}: sample id must not be empty")
        check_range("probe current", float(self.probe_current_pa.get()), 0.1, MAX_PROBE_CURRENT_PA, "pA")
        self.beam_blanked.put(True)
        return complete_in_thread(self.timed_status(LOAD_S), lambda: self._load(value), f"{self.name}-load")

    def stop(self, *, success: bool = False) -> None:
        """Safe state: beam blanked."""
        self.beam_blanked.put(True)

    def _load(self, sample_id: str) -> None:
        """Bring `sample_id` into the column; returns when it is ready to image."""
        raise NotImplementedError

    def acquire_survey(self, detector: SurveyDetector, n: int, pixel_nm: float, dwell_us: float) -> None:
        raise NotImplementedError

    def acquire_sped_row(self, detector: SpedDetector, row: int, n: int, step_nm: float, dwell_ms: float) -> None:
        """Acquire row `row` of an n × n scan (see `SpedDetector`)."""
        raise NotImplementedError

    def abandon_sped(self) -> None:
        """Give up the SPED scan in progress, if any (the next scan starts afresh at row 0)."""


@dataclass
class _SpedScan:
    """A SPED scan on the simulated STEM: its row source, its file and the truth so far.

    It stays after its last row (a resume may re-take that row) until the next scan or a stop.
    """

    settings: tuple[str, int, float, float]  # sample id, n, step, dwell: fixed for the scan
    rows: Iterator[tuple[int, np.ndarray]]
    file: HDF5RowFile
    calibration_a_inv_per_px: float
    true_phase: np.ndarray
    true_orientations: np.ndarray
    dropped: np.ndarray
    next_row: int = 0
    last_frames: np.ndarray | None = None  # the row just acquired, for a re-take after a pause
    abandoned: bool = False
    first_datum_id: str = ""


class SimStem(SimBacked, Stem):
    """A STEM that images the hidden section of the lab's samples."""

    def __init__(self, *args: Any, lab: SimLab, truth_dir: Path | str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, lab=lab, **kwargs)
        self.truth_dir = Path(truth_dir) if truth_dir else None
        stem, sped = lab.world.stem, lab.world.sped  # the world's microscope defaults, until a plan sets others
        self.survey.pixel_nm.put(stem.pixel_nm)
        self.survey.shape_px.put(stem.shape_px)
        self.survey.dwell_us.put(stem.dwell_us)
        self.sped.step_nm.put(sped.step_nm)
        self.sped.scan_px.put(sped.scan_shape[0])
        self.sped.dwell_ms.put(sped.dwell_ms)
        self.probe_current_pa.put(stem.probe_current_pa)
        self._sped_scan: _SpedScan | None = None
        self._sped_lock = threading.Lock()  # one row at a time, even when a resume re-takes a row still running

    def stop(self, *, success: bool = False) -> None:
        """Beam blanked. A pause or suspension (`success=True`) keeps the SPED scan, to be resumed by row."""
        super().stop(success=success)
        if self.state.get() == "acquiring":
            self.state.put("ready")
        if not success:
            self.abandon_sped()

    def abandon_sped(self) -> None:
        scan, self._sped_scan = self._sped_scan, None  # never waits on a row in progress: it sees `abandoned`
        if scan is not None:
            scan.abandoned = True

    def _load(self, sample_id: str) -> None:
        self.lab.truth(sample_id)  # refuses a sample that was never sintered
        self.lab.clock.sleep(LOAD_S)
        self.loaded_sample.put(sample_id)
        self.state.put("ready")

    def _specimen_extent_nm(self) -> float:
        survey = float(self.survey.shape_px.get()) * float(self.survey.pixel_nm.get())
        sped = float(self.sped.scan_px.get()) * float(self.sped.step_nm.get())
        return max(survey, sped)

    def _expose(self, instrument: str) -> np.random.Generator:
        self._unblank()
        return self.lab.rng(instrument, str(self.loaded_sample.get()))

    def _unblank(self) -> None:
        if self.beam_blanked.get() is False and self.state.get() == "acquiring":
            raise InterlockError(f"{self.name}: an acquisition is already running")
        self.state.put("acquiring")
        self.beam_blanked.put(False)

    def acquire_survey(self, detector: SurveyDetector, n: int, pixel_nm: float, dwell_us: float) -> None:
        sample_id = str(self.loaded_sample.get())
        rng = self._expose("stem-survey")
        faults_cfg = self.lab.world.faults
        faults = StemFaults(
            beam_blank=faults_cfg.fires("beam_blank", rng),
            extra_drift_nm_per_s=faults_cfg.beam_drift_nm_per_s if faults_cfg.fires("beam_drift", rng) else 0.0,
        )
        specimen = self.lab.specimen(sample_id, self._specimen_extent_nm())
        image = acquire_survey(
            self.lab.world.stem, specimen, rng, shape=(n, n), pixel_nm=pixel_nm, dwell_us=dwell_us,
            probe_current_pa=float(self.probe_current_pa.get()), faults=faults,
        )  # fmt: skip
        self.lab.clock.sleep(image.frame_time_s)
        attrs = {"pixel_nm": pixel_nm, "sample_id": sample_id, "dwell_us": dwell_us}
        ids = detector.writer.write("survey", {"haadf": image.haadf, "bf": image.bf}, attrs)  # type: ignore[union-attr]
        detector.haadf.put(ids["haadf"])
        detector.bf.put(ids["bf"])
        self._keep_truth("survey", ids["haadf"], {"label": image.label, "grain_id": image.grain_id})
        self.stop()

    def acquire_sped_row(self, detector: SpedDetector, row: int, n: int, step_nm: float, dwell_ms: float) -> None:
        with self._sped_lock:
            scan = self._sped_scan
            settings = (str(self.loaded_sample.get()), n, step_nm, dwell_ms)
            same = scan is not None and not scan.abandoned and scan.settings == settings
            if same and scan is not None and row == scan.next_row - 1 and scan.last_frames is not None:
                frames, first_take = scan.last_frames, False  # a re-take: the simulator draws each row once
            else:
                if not (same and scan is not None and row == scan.next_row < n):
                    if row != 0:
                        raise LimitError(f"{detector.name}: row {row} out of order; a scan starts at row 0")
                    self.abandon_sped()
                    scan = self._sped_scan = self._start_sped(detector, n, step_nm, dwell_ms)
                _, frames = next(scan.rows)
                scan.next_row, scan.last_frames, first_take = row + 1, frames, True
            self._unblank()
            try:
                self.lab.clock.sleep(n * dwell_ms * 1e-3)
                if not scan.abandoned:  # else stopped meanwhile: the row is lost with the scan
                    self._deliver_row(detector, scan, row, frames, first_take)
            finally:
                self.beam_blanked.put(True)  # no dose between rows, while the plan reads and moves on
                self.state.put("ready")

    def _deliver_row(self, detector: SpedDetector, scan: _SpedScan, row: int, frames: np.ndarray, first: bool) -> None:
        """Write the row, point the detector's reading at it; the truth goes aside after the last row."""
        datum_id = scan.file.write_row(row, frames)
        detector.calibration_a_inv_per_px.put(scan.calibration_a_inv_per_px)
        detector.patterns.put(datum_id)
        if first:
            scan.dropped[row] = ~frames.reshape(frames.shape[0], -1).any(axis=1)
            scan.first_datum_id = scan.first_datum_id or datum_id
            if scan.next_row == len(scan.dropped):
                truth = {"orientations": scan.true_orientations, "phase": scan.true_phase, "dropped": scan.dropped}
                self._keep_truth("sped", scan.first_datum_id, truth)

    def _start_sped(self, detector: SpedDetector, n: int, step_nm: float, dwell_ms: float) -> _SpedScan:
        """Draw the scan's faults and rows as a whole-scan acquisition would (same use of the rng), open its file."""
        sample_id = str(self.loaded_sample.get())
        rng = self.lab.rng("stem-sped", sample_id)
        faults_cfg = self.lab.world.faults
        dropout = faults_cfg.detector_dropout_fraction if faults_cfg.fires("detector_dropout", rng) else 0.0
        faults = SpedFaults(detector_dropout_fraction=dropout, beam_blank=faults_cfg.fires("beam_blank", rng))
        section = self.lab.specimen(sample_id, self._specimen_extent_nm()).rasterize((0.0, 0.0), (n, n), step_nm)
        config = self.lab.world.sped.model_copy(update={"dwell_ms": dwell_ms})
        q = config.pattern_px
        detector.patterns.shape = (n, q, q)
        calibration = config.calibration_a_inv_per_px
        attrs = {"step_nm": step_nm, "calibration_a_inv_per_px": calibration, "sample_id": sample_id}
        file = detector.writer.open_rows("sped", "patterns", (n, n, q, q), "<u2", attrs)  # type: ignore[union-attr]
        # The truth `simulate_scan` would return: phase and orientation per point; dead frames as they come.
        solid = (section.grain_id >= 0) & (section.phase_id != PORE_PHASE_ID)
        true_orientations = np.full((n, n, 4), np.nan)
        true_orientations[solid] = np.asarray(section.orientations, dtype=float).reshape(-1, 4)[section.grain_id[solid]]
        return _SpedScan(
            settings=(sample_id, n, step_nm, dwell_ms),
            rows=iter_scan_rows(config, section, rng, faults=faults),
            file=file,
            calibration_a_inv_per_px=calibration,
            true_phase=np.where(solid, section.phase_id, PORE_PHASE_ID).astype(np.uint8),
            true_orientations=true_orientations,
            dropped=np.zeros((n, n), dtype=bool),
        )

    def _keep_truth(self, kind: str, datum_id: str, arrays: dict[str, np.ndarray]) -> None:
        """Truth goes to a separate directory, never into the documents, and only when asked for."""
        if self.truth_dir is None:
            return
        self.truth_dir.mkdir(parents=True, exist_ok=True)
        with h5py.File(self.truth_dir / f"{kind}-{datum_id.split('/')[0][:12]}.h5", "w") as fh:
            fh.attrs["datum_id"] = datum_id
            for key, value in arrays.items():
                fh.create_dataset(key, data=value, compression="gzip", compression_opts=1)


class EpicsStem(Stem):
    """Control over EPICS (PV suffixes in docs/devices.md); images arrive through an areaDetector HDF5 plugin."""

    loaded_sample = Cpt(EpicsSignal, "SampleId-SP", string=True, kind="config")
    probe_current_pa = Cpt(EpicsSignal, "ProbeCurrent-SP", kind="config")
    beam_blanked = Cpt(EpicsSignal, "BeamBlank-Cmd", kind="normal")
    state = Cpt(EpicsSignalRO, "State-RB", string=True, kind="normal")
    load_cmd = Cpt(EpicsSignal, "Load-Cmd", kind="omitted")

    def _load(self, sample_id: str) -> None:
        self.loaded_sample.put(sample_id, wait=True)
        self.load_cmd.put(1, wait=True)

    def acquire_survey(self, detector: SurveyDetector, n: int, pixel_nm: float, dwell_us: float) -> None:
        raise NotImplementedError("EPICS STEM acquisition needs the site's areaDetector HDF5 plugin: not built yet")

    def acquire_sped_row(self, detector: SpedDetector, row: int, n: int, step_nm: float, dwell_ms: float) -> None:
        raise NotImplementedError("EPICS SPED acquisition needs the site's areaDetector HDF5 plugin: not built yet")
