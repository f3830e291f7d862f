#!/usr/bin/env bash
# Train the demo model end to end (`make train-demo`): demo clip set -> vae (two phases), text, image,
# sequence, a decoder-only VAE fine-tune and the classifier -> models/demo/ -> loss curves,
# real-vs-generated grid and the summary in docs/training.md.
#
#   scripts/train_demo.sh [--device auto|cpu|cuda] [--resume]
#   CTRLGENAUG_TRAIN_DEVICE=cuda scripts/train_demo.sh
#
# Runs land in data/demo-runs/ (git-ignored); each stage's command and wall-clock time is printed.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
DEVICE="${CTRLGENAUG_TRAIN_DEVICE:-auto}"
RESUME=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --resume) RESUME=(--resume); shift ;;
    *) echo "unknown argument $1 (use --device auto|cpu|cuda, --resume)" >&2; exit 2 ;;
  esac
done

DATA=data/demo-dataset
RUNS=data/demo-runs
MODEL=models/demo
VERSION="${CTRLGENAUG_DEMO_VERSION:-0.4.0}"
TIMINGS="$RUNS/timings.json"
mkdir -p "$RUNS"
echo "{}" > "$TIMINGS.partial"

ctrlgenaug() { "$PYTHON" -m cli.main "$@"; }

timed() {
  local name="$1"; shift
  echo "==> [$name] ctrlgenaug $*"
  local start end
  start=$(date +%s.%N)
  ctrlgenaug "$@"
  end=$(date +%s.%N)
  "$PYTHON" - "$TIMINGS.partial" "$name" "$start" "$end" <<'PY'
import json, sys
path, name, start, end = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
timings = json.load(open(path))
timings[name] = round(end - start, 1)
json.dump(timings, open(path, "w"), indent=2)
print(f"<== [{name}] {end - start:.1f} s")
PY
}

if [[ ! -f "$DATA/manifest.jsonl" ]]; then
  scripts/fetch_demo_sources.sh
  timed data data demo --out "$DATA"
fi
for stage in vae vae_continue text image sequence vae_decoder; do
  # --resume continues the stages that have a checkpoint and starts the others
  resume=()
  [[ ${#RESUME[@]} -gt 0 && -d "$RUNS/$stage/checkpoints" ]] && resume=(--resume)
  timed "$stage" train "$stage" --config "configs/demo/$stage.yaml" --device "$DEVICE" "${resume[@]}"
done
timed classifier train classifier --config configs/demo/classifier.yaml --device "$DEVICE"
timed assemble train assemble --vae "$RUNS/vae_decoder" --text "$RUNS/text" --sequence "$RUNS/sequence" \
  --classifier "$RUNS/classifier" --out "$MODEL" --name demo --version "$VERSION" --overwrite
mv "$TIMINGS.partial" "$TIMINGS"
ctrlgenaug train report --runs "$RUNS" --model "$MODEL" --data "$DATA" --figures docs/training \
  --markdown docs/training.md --timings "$TIMINGS"
du -sh "$MODEL"
