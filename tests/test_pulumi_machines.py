"""The dev stack declares exactly the seed's machines, NICs, disks and networks, on both hypervisors.

Expectations are the seed's tables (docs: thesis-topology.md), written out here rather
than derived from the code under test.
"""

from __future__ import annotations

import re

import pytest
from pulumi_harness import LOCAL_TYPE, Recording, run_stack, scaled_cluster, unwrap

DOMAIN = "libvirt:index/domain:Domain"
VOLUME = "libvirt:index/volume:Volume"
NETWORK = "libvirt:index/network:Network"
SEED_DISK = "libvirt:index/cloudInitDisk:CloudInitDisk"
MIB = 1024 * 1024

# node -> (networks of its NICs in order, data disk sizes in MiB, vCPUs, memory MiB)
SEED = {
    "cluster1": (["external", "internal", "heartbeat"], [], 1, 1024),
    "standby1": (["external", "internal", "heartbeat"], [], 1, 1024),
    "standby2": (["external", "internal", "heartbeat"], [], 1, 1024),
    "nas": (["internal", "internal"], [200, 200, 200], 1, 512),
    "gluster1": (["internal"], [500, 500], 1, 1024),
    "gluster2": (["internal"], [500, 500], 1, 1024),
    "gluster3": (["internal"], [500, 500], 1, 1024),
    "cluster2": (["internal"], [], 2, 2048),
    "cluster3": (["internal"], [], 2, 2048),
    "cluster4": (["internal"], [], 2, 2048),
}
SEED_STATIC = {"cluster1": ["192.168.1.101/24", "10.0.100.1/24", "10.0.50.1/24"], "nas": ["10.0.100.100/24"], "standby2": ["192.168.1.103/24", "10.0.100.51/24", "10.0.50.3/24"]}


@pytest.fixture(scope="module")
def libvirt_dev() -> Recording:
    return run_stack("dev")


@pytest.fixture(scope="module")
def vbox_dev() -> Recording:
    return run_stack("dev", hypervisor="virtualbox")


def domain_nics(rec: Recording, node: str) -> list[tuple[str, str]]:
    """(network name, MAC) of a domain's NICs, in order."""
    nics = rec.named(DOMAIN, node).inputs["networkInterfaces"]
    return [(rec.by_id(n["networkId"]).inputs["name"].removeprefix("hawc-"), n["mac"]) for n in nics]


def test_libvirt_declares_the_seed_machines(libvirt_dev: Recording) -> None:
    domains = libvirt_dev.of_type(DOMAIN)
    assert set(domains) == set(SEED)
    for node, (networks, disks, vcpus, memory) in SEED.items():
        d = domains[node].inputs
        assert (d["name"], d["vcpu"], d["memory"], d["type"]) == (node, vcpus, memory, "kvm")
        assert [net for net, _ in domain_nics(libvirt_dev, node)] == networks, node
        volumes = [libvirt_dev.by_id(disk["volumeId"]).inputs for disk in d["disks"]]
        assert "baseVolumeId" in volumes[0], f"{node}: the first disk is the copy-on-write root"
        assert [v["size"] / MIB for v in volumes[1:]] == disks, node
        assert all("baseVolumeId" not in v and "source" not in v for v in volumes[1:]), f"{node}: data disks are blank"
        assert d["consoles"] == [{"type": "pty", "targetType": "serial", "targetPort": "0"}]
        assert libvirt_dev.by_id(d["cloudinit"]).type == SEED_DISK


def test_libvirt_macs_match_each_nodes_cloud_init(libvirt_dev: Recording) -> None:
    macs = set()
    for node in SEED:
        seed = libvirt_dev.named(SEED_DISK, f"{node}-seed").inputs
        config = seed["networkConfig"]
        nics = domain_nics(libvirt_dev, node)
        for _, mac in nics:
            assert f'macaddress: "{mac}"' in config, node
        macs |= {mac for _, mac in nics}
        for address in SEED_STATIC.get(node, []):
            assert address in config, node
        assert f"hostname: {node}" in seed["userData"]
        assert "ssh-ed25519 " in seed["userData"] and "@@hawc" not in seed["userData"]
    assert len(macs) == 17, "every NIC has its own MAC"


