"""The rendered dev stack says what the seed says, the same way every time, without secrets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest

from conftest import DEV_STACK, TOPOLOGIES, run_cli
from webcluster.model import SECRET_KEYS, StackConfig
from webcluster.render import ClusterPlan, gluster_tls, https, render_cluster
from webcluster.render.plan import write_plan
from webcluster.stackfile import load_stack_file
from webcluster.topology import Topology, mac_for

# --------------------------------------------------------------------------- the seed's facts (thesis-topology.md)

DIRECTORS = {  # name: (priority, state, stats description, external, internal, heartbeat, aliases)
    "cluster1": (150, "MASTER", "Nodo cluster1", "192.168.1.101", "10.0.100.1", "10.0.50.1", "master lb1"),
    "standby1": (100, "BACKUP", "Nodo Standby1", "192.168.1.102", "10.0.100.50", "10.0.50.2", ""),
    "standby2": (90, "BACKUP", "Nodo Standby2", "192.168.1.103", "10.0.100.51", "10.0.50.3", ""),
}
DOCKER_HOSTS = {"cluster2": ("10.0.100.2", "server1"), "cluster3": ("10.0.100.3", "server2"), "cluster4": ("10.0.100.4", "server3")}
GLUSTER = {"gluster1": "10.0.100.5", "gluster2": "10.0.100.6", "gluster3": "10.0.100.7"}
CONTAINERS = {  # host: [(name, host port, docroot)]
    host: [(f"{host}{i}p", 8080 + i, "/nfs/raid/www") for i in (1, 2, 3)] + [(f"{host}4p", gport, "/gluster/gfs-r/www")]
    for host, gport in (("cluster2", 8084), ("cluster3", 8085), ("cluster4", 8086))
}
NFS_SERVERS = [(name, host, port) for host, cs in CONTAINERS.items() for name, port, root in cs if root.startswith("/nfs")]
GLUSTER_SERVERS = [(name, host, port) for host, cs in CONTAINERS.items() for name, port, root in cs if root.startswith("/gluster")]
FRONTENDS = {  # frontend: (bind, mode, backend, servers)
    "haproxy-http": ("192.168.1.200:8000", "http", "http-servers", NFS_SERVERS),
    "haproxy-tcp": ("192.168.1.200:80", "tcp", "tcp-servers", NFS_SERVERS),
    "haproxy-http_g": ("192.168.1.200:9000", "http", "http-servers-g", GLUSTER_SERVERS),
    "haproxy-tcp_g": ("192.168.1.200:90", "tcp", "tcp-servers-g", GLUSTER_SERVERS),
}
LOCAL_HOSTS = {"127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback", "ff02::1 ip6-allnodes", "ff02::2 ip6-allrouters"}
VRRP = {"VI_1": ("enp0s3", 51, "192.168.1.200/24"), "VI_2": ("enp0s8", 52, "10.0.100.200/24"), "VI_3": ("enp0s9", 53, "10.0.50.200/24")}


# --------------------------------------------------------------------------- helpers


def text(plan: ClusterPlan, node: str, path: str) -> str:
    content = plan.nodes[node].files[path].content
    assert isinstance(content, str)
    return content


def lines(content: str) -> list[str]:
    """Non-empty, non-comment lines with whitespace collapsed."""
    return [" ".join(line.split()) for line in content.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def sections(content: str, indented: bool = True) -> dict[str, list[str]]:
    """haproxy.cfg: 'backend http-servers' -> its directives."""
    out: dict[str, list[str]] = {}
    current = ""
    for raw in content.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if not raw[0].isspace():
            current = " ".join(raw.split())
            out[current] = []
        else:
            out[current].append(" ".join(raw.split()))
    return out


def keepalived_block(content: str, header: str) -> str:
    """The text of one top-level `header { ... }` block of keepalived.conf."""
    start = content.index(header + " {")
    depth = 0
    for i, ch in enumerate(content[start:], start):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "}" and depth == 0:
            return content[start : i + 1]
    raise AssertionError(f"unterminated {header}")


def plan_texts(plan: ClusterPlan) -> Iterator[tuple[str, str]]:
    """(where, text) of every rendered text: files, step scripts, cloud-init documents."""
    for node in plan.nodes.values():
        for f in node.files.values():
            if isinstance(f.content, str):
                yield f"{node.name}:{f.path}", f.content
        for s in node.steps:
            yield f"{node.name}:steps/{s.name}", s.script
        for name, doc in plan.cloud_init[node.name].items():
            yield f"{node.name}:cloud-init/{name}", doc


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mode, p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- determinism


def test_render_is_deterministic_across_processes_and_hash_seeds(dev_plan: ClusterPlan, tmp_path: Path) -> None:
    write_plan(dev_plan, tmp_path / "in-process")
    write_plan(render_cluster(load_stack_file(DEV_STACK).config), tmp_path / "again")
    for seed in ("1", "2"):
        proc = run_cli("render", "--file", str(DEV_STACK), "--out", str(tmp_path / f"seed{seed}"), env={"PYTHONHASHSEED": seed})
        assert proc.returncode == 0, proc.stderr
    reference = tree(tmp_path / "in-process")
    assert len(reference) > 100
    for other in ("again", "seed1", "seed2"):
        assert tree(tmp_path / other) == reference, other


# --------------------------------------------------------------------------- the seed's facts


def test_haproxy_frontends_backends_and_servers_are_the_seeds(dev_plan: ClusterPlan) -> None:
    for director in DIRECTORS:
        cfg = sections(text(dev_plan, director, "/etc/haproxy/haproxy.cfg"))
        frontends = {k.split()[1] for k in cfg if k.startswith("frontend ")} - {"health"}
        assert {f for f in frontends if not f.endswith("-tls")} == set(FRONTENDS)  # the TLS frontends: tests/test_https.py
        for name, (bind, mode, backend, servers) in FRONTENDS.items():
            assert {f"bind {bind}", f"mode {mode}", f"default_backend {backend}"} <= set(cfg[f"frontend {name}"])
            directives = cfg[f"backend {backend}"]
            assert "balance roundrobin" in directives and f"mode {mode}" in directives
            cookie = " cookie {0}" if mode == "http" else ""
            expected = [f"server {n} {host}:{port}{cookie.format(n)} check" for n, host, port in servers]
            assert [d for d in directives if d.startswith("server ")] == expected
        assert "option forwardfor" in cfg["frontend haproxy-http"]
        assert {"mode http", "option httplog", "option dontlognull", "timeout client 3000", "timeout server 3000"} <= set(cfg["defaults"])


def test_haproxy_carries_the_seeds_deviations(dev_plan: ClusterPlan) -> None:
    for director, (_, _, description, _external, internal, *_rest) in DIRECTORS.items():
        cfg = sections(text(dev_plan, director, "/etc/haproxy/haproxy.cfg"))
        assert {"option redispatch 1", "retries 3", "timeout connect 1000"} <= set(cfg["defaults"])
        for backend in ("http-servers", "http-servers-g"):
            assert "cookie SERVERID insert indirect nocache" in cfg[f"backend {backend}"]
            assert "option httpchk" in cfg[f"backend {backend}"]
        stats = cfg["listen stats"]
        assert not any(line.startswith("bind 0.0.0.0") for line in stats)  # the seed's: every address, the external side too
        assert {"bind 192.168.1.200:7000", f"bind {internal}:7000", "stats uri /haproxy?stats", "stats refresh 5s", f"stats show-desc {description}"} <= set(stats)
        assert "stats realm HAProxy\\ Statistics" in stats
        assert "acl stats_admin_net src 127.0.0.0/8 10.0.100.0/24 10.0.50.0/24" in stats
        assert "stats admin if stats_admin_net" in stats and "stats admin if TRUE" not in stats
        assert "bind 127.0.0.1:7001" in cfg["frontend health"]


def test_haproxy_replays_only_safe_requests_and_limits_connections(dev_plan: ClusterPlan) -> None:
    """Issue #13: GET/HEAD only, never after a response timeout; maxconn with a queue; slowloris timeout."""
    for director in DIRECTORS:
        cfg = sections(text(dev_plan, director, "/etc/haproxy/haproxy.cfg"))
        assert "maxconn 4096" in cfg["global"]
        assert {"timeout queue 5000", "timeout http-request 5000", "timeout server 3000"} <= set(cfg["defaults"])
        assert any(line.startswith("default-server ") and " maxconn 64 " in line for line in cfg["defaults"])
        for backend in ("http-servers", "http-servers-g"):
            directives = cfg[f"backend {backend}"]
            assert "retry-on conn-failure empty-response" in directives
            assert "http-request disable-l7-retry unless METH_GET" in directives
        everything = [line for lines in cfg.values() for line in lines]
        assert not [line for line in everything if "all-retryable-errors" in line or "response-timeout" in line]
        for backend in ("tcp-servers", "tcp-servers-g"):
            assert not [line for line in cfg[f"backend {backend}"] if "retry-on" in line or "l7-retry" in line]


