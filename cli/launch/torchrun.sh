#!/usr/bin/env bash
# Launch recipes for `salibi pretrain` with PyTorch's own launcher (torchrun).
#
# salibi starts local ranks itself (`--gpus N`), so torchrun is only needed for several
# nodes, or to control rendezvous yourself. Under torchrun, salibi sees RANK, WORLD_SIZE and
# LOCAL_RANK and acts as one rank: do not pass --gpus or --cpu-procs then.
# --batch-size is always the GLOBAL batch of one optimizer step (split over all ranks), so the
# same command gives the same training on 1, 8 or 64 GPUs.
set -euo pipefail

DATA=${DATA:-/data/aligned/*.h5}
RUN=${RUN:-runs/base-$(date +%Y%m%d)}

case "${1:-one-node}" in
  one-node)
    # Equivalent to `salibi pretrain ... --gpus 8`, with torchrun doing the spawning.
    torchrun --standalone --nproc-per-node 8 -m salibi pretrain $DATA --out "$RUN" \
      --model base --batch-size 512 --epochs 100 --resume
    ;;
  multi-node)
    # Run this same command on every node; HEAD is the first node's address.
    : "${HEAD:?set HEAD to the hostname of the first node}" "${NNODES:?set NNODES}"
    torchrun --nnodes "$NNODES" --nproc-per-node 8 \
      --rdzv-backend c10d --rdzv-endpoint "$HEAD:29500" --rdzv-id "salibi-$(basename "$RUN")" \
      -m salibi pretrain $DATA --out "$RUN" --model base --batch-size 2048 --epochs 100 --resume
    ;;
  cpu)
    # No GPU: 4 gloo ranks on this machine's cores (what the tests use, with the tiny model).
    salibi pretrain $DATA --out "$RUN" --model tiny --cpu-procs 4 --batch-size 32 --max-steps 1000
    ;;
  *)
    echo "usage: $0 [one-node|multi-node|cpu]" >&2
    exit 2
    ;;
esac
