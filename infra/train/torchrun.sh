#!/usr/bin/env bash
# Multi-GPU / multi-node launch of one HiVid training stage with torchrun (one process per GPU).
#
#   single node, 8 GPUs:   NPROC=8 infra/train/torchrun.sh 1
#   node k of M nodes:     NNODES=M NODE_RANK=k MASTER_ADDR=host0 NPROC=8 infra/train/torchrun.sh 2
#
# Every rank runs `hivid train`; Lightning reads RANK/WORLD_SIZE/LOCAL_RANK from torchrun, only rank 0
# opens the MLflow run and writes the model. params.yaml `train_stage<N>:` must set
# `strategy: ddp`, `devices: <NPROC>`, `num_nodes: <NNODES>` (or pass a params file with them).
set -euo pipefail
STAGE="${1:?usage: torchrun.sh STAGE(1|2) [extra hivid train args]}"
shift
NPROC="${NPROC:-$(python -c 'import torch; print(max(1, torch.cuda.device_count()))')}"
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-29500}"
PARAMS="${PARAMS:-params.yaml}"

exec torchrun \
  --nnodes "${NNODES}" --node_rank "${NODE_RANK}" --nproc_per_node "${NPROC}" \
  --master_addr "${MASTER_ADDR}" --master_port "${MASTER_PORT}" \
  --no-python hivid train --stage "${STAGE}" --params "${PARAMS}" "$@"
