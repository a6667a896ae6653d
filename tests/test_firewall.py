"""Every node's host firewall follows the model: default drop, and only the traffic the cluster needs."""

from __future__ import annotations

import ipaddress
import re

import pytest

from conftest import TOPOLOGIES
from webcluster.model import StackConfig
from webcluster.render import ClusterPlan, render_cluster
from webcluster.render.firewall import allowed, client_exposure
from webcluster.stackfile import load_stack_file
from webcluster.topology import Topology


def nft(plan: ClusterPlan, node: str) -> str:
    return str(plan.nodes[node].files["/etc/nftables.conf"].content)


def rules_of(topo: Topology, node: str, what: str):
    return [r for r in allowed(topo, topo.node(node)) if r.what.startswith(what)]


@pytest.mark.parametrize("stack", [None, *TOPOLOGIES], ids=lambda p: "seed" if p is None else p.stem)
def test_every_node_drops_input_and_forward_by_default(stack) -> None:
    config = StackConfig() if stack is None else load_stack_file(stack).config
    plan = render_cluster(config)
    for name, node in plan.nodes.items():
        text = nft(plan, name)
        assert "hook input priority filter; policy drop;" in text, name
        assert "hook forward priority filter; policy drop;" in text, name
        assert "flush ruleset" not in text, f"{name}: would wipe Docker's rules"
        assert [s.name for s in node.steps][:2] == ["00-base", "01-firewall"], name
        assert "/etc/nftables.conf" in node.step("01-firewall").files


def test_director_accepts_services_only_on_the_external_vip(dev_plan: ClusterPlan) -> None:
    text = nft(dev_plan, "cluster1")
    assert 'iifname "enp0s3" ip daddr 192.168.1.200 tcp dport { 80, 90, 443, 8000, 9000, 9443 } accept' in text  # 443, 9443: the TLS frontends
    # Forwarding: internal -> external only (and the replies); NAT kept.
    assert 'iifname "enp0s8" oifname "enp0s3" ip saddr 10.0.100.0/24 accept' in text
    assert 'ip saddr 10.0.100.0/24 oifname "enp0s3" masquerade' in text
    forward = text.split("chain forward")[1].split("}")[0]
    assert 'iifname "enp0s3" oifname "enp0s8"' not in forward


def test_stats_only_from_admin_networks_and_dns_dhcp_only_inside() -> None:
    topo = Topology(StackConfig())
    (stats,) = rules_of(topo, "cluster1", "HAProxy stats")
    assert set(stats.sources) == {"10.0.50.0/24", "10.0.100.0/24", "10.0.100.254", "192.168.1.1"}
    assert "192.168.1.0/24" not in stats.sources
    assert stats.dests == ("192.168.1.200", "10.0.100.1")
    for r in rules_of(topo, "cluster1", "DNS") + rules_of(topo, "cluster1", "DHCP"):
        assert r.iif == "enp0s8"
    assert rules_of(topo, "standby1", "DHCP") == []  # only the master serves DHCP
    custom = Topology(StackConfig.model_validate({"cluster": {"adminNetworks": ["203.0.113.7"]}}))
    (stats,) = rules_of(custom, "cluster1", "HAProxy stats")
    assert stats.sources == ("203.0.113.7",)


def test_vrrp_accepted_explicitly_from_peer_directors_on_each_link() -> None:
    topo = Topology(StackConfig())
    vrrp = {r.iif: r.sources for r in rules_of(topo, "standby1", "VRRP")}
    assert vrrp == {"enp0s3": ("192.168.1.101", "192.168.1.103"), "enp0s8": ("10.0.100.1", "10.0.100.51"), "enp0s9": ("10.0.50.1", "10.0.50.3")}


def test_pacemaker_opens_corosync_to_peers_and_qnetd_to_directors_only() -> None:
    topo = Topology(StackConfig(ha_stack="pacemaker"))
    assert rules_of(topo, "cluster1", "VRRP") == []
    (knet,) = rules_of(topo, "cluster1", "corosync")
    assert (knet.proto, knet.ports, knet.sources, knet.iif) == ("udp", ("5405",), ("10.0.50.2", "10.0.50.3"), "enp0s9")
    (qnetd,) = rules_of(topo, "nas", "corosync-qnetd")
    assert (qnetd.ports, qnetd.sources) == (("5403",), ("10.0.100.1", "10.0.100.50", "10.0.100.51", "10.0.100.200"))
    assert rules_of(Topology(StackConfig()), "nas", "corosync-qnetd") == []  # keepalived: no arbitrator


