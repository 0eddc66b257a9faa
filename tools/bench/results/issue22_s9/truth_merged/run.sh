#!/bin/bash
# train the default experiment on the characterisation retina at seed $1, then the truth check
S=$1; D=/tmp/truth9/s$S; mkdir -p $D
export OMP_NUM_THREADS=1
uv run openretina train data_io=simulated_retina_characterisation seed=$S paths.log_dir=$D/logs paths.cache_dir=/tmp/truth9/cache report=false trainer.enable_progress_bar=false > $D/train.log 2>&1
RUN=$(dirname $(find $D/logs -name results.json | head -1))
DATA=$(ls -d /tmp/truth9/cache/simulated_retina_characterisation/*/ | head -1)
uv run python tools/characterise_truth.py --model $RUN --data $DATA --out $D/check --no-ln > $D/check.log 2>&1
echo done $S
