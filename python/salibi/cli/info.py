"""``salibi info``: what this installation is made of and what hardware it sees."""

from __future__ import annotations

import json
import platform

import click


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def collect() -> dict[str, object]:
    """Versions, accelerator and cache facts as a plain dict."""
    import h5py
    import numpy
    import rasterio
    import torch

    from salibi import __version__, _core

    cuda = torch.cuda.is_available()
    nccl = None
    if torch.distributed.is_available() and torch.distributed.is_nccl_available():
        try:  # the library is bundled with CUDA builds of torch; a GPU is not needed to ask
            nccl = ".".join(map(str, torch.cuda.nccl.version()))
        except (RuntimeError, AttributeError):
            nccl = None
    return {
        "salibi": __version__,
        "core": dict(_core.build_info()),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
        "torch_cuda_build": torch.version.cuda,
        "cuda_available": cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "bf16_supported": bool(cuda and torch.cuda.is_bf16_supported()),
        "nccl": nccl,
        "gloo": torch.distributed.is_available() and torch.distributed.is_gloo_available(),
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "bias_cache": dict(_core.cache_info()),
    }


@click.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def command(as_json: bool) -> None:
    """Versions, CUDA/NCCL, core build and bias-cache statistics."""
    facts = collect()
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    core = facts["core"]
    cache = facts["bias_cache"]
    assert isinstance(core, dict) and isinstance(cache, dict)
    gpus = facts["gpus"]
    assert isinstance(gpus, list)
    rows = [
        ("salibi", facts["salibi"]),
        ("core", f"{core['version']} ({core['profile']} build, {core['threads']} threads, {core['target']})"),
        ("python", facts["python"]),
        ("numpy", facts["numpy"]),
        ("torch", f"{facts['torch']} (CUDA build {facts['torch_cuda_build'] or 'none'})"),
        ("CUDA", f"{len(gpus)} GPU(s): {', '.join(gpus)}" if gpus else "not available (CPU only)"),
        ("bf16", "yes" if facts["bf16_supported"] else "no"),
        ("NCCL", facts["nccl"] or "not available"),
        ("gloo", "yes" if facts["gloo"] else "no"),
        ("rasterio", f"{facts['rasterio']} (GDAL {facts['gdal']})"),
        ("h5py", f"{facts['h5py']} (HDF5 {facts['hdf5']})"),
        (
            "bias cache",
            f"{cache['entries']} tables, {_human_bytes(cache['bytes'])} of {_human_bytes(cache['max_bytes'])}, "
            f"{cache['hits']} hits, {cache['misses']} misses",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name:<{width}}  {value}")