def test_storage_only_from_the_docker_hosts_that_mount_it() -> None:
    # cluster4 serves only Gluster content: it may not reach NFS, and a host without Gluster containers not Gluster.
    cfg = StackConfig().model_dump(by_alias=True, mode="json")
    for c in cfg["cluster"]["backends"][2]["containers"]:
        c["docroot"] = "gv0"
    cfg["cluster"]["backends"][2]["containers"] = [{"name": f"cluster4{i}p", "port": 8080 + i, "docroot": "gv0"} for i in (1, 2)]
    cfg["cluster"]["backends"][0]["containers"] = [c for c in cfg["cluster"]["backends"][0]["containers"] if c["docroot"] == "nfs"]
    topo = Topology(StackConfig.model_validate(cfg))
    (nfs,) = rules_of(topo, "nas", "NFSv4")
    assert (nfs.ports, nfs.sources) == (("2049",), ("10.0.100.2", "10.0.100.3"))
    for what in ("glusterd", "Gluster bricks"):
        (g,) = rules_of(topo, "gluster2", what)
        assert g.sources == ("10.0.100.3", "10.0.100.4", "10.0.100.5", "10.0.100.6", "10.0.100.7"), what


def test_containers_only_from_the_directors_also_through_dockers_forwarding(dev_plan: ClusterPlan) -> None:
    topo = Topology(StackConfig())
    (web,) = rules_of(topo, "cluster3", "web containers")
    assert web.ports == ("8081", "8082", "8083", "8085")
    assert web.sources == ("10.0.100.1", "10.0.100.50", "10.0.100.51", "10.0.100.200")
    forward = nft(dev_plan, "cluster3").split("chain forward")[1]
    assert "ip saddr { 10.0.100.1, 10.0.100.50, 10.0.100.51, 10.0.100.200 } ct status dnat meta l4proto tcp ct original proto-dst { 8081, 8082, 8083, 8085 } accept" in forward
    env = str(dev_plan.nodes["cluster3"].files["/etc/ha-web-cluster/containers/cluster31p.env"].content)
    assert "BIND=10.0.100.3" in env  # Docker publishes on the internal address only


def test_ssh_follows_the_pulumi_path() -> None:
    libvirt = Topology(StackConfig())
    (ext,) = rules_of(libvirt, "cluster1", "SSH from the hypervisor host")
    assert ext.sources == ("10.0.100.254", "192.168.1.1") and ext.iif == "enp0s3"
    (inner,) = rules_of(libvirt, "gluster1", "SSH")
    assert inner.sources == ("10.0.100.0/24",)  # the host's internal address and the bastion director are in it
    vbox = Topology(StackConfig(hypervisor="virtualbox"))
    (ext,) = rules_of(vbox, "cluster1", "SSH from the hypervisor host")
    assert ext.sources == ("192.168.1.0/24",)  # the NAT network's port forwards


def test_a_client_on_the_external_network_reaches_only_the_services() -> None:
    topo = Topology(StackConfig())
    exposure = client_exposure(topo, ipaddress.IPv4Address("192.168.1.254"))
    assert exposure.pop("192.168.1.200") == [80, 90, 443, 8000, 9000, 9443]
    assert len(exposure) == 3 + 3 + 3 + 1 + 3 + 3 + 2  # every other node address and VIP...
    assert all(ports == [] for ports in exposure.values())  # ...answers nothing
    admin = client_exposure(topo, ipaddress.IPv4Address("192.168.1.1"))
    assert admin["192.168.1.200"] == [80, 90, 443, 7000, 7443, 8000, 9000, 9443] and admin["192.168.1.101"] == [22]


def test_vrrp_adverts_are_unicast_to_the_peer_directors(dev_plan: ClusterPlan) -> None:
    conf = str(dev_plan.nodes["standby2"].files["/etc/keepalived/keepalived.conf"].content)
    blocks = {name: body for name, body in re.findall(r"vrrp_instance (VI_\d) \{(.*?)\n\}", conf, re.S)}
    want = {"VI_1": ("192.168.1.103", ["192.168.1.101", "192.168.1.102"]), "VI_2": ("10.0.100.51", ["10.0.100.1", "10.0.100.50"]), "VI_3": ("10.0.50.3", ["10.0.50.1", "10.0.50.2"])}
    for name, (src, peers) in want.items():
        body = blocks[name]
        assert f"unicast_src_ip {src}" in body
        assert re.search(r"unicast_peer \{\s*" + r"\s+".join(map(re.escape, peers)) + r"\s*\}", body), body
        assert "check_unicast_src" in body


def test_gluster_volumes_allow_the_pool_and_their_own_clients_only(dev_plan: ClusterPlan) -> None:
    options = str(dev_plan.nodes["gluster1"].files["/etc/ha-web-cluster/gluster/volume-options.conf"].content)
    assert "gv0 auth.allow 10.0.100.2,10.0.100.3,10.0.100.4,10.0.100.5,10.0.100.6,10.0.100.7" in options.splitlines()
    assert "gv1 auth.allow 10.0.100.5,10.0.100.6,10.0.100.7" in options.splitlines()  # no Docker host mounts gv1
    own = StackConfig().model_dump(by_alias=True, mode="json")
    own["cluster"]["gluster"]["volumes"][0]["options"]["auth.allow"] = "10.0.100.*"
    options = str(render_cluster(StackConfig.model_validate(own)).nodes["gluster1"].files["/etc/ha-web-cluster/gluster/volume-options.conf"].content)
    assert "gv0 auth.allow 10.0.100.*" in options.splitlines()  # the stack's own value wins
