#!/usr/bin/env bash
# recipes/run_cpu.sh: the results of RESULTS.md on 2 CPU cores (the SNI stages 94 min, the ablations about 45), stage by stage.
#
#   bash recipes/run_cpu.sh                 # every stage in order
#   bash recipes/run_cpu.sh sni abl         # only the stages whose name starts with one of these words
#   bash recipes/run_cpu.sh --list          # the stages, and which are done
#
# It runs from the repository root whatever the current directory (relative OUT / RESULTS paths
# are taken from there too).
#
# Every stage writes under $OUT (runs/cpu) and marks itself done in $OUT/done/<stage>; a finished
# stage is skipped on the next call, and a killed one resumes: the trainings continue from their
# last checkpoint (--resume), the evaluations start again (minutes). Sizes are the variables below;
# override any from the environment, e.g. `SNI_STEPS=40 bash recipes/run_cpu.sh sni`. The tests run the
# whole script on a tiny setting (tests/test_run_scripts.py), so a broken stage fails CI.
#
# What it runs (paper section 4 at the scale of a laptop; recipes/run_full.sh is the GPU version):
#   sni_*   on the SNI tasks shipped in data/sni120: the multi-task LoRA, T2L-S/M/L by SFT, per-task
#           oracle LoRAs (unseen test tasks, and a small library of training tasks), T2L-L by
#           reconstruction of that library, then one zero-shot table on the unseen val + test tasks
#           with every baseline and control (results/cpu/sni_table.md).
#   abl_*   the paper's ablations, on the built-in suite (a step costs a third of an SNI step, and a
#           135M model learns its tasks in 100 steps, so an arm's score means something): number of
#           training tasks, one-hot against description conditioning, descriptions per task, and the
#           task encoder (MiniLM against the base LLM's own mean-pooled states). One plot each.
#   builtin_table  the zero-shot table on the built-in suite (multi-task LoRA, T2L-S = the "all" arm, controls).
#   map     the 2-D map of generated adapters beside that of the task embeddings (paper figure 5).
#   bench   the ten benchmarks with the SNI-trained adapters (first BENCH_N questions of each).
set -euo pipefail
cd "$(dirname "$0")/.."                  # the repository root
OUT=${OUT:-runs/cpu}                    # everything this script writes (results/ gets the tables and plots)
RESULTS=${RESULTS:-results/cpu}         # where the committed tables and plots go
DATA=${DATA:-sni}                       # collection of the sni_* stages: sni | a folder of SNI task files
SNI_STEPS=${SNI_STEPS:-80}              # T2L-S/M/L and multi-task LoRA steps on SNI (batch SNI_BATCH)
SNI_BATCH=${SNI_BATCH:-8}               # 8 different tasks x 1 example per step (the paper's batch)
SNI_VARIANTS=${SNI_VARIANTS:-S M L}     # T2L variants trained by SFT
ORACLE_STEPS=${ORACLE_STEPS:-20}        # per-task LoRA steps (batch 4, lr 2e-3)
ORACLE_TASKS=${ORACLE_TASKS:-}          # unseen tasks given an oracle (comma-separated); "" = the whole test split
LIBRARY=${LIBRARY:-6}                   # training tasks given an oracle: the library of avg LoRA and reconstruction
RECON_STEPS=${RECON_STEPS:-300}         # T2L-L reconstruction steps
EVAL_TASKS=${EVAL_TASKS:-test}          # the unseen tasks of the SNI table: splits and/or names ("val,test": 2x the time)
EVAL_N=${EVAL_N:-8}                     # test examples per task in the tables
ABL_DATA=${ABL_DATA:-builtin}           # collection of the ablations
ABL_STEPS=${ABL_STEPS:-100}             # steps of every ablation arm (T2L-S, batch 8)
ABL_TASKS=${ABL_TASKS:-12 48}           # training-task counts of the task-count ablation (and "all")
ABL_DESCS=${ABL_DESCS:-1 4}             # descriptions per training task (and "all")
ABL_EVAL_TASKS=${ABL_EVAL_TASKS:-24}    # unseen test tasks scored per arm (0 = all)
MAP_PER_TASK=${MAP_PER_TASK:-3}         # descriptions per task in the adapter map
BENCH_N=${BENCH_N:-10}                  # questions per benchmark (generated, the paper's protocol)
BENCH_TOKENS=${BENCH_TOKENS:-512}       # generation budget per benchmark answer (the reference's 512)
CKPT_EVERY=${CKPT_EVERY:-20}            # steps between checkpoints: what a killed training loses at most
ORACLE_BATCH=${ORACLE_BATCH:-4}         # examples per oracle step
MODEL=${MODEL:-}                        # base model folder; "" = SmolLM2-135M-Instruct
DEVICE=${DEVICE:-cpu}                   # device of the evaluations (the trainings take a GPU when there is one)
RECIPE=${RECIPE:-reference}             # train_sft.py --recipe of every training: reference | main (bare prompt, centred embeddings, ...)
PROMPT=${PROMPT:-$([ "$RECIPE" = main ] && echo bare || echo definition)}  # user turn of every training and table: definition | bare
SNI_METRIC=${SNI_METRIC:-auto}          # SNI tables: auto (label accuracy / ROUGE-L) | rougeL (the reference's, every task)
STEER_INPUTS=${STEER_INPUTS:-8}         # builtin_table: shared inputs per steering group (0 = no steering test)
export PYTHONUNBUFFERED=1

