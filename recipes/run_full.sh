#!/usr/bin/env bash
# recipes/run_full.sh: the results of RESULTS.md at GPU scale: the same stages as recipes/run_cpu.sh
# (one definition of the experiment), with sizes for one GPU. Arguments are run_cpu.sh's:
#
#   bash recipes/run_full.sh                # every stage: SNI trainings, the zero-shot table, the ablations, the map, benchmarks
#   bash recipes/run_full.sh sni            # only the SNI stages
#   bash recipes/run_full.sh --list         # the stages, and which are done
#
# Stages resume after a kill (checkpoints every CKPT_EVERY steps); outputs go to runs/full, tables
# and plots to results/full_*. Every size can still be overridden from the environment, e.g.
# `SNI_STEPS=4000 bash recipes/run_full.sh sni`. What differs from the CPU preset, and why:
#   - the SNI trainings are ~20x longer, with 32 tasks per step (a GPU step costs about what a CPU
#     step of 8 does on this small model), and every ablation runs on SNI rather than the built-in suite;
#   - the oracle library holds 48 training tasks, so reconstruction and the average LoRA mean something;
#   - the tables score 32 examples per task, every unseen task, and 200 questions per benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."                  # the repository root, as run_cpu.sh
export OUT=${OUT:-runs/full}
export RESULTS=${RESULTS:-results/full}
export DEVICE=${DEVICE:-cuda}
export SNI_STEPS=${SNI_STEPS:-1500}
export SNI_BATCH=${SNI_BATCH:-32}
export SNI_VARIANTS=${SNI_VARIANTS:-S M L}
export ORACLE_STEPS=${ORACLE_STEPS:-120}
export ORACLE_BATCH=${ORACLE_BATCH:-16}
export LIBRARY=${LIBRARY:-48}
export RECON_STEPS=${RECON_STEPS:-3000}
export EVAL_N=${EVAL_N:-32}
export ABL_DATA=${ABL_DATA:-sni}
export ABL_STEPS=${ABL_STEPS:-1000}
export ABL_TASKS=${ABL_TASKS:-12 24 48}
export ABL_DESCS=${ABL_DESCS:-1 4}
export ABL_EVAL_TASKS=${ABL_EVAL_TASKS:-0}
export BENCH_N=${BENCH_N:-200}
export CKPT_EVERY=${CKPT_EVERY:-200}
exec bash recipes/run_cpu.sh "$@"