def test_haproxy_limits_follow_the_tuning_keys() -> None:
    tuning = {"maxconn": 9000, "serverMaxconn": 7, "timeoutQueueMs": 1234, "timeoutHttpRequestMs": 2345}
    config = StackConfig.model_validate({"cluster": {"haproxy": {"tuning": tuning}}})
    cfg = sections(text(render_cluster(config), "cluster1", "/etc/haproxy/haproxy.cfg"))
    assert "maxconn 9000" in cfg["global"]
    assert {"timeout queue 1234", "timeout http-request 2345"} <= set(cfg["defaults"])
    assert any(line.startswith("default-server ") and " maxconn 7 " in line for line in cfg["defaults"])


def test_keepalived_priorities_router_ids_vips_and_check_script(dev_plan: ClusterPlan) -> None:
    for director, (priority, state, *_rest) in DIRECTORS.items():
        conf = text(dev_plan, director, "/etc/keepalived/keepalived.conf")
        group = ["vrrp_sync_group VG1 {", "group {", "VI_1", "VI_2", "}", "track_script {", "chk_backends weight -61", "}", "}"]
        assert lines(keepalived_block(conf, "vrrp_sync_group VG1")) == group  # 61 = 150 - 90 + 1
        script = re.search(r'vrrp_script chk_haproxy \{\s*script "([^"]+)"', conf)
        assert script is not None
        check = dev_plan.nodes[director].files[script.group(1)]
        assert check.mode == 0o755 and str(check.content).startswith("#!/bin/bash\n")
        for instance, (interface, router_id, vip) in VRRP.items():
            block = lines(keepalived_block(conf, f"vrrp_instance {instance}"))
            assert {f"state {state}", f"interface {interface}", f"virtual_router_id {router_id}", f"priority {priority}", f"{vip} dev {interface}"} <= set(block)
            assert ("chk_haproxy" in block) == (instance != "VI_3")
            # standbys wait before taking the VIPs from a master that merely ranks lower, one second more per rank
            # (equal delays let both standbys take them at once); keepalived ignores it on a MASTER
            delay = {"standby1": "preempt_delay 3", "standby2": "preempt_delay 4"}.get(director)
            assert [x for x in block if x.startswith("preempt_delay")] == ([delay] if instance != "VI_3" and delay else [])


