"""Secrets: generated when not given, taken from config when given, never visible outside a secret."""

from __future__ import annotations

import pytest
from pulumi_harness import (
    Recording,
    attempt_program,
    is_secret,
    plain_strings,
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
    assert {"stats-password", "hacluster-password", "fence-password"} <= passwords
    assert rec.named("random:index/randomBytes:RandomBytes", "corosync-key").inputs["length"] >= 128
    assert "fencePassword" in rec.outputs and is_secret(rec.outputs["fencePassword"]), "the fence user on the host needs it"


def test_given_secrets_are_used_and_not_generated_nor_leaked() -> None:
    rec = run_stack("dev", secrets=GIVEN)
    assert not rec.of_type("random:index/randomPassword:RandomPassword"), "statsPassword was given"
    assert not rec.of_type("tls:index/privateKey:PrivateKey"), "sshPrivateKey was given"
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
        carries_secret = name.endswith("-40-haproxy")
        assert ("stdout" in step.secret_outputs) == carries_secret, name
        assert (step.inputs.get("logging") == "none") == carries_secret, name
        assert step.inputs["addPreviousOutputInEnv"] is False


def test_ssh_agent_is_used_when_only_a_public_key_is_configured() -> None:
    rec = run_stack("dev", sshPublicKey="ssh-ed25519 AAAAmine me@host")
    assert not rec.of_type("tls:index/privateKey:PrivateKey")
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
