#!/bin/sh
# build.sh VERSION [OUTDIR] — build OUTDIR/cvbridge and
# OUTDIR/cvbridge_<version>_<arch>.deb with dpkg-deb (OUTDIR defaults to the
# repository's bin/). Run from anywhere.
#
# The package holds:
#   /usr/bin/cvbridge                               the daemon (cgo, libxml2)
#   /lib/systemd/system/cvbridge.service            the unit
#   /usr/lib/sysusers.d/cvbridge.conf               the cvbridge user
#   /usr/lib/tmpfiles.d/cvbridge.conf               /etc/cvbridge, /var/lib/cvbridge
#   /etc/cvbridge/cvbridge.yaml, lms.d/*.yaml       example configuration (conffiles)
#   /usr/share/doc/cvbridge/                        README.md, systemd.md, examples/
set -eu

usage() { echo "usage: $0 VERSION [OUTDIR]   (VERSION for example 1.4.0, or v1.4.0 from git describe)" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] && [ -n "$1" ] || usage
version=$1
# A Debian version must start with a digit and use only [A-Za-z0-9.+~]
# (a '-' would split off a Debian revision): drop a leading v, write git
# describe's "-N-gHASH" as "+N.gHASH" (after the tag), any other '-' (as in
# "-rc1", "-dirty") as '~', anything else as '.', and put anything else that
# does not start with a digit after 0~. An untagged checkout is versioned by
# version.sh as 0.1.0~git<date>.<time>.<hash>, which sorts by commit time.
debversion=$(printf '%s' "$version" | sed -e 's/^v//' -e 's/-\([0-9][0-9]*\)-g\([0-9a-f]*\)/+\1.g\2/' \
	-e 's/-/~/g' -e 's/[^A-Za-z0-9.+~]/./g')
case $debversion in
[0-9]*) ;;
*) debversion="0~$debversion" ;;
esac

maintainer="cvbridge maintainers <cvbridge@users.noreply.github.com>"
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
outdir=${2:-bin}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
bin="$outdir/cvbridge"
for tool in go dpkg-deb dpkg objdump; do
	command -v "$tool" >/dev/null 2>&1 || { echo "build.sh: $tool is missing" >&2; exit 1; }
done
arch=$(dpkg --print-architecture)

echo "build.sh: building $bin $version"
# -s -w: no symbol table or DWARF in the packaged binary (Debian policy);
# a position-independent executable, as Debian's hardening asks.
CGO_ENABLED=1 go build -trimpath -buildmode=pie -ldflags "-s -w -X main.version=$version" -o "$bin" ./cmd/cvbridge

# The newest glibc symbol version the binary uses is the libc6 it needs.
glibc=$(objdump -T "$bin" | sed -n 's/.*GLIBC_\([0-9.]*\).*/\1/p' | sort -uV | tail -n 1)
[ -n "$glibc" ] || { echo "build.sh: no glibc symbol versions in $bin (not a cgo build?)" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg="$stage/cvbridge"
install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/usr/lib/sysusers.d" \
	"$pkg/usr/lib/tmpfiles.d" "$pkg/etc/cvbridge/lms.d" "$pkg/usr/share/doc/cvbridge/examples/lms.d"
install -m 0755 "$bin" "$pkg/usr/bin/cvbridge"
install -m 0644 systemd/cvbridge.service "$pkg/lib/systemd/system/cvbridge.service"
install -m 0644 systemd/cvbridge.sysusers "$pkg/usr/lib/sysusers.d/cvbridge.conf"
install -m 0644 systemd/cvbridge.tmpfiles "$pkg/usr/lib/tmpfiles.d/cvbridge.conf"
install -m 0644 README.md "$pkg/usr/share/doc/cvbridge/README.md"
install -m 0644 systemd/README.md "$pkg/usr/share/doc/cvbridge/systemd.md"
install -m 0644 systemd/deb/copyright "$pkg/usr/share/doc/cvbridge/copyright"
# The changelog names the version this package is and what it is built from.
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
printf 'cvbridge (%s) unstable; urgency=medium\n\n  * Built from %s.\n\n -- %s  %s\n' \
	"$debversion" "$version" "$maintainer" "$date" | gzip -9n >"$pkg/usr/share/doc/cvbridge/changelog.gz"
chmod 0644 "$pkg/usr/share/doc/cvbridge/changelog.gz"
install -m 0644 examples/cvbridge.yaml "$pkg/usr/share/doc/cvbridge/examples/cvbridge.yaml"
install -m 0644 examples/lms.d/*.yaml "$pkg/usr/share/doc/cvbridge/examples/lms.d/"

# /etc/cvbridge/cvbridge.yaml: the example, except that the outbox is named
# in the state directory, so the service and every command run from a shell
# (cvbridge outbox list --config /etc/cvbridge/cvbridge.yaml) read the same
# file. A relative storage.path would resolve against /etc/cvbridge, which
# the unit makes read-only.
sed 's|^  path: outbox\.db|  path: /var/lib/cvbridge/outbox.db|' examples/cvbridge.yaml >"$pkg/etc/cvbridge/cvbridge.yaml"
if ! grep -q '^  path: /var/lib/cvbridge/outbox.db$' "$pkg/etc/cvbridge/cvbridge.yaml"; then
	echo "build.sh: examples/cvbridge.yaml sets storage.path in a way this script does not recognise; /etc/cvbridge is read-only for the service" >&2
	exit 1
fi
chmod 0640 "$pkg/etc/cvbridge/cvbridge.yaml"
for f in examples/lms.d/*.yaml; do
	install -m 0640 "$f" "$pkg/etc/cvbridge/lms.d/"
done
chmod 0750 "$pkg/etc/cvbridge" "$pkg/etc/cvbridge/lms.d"

install -m 0755 systemd/deb/postinst systemd/deb/prerm systemd/deb/postrm "$pkg/DEBIAN/"
(cd "$pkg" && find etc -type f | sed 's|^|/|' | sort) >"$pkg/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: cvbridge
Version: $debversion
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: libc6 (>= $glibc), libxml2, adduser
Section: net
Priority: optional
Homepage: https://github.com/cvbridge/cvbridge
Description: bridge between e-learning systems and Coachview
 cvbridge carries e-learning results from LMSs (Moodle, SCORM tracking
 databases, CSV exports) to Coachview as signed XML through a persistent
 outbox, and takes enrolments back. It runs as a hardened systemd service
 with a local admin dashboard and Prometheus metrics.
CONTROL
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort | xargs md5sum) >"$pkg/DEBIAN/md5sums"

out="$outdir/cvbridge_${debversion}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$out" >/dev/null
echo "build.sh: wrote $out"
