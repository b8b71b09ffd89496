#!/usr/bin/env bash
# Chapter 01's pretraining sweeps, every run of a grid at once (one process each), for a machine
# with a GPU and enough CPU cores. A grid file (scripts/lm_grids/) has one run a line:
# "name | scripts/lm_sweep.py options"; MODELS in the options stands for OUT/models. Each run is
# stopped at its first evaluation past TIME_LIMIT seconds; the curves so far are merged into
# OUT/sweep.json every 20 seconds and at the end (`lm_sweep.py --table --cache OUT/sweep.json`).
#
#   bash scripts/lm_sweep_grid.sh GRID OUT [TIME_LIMIT] [DEVICE] [STEPS] [EVAL_EVERY]
# ($EXTRA: more options for every run, e.g. EXTRA="--scenes 500" for a smoke test; $PYTHON)
set -u
grid=${1:?usage: lm_sweep_grid.sh GRID OUT [TIME_LIMIT] [DEVICE] [STEPS] [EVAL_EVERY]}
out=${2:?usage: lm_sweep_grid.sh GRID OUT [TIME_LIMIT] [DEVICE] [STEPS] [EVAL_EVERY]}
limit=${3:-450}; device=${4:-cuda}; steps=${5:-16000}; every=${6:-1000}
python=${PYTHON:-python3}
mkdir -p "$out/parts" "$out/models"
export TQDM_DISABLE=1 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

while IFS='|' read -r name options; do
  name=$(echo "$name" | xargs); [ -z "$name" ] || [ "${name:0:1}" = "#" ] && continue
  file=${name//[^A-Za-z0-9.-]/_}
  # shellcheck disable=SC2086  # the options are words
  $python scripts/lm_sweep.py --name "$name" --device "$device" --threads 1 \
    --time-limit "$limit" --steps "$steps" --eval-every "$every" \
    --cache "$out/parts/$file.cache.json" --partial "$out/parts/$file.partial.json" \
    ${options//MODELS/$out/models} ${EXTRA:-} > "$out/parts/$file.log" 2>&1 &
done < "$grid"

merge() {  # every run's curve so far, finished or not, into one file
  $python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
runs = {}
for f in sorted((out / "parts").glob("*.partial.json")):
    r = json.loads(f.read_text())
    runs[f"{r['name']} seed={r['seed']}"] = r
(out / "sweep.json").write_text(json.dumps(runs, indent=1) + "\n")
PY
}

while [ -n "$(jobs -r)" ]; do sleep 20; merge; done
merge
tail -n 3 "$out"/parts/*.log