def test_nas_bond_slaves_are_named_by_mac(libvirt_dev: Recording) -> None:
    config = libvirt_dev.named(SEED_DISK, "nas-seed").inputs["networkConfig"]
    for _, mac in domain_nics(libvirt_dev, "nas"):
        assert f'macaddress: "{mac}"' in config


def test_libvirt_networks_pool_and_base_image(libvirt_dev: Recording) -> None:
    nets = {r.inputs["name"]: r.inputs for r in libvirt_dev.of_type(NETWORK).values()}
    assert set(nets) == {"hawc-external", "hawc-internal", "hawc-heartbeat"}
    assert nets["hawc-external"]["mode"] == "nat" and nets["hawc-external"]["addresses"] == ["192.168.1.0/24"]
    assert 'name="address">192.168.1.1<' in nets["hawc-external"]["xml"]["xslt"], "the host is the seed's gateway"
    assert nets["hawc-internal"]["mode"] == "none" and nets["hawc-internal"]["addresses"] == ["10.0.100.0/24"]
    assert 'name="address">10.0.100.254<' in nets["hawc-internal"]["xml"]["xslt"], "the host must not take cluster1's 10.0.100.1"
    assert nets["hawc-heartbeat"]["mode"] == "none" and "addresses" not in nets["hawc-heartbeat"]
    assert all(n["dhcp"] == {"enabled": False} for n in nets.values()), "DHCP is the master director's"
    base = libvirt_dev.named(VOLUME, "base-image").inputs
    assert base["source"].endswith("debian-12-genericcloud-amd64.qcow2")
    roots = [libvirt_dev.named(VOLUME, f"{n}-root").inputs for n in SEED]
    assert {r["baseVolumeId"] for r in roots} == {libvirt_dev.named(VOLUME, "base-image").id}
    assert len(libvirt_dev.of_type(VOLUME)) == 1 + 10 + 3 + 6


def test_libvirt_resources_sit_under_their_tier(libvirt_dev: Recording) -> None:
    tiers = {"cluster1": "DirectorTrio", "nas": "NasServer", "gluster2": "GlusterPool", "cluster4": "DockerBackends"}
    for node, tier in tiers.items():
        vm = libvirt_dev.parent_of(libvirt_dev.named(DOMAIN, node))
        assert libvirt_dev.parent_of(vm).type.endswith(":" + tier)
    assert libvirt_dev.parent_of(libvirt_dev.steps()["cluster2-30-content"]).type == "ha-web-cluster:content:WebContent"


def vbox_vm(rec: Recording, node: str) -> str:
    return rec.named(LOCAL_TYPE, f"{node}-vm").inputs["create"]


def test_virtualbox_declares_the_seed_machines(vbox_dev: Recording) -> None:
    vms = {name.removesuffix("-vm") for name in vbox_dev.of_type(LOCAL_TYPE) if name.endswith("-vm")}
    assert vms == set(SEED)
    kinds = {"external": "natnetwork red-nat-1", "internal": "intnet hawc-internal", "heartbeat": "intnet hawc-heartbeat"}
    for node, (networks, disks, vcpus, memory) in SEED.items():
        text = vbox_vm(vbox_dev, node)
        assert f"--memory {memory} --cpus {vcpus}" in text
        nics = re.findall(r"--nic(\d) (\w+) --(?:nat-network|intnet)\d (\S+)", text)
        assert [f"{kind} {net}" for _, kind, net in nics] == [kinds[n] for n in networks], node
        ports = re.findall(r"--port (\d) --device 0 --type (\w+) --medium \"[^\"]*/([\w.-]+)\"", text)
        expected = [("0", "hdd", f"{node}-root.vdi")] + [(str(i), "hdd", f"{node}-data{i}.vdi") for i in range(1, len(disks) + 1)]
        assert ports == expected + [(str(len(disks) + 1), "dvddrive", f"{node}-seed.iso")]
        for i, size in enumerate(disks, start=1):
            assert f"--size {size} --format VDI" in vbox_dev.named(LOCAL_TYPE, f"{node}-data{i}").inputs["create"]
        assert "startvm" in text and "--type headless" in text