@pytest.mark.parametrize("timeout_s", [None, 12])
def test_keepalived_check_timeout_follows_the_stack(timeout_s: int | None) -> None:
    """A slow check run is killed after vrrp.checkTimeoutS and moves the VIPs: the e2e saw
    2-4 s runs on busy directors flap the VIPs at keepalived's old fixed 2 s."""
    vrrp = {} if timeout_s is None else {"checkTimeoutS": timeout_s}
    config = StackConfig.model_validate({"cluster": {"vrrp": vrrp}})
    conf = render_cluster(config).nodes["cluster1"].files["/etc/keepalived/keepalived.conf"].content
    for script in ("chk_haproxy", "chk_backends"):
        assert f"timeout {config.cluster.vrrp.check_timeout_s}" in lines(keepalived_block(str(conf), f"vrrp_script {script}"))
    block = lines(keepalived_block(str(conf), "vrrp_script chk_haproxy"))
    assert config.cluster.vrrp.check_timeout_s == (timeout_s or 5)
    assert "fall 1" in block, "a dead HAProxy (refused at once) still moves the VIPs at the first failed run"


def test_dnsmasq_on_the_master_serves_the_seeds_range_and_reservations(dev_plan: ClusterPlan) -> None:
    conf = set(lines(text(dev_plan, "cluster1", "/etc/dnsmasq.conf")))
    assert {
        "interface=enp0s8",
        "dhcp-range=10.0.100.2,10.0.100.49,infinite",
        "dhcp-option=3,10.0.100.200",
        "dhcp-option=6,10.0.100.200",
        "log-dhcp",
        "dhcp-hostsfile=/etc/dnsmasq.hosts.conf",
    } <= conf
    reserved = {**{h: a for h, (a, _) in DOCKER_HOSTS.items()}, **GLUSTER}
    assert lines(text(dev_plan, "cluster1", "/etc/dnsmasq.hosts.conf")) == [f"{mac_for(n, 0)},{a},{n}" for n, a in reserved.items()]
    assert lines(text(dev_plan, "cluster1", "/etc/ethers")) == [f"{mac_for(n, 0)} {a}" for n, a in reserved.items()]


