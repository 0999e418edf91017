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
# Cross-validation of the microwave calibrations (not run by default), each with the
# calibration's own criterion (least squares with the 3.8 mm soft bound since session 57)
# and the parameter it holds (the forward spread, since session 58: --cv-fix),
# folds fitted at 2 mm from a start no published row informs, held-out rows at 1 mm, on a
# local Dask cluster of 2 workers; each checkpoint keeps the finished folds (of every
# criterion run so far), so an interrupted run continues where it stopped:
#   C="ioplan validate --cross-validate --cv-start generic --cv-fit-spacing-mm 2 --spacing-mm 1
#      --max-evaluations 60 --workers 2 --cv-fix axial_sigma_forward_mm --json"
#   $C --checkpoint validation/mwa/crossval_generic_folds.jsonl \
#      > validation/mwa/crossval_generic.json                          # one setting out, 40 min
#   $C --cv-hold power --checkpoint validation/mwa/crossval_power_folds.jsonl \
#      > validation/mwa/crossval_power.json                            # one power out, 7 min
#   $C --cv-hold duration --checkpoint validation/mwa/crossval_duration_folds.jsonl \
#      > validation/mwa/crossval_duration.json                         # one duration out, 16 min
# (the earlier criteria's runs: crossval_*_norm{2,4,8,16}.json, with --cv-error-norm N
# --cv-error-bound-mm 0; session 57's six fitted parameters, without --cv-fix:
# crossval_*_six.json). Which parameters the rows determine (nothing fitted or written):
#   ioplan calibrate DEVICE --identifiability --spacing-mm 1 [--json] From the calibration itself (its fit saw the held-out row, so the
# figure leans toward the in-sample one; 60 min on 2 cores, session 55's norm 16:
# crossval_calibration_norm16.json):
#   ioplan validate --cross-validate --spacing-mm 1 --max-evaluations 20 --workers 2 \
#     --checkpoint validation/mwa/crossval_folds.jsonl --json > validation/mwa/crossval.json
# --scheduler tcp://host:port fits the folds on a running Dask cluster instead (session 52).
# Published lung and kidney zones against the engine in blocks of those organs (issue 21;
# uncalibrated for those organs; a few minutes at 2 mm).
ioplan validate --organs --spacing-mm 2 --report validation/organs --overwrite --quiet
