"""The e2e container-hardening check's decision, without a guest: real `docker inspect` output
(docker.io 20.10.24, a container started by the rendered hawc-containers with the default
`cluster.docker`) passes; each setting changed in it, or in the model, is named."""

import copy
import json
from pathlib import Path

import pytest

from webcluster.e2e import checks, hardening
from webcluster.model import Docker

INSPECT = json.loads((Path(__file__).parent / "docker-inspect-hardened.json").read_text())
NAME = INSPECT[0]["Name"].lstrip("/")


def output(change=None) -> str:
    """The recorded inspect output, one container, after `change(container)`."""
    data = copy.deepcopy(INSPECT)
    if change:
        change(data[0])
    return json.dumps(data)


def test_recorded_default_container_passes() -> None:
    assert hardening.problems(output(), [NAME], Docker()) == []


@pytest.mark.parametrize(("change", "key"), [
    (lambda o: o["HostConfig"].update(CapDrop=None), "cap_drop"),
    (lambda o: o["HostConfig"]["CapAdd"].append("NET_ADMIN"), "cap_add"),
    (lambda o: o["HostConfig"]["CapAdd"].remove("KILL"), "cap_add"),
    (lambda o: o["HostConfig"].update(SecurityOpt=None), "no_new_privileges"),
    (lambda o: o["HostConfig"].update(ReadonlyRootfs=False), "read_only"),
    (lambda o: o["HostConfig"].update(Memory=0), "memory"),
    (lambda o: o["HostConfig"].update(MemorySwap=-1), "memory_swap"),
    (lambda o: o["HostConfig"].update(NanoCpus=0), "nano_cpus"),
    (lambda o: o["HostConfig"].update(PidsLimit=None), "pids_limit"),
    (lambda o: o["HostConfig"]["Tmpfs"].pop("/tmp"), "tmpfs"),
    (lambda o: o["Config"].update(Image="php:apache"), "image"),
    (lambda o: o["State"].update(Running=False), "running"),
])
def test_each_setting_missing_from_the_container_is_named(change, key) -> None:
    found = hardening.problems(output(change), [NAME], Docker())
    assert len(found) == 1 and found[0].startswith(f"{NAME}: {key} is "), found


@pytest.mark.parametrize(("model", "key"), [
    ({"image": "php:8.2.30-apache-bookworm"}, "image"),
    ({"capAdd": ["KILL", "SETGID", "SETUID", "NET_BIND_SERVICE"]}, "cap_add"),
    ({"memoryMib": 512}, "memory"),
    ({"cpus": 0.5}, "nano_cpus"),
    ({"pidsLimit": 100}, "pids_limit"),
    ({"readOnly": False}, "read_only"),
    ({"noNewPrivileges": False}, "no_new_privileges"),
])
def test_a_container_left_from_an_older_config_is_named(model, key) -> None:
    found = hardening.problems(output(), [NAME], Docker.model_validate(model))
    assert any(p.startswith(f"{NAME}: {key} is ") for p in found), found


def test_newer_docker_cap_names_and_missing_containers() -> None:
    """Docker 23+ reports `CAP_KILL`; a container docker inspect did not return is a problem."""
    def newer(o):
        o["HostConfig"]["CapAdd"] = ["CAP_" + c for c in o["HostConfig"]["CapAdd"]]
    assert hardening.problems(output(newer), [NAME], Docker()) == []
    assert hardening.problems(output(), [NAME, "cluster22p"], Docker()) == ["cluster22p: not found by docker inspect"]
    assert hardening.problems("Error: No such object", [NAME], Docker())[0].startswith("docker inspect output is not")


def test_check_inspects_every_docker_host_and_probes_every_container(monkeypatch) -> None:
    """The check's wiring: one `docker inspect` of its containers per Docker host, the probes
    from a director; a host whose containers differ fails the check with its name."""
    from webcluster.model import StackConfig
    from webcluster.topology import Topology

    topo = Topology(StackConfig())
    cluster = checks.Cluster(topo, plan=None)  # type: ignore[arg-type]
    scripts: dict[str, str] = {}

    def inspect_all(c, node, script, timeout=120, tries=1):
        scripts[node] = script
        names = script.split()[2:]
        return json.dumps([{**copy.deepcopy(INSPECT[0]), "Name": "/" + n} for n in names])

    monkeypatch.setattr(checks, "on", inspect_all)
    monkeypatch.setattr(checks, "probe_ports", lambda c, node, targets: {t: checks.Probe(0, True) for t in targets})
    detail = checks.check_container_hardening(cluster)
    assert set(scripts) == {b.name for b in topo.cluster.backends}
    for b in topo.cluster.backends:
        assert scripts[b.name] == "docker inspect " + " ".join(ct.name for ct in b.containers)
    assert detail.startswith(f"{sum(len(b.containers) for b in topo.cluster.backends)} containers: php:8.2.29-apache-bookworm")
    assert ("containers hardened (docker inspect) and serving", checks.check_container_hardening) in checks.CHECKS

    def one_writable(c, node, script, timeout=120, tries=1):
        out = json.loads(inspect_all(c, node, script))
        out[-1]["HostConfig"]["ReadonlyRootfs"] = node != "cluster4"
        return json.dumps(out)

    monkeypatch.setattr(checks, "on", one_writable)
    with pytest.raises(checks.CheckFailed, match=r"cluster4: cluster44p: read_only is False"):
        checks.check_container_hardening(cluster)
