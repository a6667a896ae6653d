#!/bin/bash
# Installs what the tests and the namespace lab need on a fresh Debian/Ubuntu machine:
# the real daemons from Debian (their validators and the lab run them) and the pinned
# Python requirements. Idempotent; needs root. Installing never starts host services.
set -euo pipefail
cd "$(dirname "$0")/.."

# The packages: scripts/host-packages.txt, the one list of every program the project runs on
# the host, read by webcluster/hostdeps.py (stdlib-only, so it runs before the requirements).
PYTHON=${PYTHON:-python3}
mapfile -t PACKAGES < <("$PYTHON" -m webcluster.hostdeps packages)

if [ "${1:-}" = --check ]; then
	# Every listed program present, else the package to install (exit 2).
	exec "$PYTHON" -m webcluster.hostdeps check
fi

if [ "$(id -u)" != 0 ]; then
	echo "run as root (network namespaces, loop devices and mounts need it)" >&2
	exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "== apt-get install ${missing[*]}"
	created_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		# Do not let package scripts start apache2/haproxy/glusterd on the host.
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		created_policy=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

echo "== pip install -r requirements.txt"
"$PYTHON" -m pip install -q --disable-pip-version-check -r requirements.txt
