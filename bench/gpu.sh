#!/usr/bin/env bash
# bench/gpu.sh: every GPU measurement of bench/RESULTS.md in one prepared run (about 8 minutes on
# one H100/H200), so that short GPU time is spent measuring, not setting up. Everything it prints
# goes to ${OUT:-runs}/gpu_bench.md as well; bring that one file back.
#
#   bash bench/gpu.sh                 # on a machine with a CUDA torch and this repo's requirements
#
# Each line is one command of bench/; a failing one is reported and the rest still run.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs}
mkdir -p "$OUT"
LOG="$OUT/gpu_bench.md"
: > "$LOG"
run() {  # run one measurement with a time limit, its output into the log
    echo -e "\n### $*\n" | tee -a "$LOG"
    timeout 240 "$@" 2>&1 | grep -v "it/s\]\|s/it\]" | tee -a "$LOG" || echo "FAILED or timed out: $*" | tee -a "$LOG"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$LOG"
python -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" | tee -a "$LOG"
python -m data.prepare_model > /dev/null
G="--device cuda --dtype bfloat16"
# Gemma-2-2B shape, B=8 T=512: LoRA and T2L-S SFT steps, plain and with the memory savers (goal <= 16 GiB)
run python bench/bench_model.py $G --arch gemma2-2b --seq 512 --answer 64 --lora --steps 3 --warmup 1 --repeats 1
run python bench/bench_model.py $G --arch gemma2-2b --seq 512 --answer 64 --lora --grad-checkpoint --ce-chunk 1024 --steps 3 --warmup 1 --repeats 1
run python bench/bench_model.py $G --arch gemma2-2b --seq 512 --answer 64 --t2l --steps 3 --warmup 1 --repeats 1
run python bench/bench_model.py $G --arch gemma2-2b --seq 512 --answer 64 --t2l --grad-checkpoint --ce-chunk 1024 --steps 3 --warmup 1 --repeats 1
# Mistral-7B shape (goal >= 1.2x transformers + PEFT)
run python bench/bench_model.py $G --arch mistral-7b --seq 512 --answer 64 --lora --grad-checkpoint --steps 3 --warmup 1 --repeats 1
# SmolLM2 with its real weights
run python bench/bench_model.py $G --lora --steps 5 --warmup 2 --repeats 2
run python bench/bench_model.py $G --t2l --steps 5 --warmup 2 --repeats 2
# SNI T2L-S step: padded vs packed (per-token adapters) vs transformers + hooks, as a share of the bf16 matmul peak, with a profile
run python bench/bench_pack.py $G --batches 4 --repeats 2 --profile
# 64 prompts, each with its own adapter: lora.py vs PEFT's mixed-adapter batch
run python bench/bench_lora_batched.py $G --peft-mixed 64 --steps 5
# adapter generation, encoder included (goal <= 5 ms)
run python bench/bench_t2l.py --device cuda
echo -e "\nwritten: $LOG"
