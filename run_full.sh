#!/usr/bin/env bash
# run_full.sh: the full result of the README on one GPU (the "longer preset" of the main job).
#
#   bash run_full.sh train    # oracle LoRAs, the multi-task LoRA and T2L (SFT), in parallel processes
#   bash run_full.sh eval     # T2L (reconstruction) from the oracle library, then the zero-shot table
#   bash run_full.sh          # both
#
# Small models leave a GPU mostly idle (each step is a few ms of compute and many kernel launches),
# so the independent trainings run as parallel processes. Every size below can be overridden from
# the environment, e.g. `T2L_STEPS=500 ORACLE_WORKERS=2 bash run_full.sh`. Outputs go to runs/.
set -euo pipefail
cd "$(dirname "$0")"
STAGE=${1:-all}
VARIANT=${VARIANT:-S}                  # T2L variant for SFT and reconstruction
T2L_STEPS=${T2L_STEPS:-2000}           # T2L SFT steps (batch: T2L_BATCH different tasks, one example each)
T2L_BATCH=${T2L_BATCH:-32}
MT_STEPS=${MT_STEPS:-600}              # multi-task LoRA steps (batch 32)
ORACLE_STEPS=${ORACLE_STEPS:-120}      # per-task LoRA steps (batch 32, lr 2e-3)
ORACLE_WORKERS=${ORACLE_WORKERS:-8}    # parallel processes training oracle LoRAs
ORACLE_TRAIN_PER_FAMILY=${ORACLE_TRAIN_PER_FAMILY:-3}  # training tasks per family in the oracle library
RECON_STEPS=${RECON_STEPS:-3000}
EVAL_N=${EVAL_N:-32}                   # test examples per task in the table
EVAL_TASKS=${EVAL_TASKS:-test}         # tasks of the table: a split or comma-separated names
BENCH_N=${BENCH_N:-200}                # questions per benchmark (log-likelihood scoring)
ORACLE_TASKS=${ORACLE_TASKS:-}         # comma-separated; default: every unseen test task + the library tasks
LIMIT=${LIMIT:-0}                      # seconds after which a training process is stopped (0 = none); it keeps its checkpoints
export PYTHONUNBUFFERED=1
mkdir -p runs/logs

run() {  # run NAME CMD...: in the background, output to runs/logs/NAME.log
    local name=$1; shift
    if [ "$LIMIT" -gt 0 ]; then set -- timeout "$LIMIT" "$@"; fi
    "$@" > "runs/logs/$name.log" 2>&1 &
}

if [ "$STAGE" = train ] || [ "$STAGE" = all ]; then
    test_tasks=$(python -m data --names test)
    train_tasks=$(python -m data --names train --per-family "$ORACLE_TRAIN_PER_FAMILY")
    # oracle LoRAs: the unseen test tasks first (the table's upper bound), then the library tasks
    IFS=, read -ra all <<< "${ORACLE_TASKS:-$test_tasks,$train_tasks}"
    for ((w = 0; w < ORACLE_WORKERS; w++)); do
        mine=()
        for ((i = w; i < ${#all[@]}; i += ORACLE_WORKERS)); do mine+=("${all[i]}"); done
        run "oracle_$w" python train_sft.py --variant lora --task "$(IFS=,; echo "${mine[*]}")" --steps "$ORACLE_STEPS" \
            --batch-size 32 --lr 2e-3 --resume
    done
    run mt_lora python train_sft.py --variant mt_lora --steps "$MT_STEPS" --batch-size 32 --lr 1e-3
    run "t2l_$VARIANT" python train_sft.py --variant "$VARIANT" --steps "$T2L_STEPS" --batch-size "$T2L_BATCH" \
        --val-every 200 --ckpt-every 200 --final-tasks 4 --final-examples 8
    wait || true
    tail -n 3 runs/logs/*.log
fi

if [ "$STAGE" = eval ] || [ "$STAGE" = all ]; then
    # the library for reconstruction and for the average-LoRA baseline: the training tasks' oracles
    rm -rf runs/library && mkdir -p runs/library
    train_all=$(python -m data --names train)
    for d in runs/lora/*/adapter; do
        t=$(basename "$(dirname "$d")")
        if [[ ",$train_all," == *",$t,"* ]]; then mkdir -p "runs/library/$t" && cp -r "$d" "runs/library/$t/"; fi
    done
    # everything below is independent work for one GPU: parallel processes, then one merged table
    for k in 4 8 16; do  # the library-size sweep (runs/recon_S/sweep_K)
        run "recon_$k" python train_recon.py --variant "$VARIANT" --library runs/library --steps "$RECON_STEPS" \
            --batch-size "$k" --eval-n 16 --sweep "$k" --out "runs/recon_$VARIANT"
    done
    run recon_all python train_recon.py --variant "$VARIANT" --library runs/library --steps "$RECON_STEPS" \
        --batch-size 64 --eval-n 16 --out "runs/recon_$VARIANT"
    IFS=, read -ra names <<< "$(python -m data --names "$EVAL_TASKS" 2>/dev/null || echo "$EVAL_TASKS")"
    parts=()
    for ((p = 0; p < 3; p++)); do  # the table, split over three processes by task
        mine=(); for ((i = p; i < ${#names[@]}; i += 3)); do mine+=("${names[i]}"); done
        [ ${#mine[@]} -eq 0 ] && continue
        run "eval_test_$p" python eval.py --tasks "$(IFS=,; echo "${mine[*]}")" --n "$EVAL_N" --t2l "runs/t2l_$VARIANT/best" \
            --oracles runs/lora --mt-lora runs/mt_lora/adapter --out "runs/eval_test_$p"
        parts+=("runs/eval_test_$p")
    done
    run eval_oracles python eval.py --tasks "$(python -m data --names train --per-family "$ORACLE_TRAIN_PER_FAMILY")" \
        --n "$EVAL_N" --methods base,description,oracle --oracles runs/lora --out runs/eval_oracles
    run eval_bench python eval.py --benchmarks all --n "$BENCH_N" \
        --methods base,description,icl,mt_lora,mt_lora_icl,t2l,t2l_icl --t2l "runs/t2l_$VARIANT/best" --mt-lora runs/mt_lora/adapter \
        --out runs/eval_bench
    wait || true
    # the reconstruction-trained T2L as one more column, then one table
    python eval.py --tasks "$EVAL_TASKS" --n "$EVAL_N" --methods t2l --t2l "runs/recon_$VARIANT/final" --out runs/eval_test_recon
    python eval.py --merge "$(IFS=,; echo "${parts[*]}"),runs/eval_test_recon" --out runs/eval_test
fi