# -- the stages ---------------------------------------------------------------------------------
STAGES=(sni_mt_lora)
for v in $SNI_VARIANTS; do STAGES+=("sni_t2l_$v"); done
STAGES+=(sni_oracles sni_recon sni_eval map abl_tasks abl_onehot abl_encoder abl_descs builtin_table bench)

sft() {  # sft OUT ARGS...: train_sft.py into OUT, continuing from its checkpoint when one exists
    local out=$1; shift
    if [ -f "$out/zero_shot.json" ] || [ -f "$out/adapter/result.json" ]; then
        echo "$out: finished earlier"; return 0
    fi
    local again=(--force)  # a folder without a checkpoint holds only this script's own earlier start
    [ -f "$out/ckpt.pt" ] && again=(--resume)
    python train_sft.py --model "$MODEL" --recipe "$RECIPE" --prompt "$PROMPT" --out "$out" --ckpt-every "$CKPT_EVERY" "${again[@]}" "$@"
}

names() {  # names DATA SPLIT [K]: comma-separated task names (the first K), from python -m data
    python -m data --data "$1" --names "$2" | tr ',' '\n' | sed -n "1,${3:-100000}p" | paste -sd, -
}

sni_mt_lora() {
    sft "$OUT/sni/mt_lora" --data "$DATA" --variant mt_lora --steps "$SNI_STEPS" --batch-size "$SNI_BATCH" \
        --val-every "$SNI_STEPS" --eval-examples "$EVAL_N"
}
sni_t2l() {
    sft "$OUT/sni/t2l_$1" --data "$DATA" --variant "$1" --steps "$SNI_STEPS" --batch-size "$SNI_BATCH" \
        --val-every $(( SNI_STEPS > 1 ? SNI_STEPS / 2 : 1 )) --val-examples 2 --final-tasks 2 --final-examples 4
}
for v in $SNI_VARIANTS; do eval "sni_t2l_$v() { sni_t2l $v; }"; done

sni_oracles() {  # the unseen test tasks (the table's upper bound), then LIBRARY training tasks
    local tasks
    tasks="${ORACLE_TASKS:-$(names "$DATA" test)},$(names "$DATA" train "$LIBRARY")"
    python train_sft.py --model "$MODEL" --recipe "$RECIPE" --prompt "$PROMPT" --data "$DATA" --variant lora --task "$tasks" --steps "$ORACLE_STEPS" \
        --ckpt-every "$CKPT_EVERY" --batch-size "$ORACLE_BATCH" --lr 2e-3 --eval-examples "$EVAL_N" --out "$OUT/sni/lora" --resume
}
sni_recon() {  # the library: the training tasks' oracles only (never an unseen task's)
    rm -rf "$OUT/sni/library" && mkdir -p "$OUT/sni/library"
    for t in $(names "$DATA" train "$LIBRARY" | tr ',' ' '); do
        cp -r "$OUT/sni/lora/$t" "$OUT/sni/library/$t"
    done
    local again=(--force)
    [ -f "$OUT/sni/recon_L/ckpt.pt" ] && again=(--resume)
    python train_recon.py --model "$MODEL" --data "$DATA" --variant L --library "$OUT/sni/library" \
        --steps "$RECON_STEPS" --batch-size "$LIBRARY" --eval-n 0 --ckpt-every "$CKPT_EVERY" --out "$OUT/sni/recon_L" "${again[@]}"
}
sni_eval() {
    local t2l=()
    for v in $SNI_VARIANTS; do t2l+=(--t2l "$OUT/sni/t2l_$v/best"); done
    python eval.py --device "$DEVICE" --model "$MODEL" --data "$DATA" --tasks "$EVAL_TASKS" --n "$EVAL_N" \
        --methods base,description,icl,mt_lora,avg_lora,oracle,t2l,t2l_wrong,t2l_random \
        --mt-lora "$OUT/sni/mt_lora/adapter" --oracles "$OUT/sni/lora" "${t2l[@]}" --t2l "$OUT/sni/recon_L/final" \
        --prompt "$PROMPT" --sni-metric "$SNI_METRIC" --out "$OUT/sni/eval"
    python -m scripts.report table "$OUT/sni/eval" --out "$RESULTS/sni_table"
}

