"""One GPU per job, what is recorded of it, and bench/gpu_check.sh, on a host without a GPU:
stand-in device nodes, a stand-in nvidia-smi printing what the real one prints, the real NVML
binding (whose library is absent here) and a real torch environment for the check script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ci_runners.agent import gpu, sandbox
from ci_runners.agent.contracts import CellState, ErrorCode, Job, TestConfig
from ci_runners.agent.runner import run_job

pytestmark = pytest.mark.agent

REPO = Path(__file__).resolve().parents[2]
UV = REPO / ".venv" / "bin" / "uv"
UV_CACHE = Path("/tmp/ecoreg-agent-tests-cache/uv")  # noqa: S108 - shared with conftest
TORCH_WHEELS = "/opt/wheels"


@pytest.fixture
def dev_root(tmp_path: Path) -> Path:
    """A stand-in /dev of a 4-GPU host: plain files where the device nodes would be."""
    root = tmp_path / "dev"
    root.mkdir()
    for name in ("nvidia0", "nvidia1", "nvidia2", "nvidia3", "nvidiactl", "nvidia-uvm"):
        (root / name).touch()
    return root


def _bound(args: list[str]) -> list[tuple[str, str]]:
    """(source, destination) of every --dev-bind in a bwrap argument list."""
    return [(args[i + 1], args[i + 2]) for i, arg in enumerate(args) if arg == "--dev-bind"]


def test_sandbox_binds_only_the_jobs_gpu_and_the_control_nodes(dev_root, monkeypatch):
    monkeypatch.setenv("AGENT_GPU_INDEX", "2")
    args, env = sandbox.gpu_device_args(dev_root=dev_root)
    assert _bound(args) == [
        (str(dev_root / "nvidia2"), "/dev/nvidia2"),
        (str(dev_root / "nvidiactl"), "/dev/nvidiactl"),
        (str(dev_root / "nvidia-uvm"), "/dev/nvidia-uvm"),
    ]
    # The only GPU the sandbox can open is CUDA device 0 there (no NVML here to name its UUID).
    assert env == {"CUDA_VISIBLE_DEVICES": "0"}


def test_optional_control_nodes_and_mig_capabilities_are_bound_when_present(dev_root):
    for name in ("nvidia-uvm-tools", "nvidia-modeset"):
        (dev_root / name).touch()
    (dev_root / "nvidia-caps").mkdir()
    (dev_root / "nvidia-caps" / "nvidia-cap1").touch()
    args, _ = sandbox.gpu_device_args(dev_root=dev_root, index=0)
    assert [destination for _, destination in _bound(args)] == [
        "/dev/nvidia0",
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
        "/dev/nvidia-uvm-tools",
        "/dev/nvidia-modeset",
        "/dev/nvidia-caps/nvidia-cap1",
    ]


def test_a_host_without_the_jobs_gpu_binds_nothing(dev_root):
    assert sandbox.gpu_device_args(dev_root=dev_root, index=7) == ([], {})
    assert sandbox.gpu_device_args(dev_root=dev_root.parent) == ([], {})


def test_pool_process_i_takes_the_ith_gpu_of_agent_gpus(dev_root, monkeypatch):
    monkeypatch.setenv("AGENT_GPUS", "3,1")
    monkeypatch.delenv("AGENT_GPU_INDEX", raising=False)
    assert gpu.assign_pool_gpu(1) == 1
    assert os.environ["AGENT_GPU_INDEX"] == "1"
    args, _ = sandbox.gpu_device_args(dev_root=dev_root)
    gpu_nodes = [src for src, _ in _bound(args) if Path(src).name[len("nvidia") :].isdigit()]
    assert gpu_nodes == [str(dev_root / "nvidia1")]


def test_more_pool_processes_than_gpus_is_refused_clearly(monkeypatch):
    monkeypatch.setenv("AGENT_GPUS", "0,1")
    with pytest.raises(ValueError, match=r"pool process 2 has no GPU.*--concurrency=2"):
        gpu.assign_pool_gpu(2)
    monkeypatch.setenv("AGENT_GPUS", "0,gpu1")
    with pytest.raises(ValueError, match="AGENT_GPUS must list GPU indexes"):
        gpu.assign_pool_gpu(0)


def test_without_agent_gpus_the_pool_keeps_agent_gpu_index(monkeypatch):
    monkeypatch.delenv("AGENT_GPUS", raising=False)
    monkeypatch.setenv("AGENT_GPU_INDEX", "3")
    assert gpu.assign_pool_gpu(5) is None
    assert gpu.job_gpu_index() == 3


def test_a_bad_gpu_index_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("AGENT_GPU_INDEX", "first")
    with pytest.raises(ValueError, match="AGENT_GPU_INDEX must be a GPU index"):
        gpu.job_gpu_index()


def test_a_gpu_job_is_refused_where_its_gpu_is_missing(dev_root, monkeypatch):
    monkeypatch.setenv("AGENT_GPU_INDEX", "5")
    with pytest.raises(sandbox.NoGpuAvailable, match="needs one"):
        sandbox.check_gpu(needs_gpu=True, dev_root=dev_root)
    sandbox.check_gpu(needs_gpu=False, dev_root=dev_root)
    monkeypatch.setenv("AGENT_GPU_INDEX", "3")
    sandbox.check_gpu(needs_gpu=True, dev_root=dev_root)


def test_run_job_refuses_a_needs_gpu_job_on_this_gpu_less_host(make_project, work_root):
    project = make_project(name="gpuproj", files={"tests/test_a.py": "def test_a():\n    pass\n"})
    job = Job(
        source=str(project),
        torch_version="2.13.0",
        torch_variant="cpu",
        test_config=TestConfig(needs_gpu=True),
    )
    result = run_job(job=job, work_root=work_root)
    assert result.state == CellState.ERRORED
    assert result.error_code == str(ErrorCode.SANDBOX_UNAVAILABLE)
    assert result.error is not None and "no GPU here: the job needs one" in result.error
    assert result.timings["checkout_s"] is None  # refused before any work


def test_without_nvml_or_nvidia_smi_everything_is_none(tmp_path, monkeypatch):
    """pynvml is installed but the NVML library is not: None, never an exception."""
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu.gpu_info() is None
    assert gpu.energy_millijoules() is None
    assert gpu.energy_joules(before_mj=None, after_mj=None) is None


FAKE_SMI = """\
#!/bin/sh
# What nvidia-smi --query-gpu ... --format=csv prints: a header with units, one row per GPU.
case "$*" in
  "--query-gpu=index,uuid,name,driver_version --format=csv")
    echo "index, uuid, name, driver_version"
    echo "0, GPU-0aa1c6a9-1111-2222-3333-444455556666, NVIDIA H200, 570.86.15"
    echo "1, GPU-7bb2d7b0-aaaa-bbbb-cccc-ddddeeeeffff, NVIDIA H200, 570.86.15" ;;
  "--query-gpu=index,energy.consumed --format=csv")
    echo "index, energy.consumed [J]"
    echo "0, 12.5 J"
    echo "1, ENERGY1" ;;
  *) echo "Field is not a valid field to query." >&2; exit 2 ;;
