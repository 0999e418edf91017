#!/usr/bin/env bash
# Regenerate the validation reports kept in this folder (run by hand; ~30-40 min on 2 cores).
#   validation/mwa/      predicted vs published microwave zones (every catalogue chart row, 1 mm;
#                        the default lumped pattern; the computed field's run: validation/maxwell.md)
#   validation/checks/   cryo (Littrup 2009), RF vs perfusion (Huang 2012), vessel heat sink
# The zone table defaults to the catalogue's charts, which are the rows of
# shared/validation/mwa_zones.csv; pass another table as the first argument.
set -euo pipefail
cd "$(dirname "$0")/.."
table_args=()
if [[ $# -ge 1 ]]; then table_args=(--table "$1"); fi
ioplan validate "${table_args[@]}" --spacing-mm 1 --report validation/mwa --overwrite --quiet
mkdir -p validation/checks
ioplan validate --checks all --spacing-mm 2 --report validation/checks --overwrite --quiet \
  | tee validation/checks/summary.txt
# Leave-one-setting-out cross-validation of the microwave calibrations (not run by default:
# the lumped default, 30 evaluations per fold, held-out rows at 1 mm: 20 min on 2 idle cores;
# validation/mwa/crossval.json; with the computed field about an hour per device at 4
# evaluations per fold, figures in validation/maxwell.md):
#   ioplan validate --cross-validate --spacing-mm 1 --max-evaluations 20 --workers 2 \
#     --checkpoint validation/mwa/crossval_folds.jsonl --json > validation/mwa/crossval.json
#   (folds fitted at 1 mm since session 54: 60 min on 2 cores in session 55; the checkpoint keeps
#   each finished fold, so an interrupted run continues where it stopped; session 51, folds
#   at 2 mm: 33 min on one core)
# and from a start no published row informs (47-49 min on one core):
#   ioplan validate --cross-validate --cv-start generic --spacing-mm 1 --max-evaluations 60 \
#     --json > validation/mwa/crossval_generic.json
# and holding out a whole power (the model predicts a power it was not fitted at; 17 min):
#   ioplan validate --cross-validate --cv-hold power --cv-start generic --max-evaluations 60 \
#     --json > validation/mwa/crossval_power.json
# and a whole duration (every power at a time it was not fitted at):
#   ioplan validate --cross-validate --cv-hold duration --cv-start generic --spacing-mm 1 \
#     --max-evaluations 60 --json > validation/mwa/crossval_duration.json
# Add --workers N (a local Dask cluster) or --scheduler tcp://host:port to fit the folds at
# once (session 52).
# Published lung and kidney zones against the engine in blocks of those organs (issue 21;
# uncalibrated for those organs; a few minutes at 2 mm).
ioplan validate --organs --spacing-mm 2 --report validation/organs --overwrite --quiet
