"""Secrets: generated when not given, taken from config when given, never visible outside a secret."""

from __future__ import annotations

import pytest
from pulumi_harness import (
    Recording,
    attempt_program,
    is_secret,
    plain_strings,
    public_key_of,
    run_stack,
    stack_with,
    unwrap,
)

GIVEN = {"statsPassword": "given-Stats-Pw-0042", "sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\ngivenKEYmaterial\n-----END OPENSSH PRIVATE KEY-----\n"}


def leaks(rec: Recording) -> list[str]:
    """Every place a secret value shows outside a secret field: inputs, component outputs, stack outputs."""
    places = []
    for r in rec.resources.values():
        places += [(f"{r.name}{p}", s) for p, s in plain_strings(r.inputs)]
    for urn, outputs in rec.component_outputs.items():
        places += [(f"{urn}{p}", s) for p, s in plain_strings(outputs)]
    places += [(f"stack{p}", s) for p, s in plain_strings(rec.outputs)]
    found = []
    for where, text in places:
        for secret in rec.secret_values:
            if secret.strip() and secret.strip() in text:
                found.append(where)
    return found


@pytest.mark.parametrize(("hypervisor", "ha_stack"), [("libvirt", "keepalived"), ("virtualbox", "keepalived"), ("libvirt", "pacemaker")])
def test_no_generated_secret_outside_secret_fields(hypervisor: str, ha_stack: str) -> None:
    rec = run_stack("dev", hypervisor=hypervisor, haStack=ha_stack)
    assert rec.secret_values, "the mocks generated the secrets"
    assert leaks(rec) == []


def test_pacemaker_secrets_are_generated_with_the_right_shape() -> None:
    rec = run_stack("dev", haStack="pacemaker")
    passwords = set(rec.of_type("random:index/randomPassword:RandomPassword"))
    assert {"stats-password", "hacluster-password"} <= passwords and "fence-password" not in passwords, "no fence password by default"
    assert rec.named("random:index/randomBytes:RandomBytes", "corosync-key").inputs["length"] >= 128
    assert rec.named("tls:index/privateKey:PrivateKey", "fence-ssh-key").inputs["algorithm"] == "ED25519"
    assert "fencePassword" not in rec.outputs and "fenceSshKey" not in rec.outputs, "the private key never leaves the secrets"
    line = rec.outputs["fenceAuthorizedKey"]
    assert not is_secret(line) and line.startswith("restrict,") and 'command="/usr/local/sbin/hawc-fence-virsh"' in line
    assert 'from="192.168.1.101,' in line and line.split()[-3:-1][0] == "ssh-ed25519", "the public half only, from the directors"
    assert "DOMAINS=(cluster1 standby1 standby2)" in rec.outputs["fenceCommand"] and rec.outputs["fenceCommandPath"] == "/usr/local/sbin/hawc-fence-virsh"
    assert leaks(rec) == []


def test_a_given_fence_key_is_used_and_its_public_half_derived() -> None:
    given = "-----BEGIN OPENSSH PRIVATE KEY-----\ngivenFENCEkey\n-----END OPENSSH PRIVATE KEY-----\n"
    rec = run_stack("dev", secrets={"fenceSshKey": given}, haStack="pacemaker")
    assert "fence-ssh-key" not in {r.name for r in rec.of_type("tls:index/privateKey:PrivateKey").values()}
    assert public_key_of(given).split()[1] in rec.outputs["fenceAuthorizedKey"]
    assert leaks(rec) == []


def test_fence_login_password_keeps_the_fence_password() -> None:
    rec = run_stack("dev", haStack="pacemaker", cluster={"pacemaker": {"fenceLogin": "password"}})
    assert "fence-password" in set(rec.of_type("random:index/randomPassword:RandomPassword"))
    assert "fencePassword" in rec.outputs and is_secret(rec.outputs["fencePassword"]), "the fence user on the host needs it"
    assert "fenceAuthorizedKey" not in rec.outputs


def test_given_secrets_are_used_and_not_generated_nor_leaked() -> None:
    rec = run_stack("dev", secrets=GIVEN)
    assert not rec.of_type("random:index/randomPassword:RandomPassword"), "statsPassword was given"
    assert "ssh-private-key" not in {r.name for r in rec.of_type("tls:index/privateKey:PrivateKey").values()}, "sshPrivateKey was given"
    assert unwrap(rec.outputs["statsPassword"]) == GIVEN["statsPassword"]
    assert unwrap(rec.steps()["cluster1-00-base"].inputs["connection"])["privateKey"] == GIVEN["sshPrivateKey"]
    assert leaks(rec) == []


def test_only_the_secrets_the_cluster_uses_are_generated() -> None:
    rec = run_stack("dev")
    names = {r.name for r in rec.of_type("random:index/randomPassword:RandomPassword").values()}
    assert names == {"stats-password"}, "keepalived with VRRP v3 needs no auth_pass; no Pacemaker secrets"
    v2 = run_stack("dev", cluster={"vrrp": {"version": 2, "advertInterval": 1}})
    names = {r.name for r in v2.of_type("random:index/randomPassword:RandomPassword").values()}
    assert names == {"stats-password", "vrrp-auth-pass"}
    assert v2.named("random:index/randomPassword:RandomPassword", "vrrp-auth-pass").inputs["length"] == 8
    assert leaks(v2) == []


