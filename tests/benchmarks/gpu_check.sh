#!/usr/bin/env bash
# The checks that need a GPU, as one script for a lent H100/H200 (the device tool), e.g.
#
#   run(command="bash tests/benchmarks/gpu_check.sh", carry=["python/salibi/_core.abi3.so"], timeout_s=540)
#
# 1. the test suite's CUDA-marked tests (model bf16 on CUDA, eval features on CUDA, pretrain on 1 GPU);
# 2. 50 pretraining steps of `base` in bf16 on synthetic data at batch 32: samples/s, tokens/s,
#    peak memory, MFU;
# 3. the base encoder, SDPA against the authors' einsum attention, in bf16.
# Works with an installed salibi, or from a checkout whose Rust core was built elsewhere
# (python/salibi/_core.abi3.so carried along): then python/ is put on PYTHONPATH.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import salibi._core" 2>/dev/null; then
  export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
status=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch, salibi; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'salibi', salibi.__version__)"

echo "== CUDA-marked tests"
"$PY" -m pytest -q -m cuda -p no:cacheprovider tests/models tests/train tests/eval || status=1

echo "== pretraining step: base, bf16, batch 32"
"$PY" tests/benchmarks/gpu_train_step.py --model base --batch 32 --steps 50 || status=1

echo "== base encoder: SDPA vs einsum attention, bf16"
"$PY" tests/benchmarks/encoder.py --device cuda --batch 8 --skip-train || status=1
exit $status