abl() {  # abl NAME ARGS...: one T2L-S arm on the ablation collection; its closing table is its score
    sft "$OUT/abl/$1" --data "$ABL_DATA" --variant S --steps "$ABL_STEPS" --val-every "$ABL_STEPS" \
        --final-tasks "$ABL_EVAL_TASKS" --final-examples "$EVAL_N" --steering-inputs 0 "${@:2}"
}
abl_tasks() {  # zero-shot score against the number of training tasks
    local arms=()
    for k in $ABL_TASKS; do abl "tasks_$k" --n-train-tasks "$k"; arms+=("$k=$OUT/abl/tasks_$k"); done
    abl all; arms+=("all=$OUT/abl/all")
    python -m scripts.report ablation "${arms[@]}" --xlabel "training tasks" --out "$RESULTS/ablation_tasks"
}
abl_onehot() {  # one-hot task ids against descriptions (an unseen task has no id: it gets the zero vector)
    abl all
    abl onehot --encoder one-hot
    python -m scripts.report ablation "description=$OUT/abl/all" "one-hot=$OUT/abl/onehot" --xlabel "conditioning" \
        --out "$RESULTS/ablation_onehot"
}
abl_descs() {  # descriptions per training task
    local arms=()
    for k in $ABL_DESCS; do abl "descs_$k" --descs-per-task "$k"; arms+=("$k=$OUT/abl/descs_$k"); done
    abl all; arms+=("all=$OUT/abl/all")
    python -m scripts.report ablation "${arms[@]}" --xlabel "descriptions per training task" --out "$RESULTS/ablation_descs"
}
abl_encoder() {  # the task encoder: MiniLM against the base LLM's own mean-pooled hidden states
    abl all
    abl llm_encoder --encoder base-llm
    python -m scripts.report ablation "MiniLM=$OUT/abl/all" "base LLM=$OUT/abl/llm_encoder" --xlabel "task encoder" \
        --out "$RESULTS/ablation_encoder"
}
builtin_table() {  # the zero-shot table on the ablations' collection; its T2L-S is the "all" arm
    abl all
    sft "$OUT/builtin/mt_lora" --data "$ABL_DATA" --variant mt_lora --steps "$ABL_STEPS" --val-every "$ABL_STEPS" \
        --eval-examples "$EVAL_N"
    python eval.py --device "$DEVICE" --model "$MODEL" --data "$ABL_DATA" --tasks test --n "$EVAL_N" \
        --methods base,description,icl,mt_lora,t2l,t2l_wrong,t2l_random --mt-lora "$OUT/builtin/mt_lora/adapter" \
        --t2l "$OUT/abl/all/best" --prompt "$PROMPT" $([ "$STEER_INPUTS" -gt 0 ] && echo --steering --steering-inputs "$STEER_INPUTS") \
        --out "$OUT/builtin/eval"
    python -m scripts.report table "$OUT/builtin/eval" --out "$RESULTS/builtin_table"
}
map() {  # what the hypernetwork writes, for every task of the SNI collection
    python -m scripts.adapter_map "$OUT/sni/t2l_S/best" --device "$DEVICE" --model "$MODEL" --data "$DATA" --per-task "$MAP_PER_TASK" \
        --out "$RESULTS/adapter_map"
}
bench() {
    python eval.py --device "$DEVICE" --model "$MODEL" --benchmarks all --n "$BENCH_N" --max-new-tokens "$BENCH_TOKENS" --methods base,mt_lora,t2l \
        --mt-lora "$OUT/sni/mt_lora/adapter" --t2l "$OUT/sni/t2l_S/best" --descriptions 1 --out "$OUT/bench"
    python -m scripts.report table "$OUT/bench" --out "$RESULTS/bench"
}

# -- the driver ---------------------------------------------------------------------------------
wanted() {  # wanted STAGE: no words given, or the stage starts with one of them
    [ $# -eq 1 ] && [ ${#SELECT[@]} -eq 0 ] && return 0
    local w; for w in "${SELECT[@]}"; do [[ $1 == "$w"* ]] && return 0; done; return 1
}
if [ "${1:-}" = --list ]; then
    for s in "${STAGES[@]}"; do printf '%-14s %s\n' "$s" "$([ -f "$OUT/done/$s" ] && echo done || echo -)"; done
    exit 0
fi
SELECT=("$@")
todo=(); for s in "${STAGES[@]}"; do wanted "$s" && todo+=("$s"); done
[ ${#todo[@]} -eq 0 ] && { echo "error: no stage matches: $* (bash recipes/run_cpu.sh --list)" >&2; exit 2; }
mkdir -p "$OUT/done" "$OUT/logs" "$RESULTS"  # only now: --list and a bad stage name write nothing
i=0
for s in "${todo[@]}"; do
    i=$((i + 1))
    if [ -f "$OUT/done/$s" ]; then echo "[$i/${#todo[@]}] $s: done earlier ($OUT/done/$s)"; continue; fi
    echo "[$i/${#todo[@]}] $s  (log: $OUT/logs/$s.log)"
    start=$(date +%s)
    "$s" 2>&1 | tee "$OUT/logs/$s.log"
    echo "$(( $(date +%s) - start )) s" > "$OUT/done/$s"
    echo "[$i/${#todo[@]}] $s: done in $(cat "$OUT/done/$s")"
done
