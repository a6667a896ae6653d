"""Stack outputs: every key with the seed's values; the password is a secret."""

from __future__ import annotations

import pytest
from pulumi_harness import Recording, is_secret, run_stack, unwrap

SEED_NODES = {
    "cluster1": {"external": "192.168.1.101", "internal": "10.0.100.1", "heartbeat": "10.0.50.1"},
    "standby1": {"external": "192.168.1.102", "internal": "10.0.100.50", "heartbeat": "10.0.50.2"},
    "standby2": {"external": "192.168.1.103", "internal": "10.0.100.51", "heartbeat": "10.0.50.3"},
    "nas": {"internal": "10.0.100.100"},
    "gluster1": {"internal": "10.0.100.5"},
    "gluster2": {"internal": "10.0.100.6"},
    "gluster3": {"internal": "10.0.100.7"},
    "cluster2": {"internal": "10.0.100.2"},
    "cluster3": {"internal": "10.0.100.3"},
    "cluster4": {"internal": "10.0.100.4"},
}
COMMON = {
    "hypervisor",
    "haStack",
    "externalVip",
    "internalVip",
    "serviceUrls",
    "statsUrls",
    "statsVipUrl",
    "httpsUrls",
    "statsHttpsVipUrl",
    "statsUser",
    "statsPassword",
    "metricsUrls",
    "nodeMetricsUrls",
    "nodes",
    "sshUser",
    "sshPublicKey",
    "sshPrivateKey",
}


@pytest.fixture(scope="module")
def dev() -> Recording:
    return run_stack("dev")


def test_dev_outputs_hold_the_seed_values(dev: Recording) -> None:
    out = unwrap(dev.outputs)
    assert set(out) == COMMON | {"libvirtHostAddress", "httpsCaCert"}
    assert (out["hypervisor"], out["haStack"]) == ("libvirt", "keepalived")
    assert (out["externalVip"], out["internalVip"]) == ("192.168.1.200", "10.0.100.200")
    assert out["serviceUrls"] == {
        "haproxy-http": "http://192.168.1.200:8000/",
        "haproxy-tcp": "http://192.168.1.200:80/",
        "haproxy-http_g": "http://192.168.1.200:9000/",
        "haproxy-tcp_g": "http://192.168.1.200:90/",
    }
    assert out["statsUrls"] == {
        "cluster1": "http://10.0.100.1:7000/haproxy?stats",
        "standby1": "http://10.0.100.50:7000/haproxy?stats",
        "standby2": "http://10.0.100.51:7000/haproxy?stats",
    }
    assert out["statsVipUrl"] == "http://192.168.1.200:7000/haproxy?stats"
    assert out["metricsUrls"] == {
        "cluster1": "http://10.0.100.1:7000/metrics",
        "standby1": "http://10.0.100.50:7000/metrics",
        "standby2": "http://10.0.100.51:7000/metrics",
    }
    assert out["nodeMetricsUrls"] == {name: f"http://{addresses['internal']}:9100/metrics" for name, addresses in SEED_NODES.items()}
    assert out["statsUser"] == "admin"
    assert out["nodes"] == SEED_NODES
    assert out["libvirtHostAddress"] == "10.0.100.254"
    assert out["sshUser"] == "debian" and out["sshPublicKey"].startswith("ssh-ed25519 ")


def test_stats_password_is_a_secret_and_is_the_one_haproxy_uses(dev: Recording) -> None:
    assert is_secret(dev.outputs["statsPassword"]) and is_secret(dev.outputs["sshPrivateKey"])
    assert not is_secret(dev.outputs["statsUser"])
    password = unwrap(dev.outputs["statsPassword"])
    for director in ("cluster1", "standby1", "standby2"):
        stdin = dev.steps()[f"{director}-40-haproxy"].inputs["stdin"]
        assert is_secret(stdin)
        assert f"stats auth admin:{password}" in unwrap(stdin)


