"""A caproto IOC that speaks the mill's PVs (docs/devices.md), for testing the EPICS flavour for real.

Run as `python -m tests.devices.epics_mill_ioc --prefix LAB:MILL: --interfaces 127.0.0.1`. Milling
time is accelerated 1000× so a test finishes quickly.
"""

from __future__ import annotations

import asyncio

from caproto import ChannelType
from caproto.server import PVGroup, ioc_arg_parser, pvproperty, run

ACCELERATION = 1000.0


class MillIOC(PVGroup):
    speed_rb = pvproperty(name="Speed-RB", value=0.0, read_only=True)
    vial_temp_rb = pvproperty(name="VialTemp-RB", value=25.0, read_only=True)
    elapsed_rb = pvproperty(name="Elapsed-RB", value=0.0, read_only=True)
    state_rb = pvproperty(name="State-RB", value="idle", dtype=ChannelType.STRING, read_only=True)
    speed_sp = pvproperty(name="Speed-SP", value=0.0)
    duration_sp = pvproperty(name="Duration-SP", value=0.0)
    bpr_sp = pvproperty(name="BPR-SP", value=10.0)
    sample_sp = pvproperty(name="SampleId-SP", value="", dtype=ChannelType.STRING)
    start_cmd = pvproperty(name="Start-Cmd", value=0)
    stop_cmd = pvproperty(name="Stop-Cmd", value=0)

    _task: asyncio.Task | None = None

    @start_cmd.putter
    async def start_cmd(self, instance, value):
        if value:
            self._task = asyncio.get_running_loop().create_task(self._mill())
        return 0

    @stop_cmd.putter
    async def stop_cmd(self, instance, value):
        if value and self._task is not None:
            self._task.cancel()
            await self.speed_rb.write(0.0)
            await self.state_rb.write("stopped")
        return 0

    async def _mill(self) -> None:
        await self.state_rb.write("running")
        await self.speed_rb.write(self.speed_sp.value)
        duration = float(self.duration_sp.value) / ACCELERATION
        steps = 10
        for i in range(steps):
            await asyncio.sleep(duration / steps)
            await self.elapsed_rb.write(float(self.duration_sp.value) * (i + 1) / steps)
            await self.vial_temp_rb.write(25.0 + 10.0 * (i + 1))
        await self.speed_rb.write(0.0)
        await self.state_rb.write("done")


if __name__ == "__main__":
    ioc_options, run_options = ioc_arg_parser(default_prefix="LAB:MILL:", desc="grainloop mill test IOC")
    run(MillIOC(**ioc_options).pvdb, **run_options)
