"""GEO-Bench feature extraction speed and memory on m-eurosat-sized inputs.

    python tests/benchmarks/eval_features.py [--samples 512] [--model tiny] [--device auto] [--batch-size 64]

Writes a synthetic task of 13-band int16 64x64 samples in GEO-Bench's layout (one HDF5 file per
sample with geobench's pickled metadata, as m-eurosat), then in this one process measures:

- ``encode``: the encoder alone on tensors already in memory (the ceiling);
- ``read``: reading and preparing samples only (HDF5, safe unpickling, normalisation);
- ``pipeline``: :func:`salibi.eval.features.extract_features` end to end, batch 64;
- ``unbatched``: the same with batch size 1;
- ``readers``: the pipeline with ``--num-workers`` reader processes.

It prints samples/s and the ratios pipeline/encode and pipeline/unbatched, then the peak of
Python-tracked memory for N and 4N samples: streaming keeps it flat (only the (N, D) result grows).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import torch

from salibi.bands import S2_ORDER
from salibi.distributed.ranks import resolve_device
from salibi.eval.band_matching import map_task_bands
from salibi.eval.evaluate import checkpoint_bands
from salibi.eval.features import extract_features
from salibi.eval.geobench import safe_pickle
from salibi.eval.geobench.sample_tasks import _S2_BANDS
from salibi.eval.geobench.tasks import Task
from salibi.eval.model_inputs import band_normalisation, prepare_sample
from salibi.models import build


def write_task(root: Path, count: int) -> Task:
    task_dir = root / "classification_v1.0" / "m-bench"
    task_dir.mkdir(parents=True)
    records = [
        safe_pickle.make_record("geobench.dataset.Sentinel2", name=n, alt_names=a, spatial_resolution=r, wavelength=w)
        for n, a, r, w in _S2_BANDS
    ]
    label_type = safe_pickle.make_record("geobench.label.Classification", n_classes=10, _class_names=None)
    specs = safe_pickle.make_record(
        "geobench.task.TaskSpecifications",
        dataset_name="m-bench",
        patch_size=(64, 64),
        n_time_steps=1,
        bands_info=records,
        label_type=label_type,
        spatial_resolution=10,
    )
    (task_dir / "task_specs.pkl").write_bytes(safe_pickle.dumps(specs))
    rng = np.random.default_rng(0)
    names = []
    for i in range(count):
        name = f"id_{i:05d}"
        attrs: dict = {"label": i % 10}
        with h5py.File(task_dir / f"{name}.hdf5", "w") as f:
            for record in records:
                key = record.fields["name"]
                f.create_dataset(key, data=rng.integers(500, 3000, (64, 64), dtype=np.int16))
                attrs[key] = {
                    "date": None,
                    "date_id": None,
                    "spatial_resolution": 10,
                    "band_info": record,
                    "meta_info": None,
                    "transform": None,
                    "crs": None,
                }
            attrs["bands_order"] = [r.fields["name"] for r in records]
            f.attrs["pickle"] = safe_pickle.dumps_attribute(attrs)
        names.append(name)
    (task_dir / "default_partition.json").write_text(json.dumps({"train": names, "valid": [], "test": []}))
    return Task(task_dir)


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:8.1f} samples/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=2, help="reader processes for the last pipeline run")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = build(args.model, modalities=("sar", "lores"), channels={"lores": 13}).to(device).eval()
    model.modality_info["lores"]["bands"] = list(S2_ORDER)
    model.modality_info["sar"]["bands"] = ["VV", "VH"]

    with tempfile.TemporaryDirectory() as tmp:
        task = write_task(Path(tmp), 4 * args.samples)
        bands, gsd = checkpoint_bands(model)
        inputs = map_task_bands(task.specs, bands, gsd, task.name)
        everything = task.partition()["train"]
        names = everything[: args.samples]
        stats = band_normalisation(task, inputs, names)
        print(
            f"{args.samples} samples of 13x64x64 int16, model {args.model} (dim {model.config.dim}, "
            f"patch {model.config.patch_size}), device {device}, batch {args.batch_size}, "
            f"torch threads {torch.get_num_threads()}"
        )

        # warm-up (allocator, kernels, page cache)
        extract_features(model, task, inputs, names[: args.batch_size], stats, args.batch_size, device)

        arrays = np.stack(
            [prepare_sample(task.read_sample(n), inputs.modalities[0], stats, 8, False)[0] for n in names]
        )
        images = torch.from_numpy(arrays).to(device)
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            for i in range(0, len(images), args.batch_size):
                model.encode(images[i : i + args.batch_size], modality="lores", gsd=10.0).float().mean(1).cpu()
        if device.type == "cuda":
            torch.cuda.synchronize()
        encode = time.perf_counter() - start

        start = time.perf_counter()
        for n in names:
            prepare_sample(task.read_sample(n), inputs.modalities[0], stats, 8, False)
        read = time.perf_counter() - start

        start = time.perf_counter()
        extract_features(model, task, inputs, names, stats, args.batch_size, device)
        pipeline = time.perf_counter() - start

        start = time.perf_counter()
        extract_features(model, task, inputs, names, stats, 1, device)
        unbatched = time.perf_counter() - start

        start = time.perf_counter()
        extract_features(model, task, inputs, names, stats, args.batch_size, device, num_workers=args.num_workers)
        workers = time.perf_counter() - start

        print(f"encode (tensors in memory) {rate(len(names), encode)}")
        print(f"read + prepare only        {rate(len(names), read)}")
        print(f"pipeline, batch {args.batch_size:<4d}      {rate(len(names), pipeline)}")
        print(f"pipeline, batch 1          {rate(len(names), unbatched)}")
        print(f"pipeline, {args.num_workers} reader procs  {rate(len(names), workers)}")
        print(f"ratio pipeline / encode     {encode / pipeline:.2f}  (1.0 = reading costs nothing)")
        print(f"ratio pipeline / unbatched  {unbatched / pipeline:.2f}x faster batched")
        print(f"ratio readers / pipeline    {pipeline / workers:.2f}x faster with {args.num_workers} reader processes")

        peaks = []
        for subset in (names, everything):
            tracemalloc.start()
            extract_features(model, task, inputs, subset, stats, args.batch_size, device)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        print(
            f"peak Python-tracked memory: {peaks[0] / 2**20:.1f} MiB for {len(names)} samples, "
            f"{peaks[1] / 2**20:.1f} MiB for {len(everything)} (ratio {peaks[1] / peaks[0]:.2f}; "
            f"the inputs alone would be {len(everything) * 13 * 64 * 64 * 4 / 2**20:.0f} MiB)"
        )


if __name__ == "__main__":
    main()
