"""GPU identity and energy through NVML (nvidia-ml-py); everything is None without a GPU."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class GpuInfo:
    name: str | None
    driver: str | None


def _nvml() -> Any | None:
    try:
        import pynvml  # noqa: PLC0415 - optional at runtime, absent on CPU-only hosts

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - NVML raises its own error types or fails to load
        return None
    return pynvml


def _handle(nvml: Any) -> Any:
    return nvml.nvmlDeviceGetHandleByIndex(int(os.environ.get("AGENT_GPU_INDEX", "0")))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def gpu_info() -> GpuInfo | None:
    """Name and driver of the job's GPU, or None when NVML is unavailable."""
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        name = nvml.nvmlDeviceGetName(_handle(nvml))
        driver = nvml.nvmlSystemGetDriverVersion()
    except Exception:  # noqa: BLE001
        return None
    finally:
        nvml.nvmlShutdown()
    return GpuInfo(name=_text(name), driver=_text(driver))


def energy_millijoules() -> int | None:
    """Total energy the job's GPU used since the driver loaded, or None."""
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        return int(nvml.nvmlDeviceGetTotalEnergyConsumption(_handle(nvml)))
    except Exception:  # noqa: BLE001 - not supported on every GPU
        return None
    finally:
        nvml.nvmlShutdown()


def energy_joules(*, before_mj: int | None, after_mj: int | None) -> float | None:
    if before_mj is None or after_mj is None:
        return None
    return round((after_mj - before_mj) / 1000.0, 3)