esac
"""


def _fake_smi(directory: Path, *, energy_1: str) -> None:
    script = directory / "nvidia-smi"
    script.write_text(FAKE_SMI.replace("ENERGY1", energy_1))
    script.chmod(0o755)


def test_nvidia_smi_fallback_names_the_jobs_gpu_and_its_driver(tmp_path, monkeypatch):
    _fake_smi(tmp_path, energy_1="123456.789 J")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setenv("AGENT_GPU_INDEX", "1")
    info = gpu.gpu_info()
    assert info is not None
    assert (info.index, info.name, info.driver) == (1, "NVIDIA H200", "570.86.15")
    assert info.uuid == "GPU-7bb2d7b0-aaaa-bbbb-cccc-ddddeeeeffff"
    assert info.label == "NVIDIA H200 (driver 570.86.15)"
    assert gpu.energy_millijoules() == 123_456_789
    assert gpu.energy_millijoules(0) == 12_500


def test_nvidia_smi_energy_units_and_missing_values(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    _fake_smi(tmp_path, energy_1="[N/A]")
    assert gpu.energy_millijoules(1) is None
    _fake_smi(tmp_path, energy_1="[Not Supported]")
    assert gpu.energy_millijoules(1) is None
    # A value without its own unit takes the header's.
    assert gpu.smi_energy_millijoules({"index": "0", "energy.consumed [J]": "2.5"}) == 2500
    assert gpu.smi_energy_millijoules({"index": "0", "energy.consumed": "7 mJ"}) == 7


@pytest.fixture(scope="module")
def machine_python(work_root: Path) -> Path:
    """Stands in for the GPU machine's own interpreter with torch: a real venv with torch
    (the CPU build) and nothing else, so pytest and the agent's other needs come vendored."""
    venv = work_root / "machine-python"
    env = {**os.environ, "UV_CACHE_DIR": str(UV_CACHE)}
    subprocess.run(
        [str(UV), "venv", "-q", "--python", "/usr/bin/python3.11", str(venv)], check=True, env=env
    )
    subprocess.run(
        [str(UV), "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
         "--find-links", TORCH_WHEELS, "--index-url", "file:///opt/pypi/simple",
         "torch==2.13.0+cpu"],
        check=True,
        env=env,
    )  # fmt: skip
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def vendor_dir(work_root: Path) -> Path:
    vendor = work_root / "gpu-check-vendor"
    env = {**os.environ, "GPU_CHECK_VENDOR": str(vendor)}
    subprocess.run([str(REPO / "bench" / "gpu_check.sh"), "--vendor"], check=True, env=env)
    return vendor


def _gpu_check(*, python: Path, vendor: Path, allow_cpu: bool) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "GPU_CHECK_PYTHON": str(python),
        "GPU_CHECK_VENDOR": str(vendor),
        "AGENT_CACHE_DIR": os.environ.get("AGENT_CACHE_DIR", ""),
        **({"GPU_CHECK_ALLOW_CPU": "1"} if allow_cpu else {}),
    }
    return subprocess.run(
        [str(REPO / "bench" / "gpu_check.sh")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_gpu_check_script_runs_the_fixture_cell_on_cpu(machine_python, vendor_dir):
    completed = _gpu_check(python=machine_python, vendor=vendor_dir, allow_cpu=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    cell = json.loads(completed.stdout)
    assert cell["state"] == "passed"
    assert cell["counts"]["passed"] == 1
    assert cell["environment"]["gpu"] is None
    assert cell["environment"]["torch"] == "2.13.0+cpu"
    assert cell["energy_j"] is None
    assert cell["sandboxed"] is (shutil.which("bwrap") is not None)


def test_gpu_check_fixture_fails_where_torch_sees_no_cuda(machine_python, vendor_dir):
    """Without GPU_CHECK_ALLOW_CPU the fixture insists on CUDA: on this host the cell fails."""
    completed = _gpu_check(python=machine_python, vendor=vendor_dir, allow_cpu=False)
    assert completed.returncode == 1
    cell = json.loads(completed.stdout)
    assert cell["state"] == "failed"
    assert cell["counts"]["failed"] == 1
    assert "torch sees no CUDA device" in cell["output_tail"]