@pytest.mark.parametrize("standby", ["standby1", "standby2"])
def test_standbys_serve_dns_but_no_dhcp(dev_plan: ClusterPlan, standby: str) -> None:
    conf = lines(text(dev_plan, standby, "/etc/dnsmasq.conf"))
    assert "interface=enp0s8" in conf
    assert not [line for line in conf if line.startswith("dhcp-")]
    assert "/etc/dnsmasq.hosts.conf" not in dev_plan.nodes[standby].files


def test_every_node_has_the_seeds_hosts_file(dev_plan: ClusterPlan) -> None:
    expected = set()
    for name, (_, _, _, _, internal, heartbeat, aliases) in DIRECTORS.items():
        expected |= {f"{internal} {name}.cluster {name} {aliases}".strip(), f"{heartbeat} {name}h.cluster {name}h"}
    expected |= {f"{a} {n}.cluster {n} {alias}" for n, (a, alias) in DOCKER_HOSTS.items()}
    expected |= {f"{a} {n}.cluster {n}" for n, a in GLUSTER.items()} | {"10.0.100.100 nas.cluster nas"}
    for node in dev_plan.nodes:
        hosts = set(lines(text(dev_plan, node, "/etc/hosts")))
        assert expected <= hosts, node
        assert hosts - expected == LOCAL_HOSTS, node


def test_nas_exports_the_raid_read_only_to_the_docker_hosts_only(dev_plan: ClusterPlan) -> None:
    options = "(ro,root_squash,sync,no_subtree_check,mp)"
    assert lines(text(dev_plan, "nas", "/etc/exports")) == ["/raid " + " ".join(f"{a}{options}" for a, _ in DOCKER_HOSTS.values())]


def test_gluster_volumes_are_the_seeds(dev_plan: ClusterPlan) -> None:
    bricks = lambda n: " ".join(f"gluster{i}:/export/brick{n}/data" for i in (1, 2, 3))  # noqa: E731
    assert lines(text(dev_plan, "gluster1", "/etc/ha-web-cluster/gluster/volumes.conf")) == [f"gv0 3 {bricks(1)}", f"gv1 1 {bricks(2)}"]
    probe = dev_plan.nodes["gluster1"].step("20-peers").script
    assert "gluster peer probe gluster2" in probe and "gluster peer probe gluster3" in probe


@pytest.mark.parametrize("host", sorted(CONTAINERS))
def test_containers_and_mounts_of_each_docker_host(dev_plan: ClusterPlan, host: str) -> None:
    node = dev_plan.nodes[host]
    defined = {p for p in node.files if p.endswith(".env")}
    assert defined == {f"/etc/ha-web-cluster/containers/{name}.env" for name, _, _ in CONTAINERS[host]}
    for name, port, docroot in CONTAINERS[host]:
        env = set(lines(text(dev_plan, host, f"/etc/ha-web-cluster/containers/{name}.env")))
        assert {f"NAME={name}", "IMAGE=php:8.2.29-apache-bookworm", f"HOST_PORT={port}", "CONTAINER_PORT=80", f"DOCROOT={docroot}"} <= env
    fstab = lines(text(dev_plan, host, "/etc/ha-web-cluster/fstab"))
    assert fstab[0] == "nas:/ /nfs nfs auto,nofail,bg,rsize=8192,wsize=8192 0 0"
    assert fstab[1].startswith("gluster1:/gv0 /gluster/gfs-r glusterfs defaults,_netdev") and fstab[1].endswith(" 0 0")
    assert len(fstab) == 2


