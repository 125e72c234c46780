#!/usr/bin/env bash
# The checks that need a GPU, as one script for a lent H100/H200 (the device tool):
#
#   bash tests/benchmarks/make_gpu_bundle.sh                   # here: .gpu-bundle/ (core + wheels)
#   GPU_CHECK_DRY_RUN=1 bash tests/benchmarks/gpu_check.sh     # here: rehearse every step on the CPU
#   run(command="bash tests/benchmarks/gpu_check.sh", carry=[".gpu-bundle"], timeout_s=540)
#
# The GPU machine has Python 3.12 with its own torch, h5py, click, rich, pytest and safetensors,
# but no salibi core, no rasterio and no network: .gpu-bundle/ brings the abi3 core built here
# (copied into python/salibi/, python/ put on PYTHONPATH: the working tree's code runs) and
# rasterio's wheels (installed into a scratch folder). Steps, about 6 minutes on an H200:
# 1. the CUDA-marked tests: models (flex vs SDPA losses and gradients in float32 and bf16, memory),
#    pretraining on one GPU, eval features on CUDA;
# 2. one self-attention layer of base, flex vs SDPA, at 1k, 4k and 10k kept tokens, bf16:
#    forward + backward time, peak memory, largest differences of outputs and gradients;
# 3. pretraining steps of base in bf16 at batch 32, flex then SDPA: tokens/s, MFU, peak memory;
# 4. the base encoder, einsum vs SDPA vs flex: forward, forward + backward, peak memory at 1k/4k tokens.
# GPU_CHECK_DRY_RUN=1 runs the same commands on the CPU, shrunk (tiny sizes, few steps, SDPA
# for training: torch has no FlexAttention backward there), with the packages the GPU machine
# lacks and the bundle does not bring (shapely, faiss, umap, pyproj) made unimportable, so a
# missing import shows here first. Exit status 1 if any step failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
DRY=${GPU_CHECK_DRY_RUN:-0}
export PYTHONUNBUFFERED=1
status=0
step() { echo; echo "== $*"; }

if [ -d .gpu-bundle ]; then
  if ! "$PY" -c "import salibi._core" 2>/dev/null && [ ! -e python/salibi/_core.abi3.so ]; then
    cp .gpu-bundle/_core.abi3.so python/salibi/
  fi
  if [ "$DRY" = 1 ]; then  # here the venv has these packages; check only that the bundle installs
    site=$(mktemp -d)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --target "$site" .gpu-bundle/*.whl &&
      echo "bundle: $(ls .gpu-bundle/*.whl | wc -l) wheels install for CPython 3.12 without an index" || status=1
    rm -rf "$site"
  elif ls .gpu-bundle/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/salibi-site .gpu-bundle/*.whl || status=1
    export PYTHONPATH="/tmp/salibi-site${PYTHONPATH:+:$PYTHONPATH}"
  fi
fi
if ! "$PY" -c "import salibi._core" 2>/dev/null; then
  export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ "$DRY" = 1 ]; then  # what the GPU machine does not have, and the bundle does not bring
  blocked=$(mktemp -d)
  for module in shapely faiss umap pyproj; do
    mkdir -p "$blocked/$module"
    echo "raise ImportError('$module: not on the GPU machine (GPU_CHECK_DRY_RUN)')" >"$blocked/$module/__init__.py"
  done
  export PYTHONPATH="$blocked:${PYTHONPATH:-}"
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
"$PY" -c "import sys, torch, salibi._core as c; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), 'core', c.build_info())" || status=1
if [ "$DRY" != 1 ] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "no CUDA device: run with GPU_CHECK_DRY_RUN=1 to rehearse on the CPU" >&2
  exit 1
fi

step "CUDA-marked tests"
"$PY" -m pytest -q -m cuda -p no:cacheprovider \
  tests/models/test_models_cuda.py tests/models/test_flex_cuda.py tests/train/test_cuda.py tests/eval/test_features.py ||
  status=1

if [ "$DRY" = 1 ]; then
  step "one attention layer, flex vs sdpa (dry run: CPU, forward, 256 and 1024 tokens)"
  "$PY" tests/benchmarks/flex_vs_sdpa.py --device cpu --tokens 256,1024 --repeats 1 || status=1
  step "pretraining steps (dry run: tiny on the CPU, sdpa)"
  "$PY" tests/benchmarks/gpu_train_step.py --device cpu --model tiny --batch 4 --steps 2 --warmup 1 --attention sdpa ||
    status=1
  step "base encoder: einsum vs sdpa vs flex (dry run: CPU, 64 tokens; memory at 256)"
  "$PY" tests/benchmarks/encoder.py --device cpu --batch 1 --image 128 --repeats 1 --memory-tokens 256 --skip-train ||
    status=1
  exit $status
fi

step "one attention layer of base, flex vs sdpa, bf16: 1k, 4k, 10k kept tokens"
"$PY" tests/benchmarks/flex_vs_sdpa.py --tokens 1024,4096,10000 --batch 4 || status=1

step "pretraining steps: base, bf16, batch 32 (flex, then sdpa)"
for attention in flex sdpa; do
  "$PY" tests/benchmarks/gpu_train_step.py --model base --batch 32 --steps 30 --attention "$attention" || status=1
done

step "base encoder: einsum vs sdpa vs flex, bf16"
"$PY" tests/benchmarks/encoder.py --device cuda --batch 8 --skip-train --memory-tokens 1024,4096 || status=1
exit $status