def test_steps_that_carry_secrets_hide_their_output() -> None:
    rec = run_stack("dev")
    for name, step in rec.steps().items():
        carries_secret = name.endswith(("-40-haproxy", "-60-haproxy-roll", "-10-bricks", "-20-mounts"))  # stats password, TLS key; Gluster TLS keys
        assert ("stdout" in step.secret_outputs) == carries_secret, name
        assert (step.inputs.get("logging") == "none") == carries_secret, name
        assert step.inputs["addPreviousOutputInEnv"] is False


def test_ssh_agent_is_used_when_only_a_public_key_is_configured() -> None:
    rec = run_stack("dev", sshPublicKey="ssh-ed25519 AAAAmine me@host")
    assert "ssh-private-key" not in {r.name for r in rec.of_type("tls:index/privateKey:PrivateKey").values()}
    connection = unwrap(rec.steps()["nas-00-base"].inputs["connection"])
    assert "privateKey" not in connection
    assert "ssh-ed25519 AAAAmine me@host" in rec.named("libvirt:index/cloudInitDisk:CloudInitDisk", "nas-seed").inputs["userData"]
    assert "sshPrivateKey" not in rec.outputs


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cluster": {"backends": [{"name": "cluster2", "address": "10.0.100.2", "containers": [{"name": "c", "port": 7000}]}]}}, "port 7000 is reserved"),
        ({"clustr": {}}, "clustr: unknown key"),
        ({"statsPassword": "in-clear-text"}, "statsPassword: is a secret"),
        ({"libvirt": {"hostAddress": "10.0.100.100"}}, "10.0.100.100 is already used by nas"),
        ({"hypervisor": "virtualbox", "virtualbox": {"sshBasePort": 6999}}, "collides with the port forward HA-Estado"),
    ],
)
def test_bad_config_fails_before_any_resource(overrides: dict, message: str) -> None:
    rec, error = attempt_program(stack_with("dev", **overrides))
    assert error is not None and message in str(error)
    assert rec.resources == {}, "nothing may be declared from a bad config"


def test_gluster_tls_gives_every_node_that_speaks_gluster_its_own_key_and_certificate() -> None:
    """One CA; per server and per Docker host that mounts a volume a key, a request for its hostname
    and a certificate the CA signs; each node's step carries its own key and certificate, the CA's
    certificate, never another node's key; every key is a secret and shows nowhere else."""
    from pulumi_harness import _digest
    from pulumi_harness import pem as mocked_pem
    from webcluster.render.gluster_tls import CA_FILE, CERT_FILE, KEY_FILE

    rec = run_stack("dev")
    nodes = ["gluster1", "gluster2", "gluster3", "cluster2", "cluster3", "cluster4"]
    keys = rec.of_type("tls:index/privateKey:PrivateKey")
    assert {f"gluster-pki-{n}-key" for n in nodes} | {"gluster-pki-ca-key"} <= set(keys)
    assert all(keys[f"gluster-pki-{n}-key"].inputs == {"algorithm": "RSA", "rsaBits": 3072} for n in nodes)
    ca = rec.named("tls:index/selfSignedCert:SelfSignedCert", "gluster-pki-ca")
    assert ca.inputs["isCaCertificate"] is True and ca.inputs["subject"]["commonName"]
    for n in nodes:
        assert rec.named("tls:index/certRequest:CertRequest", f"gluster-pki-{n}-csr").inputs["subject"] == {"commonName": n}
        cert = rec.named("tls:index/locallySignedCert:LocallySignedCert", f"gluster-pki-{n}-cert")
        assert {"server_auth", "client_auth"} <= set(cert.inputs["allowedUses"])
    steps = rec.steps()
    pem = {n: mocked_pem("PRIVATE KEY", _digest("tls:index/privateKey:PrivateKey", f"gluster-pki-{n}-key")) for n in nodes}  # what the mocks made
    assert set(pem.values()) <= rec.secret_values
    for n in nodes:
        step = steps[f"{n}-10-bricks" if n.startswith("gluster") else f"{n}-20-mounts"]
        assert is_secret(step.inputs["stdin"])
        script = unwrap(step.inputs["stdin"])
        assert all(path in script for path in (KEY_FILE, CERT_FILE, CA_FILE)) and pem[n] in script
        assert not any(pem[other] in script for other in nodes if other != n)
    assert "cluster1" not in {r.name.split("-")[2] for r in keys.values() if r.name.startswith("gluster-pki-")}
    assert leaks(rec) == []
    off = run_stack("dev", cluster={"gluster": {"tls": False}})
    assert not [r for r in off.of_type("tls:index/privateKey:PrivateKey").values() if r.name.startswith("gluster-pki")]
