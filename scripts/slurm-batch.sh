#!/usr/bin/env bash
# Run `mbt batch` for several pairs as a Slurm job array: one array task per pair, all writing into one
# shared results store. Each (pair, chapter) job is independent and resumable, so a task that fails or is
# preempted is simply resubmitted; finished chapters are not executed again.
#
#   sbatch --array=0-2 scripts/slurm-batch.sh                # the three pairs of PAIRS below
#   PAIRS="olmo2-1b olmo2-7b" sbatch --array=0-1 scripts/slurm-batch.sh
#
# Afterwards, on any machine that sees the shared store:
#   mbt book --pair olmo2-1b --param 'pairs=["olmo2-1b", "olmo2-7b", "mistral-7b"]' --only 08
# or copy $MBT_CACHE/store/<pair>/ folders into the repository's results/ to publish them with the book.
#
#SBATCH --job-name=mbt-batch
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=08:00:00
#SBATCH --output=mbt-batch-%A_%a.log
set -euo pipefail

read -r -a pairs <<< "${PAIRS:-olmo2-1b olmo2-7b mistral-7b}"
pair="${pairs[${SLURM_ARRAY_TASK_ID:-0}]}"
export MBT_CACHE="${MBT_CACHE:-$HOME/mbt-cache}"     # shared by every task: the store is $MBT_CACHE/store
cd "${MBT_CHECKOUT:-$SLURM_SUBMIT_DIR}"               # the repository (notebooks/ and _config.yml)
echo "pair $pair on $(hostname), store $MBT_CACHE/store"
exec "${MBT:-.venv/bin/mbt}" batch --pairs "$pair" ${MBT_BATCH_ARGS:-}
