#!/usr/bin/env bash
# One cell of bench/gpu_fixture (a CUDA matmul) through the runner agent's own pieces, on a GPU
# machine, printing the cell's JSON: state, counts, environment (python, torch, cuda, the GPU
# with its driver), torch's CUDA build and the GPU energy the run used (joules).
#
#   bench/gpu_check.sh            on the GPU machine (no network, no uv, Celery or Redis needed)
#   bench/gpu_check.sh --vendor   here, before: copies the pure-Python packages the agent's
#                                 pieces need (pytest, packaging, defusedxml, junitparser,
#                                 nvidia-ml-py) from .venv into bench/gpu_fixture/vendor, so
#                                 they travel with the working tree; delete it afterwards
#
# It uses the machine's own interpreter and torch (GPU_CHECK_PYTHON, default python3): no
# environment is built. The test runs in the agent's bubblewrap sandbox (`sandbox.run_sandboxed`,
# binding only the job's GPU, AGENT_GPU_INDEX, default 0) and is judged by `results.judge_run`;
# without bwrap it runs bare, with a note (our own fixture, not untrusted code). Per-job limits
# are waived where cgroups are missing (AGENT_ALLOW_UNLIMITED=1).
# GPU_CHECK_ALLOW_CPU=1 lets the fixture run on the CPU (for the agent's tests on hosts without
# a GPU). Exit status: 0 when the cell passed, 1 otherwise.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
vendor="${GPU_CHECK_VENDOR:-$repo/bench/gpu_fixture/vendor}"
python="${GPU_CHECK_PYTHON:-python3}"
packages=(_pytest pytest pluggy iniconfig pygments py.py packaging defusedxml junitparser pynvml.py)

if [[ "${1:-}" == "--vendor" ]]; then
    site=$(ls -d "$repo"/.venv/lib/python3*/site-packages | head -n 1)
    mkdir -p "$vendor"
    for name in "${packages[@]}"; do
        [[ -e "$site/$name" ]] && cp -r "$site/$name" "$vendor/"
    done
    for dist in pytest pluggy iniconfig pygments packaging defusedxml junitparser nvidia_ml_py; do
        cp -r "$site/$dist"-*.dist-info "$vendor/"  # some read their own version at import
    done
    echo "vendored into $vendor: $(ls "$vendor" | tr '\n' ' ')"
    exit 0
fi

export GPU_CHECK_REPO="$repo"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
missing=$("$python" - <<'EOF'
import importlib.util
names = ["pytest", "packaging", "defusedxml", "junitparser", "torch"]
print(" ".join(n for n in names if importlib.util.find_spec(n) is None))
EOF
)
if [[ -n "$missing" && -d "$vendor" ]]; then
    export PYTHONPATH="$PYTHONPATH:$vendor"
    export GPU_CHECK_VENDOR_DIR="$vendor"
    missing=$("$python" -c 'import importlib.util as u; print(" ".join(n for n in
        ["pytest", "packaging", "defusedxml", "junitparser", "torch"] if u.find_spec(n) is None))')
fi
if [[ -n "$missing" ]]; then
    echo "gpu_check: $python lacks: $missing (run 'bench/gpu_check.sh --vendor' on a machine" \
        "with the project's .venv first; torch must be the machine's own)" >&2
    exit 2
fi
command -v bwrap >/dev/null || echo "gpu_check: note: no bwrap here, the fixture runs WITHOUT sandbox" >&2
export AGENT_ALLOW_UNLIMITED="${AGENT_ALLOW_UNLIMITED:-1}"

exec "$python" - <<'EOF'
"""The check itself: the agent's sandbox, plugin and judge around one pytest run."""

import dataclasses
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from ci_runners.agent import gpu, sandbox
from ci_runners.agent.contracts import CellState
from ci_runners.agent.results import RunEnd, judge_run, read_plugin_report

