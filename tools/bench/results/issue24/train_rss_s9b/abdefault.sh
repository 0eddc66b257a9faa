#!/bin/bash
# ../train_rss_s9/ab.sh (same arguments) on the default model config (hdf5_core_readout as shipped), 1 epoch.
MODEL=default EPOCHS=1 exec $(dirname $(readlink -f $0))/../train_rss_s9/ab.sh "$@"
