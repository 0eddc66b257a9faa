#!/bin/bash
# abx.sh NAME TREE OUTROOT I [extra overrides...]: ../train_rss_s9/ab.sh, one thread unless THREADS
# says otherwise, with this folder (probes.py) on the path.
THREADS=${THREADS:-1} EXTRA_PATH=$(dirname $(readlink -f $0)) exec $(dirname $(readlink -f $0))/../train_rss_s9/ab.sh "$@"
