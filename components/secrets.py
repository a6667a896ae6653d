"""The cluster's secrets: taken from `pulumi config set --secret`, generated when not set.

Only the secrets the rendered cluster refers to are created (``fenceSshKey`` exists
only when Pacemaker fences, ``vrrpAuthPass`` only with VRRP version 2), so a stack never
grows resources it does not use. Every value is a Pulumi secret, also under the mock
engine, whatever the provider marks. SSH private keys (Pulumi's own, the fence agent's)
are made the same way, and their public halves, which are not secret, are kept beside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import pulumi
import pulumi_random as random
import pulumi_tls as tls

from webcluster.model import SECRET_KEYS
from webcluster.render.placeholders import MARKER
from webcluster.render.plan import ClusterPlan

SSH_KEY = "sshPrivateKey"
SSH_KEY_SECRETS = {"fenceSshKey"}  # secrets that are SSH private keys: generated as one, public half kept
Opts = pulumi.ResourceOptions


def _password(length: int) -> Callable[[str, Opts], pulumi.Output[str]]:
    def make(name: str, opts: Opts) -> pulumi.Output[str]:
        return random.RandomPassword(name, length=length, special=False, opts=opts).result

    return make


def _corosync_key(name: str, opts: Opts) -> pulumi.Output[str]:
    return random.RandomBytes(name, length=256, opts=opts).base64  # corosync-keygen's default size


# key -> how to generate it when the stack does not set it; any other key gets DEFAULT_GENERATOR.
GENERATORS: dict[str, Callable[[str, Opts], pulumi.Output[str]]] = {
    "vrrpAuthPass": _password(8),  # VRRPv2 PASS authentication keeps 8 characters
    "corosyncKey": _corosync_key,
}
DEFAULT_GENERATOR = _password(32)


def secrets_in(plan: ClusterPlan) -> set[str]:
    """Secret placeholders anywhere in the rendered files and step scripts."""
    keys: set[str] = set()
    texts = [s.script for s in plan.all_steps()]
    texts += [f.content for n in plan.nodes.values() for f in n.files.values() if isinstance(f.content, str)]
    for text in texts:
        keys |= {m.group(2) for m in MARKER.finditer(text) if m.group(1) == "secret"}
    return keys


@dataclass(frozen=True)
class SshAccess:
    """How Pulumi logs into the nodes: a private key, or the SSH agent when only a public key is configured."""

    user: str
    private_key: Optional[pulumi.Output[str]]
    public_key: pulumi.Output[str]


class ClusterSecrets(pulumi.ComponentResource):
    """Secret values by key, plus the SSH access every node's cloud-init and every step use."""

    def __init__(self, name: str, keys: set[str], ssh_user: str, ssh_public_key: Optional[str], opts: Optional[Opts] = None):
        super().__init__("ha-web-cluster:secrets:ClusterSecrets", name, None, opts)
        config = pulumi.Config()
        child = Opts(parent=self)
        self.values: dict[str, pulumi.Output[str]] = {}
        self.public_keys: dict[str, pulumi.Output[str]] = {}  # SSH key secret -> its public half (OpenSSH)
        self.generated: list[str] = []
        for key in sorted(keys):
            value = config.get_secret(key) if key in SECRET_KEYS else None
            if key in SSH_KEY_SECRETS:
                private, self.public_keys[key] = ssh_key_pair(_resource_name(key), value, child)
                if value is None:
                    self.generated.append(key)
                self.values[key] = private
                continue
            if value is None:
                value = GENERATORS.get(key, DEFAULT_GENERATOR)(_resource_name(key), child)
                self.generated.append(key)
            self.values[key] = pulumi.Output.secret(value)
        self.ssh = self._ssh_access(config, ssh_user, ssh_public_key, child)
        self.register_outputs({"keys": sorted(self.values), "generated": self.generated})

    @staticmethod
    def _ssh_access(config: pulumi.Config, user: str, public_key: Optional[str], opts: Opts) -> SshAccess:
        given = config.get_secret(SSH_KEY)
        if given is None and public_key is not None:  # the matching private key stays in the user's SSH agent
            return SshAccess(user, None, pulumi.Output.from_input(public_key))
        private, public = ssh_key_pair(_resource_name(SSH_KEY), given, opts)
        return SshAccess(user, private, pulumi.Output.from_input(public_key) if public_key is not None else public)


def ssh_key_pair(name: str, given: Optional[pulumi.Input[str]], opts: Opts) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
    """(private key as a secret, public key in the clear): the given private key's, or a new ED25519 key's."""
    if given is not None:  # a public key is not secret, though derived from a secret
        public = pulumi.Output.unsecret(tls.get_public_key_output(private_key_openssh=given).public_key_openssh)
        return pulumi.Output.secret(given), public
    key = tls.PrivateKey(name, algorithm="ED25519", opts=opts)
    return pulumi.Output.secret(key.private_key_openssh), key.public_key_openssh


def _resource_name(key: str) -> str:
    return "".join("-" + c.lower() if c.isupper() else c for c in key)  # statsPassword -> stats-password