# --------------------------------------------------------------------------- secrets


def test_secrets_appear_only_as_placeholders(dev_plan: ClusterPlan) -> None:
    v2 = StackConfig.model_validate({"cluster": {"vrrp": {"version": 2, "advertInterval": 1}}})
    markers = set()
    for plan in (dev_plan, render_cluster(v2)):
        for where, content in plan_texts(plan):
            markers |= set(re.findall(r"@@hawc:(\w+):(\w+)@@", content))
            assert "admin:password" not in content, where
            for value in re.findall(r"(?:stats auth \w+:|auth_pass )(\S+)", content):
                assert value.startswith("@@hawc:secret:"), where
    tls_nodes = gluster_tls.participants(Topology(load_stack_file(DEV_STACK).config))
    assert tls_nodes == ["gluster1", "gluster2", "gluster3", "cluster2", "cluster3", "cluster4"]
    tls_keys = {gluster_tls.key_key(n) for n in tls_nodes}
    assert {key for kind, key in markers if kind == "secret"} - tls_keys == {"statsPassword", "vrrpAuthPass", https.PEM_KEY}
    assert {"statsPassword", "vrrpAuthPass"} <= set(SECRET_KEYS)  # httpsPem: made from httpsCertificate/httpsKey or generated
    assert {key for kind, key in markers if kind == "secret"} & tls_keys == tls_keys  # keys the Gluster PKI fills
    assert {key for kind, key in markers if kind == "value"} == {"sshPublicKey", gluster_tls.CA_KEY} | {gluster_tls.cert_key(n) for n in tls_nodes}


def test_gluster_tls_files_and_volume_options(dev_plan: ClusterPlan) -> None:
    """Each node that speaks Gluster gets its own key (0600) and certificate, the CA and secure-access,
    in the step that runs before its first Gluster connection; the volumes get TLS on both paths and
    the certificate names of the pool and their own clients. `tls: false` leaves none of it."""
    for node, step in [("gluster1", "10-bricks"), ("cluster2", "20-mounts")]:
        files = dev_plan.nodes[node].files
        assert files[gluster_tls.KEY_FILE].mode == 0o600 and files[gluster_tls.KEY_FILE].content == f"@@hawc:secret:{gluster_tls.key_key(node)}@@"
        assert files[gluster_tls.CERT_FILE].content == f"@@hawc:value:{gluster_tls.cert_key(node)}@@"
        assert gluster_tls.SECURE_ACCESS in next(s for s in dev_plan.nodes[node].steps if s.name == step).files
    assert not any(f.startswith(gluster_tls.SSL_DIR) for n in ("cluster1", "nas") for f in dev_plan.nodes[n].files)
    options = lines(text(dev_plan, "gluster1", "/etc/ha-web-cluster/gluster/volume-options.conf"))
    assert "gv0 auth.ssl-allow gluster1,gluster2,gluster3,cluster2,cluster3,cluster4" in options
    assert "gv1 auth.ssl-allow gluster1,gluster2,gluster3" in options  # no container uses gv1
    assert {"gv0 server.ssl on", "gv0 client.ssl on", "gv1 server.ssl on", "gv1 client.ssl on"} <= set(options)
    off = render_cluster(StackConfig.model_validate({"cluster": {"gluster": {"tls": False}}}))
    assert not any(f.startswith((gluster_tls.SSL_DIR, "/var/lib/glusterd")) for n in off.nodes.values() for f in n.files)
    assert not any("ssl" in line for line in lines(text(off, "gluster1", "/etc/ha-web-cluster/gluster/volume-options.conf")))


