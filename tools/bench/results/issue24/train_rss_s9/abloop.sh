#!/bin/bash
# Alternating pairs: before = `git archive 9b63b97 packages configs` in /tmp/tm/before, after = the worktree.
# usage: abloop.sh OUTROOT PAIRS  (THREADS env passes through)
ROOT=$1; N=$2; mkdir -p $ROOT
for i in $(seq 1 $N); do
  if [ $((i % 2)) = 1 ]; then order="before after"; else order="after before"; fi
  for n in $order; do
    if [ $n = before ]; then T=/tmp/tm/before; else T=/work/wt-trainmem; fi
    $(dirname $(readlink -f $0))/ab.sh $n $T $ROOT $i >> $ROOT/runs.jsonl
  done
done
