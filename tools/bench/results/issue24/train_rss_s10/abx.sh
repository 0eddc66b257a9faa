#!/bin/bash
# abx.sh NAME TREE OUTROOT I [extra overrides...]: ab.sh with extra overrides and this folder (probes.py) on the path
NAME=$1; TREE=$2; ROOT=$3; I=$4; shift 4
HERE=$(dirname $(readlink -f $0))
OUT=$ROOT/$NAME-$I; rm -rf $OUT; mkdir -p $OUT; cd $OUT
V=/work/main/.bench/ours-venv
LOAD=$(cut -d' ' -f1 /proc/loadavg)
export PYTHONPATH=$TREE/packages/openretina-cli/src:$TREE/packages/openretina-data/src:$TREE/packages/openretina-models/src:/work/main/tools/bench/hooks:/work/main/tools/bench/results/issue24/train_rss_s9:$HERE
export STEPCPU_OUT=$OUT/stepcpu.json OMP_NUM_THREADS=${THREADS:-1}
nice -n 19 $V/bin/python -c "import sys; from openretina_cli.main import main; sys.exit(main())" train --config-path $TREE/configs --config-name hdf5_core_readout paths.data_dir=/work/main/.bench/data/tutorial "data_io.test_names=[random_noise_2,random_noise_3]" data_io.color_channels=3 data_io.video_height=16 data_io.video_width=8 trainer.max_epochs=3 dataloader.batch_size=64 "model.hidden_channels=[8,8,8]" "model.temporal_kernel_sizes=[8,8,8]" "model.spatial_kernel_sizes=[8,8,8]" "model.spatial_padding=[0,4,4]" paths.log_dir=$OUT "+training_callbacks.stepcpu._target_=memprobe.StepCPU" "$@" > $OUT/log.txt 2>&1
RC=$?
python3 - "$OUT" "$NAME" "$I" "$RC" "$LOAD" <<'PY'
import json, sys, glob, statistics
out, name, i, rc, load = sys.argv[1:]
f = glob.glob(out + "/runs/*/*/results.json")
r = json.load(open(f[0])) if f else {}
try: steps = json.load(open(out + "/stepcpu.json"))
except Exception: steps = []
p = r.get("peak_rss_mib", {})
m = r.get("metrics") or {}
print(json.dumps({"name": name, "i": int(i), "rc": int(rc), "load": float(load), "peak_trainer": p.get("trainer"), "peak_fit": p.get("fit"),
  "peak_final": p.get("report"), "fit_cpu": r.get("cpu_s", {}).get("fit"),
  "step_cpu_median_rest": round(statistics.median(steps[1:]), 4) if len(steps) > 1 else None, "val_corr": m.get("val/correlation"), "test_corr": m.get("test/correlation")}))
PY