# --------------------------------------------------------------------------- steps


def all_plans() -> list[tuple[str, ClusterPlan]]:
    stacks = [DEV_STACK, *TOPOLOGIES]
    return [(p.stem, render_cluster(load_stack_file(p).config)) for p in stacks]


PLANS = all_plans()


@pytest.mark.parametrize("plan", [p for _, p in PLANS], ids=[n for n, _ in PLANS])
def test_ordered_steps_respect_every_dependency(plan: ClusterPlan) -> None:
    order = plan.ordered_steps()
    position = {s.ref: i for i, s in enumerate(order)}
    assert len(position) == len(order) == len(plan.all_steps())
    for step in order:
        for dep in plan.dependencies(step):
            assert position[dep] < position[step.ref], f"{step.ref} runs before {dep}"
    assert order[-1].name == "90-smoke"


def test_dev_steps_wait_for_what_they_use(dev_plan: ClusterPlan) -> None:
    position = {str(s.ref): i for i, s in enumerate(dev_plan.ordered_steps())}
    before = [
        ("cluster1/30-dnsmasq", "cluster2/00-base"),
        ("cluster1/50-keepalived", "nas/00-base"),
        ("nas/30-nfs", "cluster3/20-mounts"),
        ("gluster1/20-peers", "gluster1/30-volumes"),
        ("gluster3/10-bricks", "gluster1/20-peers"),
        ("gluster1/30-volumes", "cluster4/20-mounts"),
        ("cluster2/30-content", "cluster4/40-containers"),
        ("nas/40-content", "cluster2/40-containers"),
        ("cluster1/01-firewall", "cluster1/10-sysctl"),
        ("cluster4/45-roll", "cluster1/90-smoke"),
        ("cluster4/40-containers", "cluster4/45-roll"),
    ]
    for first, then in before:
        assert position[first] < position[then], f"{then} does not wait for {first}"


OURS = re.compile(r"(/(?:etc|usr/local/sbin)/[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*)")


@pytest.mark.parametrize("plan", [p for _, p in PLANS], ids=[n for n, _ in PLANS])
def test_steps_use_files_installed_by_them_or_earlier(plan: ClusterPlan) -> None:
    """A rendered file a script names is carried by that step or an earlier one on the node;
    a path of ours (/etc/ha-web-cluster, /usr/local/sbin/hawc-*) a script names is rendered."""
    for node in plan.nodes.values():
        installed: set[str] = set()
        for step in node.steps:
            assert set(step.files) <= set(node.files), step.ref
            installed |= set(step.files)
            for path in set(OURS.findall(step.script)):
                ours = path.startswith(("/etc/ha-web-cluster/", "/usr/local/sbin/hawc"))
                if path in node.files or ours:
                    assert path in installed or any(p.startswith(path.rstrip("/") + "/") for p in installed), f"{step.ref} uses {path}"


def test_content_and_container_steps_carry_their_files(dev_plan: ClusterPlan) -> None:
    pages = {"index.php", "index1.php", "pi.php", "imagen.html", "imagen.jpg", "record.php"}
    gluster = dev_plan.nodes["cluster2"].step("30-content")
    assert {Path(p).name for p in gluster.files} == pages
    assert gluster.script.count("/gluster/gfs-r/www") and "/nfs" not in gluster.script
    # The NFS export is read-only: its content is written on the NAS, only once the array is mounted.
    nfs = dev_plan.nodes["nas"].step("40-content")
    assert {Path(p).name for p in nfs.files} == pages
    assert 'publish "/raid/www"' in nfs.script and 'mountpoint -q "/raid"' in nfs.script
    for host, containers in CONTAINERS.items():
        for name in ("40-containers", "45-roll"):
            step = dev_plan.nodes[host].step(name)
            assert "/usr/local/sbin/hawc-containers" in step.files
            assert {f"/etc/ha-web-cluster/containers/{n}.env" for n, _, _ in containers} <= set(step.files)


# --------------------------------------------------------------------------- the extra topologies


