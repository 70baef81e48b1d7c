#!/usr/bin/env bash
# Regenerates vectors.json: X-WebHook-Signature test vectors computed with
# openssl, a tool independent of the Go code under test (bridge/sign).
#
# Usage: testdata/sign/regen.sh [OUTPUT]   (default: vectors.json beside this script)
#
# Each vector is base64 (standard alphabet, padded) of HMAC(key, exact bytes
# of the body file). A key is either a text secret (used as its raw UTF-8
# bytes, openssl -hmac) or a hex key (openssl -mac HMAC -macopt hexkey:...).
# The exact command that produced each signature is recorded in the vector.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/vectors.json}
cd "$here"

command -v openssl >/dev/null || { echo "regen.sh: openssl not found on PATH" >&2; exit 1; }

# name | body file (relative to this directory) | key kind (secret|hexkey) | key
cases=(
	"seed1|bodies/seed1-resultaat.xml|secret|geheim-van-coachview"
	"seed1-oneline|bodies/seed1-oneline.xml|secret|geheim-van-coachview"
	"seed2|bodies/seed2-resultaatdecimaal.xml|secret|geheim-van-coachview"
	"empty-body|bodies/empty.bin|secret|geheim-van-coachview"
	"utf8-body-and-secret|bodies/utf8.xml|secret|sleutel-ë-€-✓"
	"binary-key|bodies/seed1-resultaat.xml|hexkey|00ff10e2807f8081c3a90a0d2022275c00"
	"long-key|bodies/seed2-resultaatdecimaal.xml|hexkey|$(printf '%02x' $(seq 0 199))"
)
algs=(sha512 sha256 sha1)

json_safe() {
	case $1 in
	*'"'* | *'\'*) echo "regen.sh: value must not contain a quote or backslash: $1" >&2; exit 1 ;;
	esac
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
{
	echo '['
	first=1
	for c in "${cases[@]}"; do
		IFS='|' read -r name body kind key <<<"$c"
		json_safe "$key"
		for alg in "${algs[@]}"; do
			if [[ $kind == secret ]]; then
				cmd="openssl dgst -$alg -hmac '$key' -binary < $body | base64 -w0"
				sig=$(openssl dgst "-$alg" -hmac "$key" -binary <"$body" | base64 -w0)
			else
				cmd="openssl dgst -$alg -mac HMAC -macopt hexkey:$key -binary < $body | base64 -w0"
				sig=$(openssl dgst "-$alg" -mac HMAC -macopt "hexkey:$key" -binary <"$body" | base64 -w0)
			fi
			[[ $first == 1 ]] || echo ','
			first=0
			printf '  {\n    "name": "%s-%s",\n    "body": "%s",\n    "%s": "%s",\n    "alg": "%s",\n    "signature": "%s",\n    "command": "%s"\n  }' \
				"$name" "$alg" "$body" "$kind" "$key" "$alg" "$sig" "$cmd"
		done
	done
	printf '\n]\n'
} >"$tmp"
mv "$tmp" "$out"
trap - EXIT
