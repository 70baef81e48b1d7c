#!/usr/bin/env bash
# Quick start: a local Coachview simulator and the daemon on an example
# configuration under ./var (SQLite outbox, CSV drop folder). Ctrl-C stops both.
# ./var is created on first use and kept; `make clean` starts over.
set -euo pipefail
bin=$(realpath "${1:-bin/cvbridge}")
root=$(cd "$(dirname "$0")/../.." && pwd)
var="$root/var"
addr="127.0.0.1:18080"

mkdir -p "$var/lms.d" "$var/drop"
[ -f "$var/cvbridge.yaml" ] || cp "$root/examples/quickstart/cvbridge.yaml" "$var/"
[ -n "$(ls -A "$var/lms.d")" ] || cp "$root/examples/quickstart/lms.d/"*.yaml "$var/lms.d/"
if [ ! -s "$var/secret" ]; then
  (umask 077; head -c 32 /dev/urandom | base64 > "$var/secret")
fi
# Drop the sample export, as an LMS would: written aside, then renamed into place.
cp "$root/testdata/csvdrop/example.csv" "$var/drop/.voorbeeld-export.csv.part"
mv "$var/drop/.voorbeeld-export.csv.part" "$var/drop/voorbeeld-export-$(date +%Y%m%d-%H%M%S).csv"

"$bin" sim --listen "$addr" --secret-file "$var/secret" &
sim=$!
trap 'kill "$sim" 2>/dev/null || true; wait "$sim" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null && break
  sleep 0.1
done

echo "cvbridge: watching $var/drop — drop more CSV files there; Ctrl-C stops."
echo "          in another terminal: $bin outbox list --config $var/cvbridge.yaml"
"$bin" run --config "$var/cvbridge.yaml"
