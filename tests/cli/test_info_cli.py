from __future__ import annotations

import json

from click.testing import CliRunner

from salibi.cli import cli


def test_info_reports_versions_and_cache():
    result = CliRunner().invoke(cli, ["info"])
    assert result.exit_code == 0, result.output
    for label in ("salibi", "core", "torch", "CUDA", "NCCL", "rasterio", "GDAL", "h5py", "bias cache"):
        assert label in result.output


def test_info_json_is_machine_readable():
    import torch

    result = CliRunner().invoke(cli, ["info", "--json"])
    facts = json.loads(result.output)
    assert facts["torch"] == torch.__version__
    assert facts["cuda_available"] == torch.cuda.is_available()
    assert set(facts["bias_cache"]) == {"hits", "misses", "entries", "bytes", "max_bytes"}
    assert facts["core"]["profile"] == "release"