def test_six_gluster_servers_make_gv0_distributed_replicated() -> None:
    plan = dict(PLANS)["six-gluster-servers"]
    gv0 = lines(text(plan, "gluster1", "/etc/ha-web-cluster/gluster/volumes.conf"))[0].split()
    assert gv0[:2] == ["gv0", "3"] and gv0[2:] == [f"gluster{i}:/export/brick1/data" for i in range(1, 7)]
    probe = plan.nodes["gluster1"].step("20-peers").script
    assert all(f"gluster peer probe gluster{i}" in probe for i in range(2, 7))


def test_five_docker_hosts_are_all_behind_each_service() -> None:
    config = load_stack_file(next(p for p in TOPOLOGIES if p.stem == "five-docker-hosts")).config
    cfg = sections(text(render_cluster(config), "cluster1", "/etc/haproxy/haproxy.cfg"))
    topo = Topology(config)
    assert len(topo.nodes) == 12
    for backend, suffix in (("http-servers", "a"), ("tcp-servers", "a"), ("http-servers-g", "b"), ("tcp-servers-g", "b")):
        servers = [d.split()[1] for d in cfg[f"backend {backend}"] if d.startswith("server ")]
        assert servers == [f"web{i}{suffix}" for i in range(1, 6)]


def test_gluster_servers_give_glusterd_a_longer_start_timeout(dev_plan: ClusterPlan) -> None:
    """glusterd's start outlasted Debian's 300 s on emulated VMs (e2e): a drop-in raises it, installed before glusterd starts."""
    path = "/etc/systemd/system/glusterd.service.d/ha-web-cluster.conf"
    for node in ("gluster1", "gluster2", "gluster3"):
        step = dev_plan.nodes[node].step("10-bricks")
        assert path in step.files and "TimeoutStartSec=900" in text(dev_plan, node, path)
        assert step.script.index("systemctl daemon-reload") < step.script.index("systemctl start glusterd")
    assert not any(path in n.files for name, n in dev_plan.nodes.items() if not name.startswith("gluster"))


def test_bond_switch_forgets_the_slaves_ifupdown_state_before_ifup(dev_plan: ClusterPlan) -> None:
    """ifenslave 2.13 skips a slave that `ifquery --state` lists (the first-boot NIC): each
    slave is `ifdown --force`d before `ifup bond0`, or bond0 comes up without it (seen in e2e)."""
    script = dev_plan.nodes["nas"].step("10-bond").script
    switch = next(line for line in script.splitlines() if "ifup bond0" in line)
    for nic in ("enp0s3", "enp0s8"):
        assert switch.index(f"ifdown --force {nic}") < switch.index("ifup bond0"), nic


def test_first_boot_makes_no_rsa_host_key() -> None:
    """cloud-init's default RSA 3072 host key was the slowest part of an emulated first boot (38 s);
    every node asks for Ed25519 and ECDSA only, which every client of ours speaks."""
    plan = render_cluster(load_stack_file(DEV_STACK).config)
    for node, docs in plan.cloud_init.items():
        assert re.findall(r"^ssh_genkeytypes: (.*)$", docs["user-data"], re.M) == ["[ed25519, ecdsa]"], node


HELPERS = re.compile(r"^([a-z_]+)\(\) \{$", re.M)


@pytest.mark.parametrize("plan", [p for _, p in PLANS], ids=[n for n, _ in PLANS])
def test_steps_define_the_shared_functions_they_call(plan: ClusterPlan) -> None:
    """A step that calls a shared shell function (templates/steps/_*.sh.j2) includes its definition:
    the e2e once stopped on `wait_for: command not found` (exit 127) in a step that did not."""
    shared = set()
    for part in (Path(__file__).parent.parent / "templates" / "steps").glob("_*.sh.j2"):
        shared |= set(HELPERS.findall(part.read_text()))
    for node in plan.nodes.values():
        for step in node.steps:
            defined = set(HELPERS.findall(step.script))
            called = {name for name in shared if re.search(rf"(^|[;&|(]\s*|\bthen\s+|\bdo\s+|\bif\s+!?\s*|\t+)\b{name}\b(?!\(\))", step.script, re.M)}
            assert called <= defined, f"{step.ref} calls {sorted(called - defined)} without defining them"
