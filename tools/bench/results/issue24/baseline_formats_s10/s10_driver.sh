#!/bin/bash
# one config at a time, cheapest first; load at each start
cd /work/wt-formats
OUT=/tmp/s10_bf
R=tools/bench/results/issue24/baseline_formats_s10
mkdir -p $OUT $R
while read cfg ep; do
  [ -z "$cfg" ] && continue
  echo "$(date -u +%FT%TZ) start $cfg epochs=$ep loadavg=$(cat /proc/loadavg)" >> $R/load.txt
  OMP_NUM_THREADS=1 nice -n 19 uv run python tools/bench/baseline_formats.py $OUT --epochs $ep --only $cfg > $R/driver_$cfg.log 2>&1
  echo "$(date -u +%FT%TZ) end   $cfg rc=$? loadavg=$(cat /proc/loadavg)" >> $R/load.txt
  cp $OUT/baseline_formats.json $R/baseline_formats.json
  mkdir -p $R/logs; cp $OUT/logs/$cfg/train_output.log $R/logs/$cfg.log 2>/dev/null
done < ${1:-/tmp/s10_list.txt}
