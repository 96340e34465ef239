"""Hardware and software metadata of a benchmark run (inference spec §5.3)."""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import jax

PACKAGES = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax-checkpoint",
    "numpy",
    "scipy",
    "jax-cuda13-plugin",
    "jax-cuda12-plugin",
)
ENV_VARS = (
    "XLA_FLAGS",
    "JAX_PLATFORMS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_CPP_MIN_LOG_LEVEL",
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "XLA_PYTHON_CLIENT_MEM_FRACTION",
    "JAX_DEFAULT_MATMUL_PRECISION",
)


def _run(cmd: list[str], cwd: str | None = None) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=cwd)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _versions() -> dict[str, str | None]:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _cpu() -> dict:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "model": model or platform.processor(),
        "logical_cores": os.cpu_count(),
        "usable_cores": affinity,
        "machine": platform.machine(),
    }


def _gpu() -> dict | None:
    query = "name,driver_version,clocks.sm,clocks.mem,clocks.max.sm,power.limit,persistence_mode,compute_mode"
    text = _run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"])
    if not text:
        return None
    info = {
        "nvidia_smi": [dict(zip(query.split(","), (v.strip() for v in line.split(",")))) for line in text.splitlines()]
    }
    try:
        from jax._src.lib import cuda_versions  # type: ignore[attr-defined]

        if cuda_versions is not None:
            info["cuda_runtime"] = cuda_versions.cuda_runtime_get_version()
            info["cudnn"] = cuda_versions.cudnn_get_version()
    except Exception:  # noqa: BLE001 - private API, best effort
        pass
    return info


def _git(root: Path) -> dict:
    commit = _run(["git", "rev-parse", "HEAD"], cwd=str(root))
    status = _run(["git", "status", "--porcelain"], cwd=str(root))
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def collect(device_label: str | None = None) -> dict:
    """Devices, versions, thread/XLA settings, git state and a UTC timestamp."""
    devices = jax.devices()
    root = Path(__file__).resolve().parents[2]
    return {
        "utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device_label": device_label,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in devices],
        "device_kind": devices[0].device_kind,
        "gpu": _gpu() if jax.default_backend() == "gpu" else None,
        "cpu": _cpu(),
        "versions": _versions(),
        "env": {k: os.environ.get(k) for k in ENV_VARS},
        "git": _git(root),
        "platform": platform.platform(),
    }


@dataclasses.dataclass(frozen=True)
class MetadataJob:
    """The run's metadata, collected in a worker like every job (the parent never initializes a backend)."""

    kind: ClassVar[str] = "metadata"
    device_label: str | None = None

    def run(self) -> list[dict]:
        return [collect(self.device_label)]
