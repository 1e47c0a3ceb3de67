"""A stand-in for the pynvml module, at its boundary only: the functions NvmlReader calls, with the
return shapes and errors nvidia-ml-py gives (ctypes structs become simple objects). NVML cannot run
on the test machine; the real module is exercised on the H100 run (benchmarks/results/)."""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

NVML_SUCCESS = 0
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_TIMEOUT = 10
NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_FI_DEV_MEMORY_TEMP = 82
nvmlMemory_v2 = 0x02000028
nvmlEventTypeXidCriticalError = 0x8


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        self.value = value
        super().__init__({3: "Not Supported", 10: "Timeout"}.get(value, f"error {value}"))


@dataclass
class FakeGpu:
    name: str
    uuid: str
    bus_id: bytes
    minor: int
    total: int
    used: int
    reserved: int | None = 0  # None: the driver has no nvmlDeviceGetMemoryInfo_v2
    util: tuple[int, int] = (0, 0)
    encoder: int | None = 0
    decoder: int | None = 0
    power_mw: int = 50_000
    limit_mw: int = 300_000
    energy_mj: int | None = 1_000_000
    temp: int = 40
    memory_temp: int | None = 45
    sm_clock: int = 1980
    mem_clock: int = 2619
    reasons: int = 0x1
    xid_events: bool = True


@dataclass
class FakeNvml:
    gpus: list[FakeGpu]
    driver: str = "550.127.05"
    events: queue.Queue[tuple[int, int]] = field(default_factory=queue.Queue)
    initialised: bool = False
    shutdown_calls: int = 0
    NVMLError: type[NVMLError] = NVMLError

    def __getattr__(self, name: str) -> Any:
        return globals()[name]  # constants (NVML_*, nvml*_v2, nvmlEventType*)

    def nvmlInit(self) -> None:
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.shutdown_calls += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeGpu:
        return self.gpus[i]

    def nvmlDeviceGetName(self, h: FakeGpu) -> str:
        return h.name

    def nvmlDeviceGetUUID(self, h: FakeGpu) -> str:
        return h.uuid

    def nvmlDeviceGetPciInfo(self, h: FakeGpu) -> Any:
        return SimpleNamespace(busId=h.bus_id)  # a c_char array: bytes, as pynvml returns it

    def nvmlDeviceGetMinorNumber(self, h: FakeGpu) -> int:
        return h.minor

    def nvmlDeviceGetMemoryInfo(self, h: FakeGpu, version: int | None = None) -> Any:
        if version is not None:
            if h.reserved is None:
                raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
            free = h.total - h.used - h.reserved
            return SimpleNamespace(total=h.total, used=h.used, free=free, reserved=h.reserved)
        return SimpleNamespace(total=h.total, used=h.used, free=h.total - h.used)

    def nvmlDeviceGetUtilizationRates(self, h: FakeGpu) -> Any:
        return SimpleNamespace(gpu=h.util[0], memory=h.util[1])

    def _maybe(self, value: int | None) -> int:
        if value is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return value

    def nvmlDeviceGetEncoderUtilization(self, h: FakeGpu) -> list[int]:
        return [self._maybe(h.encoder), 167000]

    def nvmlDeviceGetDecoderUtilization(self, h: FakeGpu) -> list[int]:
        return [self._maybe(h.decoder), 167000]

    def nvmlDeviceGetPowerUsage(self, h: FakeGpu) -> int:
        return h.power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, h: FakeGpu) -> int:
        return h.limit_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, h: FakeGpu) -> int:
        return self._maybe(h.energy_mj)

    def nvmlDeviceGetTemperature(self, h: FakeGpu, sensor: int) -> int:
        return h.temp

    def nvmlDeviceGetFieldValues(self, h: FakeGpu, ids: list[int]) -> list[Any]:
        ok = h.memory_temp is not None
        value = SimpleNamespace(uiVal=h.memory_temp or 0)
        return [
            SimpleNamespace(
                nvmlReturn=NVML_SUCCESS if ok else NVML_ERROR_NOT_SUPPORTED, valueType=1, value=value
            )
        ]

    def nvmlDeviceGetClockInfo(self, h: FakeGpu, clock: int) -> int:
        return h.sm_clock if clock == NVML_CLOCK_SM else h.mem_clock

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: FakeGpu) -> int:
        return h.reasons

    def nvmlEventSetCreate(self) -> str:
        return "event-set"

    def nvmlDeviceRegisterEvents(self, h: FakeGpu, types: int, event_set: str) -> None:
        if not h.xid_events:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)

    def nvmlEventSetFree(self, event_set: str) -> None:
        pass

    def nvmlEventSetWait_v2(self, event_set: str, timeout_ms: int) -> Any:
        try:
            index, xid = self.events.get(timeout=timeout_ms / 1000)
        except queue.Empty:
            raise NVMLError(NVML_ERROR_TIMEOUT) from None
        # NVML hands back a new handle object for the device: match by UUID, not identity
        device = SimpleNamespace(**vars(self.gpus[index]))
        return SimpleNamespace(device=device, eventType=nvmlEventTypeXidCriticalError, eventData=xid)


def h100() -> FakeGpu:
    return FakeGpu(
        name="NVIDIA H100 80GB HBM3",
        uuid="GPU-4f3a2b1c-0000-1111-2222-333344445555",
        bus_id=b"00000000:19:00.0",
        minor=0,
        total=85_520_809_984,
        used=80_000 * 2**20,
        reserved=567_279_616,
        util=(97, 61),
        encoder=None,
        decoder=None,
        power_mw=612_345,
        limit_mw=700_000,
        energy_mj=9_876_543_210,
        temp=67,
        memory_temp=74,
        sm_clock=1980,
        mem_clock=2619,
        reasons=0x40 | 0x4,  # hardware thermal slowdown and the software power cap
    )


def geforce() -> FakeGpu:
    return FakeGpu(
        name="NVIDIA GeForce GTX 1650",
        uuid="GPU-aaaabbbb-cccc-dddd-eeee-ffff00001111",
        bus_id=b"00000000:01:00.0",
        minor=1,
        total=4_294_967_296,
        used=1_073_741_824,
        reserved=None,
        util=(12, 3),
        energy_mj=None,
        memory_temp=None,
        reasons=0x1,
        xid_events=False,
    )
