#!/bin/bash
# One run of the tutorial benchmark command (1.x tutorial architecture, 3 epochs, seed 42), niced,
# with TREE (a folder holding packages/ and configs/) first on PYTHONPATH of .bench/ours-venv.
# Prints one JSON line: phase peaks (results.json) and step CPU s.
# usage: ab.sh NAME TREE OUTROOT INDEX [extra Hydra overrides...]
# environment: THREADS sets OMP_NUM_THREADS; EXTRA_PATH is put on PYTHONPATH (probe modules);
# MODEL=default trains the default model config (hdf5_core_readout as shipped) for EPOCHS (default 1)
# instead of 1.x's tutorial architecture; WRAP prefixes the interpreter (e.g. `setarch -R`).
NAME=$1; TREE=$2; ROOT=$3; I=$4; shift 4
HERE=$(dirname $(readlink -f $0))
OUT=$ROOT/$NAME-$I; rm -rf $OUT; mkdir -p $OUT; cd $OUT
REPO=${REPO:-$(git -C $HERE rev-parse --show-toplevel)}
V=$REPO/.bench/ours-venv
LOAD=$(cut -d' ' -f1 /proc/loadavg)
export PYTHONPATH=$TREE/packages/openretina-cli/src:$TREE/packages/openretina-data/src:$TREE/packages/openretina-models/src:$REPO/tools/bench/hooks:$HERE${EXTRA_PATH:+:$EXTRA_PATH}
export STEPCPU_OUT=$OUT/stepcpu.json
if [ -n "$THREADS" ]; then export OMP_NUM_THREADS=$THREADS; fi
if [ "$MODEL" = default ]; then
  ARCH=("trainer.max_epochs=${EPOCHS:-1}")
else
  ARCH=(trainer.max_epochs=3 dataloader.batch_size=64 "model.hidden_channels=[8,8,8]" "model.temporal_kernel_sizes=[8,8,8]" "model.spatial_kernel_sizes=[8,8,8]" "model.spatial_padding=[0,4,4]")
fi
nice -n 19 ${WRAP} $V/bin/python -c "import sys; from openretina_cli.main import main; sys.exit(main())" train --config-path $TREE/configs --config-name hdf5_core_readout paths.data_dir=$REPO/.bench/data/tutorial "data_io.test_names=[random_noise_2,random_noise_3]" data_io.color_channels=3 data_io.video_height=16 data_io.video_width=8 "${ARCH[@]}" paths.log_dir=$OUT "+training_callbacks.stepcpu._target_=memprobe.StepCPU" "$@" > $OUT/log.txt 2>&1
RC=$?
python3 - "$OUT" "$NAME" "$I" "$RC" "$LOAD" <<'PY'
import json, sys, glob, statistics
out, name, i, rc, load = sys.argv[1:]
f = glob.glob(out + "/runs/*/*/results.json")
r = json.load(open(f[0])) if f else {}
try:
    steps = json.load(open(out + "/stepcpu.json"))
except Exception:
    steps = []
p = r.get("peak_rss_mib", {})
m = r.get("metrics") or {}
print(json.dumps({"name": name, "i": int(i), "rc": int(rc), "load": float(load), "peak_trainer": p.get("trainer"), "peak_fit": p.get("fit"),
  "peak_final": p.get("report"), "peak_evaluation": p.get("evaluation"), "peak_baseline": p.get("baseline"), "fit_cpu": r.get("cpu_s", {}).get("fit"),
  "step1_cpu": round(steps[0], 4) if steps else None, "step_cpu_median_rest": round(statistics.median(steps[1:]), 4) if len(steps) > 1 else None,
  "step_cpu_min_rest": round(min(steps[1:]), 4) if len(steps) > 1 else None, "metrics": m, "val_corr": m.get("val/correlation"), "test_corr": m.get("test/correlation")}))
PY
