"""The GPU check's one test: torch sees exactly the job's GPU and computes on it."""

import os

import torch


def test_cuda_matmul() -> None:
    on_cpu = os.environ.get("GPU_CHECK_ALLOW_CPU") == "1" and not torch.cuda.is_available()
    if not on_cpu:
        assert torch.cuda.is_available(), "torch sees no CUDA device"
        if os.environ.get("GPU_CHECK_SANDBOXED") == "1":
            # The sandbox binds only the job's /dev/nvidiaN: no other GPU may be visible.
            assert torch.cuda.device_count() == 1, torch.cuda.device_count()
    device = "cpu" if on_cpu else "cuda"
    a = torch.ones(256, 256, device=device)
    product = a @ a
    assert product.device.type == device
    assert float(product[0, 0]) == 256.0
