#!/bin/bash
# Installs what the tests and the namespace lab need on a fresh Debian/Ubuntu machine:
# the real daemons from Debian (their validators and the lab run them) and the pinned
# Python requirements. Idempotent; needs root. Installing never starts host services.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
	iproute2 curl util-linux psmisc xfsprogs nftables isc-dhcp-client
	haproxy keepalived dnsmasq-base
	apache2 libapache2-mod-php php-cli apache2-utils
	glusterfs-server glusterfs-client
	corosync corosync-qdevice corosync-qnetd pacemaker pacemaker-cli-utils crmsh resource-agents openssl
	shellcheck xsltproc
	qemu-system-x86 qemu-utils debootstrap openssh-client e2fsprogs
)

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
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

PYTHON=${PYTHON:-python3}
echo "== pip install -r requirements.txt"
"$PYTHON" -m pip install -q --disable-pip-version-check -r requirements.txt
