"""NVIDIA GPUs through NVML (nvidia-ml-py): one read per call, XID errors from an NVML event set.

Every field is read on its own: a GPU or driver that does not support one (encoder use on an
H100, memory temperature on a GeForce, total energy before Volta) gives `None` for that field and
the rest still comes. XID errors come from `nvmlEventSetWait_v2` in a thread of their own (it
blocks), registered for `nvmlEventTypeXidCriticalError` where the GPU supports it; NVML delivers
only XIDs that happen while the set is registered, so the counts start at zero with the reader.

The `nvml` argument is the pynvml module; tests pass a stand-in with the same functions.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from waveidp.observe.samples import GpuSample, SourceState


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


@dataclass
class _Device:
    index: int
    handle: Any
    name: str
    uuid: str
    pci_bus_id: str
    device: str
    xid_counts: dict[int, int] = field(default_factory=dict)
    last_xid: int | None = None
    xid_watched: bool = False


class NvmlReader:
    """Opens NVML once, reads every GPU on each `read()`, and watches XID events while open."""

    def __init__(self, nvml: Any = None, *, watch_xid: bool = True) -> None:
        self._nvml = nvml
        self.watch_xid = watch_xid
        self.driver_version = ""
        self.xid_watch = "off"
        self._devices: list[_Device] = []
        self._open = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._event_set: Any = None
        self._event_thread: threading.Thread | None = None

    @property
    def gpu_names(self) -> list[str]:
        return [d.name for d in self._devices]

    def open(self) -> SourceState:
        """Initialise NVML; a missing library or driver is an absence, not an error."""
        try:
            if self._nvml is None:
                import pynvml

                self._nvml = pynvml
            nv = self._nvml
            nv.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ImportError...
            return SourceState(False, f"NVML unavailable: {type(exc).__name__}: {exc}")
        self._open = True
        try:
            self.driver_version = _text(nv.nvmlSystemGetDriverVersion())
        except nv.NVMLError:
            self.driver_version = ""
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            self._devices.append(
                _Device(
                    index=i,
                    handle=h,
                    name=_text(nv.nvmlDeviceGetName(h)),
                    uuid=self._get(lambda h=h: _text(nv.nvmlDeviceGetUUID(h))) or "",
                    pci_bus_id=self._get(lambda h=h: _text(nv.nvmlDeviceGetPciInfo(h).busId)) or "",
                    device=f"nvidia{_or(self._get(lambda h=h: nv.nvmlDeviceGetMinorNumber(h)), i)}",
                )
            )
        if self.watch_xid and self._devices:
            self._start_xid_watch()
        detail = f"{len(self._devices)} GPU(s), driver {self.driver_version or 'unknown'}"
        return SourceState(True, f"{detail}, XID events: {self.xid_watch}")

    def _get(self, fn: Any) -> Any:
        try:
            return fn()
        except (self._nvml.NVMLError, AttributeError):  # AttributeError: older nvidia-ml-py
            return None

    def _start_xid_watch(self) -> None:
        nv = self._nvml
        try:
            self._event_set = nv.nvmlEventSetCreate()
        except nv.NVMLError as exc:
            self.xid_watch = f"unsupported ({exc})"
            return
        registered = 0
        for d in self._devices:
            try:
                nv.nvmlDeviceRegisterEvents(d.handle, nv.nvmlEventTypeXidCriticalError, self._event_set)
                d.xid_watched = True
                registered += 1
            except nv.NVMLError:
                continue  # not supported on this GPU (e.g. some GeForce under WSL)
        if not registered:
            nv.nvmlEventSetFree(self._event_set)
            self._event_set = None
            self.xid_watch = "unsupported on these GPUs"
            return
        self.xid_watch = f"{registered} GPU(s)"
        self._event_thread = threading.Thread(target=self._watch_xid, name="wave-nvml-xid", daemon=True)
        self._event_thread.start()

    def _watch_xid(self) -> None:
        nv = self._nvml
        while not self._stop.is_set():
            try:
                event = nv.nvmlEventSetWait_v2(self._event_set, 500)
            except nv.NVMLError as exc:
                if getattr(exc, "value", None) == nv.NVML_ERROR_TIMEOUT:
                    continue
                self.xid_watch = f"stopped: {exc}"
                return
            if not event.eventType & nv.nvmlEventTypeXidCriticalError:
                continue
            d = self._device_of(event.device)
            if d is None:
                continue
            xid = int(event.eventData)
            with self._lock:
                d.xid_counts[xid] = d.xid_counts.get(xid, 0) + 1
                d.last_xid = xid

    def _device_of(self, handle: Any) -> _Device | None:
        uuid = self._get(lambda: _text(self._nvml.nvmlDeviceGetUUID(handle)))
        return next((d for d in self._devices if uuid and d.uuid == uuid), None)

    def read(self) -> list[GpuSample]:
        return [self._read(d) for d in self._devices] if self._open else []

    def _read(self, d: _Device) -> GpuSample:
        nv, h, get = self._nvml, d.handle, self._get
        mem = get(lambda: nv.nvmlDeviceGetMemoryInfo(h, version=nv.nvmlMemory_v2)) or get(
            lambda: nv.nvmlDeviceGetMemoryInfo(h)
        )
        util = get(lambda: nv.nvmlDeviceGetUtilizationRates(h))
        enc = get(lambda: nv.nvmlDeviceGetEncoderUtilization(h))
        dec = get(lambda: nv.nvmlDeviceGetDecoderUtilization(h))
        power_mw = get(lambda: nv.nvmlDeviceGetPowerUsage(h))
        limit_mw = get(lambda: nv.nvmlDeviceGetEnforcedPowerLimit(h))
        reasons = get(lambda: nv.nvmlDeviceGetCurrentClocksEventReasons(h))
        if reasons is None:
            reasons = get(lambda: nv.nvmlDeviceGetCurrentClocksThrottleReasons(h))
        with self._lock:
            xids, last = dict(d.xid_counts), d.last_xid
        return GpuSample(
            index=d.index,
            name=d.name,
            source="nvml",
            uuid=d.uuid,
            pci_bus_id=d.pci_bus_id,
            device=d.device,
            memory_used_bytes=int(mem.used) if mem is not None else None,
            memory_free_bytes=int(mem.free) if mem is not None else None,
            memory_reserved_bytes=_int(getattr(mem, "reserved", None)),
            memory_total_bytes=int(mem.total) if mem is not None else None,
            util_percent=float(util.gpu) if util is not None else None,
            memory_util_percent=float(util.memory) if util is not None else None,
            encoder_util_percent=float(enc[0]) if enc is not None else None,
            decoder_util_percent=float(dec[0]) if dec is not None else None,
            power_w=power_mw / 1000 if power_mw is not None else None,
            power_limit_w=limit_mw / 1000 if limit_mw is not None else None,
            energy_mj=get(lambda: int(nv.nvmlDeviceGetTotalEnergyConsumption(h))),
            temp_c=_float(get(lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))),
            memory_temp_c=self._memory_temp(h),
            sm_clock_mhz=_float(get(lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM))),
            memory_clock_mhz=_float(get(lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM))),
            clocks_event_reasons=int(reasons) if reasons is not None else None,
            # 0 is "no XID since the watch began" (DCGM's value too); None: this GPU cannot be watched
            last_xid=last if last is not None else (0 if d.xid_watched and self._event_thread else None),
            xid_counts=xids,
        )

    def _memory_temp(self, h: Any) -> float | None:
        nv = self._nvml
        values = self._get(lambda: nv.nvmlDeviceGetFieldValues(h, [nv.NVML_FI_DEV_MEMORY_TEMP]))
        if not values or values[0].nvmlReturn != nv.NVML_SUCCESS:
            return None
        v = values[0]
        # the value's union member follows valueType (nvmlValueType_t: 0 double, 1 uint, ...)
        member = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal"}.get(
            int(v.valueType), "uiVal"
        )
        temp = float(getattr(v.value, member))
        return temp if temp > 0 else None

    def close(self) -> None:
        self._stop.set()
        if self._event_thread is not None:
            self._event_thread.join(timeout=5)
        if self._open:
            nv = self._nvml
            if self._event_set is not None:
                self._get(lambda: nv.nvmlEventSetFree(self._event_set))
            self._get(nv.nvmlShutdown)
            self._open = False


def _or(value: Any, default: int) -> Any:
    return default if value is None else value


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None