def test_virtualbox_macs_match_libvirt(vbox_dev: Recording, libvirt_dev: Recording) -> None:
    """Both hypervisors give a NIC the same MAC, so the same cloud-init matches it."""
    for node in SEED:
        macs = re.findall(r"--macaddress\d (\w+)", vbox_vm(vbox_dev, node))
        assert macs == [mac.replace(":", "").upper() for _, mac in domain_nics(libvirt_dev, node)]


def test_virtualbox_nat_network_and_forwards(vbox_dev: Recording) -> None:
    local = vbox_dev.of_type(LOCAL_TYPE)
    assert "natnetwork add --netname red-nat-1 --network 192.168.1.0/24" in local["nat-network"].inputs["create"]
    forwards = {n: c.inputs["create"] for n, c in local.items() if n.startswith("forward-")}
    # The stats page's forward listens on the host's loopback only (the guests see the gateway, which adminNetworks admits).
    for name, bind, host, guest in (("HAProxy-HTTP", "", 8000, 8000), ("HAProxy-TCP", "", 8800, 80), ("HAProxy-HTTP-gluster", "", 9000, 9000), ("HAProxy-TCP-gluster", "", 9900, 90), ("HA-Estado", "127.0.0.1", 7000, 7000)):
        assert f"'{name}:tcp:[{bind}]:{host}:[192.168.1.200]:{guest}'" in forwards[f"forward-{name}"]
        assert f"--port-forward-4 delete {name}" in local[f"forward-{name}"].inputs["delete"]
    for node, port, address in (("cluster1", 2200, "192.168.1.101"), ("standby1", 2201, "192.168.1.102"), ("standby2", 2202, "192.168.1.103")):
        assert f"ssh-{node}:tcp:[127.0.0.1]:{port}:[{address}]:22" in forwards[f"forward-ssh-{node}"]
    assert len(forwards) == 8, "no SSH forward for nodes that are not on the NAT network"


def test_virtualbox_seed_iso_is_built_in_python(vbox_dev: Recording) -> None:
    import base64

    from components.hypervisor.iso9660 import SECTOR

    seed = vbox_dev.named(LOCAL_TYPE, "nas-seed").inputs
    image = base64.b64decode(seed["stdin"])
    assert image[16 * SECTOR + 1:16 * SECTOR + 6] == b"CD001" and image[16 * SECTOR + 40:16 * SECTOR + 46] == b"cidata"
    assert b"10.0.100.100/24" in image and b"local-hostname: nas" in image
    assert "base64 --decode >" in seed["create"]


def test_virtualbox_ssh_reaches_internal_nodes_through_the_master(vbox_dev: Recording) -> None:
    direct = unwrap(vbox_dev.steps()["standby1-00-base"].inputs["connection"])
    assert (direct["host"], direct["port"]) == ("127.0.0.1", 2201) and "proxy" not in direct
    hop = unwrap(vbox_dev.steps()["gluster2-00-base"].inputs["connection"])
    assert hop["host"] == "10.0.100.6" and (hop["proxy"]["host"], hop["proxy"]["port"]) == ("127.0.0.1", 2200)
    deps = vbox_dev.depends_on(vbox_dev.steps()["gluster2-00-base"])
    assert {"gluster2-vm", "forward-ssh-cluster1"} <= deps


def test_test_stack_is_the_small_cluster() -> None:
    rec = run_stack("test")
    domains = rec.of_type(DOMAIN)
    assert set(domains) == set(SEED) - {"cluster3", "cluster4"}
    assert {d.inputs["type"] for d in domains.values()} == {"qemu"}
    assert domains["cluster2"].inputs["vcpu"] == 1 and domains["cluster2"].inputs["memory"] == 1024
    assert "cluster21p.env" in rec.steps()["cluster2-40-containers"].inputs["stdin"]


