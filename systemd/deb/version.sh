#!/bin/sh
# version.sh — the version of the checkout, for `make build` and `make deb`:
# `git describe` when a tag exists (v1.4.0, v1.4.0-3-gabc1234), else
# 0.1.0~git<commit date>.<commit time>.<hash> in UTC, which sorts by commit
# time (dpkg --compare-versions), so a later untagged build is an upgrade,
# and below 0.1.0 ('~' sorts before the release), so the first tag is too.
# A checkout with uncommitted changes gets ~dirty (lower than the commit).
# Outside a git checkout: dev.
set -eu
cd "$(dirname "$0")/../.."
if ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo dev
	exit 0
fi
if tag=$(git describe --tags --dirty 2>/dev/null); then
	echo "$tag"
	exit 0
fi
stamp=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d.%H%M%S)
hash=$(git rev-parse --short=7 HEAD)
dirty=""
git diff --quiet HEAD -- 2>/dev/null || dirty="~dirty"
echo "0.1.0~git$stamp.$hash$dirty"