def test_each_directors_stats_and_metrics_urls_name_an_address_its_haproxy_listens_on(dev: Recording) -> None:
    """A URL in the outputs that nothing binds is a dead link (statsUrls once named the external
    addresses, where only the VIP's listener is)."""
    out = unwrap(dev.outputs)
    for director in ("cluster1", "standby1", "standby2"):
        haproxy_cfg = unwrap(dev.steps()[f"{director}-40-haproxy"].inputs["stdin"])
        for key in ("statsUrls", "metricsUrls"):
            host_port = out[key][director].split("/")[2]
            assert f"\tbind {host_port}\n" in haproxy_cfg, f"{key}: {director}'s HAProxy does not listen on {host_port}"
    assert f"\tbind {out['statsVipUrl'].split('/')[2]}\n" in haproxy_cfg


def test_virtualbox_outputs_add_the_forwarded_urls() -> None:
    out = unwrap(run_stack("dev", hypervisor="virtualbox").outputs)
    assert set(out) == COMMON | {"forwardedUrls", "sshPorts", "httpsCaCert"}
    assert out["forwardedUrls"] == {
        "HAProxy-HTTP": "http://localhost:8000/",
        "HAProxy-TCP": "http://localhost:8800/",
        "HAProxy-HTTP-gluster": "http://localhost:9000/",
        "HAProxy-TCP-gluster": "http://localhost:9900/",
        "HA-Estado": "http://localhost:7000/haproxy?stats",
    }
    assert out["sshPorts"] == {"cluster1": 2200, "standby1": 2201, "standby2": 2202}
    assert out["hypervisor"] == "virtualbox"


def test_tier_components_report_what_they_built(dev: Recording) -> None:
    def of(typ: str, name: str) -> dict:
        return unwrap(dev.component_output(f"ha-web-cluster:{typ}", name))

    assert of("storage:NasServer", "nas")["export"] == "nas:/raid"
    assert of("storage:NasServer", "nas")["nodes"] == ["nas"]
    assert of("storage:GlusterPool", "gluster")["volumes"] == {"gv0": "replica 3", "gv1": "distribute"}
    assert of("directors:DirectorTrio", "directors")["vips"] == {"external": "192.168.1.200", "internal": "10.0.100.200"}
    containers = of("backends:DockerBackends", "backends")["containers"]
    assert containers["cluster3"] == ["cluster31p:8081", "cluster32p:8082", "cluster33p:8083", "cluster34p:8085"]
    content = of("content:WebContent", "content")
    assert content["docroots"] == ["/nfs/raid/www", "/gluster/gfs-r/www"]
    assert content["nodes"] == [] and content["steps"] == ["cluster2-30-content", "nas-40-content"]


def test_the_documented_move_off_192_168_1_works() -> None:
    """docs/pulumi.md's one-key edit: everything external moves, nothing keeps the seed's network."""
    import re

    import yaml

    from pulumi_harness import ROOT, plain_strings

    block = re.search(r"```yaml\n  ha-web-cluster:cluster:\n(.*?)```", (ROOT / "docs/pulumi.md").read_text(), re.S)
    assert block, "the snippet is in docs/pulumi.md"
    rec = run_stack("dev", cluster=yaml.safe_load(block.group(1)))
    out = unwrap(rec.outputs)
    assert out["externalVip"] == "192.168.123.200" and out["nodes"]["standby2"]["external"] == "192.168.123.103"
    network = next(r for r in rec.of_type("libvirt:index/network:Network").values() if r.inputs["name"] == "hawc-external")
    assert network.inputs["addresses"] == ["192.168.123.0/24"]
    for r in rec.resources.values():
        assert not [p for p, s in plain_strings(unwrap(r.inputs)) if "192.168.1." in s], r.name


def test_each_node_metrics_url_names_the_address_its_node_exporter_listens_on(dev: Recording) -> None:
    """nodeMetricsUrls point where node-exporter's rendered ARGS bind it (the internal address alone)."""
    out = unwrap(dev.outputs)
    assert len(out["nodeMetricsUrls"]) == len(SEED_NODES)
    for node, url in out["nodeMetricsUrls"].items():
        script = unwrap(dev.steps()[f"{node}-02-node-exporter"].inputs["stdin"])
        assert f"--web.listen-address={url.split('/')[2]} " in script, node
