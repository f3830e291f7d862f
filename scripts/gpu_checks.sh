#!/usr/bin/env bash
# The GPU checks of the fast path, in the order they matter, each writing its output under $OUT:
#   1. the GPU tests (bf16 vs fp32, batched/compiled == reference, memory-sized batch, no host copies);
#   2. benchmarks/bench_sampler.py on the SD-1.x-shaped model (speed table, TFLOP/s, x paper): the eager bf16
#      step at the largest batch in NCHW, channels-last, the UNet cast to bf16, and both; then torch.compile
#      (default, then reduce-overhead = CUDA graphs) in the fastest of those while the budget allows; then
#      the other precisions/batches and the timed full runs;
#   3. benchmarks/bench_attention.py (~30 s): SDPA backends vs matmul + softmax at the SA/MFA/KA/text shapes;
#   4. benchmarks/bench_quality.py on models/demo (filter yield of fast solvers vs DDIM 200).
#
#   scripts/gpu_checks.sh [tests] [sampler] [attention] [quality]       (default: all four)
#
# Needs a CUDA machine with the project's dependencies importable (`make env` on a GPU box).
# GPU_CHECKS_SAMPLER_ARGS adds options to bench_sampler (e.g. --random-image-encoder where the shipped
# LiteMedSAM weights are not installed); GPU_CHECKS_BUDGET_S bounds its timed runs (default 280).
set -uo pipefail
OUT=${OUT:-results/gpu}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(tests sampler attention quality)
status=0
for step in "${steps[@]}"; do
    case $step in
        tests)
            timeout 150 "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu -rs tests/gpu \
                tests/generator/test_pipeline.py tests/generator/test_sequence_unet.py \
                tests/classify/test_classify_gpu.py 2>&1 | tail -40 | tee "$OUT/gpu-tests.txt" || status=1
            ;;
        sampler)
            # shellcheck disable=SC2086
            timeout 360 "$PYTHON" benchmarks/bench_sampler.py --device cuda \
                --compile default --compile reduce-overhead \
                --budget-s "${GPU_CHECKS_BUDGET_S:-280}" ${GPU_CHECKS_SAMPLER_ARGS:-} \
                --out "$OUT/sampler.json" 2>&1 | grep -v Warning | tee "$OUT/sampler.txt" || status=1
            ;;
        attention)
            timeout 90 "$PYTHON" benchmarks/bench_attention.py --device cuda --clips 16 \
                --out "$OUT/attention.json" 2>&1 | grep -v Warning | tee "$OUT/attention.txt" || status=1
            ;;
        quality)
            timeout 240 "$PYTHON" benchmarks/bench_quality.py --model models/demo --device cuda \
                --banks 12 --clips-per-bank 8 --out "$OUT/quality.json" 2>&1 | grep -v Warning \
                | tee "$OUT/quality.txt" || status=1
            ;;
        *)
            echo "unknown step $step (tests, sampler, attention, quality)" >&2
            exit 2
            ;;
    esac
done
exit $status
