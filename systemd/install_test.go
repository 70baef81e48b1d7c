package systemd_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// installScript runs in a throw-away copy of this machine's root (an
// overlay in a private mount namespace, so nothing reaches the real
// system), as an operator following the README would: install the package,
// configure it, drive the commands as user cvbridge, then remove, reinstall
// and purge. No systemd runs in it: the maintainer scripts skip systemctl
// as they do in a container. Each step prints "step: NAME" first, so a
// failure names it.
const installScript = `set -eu
step() { echo "step: $*"; }
R=$WORK/root
mkdir -p $WORK/upper $WORK/work $R
mount -t overlay overlay -o lowerdir=/,upperdir=$WORK/upper,workdir=$WORK/work $R
mount --bind /proc $R/proc
mount --bind /dev $R/dev
mount -t tmpfs tmpfs $R/run
mount -t tmpfs tmpfs $R/tmp
cp $DEB $R/tmp/cvbridge.deb
chroot $R /bin/sh -eu <<'INSIDE'
step() { echo "step: $*"; }
fails() { if "$@" >/tmp/out 2>&1; then echo "expected a failure: $*"; cat /tmp/out; exit 1; fi; cat /tmp/out; }
cfg=/etc/cvbridge/cvbridge.yaml
as_cvbridge() { runuser -u cvbridge -- "$@"; }

step install
dpkg -i /tmp/cvbridge.deb >/dev/null
test -f /etc/cvbridge/NOT-CONFIGURED
id cvbridge >/dev/null
test -d /var/lib/cvbridge/drop
test "$(stat -c %U /var/lib/cvbridge/drop)" = cvbridge

step configure
rm /etc/cvbridge/lms.d/moodle.yaml /etc/cvbridge/lms.d/scorm.yaml
printf 'shared-secret\n' >/etc/cvbridge/coachview.secret
chgrp cvbridge /etc/cvbridge/coachview.secret
chmod 0640 /etc/cvbridge/coachview.secret

step check as cvbridge
as_cvbridge cvbridge check --offline --config $cfg
test -f /var/lib/cvbridge/outbox.db
test ! -e /etc/cvbridge/outbox.db

step commands as cvbridge
as_cvbridge cvbridge target pause --config $cfg coachview
as_cvbridge cvbridge target status --config $cfg | grep -q paused
as_cvbridge cvbridge outbox list --config $cfg | grep -q '^ID'

step commands as root are refused
fails cvbridge outbox list --config $cfg
grep -q 'belongs to user cvbridge' /tmp/out
test "$(stat -c %U /var/lib/cvbridge/outbox.db)" = cvbridge

step remove keeps the outbox and the configuration
dpkg -r cvbridge >/dev/null
test -f /var/lib/cvbridge/outbox.db
test -f /etc/cvbridge/coachview.secret

step reinstall
dpkg -i /tmp/cvbridge.deb >/dev/null
test ! -e /etc/systemd/system/cvbridge.service || ! test "$(readlink /etc/systemd/system/cvbridge.service)" = /dev/null
as_cvbridge cvbridge target status --config $cfg | grep -q paused

step purge
dpkg -P cvbridge >/dev/null
test ! -e /var/lib/cvbridge
test ! -e /etc/cvbridge
if id cvbridge >/dev/null 2>&1; then echo "the cvbridge user is still there"; exit 1; fi
echo "all steps passed"
INSIDE
`

// TestInstallAsAnOperatorWould installs the .deb in a throw-away root and
// follows the README's steps there (issue 19): the CLI, run as cvbridge,
// reads the outbox the service uses; root is refused; remove keeps the
// state; reinstall unmasks; purge removes it all.
func TestInstallAsAnOperatorWould(t *testing.T) {
	deb := builtPackage(t)
	if os.Geteuid() != 0 {
		msg := "installing the package needs root (a private mount namespace with an overlay root)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; CI is set, so this is a failure")
		}
		t.Skip(msg)
	}
	unshare := need(t, "unshare", "util-linux")
	need(t, "runuser", "util-linux")
	work, err := os.MkdirTemp("", "cvbridge-install-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(work) })
	abs, err := filepath.Abs(deb)
	require.NoError(t, err)
	cmd := exec.CommandContext(t.Context(), unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", installScript)
	cmd.Env = append(os.Environ(), "WORK="+work, "DEB="+abs)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.True(t, strings.HasSuffix(strings.TrimSpace(string(out)), "all steps passed"), "%s", out)
}
