#!/bin/bash
# Alternating pairs (ABBA): BEFORE = a source tree of the earlier code (`git archive REV packages configs`),
# after = this worktree; THREADS and the result folder pass through to ab.sh.
# usage: abloop.sh OUTROOT PAIRS  (THREADS env passes through)
ROOT=$1; N=$2; mkdir -p $ROOT
for i in $(seq 1 $N); do
  if [ $((i % 2)) = 1 ]; then order="before after"; else order="after before"; fi
  for n in $order; do
    if [ $n = before ]; then T=${BEFORE:-/tmp/tm/before}; else T=${AFTER:-$(git -C $(dirname $(readlink -f $0)) rev-parse --show-toplevel)}; fi
    $(dirname $(readlink -f $0))/ab.sh $n $T $ROOT $i >> $ROOT/runs.jsonl
  done
done
