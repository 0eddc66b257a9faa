#!/bin/bash
# the table's earlier "first look" / variant rows, re-run on the current code, one at a time
cd /work/wt-formats
R=tools/bench/results/issue24/baseline_formats_s10/variants
mkdir -p $R/logs
while read tag cfg ep set; do
  [ -z "$cfg" ] && continue
  OUT=/tmp/s10_var/$tag
  echo "$(date -u +%FT%TZ) start $tag $cfg epochs=$ep $set loadavg=$(cat /proc/loadavg)" >> $R/load.txt
  OMP_NUM_THREADS=1 nice -n 19 uv run python tools/bench/baseline_formats.py $OUT --epochs $ep --only $cfg ${set:+--set $set} > $R/driver_$tag.log 2>&1
  echo "$(date -u +%FT%TZ) end   $tag rc=$? loadavg=$(cat /proc/loadavg)" >> $R/load.txt
  cp $OUT/baseline_formats.json $R/$tag.json
  cp $OUT/logs/$cfg/train_output.log $R/logs/$tag.log 2>/dev/null
done < /tmp/s10_list2.txt
