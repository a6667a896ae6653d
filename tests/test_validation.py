"""Every cross-field rule, the key path it names, and how `validate` reports a stack file."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import DEV_STACK, run_cli
from webcluster.model import StackConfig
from webcluster.stackfile import load_values
from webcluster.validation import ConfigError, Problem, parse

# The seed's config spelled out as a stack file would (camelCase keys): each case changes a few keys of it.
DEFAULTS: dict[str, Any] = StackConfig().model_dump(by_alias=True, mode="json")
KEY = re.compile(r"([A-Za-z0-9_-]+)|\[(\d+)\]")


def set_path(values: dict[str, Any], path: str, value: Any) -> None:
    """Set `cluster.backends[1].containers[2].port`-style paths in nested dicts and lists."""
    keys = [name if name else int(index) for name, index in KEY.findall(path)]
    target = values
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value


def values_with(changes: dict[str, Any]) -> dict[str, Any]:
    values = copy.deepcopy(DEFAULTS)
    for path, value in changes.items():
        set_path(values, path, value)
    return values


def errors_of(values: dict[str, Any]) -> list[Problem]:
    with pytest.raises(ConfigError) as exc:
        parse(values)
    return [p for p in exc.value.problems if p.severity == "error"]


SEED_DIRECTOR = DEFAULTS["cluster"]["directors"][0]
PACEMAKER = {"haStack": "pacemaker"}

# id -> (changes, {key path of every error: a fragment of its message})
CASES: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "networks overlap": ({"cluster.networks.heartbeat.cidr": "10.0.0.0/16"}, {"cluster.networks.heartbeat.cidr": "overlaps the internal network"}),
    "gateway outside its network": ({"cluster.networks.external.gateway": "192.168.2.1"}, {"cluster.networks.external.gateway": "is not inside 192.168.1.0/24"}),
    "dhcp start outside internal": (
        {"cluster.dhcp.start": "10.0.99.250"},
        {"cluster.dhcp.start": "not inside the internal network", "cluster.directors[0].internal": "static address inside the DHCP range"},
    ),
    "dhcp range reversed": ({"cluster.dhcp.start": "10.0.100.40", "cluster.dhcp.end": "10.0.100.30"}, {"cluster.dhcp.end": "comes before the range start"}),
    "vip outside its network": ({"cluster.vips.external": "192.168.2.200"}, {"cluster.vips.external": "not inside the external network"}),
    "internal vip in dhcp range": ({"cluster.vips.internal": "10.0.100.20"}, {"cluster.vips.internal": "inside the DHCP range"}),
    "invalid hostname": ({"cluster.backends[0].containers[1].name": "Cluster_22p"}, {"cluster.backends[0].containers[1].name": "not a valid hostname"}),
    "duplicate name": ({"cluster.backends[2].containers[0].name": "cluster2"}, {"cluster.backends[2].containers[0].name": "already used by cluster.backends[0].name"}),
    "address outside its network": ({"cluster.directors[1].heartbeat": "10.0.51.2"}, {"cluster.directors[1].heartbeat": "not inside the heartbeat network"}),
    "broadcast address": ({"cluster.nas.address": "10.0.100.255"}, {"cluster.nas.address": "network or broadcast address"}),
    "duplicate address": ({"cluster.gluster.servers[2].address": "10.0.100.5"}, {"cluster.gluster.servers[2].address": "already used by cluster.gluster.servers[0].address"}),
    "static address in dhcp range": ({"cluster.nas.address": "10.0.100.20"}, {"cluster.nas.address": "static address inside the DHCP range"}),
    "one director": ({"cluster.directors": [SEED_DIRECTOR]}, {"cluster.directors": "needs 2 or 3 directors, found 1"}),
    "duplicate priority": ({"cluster.directors[2].priority": 100}, {"cluster.directors[2].priority": "already used by cluster.directors[1].priority"}),
    "router id removed": ({"cluster.vrrp.routerIds": {"heartbeat": None}}, {"cluster.vrrp.routerIds.heartbeat": "missing"}),
    "router id of unknown network": ({"cluster.vrrp.routerIds.dmz": 54}, {"cluster.vrrp.routerIds.dmz": "unknown network"}),
    "router id out of range": ({"cluster.vrrp.routerIds.heartbeat": 300}, {"cluster.vrrp.routerIds.heartbeat": "outside 1-255"}),
    "duplicate router id": ({"cluster.vrrp.routerIds.heartbeat": 51}, {"cluster.vrrp.routerIds.heartbeat": "already used by cluster.vrrp.routerIds.external"}),
    "vrrp v2 sub-second adverts": ({"cluster.vrrp.version": 2}, {"cluster.vrrp.advertInterval": "whole seconds"}),
    "qnetd on a director": ({**PACEMAKER, "cluster.pacemaker.qnetdHost": "standby1"}, {"cluster.pacemaker.qnetdHost": "is a director"}),
    "qnetd not a node": ({**PACEMAKER, "cluster.pacemaker.qnetdHost": "arbiter"}, {"cluster.pacemaker.qnetdHost": "not a node of the cluster"}),
    "fence agent of another hypervisor": ({**PACEMAKER, "cluster.pacemaker.fencing": "vbox"}, {"cluster.pacemaker.fencing": "fence_vbox cannot fence libvirt VMs"}),
    "fence_virsh on virtualbox": (
        {**PACEMAKER, "hypervisor": "virtualbox", "cluster.pacemaker.fencing": "virsh"},
        {"cluster.pacemaker.fencing": "fence_virsh cannot fence virtualbox VMs"},
    ),
    "fence host without a gateway to default to": ({**PACEMAKER, "cluster.networks.external.gateway": None}, {"cluster.pacemaker.fenceHost": "no gateway"}),
    "fence host not a host": ({**PACEMAKER, "cluster.pacemaker.fenceHost": "host; reboot"}, {"cluster.pacemaker.fenceHost": "not a host name or address"}),
    "fence vm of a non-director": ({**PACEMAKER, "cluster.pacemaker.fenceVms": {"nas": "nas-vm"}}, {"cluster.pacemaker.fenceVms.nas": "not a director"}),
    "fence vm name not plain": ({**PACEMAKER, "cluster.pacemaker.fenceVms": {"cluster1": "my vm"}}, {"cluster.pacemaker.fenceVms.cluster1": "not a plain VM name"}),
    "fence parameter name": ({**PACEMAKER, "cluster.pacemaker.fenceParams": {"Host-OS": "windows"}}, {"cluster.pacemaker.fenceParams.Host-OS": "not a fence agent parameter name"}),
    "fence parameter set by the program": ({**PACEMAKER, "cluster.pacemaker.fenceParams": {"password": "x"}}, {"cluster.pacemaker.fenceParams.password": "not overridable"}),
    "fence parameter with a quote": ({**PACEMAKER, "cluster.pacemaker.fenceParams": {"host_os": 'win"dows'}}, {"cluster.pacemaker.fenceParams.host_os": "quotes"}),
    "no docker host": (
        {"cluster.backends": []},
        {"cluster.backends": "at least one Docker host", **{f"cluster.haproxy.services[{i}].containers": "has no container" for i in range(4)}},
    ),
    "duplicate host port": ({"cluster.backends[1].containers[2].port": 8081}, {"cluster.backends[1].containers[2].port": "host port 8081 is already used by cluster.backends[1].containers[0].port"}),
    "container on the stats port": ({"cluster.backends[1].containers[2].port": 7000}, {"cluster.backends[1].containers[2].port": "port 7000 is reserved"}),
    "container on the ssh port": ({"cluster.backends[0].containers[0].port": 22}, {"cluster.backends[0].containers[0].port": "port 22 is reserved"}),
    "unknown docroot": ({"cluster.backends[0].containers[3].docroot": "gv9"}, {"cluster.backends[0].containers[3].docroot": "unknown storage 'gv9'"}),
    "health port taken": ({"cluster.haproxy.tuning.healthPort": 8000}, {"cluster.haproxy.tuning.healthPort": "port 8000 is already used by cluster.haproxy.services[0].port"}),
    "duplicate service name": ({"cluster.haproxy.services[1].name": "haproxy-http"}, {"cluster.haproxy.services[1].name": "service name haproxy-http is already used"}),
    "duplicate backend section": ({"cluster.haproxy.services[3].backend": "http-servers"}, {"cluster.haproxy.services[3].backend": "already used by cluster.haproxy.services[0].backend"}),
    "no service": ({"cluster.haproxy.services": []}, {"cluster.haproxy.services": "at least one service"}),
    "unknown service storage": (
        {"cluster.haproxy.services[0].storage": "gv7"},
        {"cluster.haproxy.services[0].storage": "unknown storage 'gv7'", "cluster.haproxy.services[0].containers": "has no container"},
    ),
    "service on the ssh port": ({"cluster.haproxy.services[1].port": 22}, {"cluster.haproxy.services[1].port": "port 22 is already used on the directors by sshd"}),
    "stats on the dns port": ({"cluster.haproxy.stats.port": 53}, {"cluster.haproxy.stats.port": "port 53 is already used on the directors by dnsmasq"}),
    "health port on the ssh port": ({"cluster.haproxy.tuning.healthPort": 22}, {"cluster.haproxy.tuning.healthPort": "by sshd"}),
    "stats on a service port": ({"cluster.haproxy.stats.port": 9000}, {"cluster.haproxy.stats.port": "port 9000 is already used by cluster.haproxy.services[2].port"}),
    "service with an empty container list": (
        {"cluster.haproxy.services[0].containers": []},
        {"cluster.haproxy.services[0].containers": "is an empty list, so service haproxy-http has no server"},
    ),
    "every docker host emptied": (
        {f"cluster.backends[{i}].containers": [] for i in range(3)},
        {
            f"cluster.haproxy.services[{i}].containers": "cluster.backends[0].containers and cluster.backends[1].containers and cluster.backends[2].containers are empty lists"
            for i in range(4)
        },
    ),
    "two volumes on one brick": ({"cluster.gluster.volumes[1].brick": 1}, {"cluster.gluster.volumes[1].brick": "brick 1 is already used by cluster.gluster.volumes[0].brick"}),
    "cookie on tcp": ({"cluster.haproxy.services[1].persistence": "cookie"}, {"cluster.haproxy.services[1].persistence": "needs mode http"}),
    "unknown service container": ({"cluster.haproxy.services[0].containers": ["cluster21p", "nope"]}, {"cluster.haproxy.services[0].containers[1]": "no container named 'nope'"}),
    "service storage without containers": ({"cluster.haproxy.services[0].storage": "gv1"}, {"cluster.haproxy.services[0].containers": "none uses storage 'gv1'"}),
    "service container on another storage": ({"cluster.haproxy.services[0].containers": ["cluster24p"]}, {"cluster.haproxy.services[0].containers": "container cluster24p serves 'gv0'"}),
    "bad adminNetworks entry": ({"cluster.adminNetworks": ["host", "10.0.300.0/24"]}, {"cluster.adminNetworks[1]": "neither `host`, a network name"}),
    "unknown admin network": ({"cluster.haproxy.stats.adminNetworks": ["internal", "dmz"]}, {"cluster.haproxy.stats.adminNetworks[1]": "unknown network 'dmz'"}),
    "raid6 on 3 disks": ({"cluster.nas.raid.level": 6}, {"cluster.nas.raid.disks": "RAID6 needs at least 4 disks, got 3"}),
    "raid10 on an odd count": ({"cluster.nas.raid.level": 10, "cluster.nas.raid.disks": 5}, {"cluster.nas.raid.disks": "even number"}),
    "raid0 with a spare": ({"cluster.nas.raid.level": 0, "cluster.nas.raid.spareDisks": 1}, {"cluster.nas.raid.spareDisks": "RAID0 cannot use spare disks"}),
    "bond of one nic": ({"cluster.nas.bond.interfaces": ["enp0s3"]}, {"cluster.nas.bond.interfaces": "at least 2 NICs"}),
    "bond nic twice": ({"cluster.nas.bond.interfaces": ["enp0s3", "enp0s3"]}, {"cluster.nas.bond.interfaces[1]": "interface enp0s3 is already used"}),
    "volumes without servers": ({"cluster.gluster.servers": []}, {"cluster.gluster.servers": "no Gluster server"}),
    "duplicate volume name": ({"cluster.gluster.volumes[1].name": "gv0"}, {"cluster.gluster.volumes[1].name": "volume name gv0 is already used"}),
    "duplicate volume mountpoint": ({"cluster.gluster.volumes[1].mountpoint": "/gluster/gfs-r"}, {"cluster.gluster.volumes[1].mountpoint": "already used by cluster.gluster.volumes[0].mountpoint"}),
    "volume named nfs": ({"cluster.gluster.volumes[1].name": "nfs"}, {"cluster.gluster.volumes[1].name": "name of the NAS storage"}),
    "brick beyond bricksPerServer": ({"cluster.gluster.volumes[1].brick": 3}, {"cluster.gluster.volumes[1].brick": "brick 3 does not exist"}),
    "replica not dividing bricks": ({"cluster.gluster.volumes[0].replica": 2}, {"cluster.gluster.volumes[0].replica": "3 bricks (one per server) is not a multiple of replica 2"}),
    "volume on the nfs mountpoint": ({"cluster.gluster.volumes[1].mountpoint": "/nfs"}, {"cluster.gluster.volumes[1].mountpoint": "is the NFS mountpoint"}),
    "placement of an unknown node": (
        {"libvirt.hosts": {"h2": "qemu+ssh://root@h2/system"}, "libvirt.placement": {"ghost": "h2"}},
        {"libvirt.placement.ghost": "no node of that name"},
    ),
    "placement on an unknown host": ({"libvirt.placement": {"cluster2": "h9"}}, {"libvirt.placement.cluster2": "unknown host 'h9'"}),
    # terraform-provider-libvirt v0.8.1, libvirt/uri/ssh.go dialHost: dials u.Host (host:port) as the host name, logs in as u.User.Username()
    "ssh uri with a port": ({"libvirt.uri": "qemu+ssh://root@hv1:2222/system"}, {"libvirt.uri": "dials 'host:port' as the host name"}),
    "ssh uri with port 22": ({"libvirt.hosts": {"h2": "qemu+ssh://root@h2:22/system"}}, {"libvirt.hosts.h2": "names a port"}),
    "ssh uri without a user": ({"libvirt.uri": "qemu+ssh://hv1/system"}, {"libvirt.uri": "qemu+ssh://USER@hv1/system"}),
    "host address outside internal": ({"libvirt.hostAddress": "10.0.99.1"}, {"libvirt.hostAddress": "not inside the internal network"}),
    "host address of a node": ({"libvirt.hostAddress": "10.0.100.100"}, {"libvirt.hostAddress": "10.0.100.100 is already used by nas"}),
    "host address in the DHCP range": ({"libvirt.hostAddress": "10.0.100.30"}, {"libvirt.hostAddress": "inside the DHCP range"}),
    "virtualbox gateway not first": ({"hypervisor": "virtualbox", "cluster.networks.external.gateway": "192.168.1.254"}, {"cluster.networks.external.gateway": "routes through its first address (192.168.1.1)"}),
    "virtualbox ssh forward collides": ({"hypervisor": "virtualbox", "virtualbox.sshBasePort": 6999}, {"virtualbox.sshBasePort": "collides with the port forward HA-Estado"}),
    "duplicate forwarded port": ({"hypervisor": "virtualbox", "virtualbox.portForwards[1].hostPort": 8000}, {"virtualbox.portForwards[1].hostPort": "host port 8000 is already used"}),
    "forward to no service": ({"hypervisor": "virtualbox", "virtualbox.portForwards[0].guestPort": 8080}, {"virtualbox.portForwards[0].guestPort": "no HAProxy service or stats page listens on 8080"}),
}


def test_the_seed_defaults_are_valid() -> None:
    """The baseline of every case: without a change there is no problem at all."""
    config, warnings = parse(copy.deepcopy(DEFAULTS))
    assert warnings == []
    assert config == StackConfig()


@pytest.mark.parametrize("changes, expected", CASES.values(), ids=CASES.keys())
def test_rule_names_the_key_path(changes: dict[str, Any], expected: dict[str, str]) -> None:
    errors = errors_of(values_with(changes))
    assert {p.path for p in errors} == set(expected), [str(p) for p in errors]
    for path, fragment in expected.items():
        assert any(fragment in p.message for p in errors if p.path == path), (path, fragment, [str(p) for p in errors])


INDEPENDENT = ["duplicate host port", "broadcast address", "duplicate router id", "cookie on tcp", "raid6 on 3 disks", "volume named nfs"]


def test_every_error_is_reported_at_once() -> None:
    changes = {k: v for case in INDEPENDENT for k, v in CASES[case][0].items()}
    errors = errors_of(values_with(changes))
    assert {p.path for p in errors} == {path for case in INDEPENDENT for path in CASES[case][1]}


def test_fewer_global_connections_than_server_slots_is_a_warning() -> None:
    """Safe (clients wait in the accept queue), but servers stay idle; a scaled-out cluster with
    the defaults meets it, so it may not stop a deployment."""
    _, warnings = parse(values_with({"cluster.haproxy.tuning.maxconn": 1000, "cluster.haproxy.tuning.serverMaxconn": 100}))
    assert [(w.path, w.severity) for w in warnings] == [("cluster.haproxy.tuning.maxconn", "warning")]
    assert "1000 is less than serverMaxconn 100 x 24 server lines = 2400" in warnings[0].message


@pytest.mark.parametrize("image, floating", [
    ("php:apache", True), ("php:latest", True), ("registry.example:5000/php:apache-bookworm", True),
    ("php:8.2.29-apache-bookworm", False), ("registry.example:5000/php:8.3-apache", False),
    ("php:apache@sha256:" + "a" * 64, False),
])
def test_a_floating_image_tag_is_a_warning(image: str, floating: bool) -> None:
    """`php:apache` is valid Docker but moves with every upstream rebuild: warned, with the key."""
    _, warnings = parse(values_with({"cluster.docker.image": image}))
    assert [(w.path, w.severity) for w in warnings] == ([("cluster.docker.image", "warning")] if floating else [])
    if floating:
        assert "floating tag" in warnings[0].message and image in warnings[0].message


@pytest.mark.parametrize(
    "changes, path, fragment",
    [
        ({"cluster.pacemaker.fencing": "none"}, "cluster.pacemaker.fencing", "split brain"),
        ({"cluster.pacemaker.qnetdHost": None}, "cluster.pacemaker.qnetdHost", "no quorum device"),
    ],
    ids=["fencing off", "no quorum device"],
)
def test_risky_pacemaker_choices_are_warnings_not_errors(changes: dict[str, Any], path: str, fragment: str) -> None:
    _, warnings = parse(values_with({**PACEMAKER, **changes}))
    assert [(w.path, w.severity, fragment in w.message) for w in warnings] == [(path, "warning", True)]


def test_libvirt_stack_may_change_the_seed_ports() -> None:
    """VirtualBox port forwards are not checked on libvirt, so moving a service needs no VirtualBox edit."""
    config, _ = parse(values_with({"cluster.haproxy.services[0].port": 8080}))
    assert config.cluster.haproxy.services[0].port == 8080


@pytest.mark.parametrize(
    "changes, path, fragment",
    [
        ({"cluster.backends[0].colour": "red"}, "cluster.backends[0].colour", "unknown key"),
        ({"cluster.haproxy.stats.refreshS": 5, "cluster.haproxy.stats.refresh": 5}, "cluster.haproxy.stats.refresh", "unknown key"),
        ({"cluster.nas.raid.level": 4}, "cluster.nas.raid.level", "Input should be 0, 1, 5, 6 or 10"),
        ({"cluster.directors[1].external": "192.168.1.300"}, "cluster.directors[1].external", "IPv4"),
        ({"statsPassword": "hunter2"}, "statsPassword", "is a secret key"),
        ({"cluster.nas.raid.spareDisks": -1}, "cluster.nas.raid.spareDisks", "greater than or equal to 0"),
        ({"cluster.nas.raid.spareDisks": 9}, "cluster.nas.raid.spareDisks", "less than or equal to 8"),
        ({"cluster.nas.raid.alertCommand": "logger one\nrm -rf /"}, "cluster.nas.raid.alertCommand", "should match pattern"),
        ({"cluster.nas.raid.alertCommand": ""}, "cluster.nas.raid.alertCommand", "at least 1 character"),
        ({"cluster.nas.raid.alertMail": "ops@example.org, root"}, "cluster.nas.raid.alertMail", "should match pattern"),
    ],
    ids=["unknown nested key", "unknown key beside a known one", "enum value", "bad address", "secret in the model values",
         "negative spares", "too many spares", "alert command on two lines", "empty alert command", "two mail addresses"],
)
def test_field_errors_name_the_key_path(changes: dict[str, Any], path: str, fragment: str) -> None:
    errors = errors_of(values_with(changes))
    assert [(p.path, fragment in p.message) for p in errors] == [(path, True)]


def test_every_field_error_is_reported_at_once() -> None:
    errors = errors_of(values_with({"cluster.backends[0].colour": "red", "cluster.nas.raid.level": 4, "cluster.vips.internal": "nope"}))
    assert {p.path for p in errors} == {"cluster.backends[0].colour", "cluster.nas.raid.level", "cluster.vips.internal"}


# --------------------------------------------------------------------------- secrets in stack files


def test_secret_in_clear_text_is_rejected() -> None:
    with pytest.raises(ConfigError) as exc:
        load_values({"ha-web-cluster:statsPassword": "hunter2", "ha-web-cluster:cluster": {"nas": {"address": "10.0.100.255"}}})
    problems = {p.path: p.message for p in exc.value.problems}
    assert "never in clear text" in problems["statsPassword"]
    assert "broadcast" in problems["cluster.nas.address"]  # reported together with the config's own errors
    assert "hunter2" not in str(exc.value)


def test_secure_values_are_accepted_without_decryption() -> None:
    stack = load_values(
        {
            "ha-web-cluster:statsPassword": {"secure": "v1:bm90LWEtcmVhbC1jaXBoZXJ0ZXh0"},
            "ha-web-cluster:corosyncKey": {"secure": "AAABAGarbage=="},
            "libvirt:uri": "qemu:///system",  # other namespaces belong to their providers
        }
    )
    assert stack.secrets_set == {"statsPassword", "corosyncKey"}
    assert stack.config == StackConfig()


def test_secure_value_for_a_plain_key_is_rejected() -> None:
    with pytest.raises(ConfigError) as exc:
        load_values({"ha-web-cluster:sshUser": {"secure": "v1:abc"}})
    assert [(p.path, "not a secret key" in p.message) for p in exc.value.problems] == [("sshUser", True)]


# --------------------------------------------------------------------------- the CLI


def test_validate_prints_the_summary_of_the_dev_stack() -> None:
    proc = run_cli("validate", "--file", str(DEV_STACK))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("stack dev: 10 VMs on libvirt, HA stack keepalived\n")
    for line in (
        "VIPs      external 192.168.1.200, internal 10.0.100.200; DHCP 10.0.100.2-10.0.100.49 (infinite)",
        "director  cluster1   master   prio 150  192.168.1.101 / 10.0.100.1 / 10.0.50.1",
        "director  standby2   standby  prio 90   192.168.1.103 / 10.0.100.51 / 10.0.50.3",
        "nas       nas        10.0.100.100 bond0 active-backup over enp0s3+enp0s8, RAID5 3x200 MiB on /raid",
        "gluster   3 servers x 2 bricks: gv0 (replica 3), gv1 (distribute)",
        "docker    cluster3   10.0.100.3  cluster31p:8081/nfs cluster32p:8082/nfs cluster33p:8083/nfs cluster34p:8085/gv0",
        "service   haproxy-http    192.168.1.200:8000 http nfs  9 containers cookie",
        "service   haproxy-tcp_g   192.168.1.200:90 tcp  gv0  3 containers\n",
        "stats     http://192.168.1.200:7000/haproxy?stats (user admin)",
    ):
        assert line in out
    assert proc.stderr == ""


def test_validate_exits_2_listing_every_error(tmp_path: Path) -> None:
    broken = tmp_path / "Pulumi.broken.yaml"
    cluster = {"nas": {"address": "10.0.100.255"}, "vrrp": {"routerIds": {"external": 51, "internal": 52, "heartbeat": 51}}}
    broken.write_text(yaml.safe_dump({"config": {"ha-web-cluster:cluster": cluster, "ha-web-cluster:vrrpAuthPass": "secret1"}}))
    proc = run_cli("validate", "--file", str(broken))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0] == "invalid stack config (3 errors):"
    assert sorted(line.split(":")[1].strip() for line in lines[1:]) == ["cluster.nas.address", "cluster.vrrp.routerIds.heartbeat", "vrrpAuthPass"]
    assert "secret1" not in proc.stderr


def test_validate_exits_2_on_a_missing_file(tmp_path: Path) -> None:
    proc = run_cli("validate", "--file", str(tmp_path / "Pulumi.none.yaml"))
    assert proc.returncode == 2
    assert "stack file not found" in proc.stderr


@pytest.mark.parametrize("uri", ["qemu:///system", "qemu+ssh://admin@hv1/system", "qemu+ssh://root@[fd00::1]/system", "qemu+tcp://hv1:16509/system"])
def test_libvirt_uris_the_provider_dials_as_written_are_accepted(uri: str) -> None:
    """tcp/tls take their port from u.Port() (libvirt/uri/tcp.go, tls.go): only the ssh transport mangles it."""
    config, _ = parse(values_with({"libvirt.uri": uri}))
    assert config.libvirt.uri == uri


def test_ssh_uri_rules_apply_only_to_libvirt_stacks() -> None:
    config, _ = parse(values_with({"hypervisor": "virtualbox", "libvirt.uri": "qemu+ssh://hv1:2222/system"}))
    assert config.hypervisor.value == "virtualbox"
