#!/bin/bash
# ../train_rss_s9/ab.sh (same arguments) with the probe callbacks of rssprobe.py added.
EXTRA_PATH=$(dirname $(readlink -f $0)) exec $(dirname $(readlink -f $0))/../train_rss_s9/ab.sh "$@" +training_callbacks.rss._target_=rssprobe.Phases
