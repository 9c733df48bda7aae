#!/usr/bin/env bash
# One GPU session's checks (run through the device tool; see benchmarks/RESULTS.md `## gpu`).
# Needs: a PyAV wheel (and, when the machine's OpenCV lacks cv2.data, the Haar cascade XML) in .whl/.
# Writes logs and JSON into $OUT (default ./gpu_out).
set -u
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
STEPS=${STEPS:-1200}; DEVICE=${DEVICE:-cuda}; NUM_CLIPS=${NUM_CLIPS:-240}; BASE_STEPS=${BASE_STEPS:-300}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
mkdir -p /tmp/shim
# Spawned workers import cv2 too: a sitecustomize gives every interpreter the cascade folder.
cat > /tmp/shim/sitecustomize.py <<PY
import os, types
try:
    import cv2
    if not os.path.isfile(os.path.join(getattr(getattr(cv2, "data", None), "haarcascades", "/nonexistent"), "haarcascade_frontalface_alt2.xml")):
        cv2.data = types.SimpleNamespace(haarcascades="$PWD/.whl/")
except Exception:
    pass
PY
export PYTHONPATH=$PWD/src:/tmp/site:/tmp/shim PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt"
python3 -c "import torch, cv2, av; print(torch.__version__, cv2.__version__, av.__version__)" | tee -a "$OUT/gpu.txt"
t0=$(date +%s)
# 1) the demo's data and the small models with STEPS steps instead of 200 (same batch 16, lr, seed)
timeout 330 python3 -m macbdf demo --out /tmp/d --steps "$STEPS" --device "$DEVICE" --workers 16 --num-clips "$NUM_CLIPS" \
    --models macbdf,video_only --json > "$OUT/demo_report.json" 2> /tmp/demo.log
echo "demo rc=$? wall=$(( $(date +%s) - t0 ))s" | tee -a "$OUT/gpu.txt"
# 2) paper-size config (`base`, bf16) on the same cache: a few hundred steps, throughput from the logs
t1=$(date +%s)
timeout 120 python3 -m macbdf train --data /tmp/d/cache --model base --out /tmp/base --steps "$BASE_STEPS" --precision bf16 \
    --device "$DEVICE" --workers 8 --eval-every 100 --no-progress --json > "$OUT/base_summary.json" 2> /tmp/base.log
echo "base rc=$? wall=$(( $(date +%s) - t1 ))s" | tee -a "$OUT/gpu.txt"
# 3) OM-Pareto overhead for base on the GPU
timeout 60 python3 benchmarks/pareto_overhead.py --model base --device "$DEVICE" --batch-size 16 --repeats 10 \
    > "$OUT/pareto_base.txt" 2>&1
echo "pareto rc=$?" | tee -a "$OUT/gpu.txt"
tail -c 20000 /tmp/demo.log > "$OUT/demo_tail.log"; tail -c 8000 /tmp/base.log > "$OUT/base_tail.log"
tar czf "$OUT/runs.tgz" /tmp/d/runs/*/metrics.jsonl /tmp/d/runs/*/summary.json /tmp/base/metrics.jsonl 2>/dev/null
ls -la "$OUT"
