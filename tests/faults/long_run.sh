#!/bin/sh
# The long mode of the fault-injection suite, outside pytest:
#   tests/faults/long_run.sh OUT.jsonl DEADLINE [KILLS] [COMMAND ...]
# kills every command (and the nightly on PostgreSQL) round-robin at seeded random moments until each has
# KILLS kill points (default 200) or DEADLINE (UTC, e.g. 2026-12-07T15:30) passes, one JSON line a trial;
# then prints the figures (python -m tests.faults.summary OUT.jsonl). Run from the repository's root.
# Commands start from a fork server that imported rulelife once, so the kill moments fall in the
# commands' own work; FORK_SERVER=0 starts a fresh interpreter a command instead (imports included).
set -eu
out=$1
deadline=$2
shift 2
kills=${1:-200}
[ $# -gt 0 ] && shift
python=${PYTHON:-.venv/bin/python}
launcher=--fork-server
[ "${FORK_SERVER:-1}" = 0 ] && launcher=
"$python" -m tests.faults.runner "$out" --deadline "$deadline" --kills "$kills" --pg $launcher "$@"
"$python" -m tests.faults.summary "$out"