def test_larger_topology_scales_machines_and_steps() -> None:
    rec = run_stack("dev", cluster={**scaled_cluster(12), "gluster": {"bricksPerServer": 3}, "nas": {"raid": {"level": 6, "disks": 5}}})
    domains = rec.of_type(DOMAIN)
    assert len(domains) == 3 + 1 + 3 + 12
    nas_disks = domains["nas"].inputs["disks"]
    assert len(nas_disks) == 1 + 5
    assert len(domains["gluster3"].inputs["disks"]) == 1 + 3
    containers = [name for name in rec.steps() if name.endswith("-40-containers")]
    assert len(containers) == 12
    assert {"nas-30-nfs", "gluster1-30-volumes"} <= rec.depends_on(rec.steps()["cluster13-20-mounts"])


def test_nodes_can_be_placed_on_other_hypervisor_hosts() -> None:
    rec = run_stack("dev", libvirt={"hosts": {"hv2": "qemu+ssh://root@hv2/system"}, "placement": {"cluster4": "hv2", "gluster3": "hv2"}})
    providers = {r.name: r for r in rec.of_type("pulumi:providers:libvirt").values()}
    assert {n: p.inputs["uri"] for n, p in providers.items()} == {"libvirt-default": "qemu:///system", "libvirt-hv2": "qemu+ssh://root@hv2/system"}
    urn_of = {p.name: p.urn for p in providers.values()}
    assert rec.named(DOMAIN, "cluster4").provider.startswith(urn_of["libvirt-hv2"])
    assert rec.named(DOMAIN, "cluster1").provider.startswith(urn_of["libvirt-default"])
    hv2_nets = {r.inputs["name"]: r.inputs for r in rec.of_type(NETWORK).values() if r.provider.startswith(urn_of["libvirt-hv2"])}
    assert set(hv2_nets) == {"hawc-internal"}, "a host only gets the networks of the nodes placed on it"
    assert "addresses" not in hv2_nets["hawc-internal"], "only the default host takes the internal host address"


def test_remote_libvirt_host_is_the_ssh_hop_with_the_uris_user_on_port_22() -> None:
    """Pulumi's hop to the nodes dials what the libvirt provider dials (libvirt/uri/ssh.go: the URI's user, port 22)."""
    rec = run_stack("dev", libvirt={"uri": "qemu+ssh://admin@hv1.example/system"})
    hop = unwrap(rec.steps()["nas-20-raid"].inputs["connection"])["proxy"]
    assert (hop["host"], hop["port"], hop["user"]) == ("hv1.example", 22, "admin")


def test_libvirt_nic_slots_keep_kernel_names_clear_of_the_model_names(libvirt_dev: Recording) -> None:
    """Applied as libvirt applies it, each domain's XSLT pins its NICs to PCI slots whose udev
    names (ensN, altname enp0sN) are not a name cloud-init must rename a NIC to: the kernel
    refuses a rename to any existing name, altnames included."""
    from webcluster.e2e.domainxml import apply, domain_nic_slots, provider_domain

    for node in SEED:
        d = libvirt_dev.named(DOMAIN, node).inputs
        macs = [mac for _, mac in domain_nics(libvirt_dev, node)]
        slots = domain_nic_slots(d["xml"]["xslt"], node, macs)
        assert None not in slots and len(set(slots)) == len(slots), (node, slots)
        targets = set(re.findall(r"set-name: (\S+)", libvirt_dev.by_id(d["cloudinit"]).inputs["networkConfig"]))
        assert targets and not targets & {f"{p}{s}" for s in slots for p in ("ens", "enp0s")}, (node, slots, targets)
        out = apply(d["xml"]["xslt"], provider_domain(node, macs))
        assert out.count("<interface") == len(macs) and all(m in out for m in macs) and "bus=\"virtio\"" in out, "nothing else changes"


def test_libvirt_network_xslt_moves_the_host_address(libvirt_dev: Recording) -> None:
    from webcluster.e2e.domainxml import apply

    net = next(r.inputs for r in libvirt_dev.of_type(NETWORK).values() if r.inputs["name"] == "hawc-internal")
    out = apply(net["xml"]["xslt"], "<network><name>hawc-internal</name><ip address='10.0.100.1' prefix='24'/></network>")
    assert "10.0.100.254" in out and "10.0.100.1'" not in out and 'address="10.0.100.1"' not in out
