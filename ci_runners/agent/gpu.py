"""The job's GPU: which one it is, what it is, and the energy it used; None without a GPU.

Each job gets ONE GPU, by its index as the host's NVML and `nvidia-smi` number them
(PCI bus order): AGENT_GPU_INDEX (default 0), or, for a worker with several pool processes,
AGENT_GPUS ("0,1,2,3"): pool process i takes the i-th GPU of that list (`assign_pool_gpu`, at
pool process start), so the worker's --concurrency must not exceed the list's length.

Identity and energy come from NVML (nvidia-ml-py); where NVML cannot be loaded they come from
`nvidia-smi --query-gpu` (CSV with its header, whose units are read), else they are None.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess  # noqa: S404 - nvidia-smi is run with an argument list, never a shell
from dataclasses import dataclass
from typing import Any

GPU_INDEX_ENV = "AGENT_GPU_INDEX"
POOL_GPUS_ENV = "AGENT_GPUS"
# Asked apart: a driver whose nvidia-smi lacks a field fails the whole query.
SMI_INFO_FIELDS = ("index", "uuid", "name", "driver_version")
SMI_ENERGY_FIELDS = ("index", "energy.consumed")
SMI_TIMEOUT_S = 30
# nvidia-smi prints energy with a unit, in the header ("energy.consumed [J]") or the value.
_ENERGY_UNITS = {"mj": 1.0, "j": 1000.0, "kj": 1_000_000.0}


@dataclass(frozen=True, kw_only=True)
class GpuInfo:
    index: int
    name: str | None
    driver: str | None
    uuid: str | None = None
    # The N of its /dev/nvidiaN node (the driver's minor number; usually, not always, `index`).
    minor: int | None = None

    @property
    def label(self) -> str | None:
        """What the Result records as `environment["gpu"]`: "NVIDIA H200 (driver 570.86)"."""
        if self.name is None:
            return None
        return f"{self.name} (driver {self.driver})" if self.driver else self.name


def job_gpu_index() -> int:
    """AGENT_GPU_INDEX, the host index of the job's GPU (default 0)."""
    text = os.environ.get(GPU_INDEX_ENV, "").strip() or "0"
    if not text.isdigit():
        raise ValueError(f"{GPU_INDEX_ENV} must be a GPU index (0, 1, ...), not {text!r}")
    return int(text)


def assign_pool_gpu(process_index: int) -> int | None:
    """Pool process `process_index` (0-based) takes its GPU from AGENT_GPUS, by setting
    AGENT_GPU_INDEX for itself and the job processes it starts; None when AGENT_GPUS is unset
    (AGENT_GPU_INDEX, or GPU 0, then serves every job of the worker)."""
    text = os.environ.get(POOL_GPUS_ENV, "").strip()
    if not text:
        return None
    gpus = [part.strip() for part in text.split(",") if part.strip()]
    if not all(part.isdigit() for part in gpus):
        raise ValueError(f"{POOL_GPUS_ENV} must list GPU indexes like 0,1,2,3, not {text!r}")
    if process_index >= len(gpus):
        raise ValueError(
            f"pool process {process_index} has no GPU: {POOL_GPUS_ENV}={text} lists "
            f"{len(gpus)}; run the worker with --concurrency={len(gpus)} at most"
        )
    os.environ[GPU_INDEX_ENV] = gpus[process_index]
    return int(gpus[process_index])


def _nvml() -> Any | None:
    try:
        import pynvml  # noqa: PLC0415 - optional at runtime, absent on CPU-only hosts

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - NVMLError_LibraryNotFound, ImportError, driver errors
        return None
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nvml_info(nvml: Any, index: int) -> GpuInfo | None:
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = _text(nvml.nvmlDeviceGetName(handle))
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        uuid = _text(nvml.nvmlDeviceGetUUID(handle))
        minor = int(nvml.nvmlDeviceGetMinorNumber(handle))
    except Exception:  # noqa: BLE001 - NVML raises its own error types
        return None
    return GpuInfo(index=index, name=name, driver=driver, uuid=uuid, minor=minor)


def smi_rows(fields: tuple[str, ...]) -> list[dict[str, str]] | None:
    """`nvidia-smi --query-gpu=<fields> --format=csv` as rows keyed by the header (units kept
    in the keys), or None when nvidia-smi is missing or fails."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        completed = subprocess.run(  # noqa: S603
            [smi, f"--query-gpu={','.join(fields)}", "--format=csv"],
            capture_output=True,
            text=True,
            timeout=SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if completed.returncode != 0:
        return None
    lines = [line for line in completed.stdout.splitlines() if line.strip()]
    reader = csv.reader(lines, skipinitialspace=True)
    rows = [[cell.strip() for cell in row] for row in reader]
    if len(rows) < 2:
        return None
    return [dict(zip(rows[0], row, strict=False)) for row in rows[1:]]


def _smi_value(row: dict[str, str], field: str) -> tuple[str | None, str]:
    """The value of `field` (its header may carry a unit: "energy.consumed [J]") and the
    header's unit; None for nvidia-smi's "[N/A]" / "[Not Supported]"."""
    for key, value in row.items():
        name, _, unit = key.partition(" [")
        if name == field:
            missing = not value or value.startswith("[") or value == "N/A"
            return (None if missing else value), unit.rstrip("]")
    return None, ""


def _smi_row(index: int, fields: tuple[str, ...]) -> dict[str, str] | None:
    for row in smi_rows(fields) or []:
        if _smi_value(row, "index")[0] == str(index):
            return row
    return None


def _smi_info(index: int) -> GpuInfo | None:
    row = _smi_row(index, SMI_INFO_FIELDS)
    if row is None:
        return None
    return GpuInfo(
        index=index,
        name=_smi_value(row, "name")[0],
        driver=_smi_value(row, "driver_version")[0],
        uuid=_smi_value(row, "uuid")[0],
    )


def gpu_info(index: int | None = None) -> GpuInfo | None:
    """The job's GPU (`index`, default AGENT_GPU_INDEX): NVML, else nvidia-smi, else None."""
    index = job_gpu_index() if index is None else index
    nvml = _nvml()
    if nvml is not None:
        try:
            info = _nvml_info(nvml, index)
        finally:
            nvml.nvmlShutdown()
        if info is not None:
            return info
    return _smi_info(index)


def smi_energy_millijoules(row: dict[str, str]) -> int | None:
    """`energy.consumed` of one nvidia-smi row in millijoules, by its unit (the value's own,
    else the header's; joules when neither says)."""
    value, header_unit = _smi_value(row, "energy.consumed")
    if value is None:
        return None
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]*)?)\s*([a-zA-Z]*)", value)
    if match is None:
        return None
    unit = (match.group(2) or header_unit or "J").lower()
    if unit not in _ENERGY_UNITS:
        return None
    return round(float(match.group(1)) * _ENERGY_UNITS[unit])


def energy_millijoules(index: int | None = None) -> int | None:
    """Total energy the job's GPU used since the driver loaded (NVML's counter, else
    nvidia-smi's `energy.consumed`), or None."""
    index = job_gpu_index() if index is None else index
    nvml = _nvml()
    if nvml is not None:
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            return int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        except Exception:  # noqa: BLE001, S110 - not supported on every GPU: try nvidia-smi
            pass
        finally:
            nvml.nvmlShutdown()
    row = _smi_row(index, SMI_ENERGY_FIELDS)
    return smi_energy_millijoules(row) if row is not None else None


def energy_joules(*, before_mj: int | None, after_mj: int | None) -> float | None:
    if before_mj is None or after_mj is None:
        return None
    return round((after_mj - before_mj) / 1000.0, 3)