PLUGIN = "ecoreg_warnings_plugin"
repo = Path(os.environ["GPU_CHECK_REPO"])
work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
work.chmod(0o755)
project = work / "project"
shutil.copytree(repo / "bench" / "gpu_fixture", project, ignore=shutil.ignore_patterns("vendor"))
plugin_dir = work / "plugin"
plugin_dir.mkdir()
shutil.copyfile(repo / "ci_runners/agent/warnings_plugin.py", plugin_dir / f"{PLUGIN}.py")
report, junit = work / "plugin-report.json", work / "junit.xml"
use_bwrap = shutil.which("bwrap") is not None
if use_bwrap:
    try:
        sandbox.check_sandbox()
    except sandbox.SandboxUnavailable as exc:
        print(f"gpu_check: note: {exc}; the fixture runs WITHOUT sandbox", file=sys.stderr)
        use_bwrap = False
vendor = os.environ.get("GPU_CHECK_VENDOR_DIR")
if vendor:  # a copy in the work dir: the sandbox's uid may not reach the checkout
    vendor = str(shutil.copytree(vendor, work / "vendor"))
python_path = ":".join([str(plugin_dir), *([vendor] if vendor else [])])
env = {
    "PYTHONPATH": python_path,
    "ECOREG_REPORT_PATH": str(report),
    "ECOREG_EXPECTED_TORCH": torch.__version__,
    "GPU_CHECK_ALLOW_CPU": os.environ.get("GPU_CHECK_ALLOW_CPU", ""),
    "GPU_CHECK_SANDBOXED": "1" if use_bwrap else "",
}
if not use_bwrap:  # the sandbox sets it from the job's GPU; bare, the host index does
    env["CUDA_VISIBLE_DEVICES"] = str(gpu.job_gpu_index())
# The interpreter, its packages (torch's CUDA libraries among them) and the vendored ones.
site_dir = Path(torch.__file__).resolve().parents[1]
outside_usr = {Path(sys.prefix), Path(sys.base_prefix), site_dir}
ro_binds = sorted(p for p in outside_usr if not str(p).startswith("/usr/"))
spec = sandbox.SandboxSpec(
    command=[sys.executable, "-m", "pytest", "-p", PLUGIN, "-p", "no:cacheprovider",
             f"--junitxml={junit}", "-q", "tests"],
    work_dir=work,
    cwd=project,
    ro_binds=ro_binds,
    env=env,
    timeout_s=240.0,
)
sandbox.give_to_sandbox_user(work)
before = gpu.energy_millijoules()
try:
    run = sandbox.run_sandboxed(spec=spec, sandbox=use_bwrap)
except sandbox.SandboxUnavailable as exc:  # e.g. the interpreter out of the sandbox uid's reach
    print(f"gpu_check: note: {exc}; the fixture runs WITHOUT sandbox", file=sys.stderr)
    use_bwrap = False
    bare_env = {**env, "GPU_CHECK_SANDBOXED": "", "CUDA_VISIBLE_DEVICES": str(gpu.job_gpu_index())}
    run = sandbox.run_sandboxed(spec=dataclasses.replace(spec, env=bare_env), sandbox=False)
energy_j = gpu.energy_joules(before_mj=before, after_mj=gpu.energy_millijoules())
plugin_report = read_plugin_report(path=report)
verdict = judge_run(RunEnd(exit_code=run.exit_code, timed_out=run.timed_out, timeout_s=240.0,
                           junit_path=junit, plugin_report=plugin_report,
                           output_tail=run.output[-2000:]))
info = gpu.gpu_info()
seen = plugin_report.get("environment", {})
cell = {
    "state": str(verdict.state),
    "error": verdict.error,
    "error_code": verdict.error_code,
    "counts": verdict.counts,
    "environment": {
        "python": seen.get("python"),
        "torch": seen.get("torch") or torch.__version__,
        "cuda": seen.get("cuda") or torch.version.cuda,
        "gpu": info.label if info else None,
    },
    "torch_cuda_build": torch.version.cuda,
    "gpu_index": gpu.job_gpu_index(),
    "cuda_visible_devices": sandbox.gpu_device_args()[1].get("CUDA_VISIBLE_DEVICES"),
    "energy_j": energy_j,
    "sandboxed": use_bwrap,
    "notes": run.notes,
    "tests_s": run.duration_s,
}
if verdict.state != CellState.PASSED:
    cell["output_tail"] = run.output[-4000:]
print(json.dumps(cell, indent=2))
shutil.rmtree(work, ignore_errors=True)
sys.exit(0 if verdict.state == CellState.PASSED else 1)
EOF
