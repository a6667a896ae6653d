"""Run the Pulumi program under the SDK's mock engine and keep what the engine would see.

The SDK's MockMonitor already answers every registration; :class:`RecordingMonitor`
only keeps what it drops (parent, dependencies, options, registered outputs) and, like
the real engine, marks a resource's ``additional_secret_outputs`` secret. Mocks return
plausible outputs for the resources whose outputs the program uses (generated secrets,
the SSH key, command output). No CLI, no provider plugin.
"""

from __future__ import annotations

import base64
import hashlib
import json
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

import pulumi
import yaml
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.sync_await import _sync_await

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "ha-web-cluster"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STEP_TYPE = "command:remote:Command"
LOCAL_TYPE = "command:local:Command"
SECRET_SIG = rpc._special_secret_sig


# --------------------------------------------------------------------------- wire values


def is_secret(value: Any) -> bool:
    return rpc.is_rpc_secret(value)


def unwrap(value: Any) -> Any:
    """The value with every secret wrapper removed (for assertions on content)."""
    if is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def plain_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, string) for every string NOT inside a secret wrapper."""
    if is_secret(value):
        return
    if isinstance(value, dict):
        for k, v in value.items():
            yield from plain_strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from plain_strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


# --------------------------------------------------------------------------- mocks


def _digest(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


# (resource type, name, inputs) -> outputs that replace the mocks' stand-ins: the e2e's working keys and certificates.
ProviderOutputs = Callable[[str, str, Mapping[str, Any]], Mapping[str, str]]


def pem(label: str, token: str) -> str:
    """A PEM-shaped stand-in: what pulumi-tls returns has this frame (the mocks never make real keys)."""
    return f"-----BEGIN {label}-----\n{base64.b64encode(bytes.fromhex(token)).decode()}\n-----END {label}-----\n"


class ClusterMocks(pulumi.runtime.Mocks):
    """Deterministic outputs (the same inputs give the same outputs in every run); remembers every secret it makes."""

    def __init__(self, provider_outputs: Optional[ProviderOutputs] = None) -> None:
        self.generated_secrets: set[str] = set()
        self.provider_outputs = provider_outputs

    def _secret(self, value: str) -> str:
        self.generated_secrets.add(value)
        return value

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[Optional[str], dict]:
        outputs = dict(args.inputs)
        token = _digest(args.typ, args.name)
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = self._secret("Pw" + token[: int(args.inputs["length"]) - 2])
        elif args.typ == "random:index/randomBytes:RandomBytes":
            raw = bytes.fromhex(token) * (int(args.inputs["length"]) // 32 + 1)
            raw = raw[: int(args.inputs["length"])]
            outputs["base64"] = self._secret(base64.b64encode(raw).decode())
            outputs["hex"] = self._secret(raw.hex())
        elif args.typ == "tls:index/privateKey:PrivateKey":
            private = f"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn{token}\n-----END OPENSSH PRIVATE KEY-----\n"
            outputs["privateKeyOpenssh"] = self._secret(private)
            outputs["publicKeyOpenssh"] = public_key_of(private)
            outputs["privateKeyPem"] = self._secret(pem("PRIVATE KEY", token))
        elif args.typ in ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert"):
            outputs["certPem"] = pem("CERTIFICATE", token)
        elif args.typ == "tls:index/certRequest:CertRequest":
            outputs["certRequestPem"] = pem("CERTIFICATE REQUEST", token)
        elif args.typ in (STEP_TYPE, LOCAL_TYPE):
            outputs.update(stdout="", stderr="")
        real = self.provider_outputs(args.typ, args.name, args.inputs) if self.provider_outputs else {}
        outputs.update({k: self._secret(v) if k.startswith("private") else v for k, v in real.items()})
        return f"{args.name}-{token[:8]}", outputs

    def call(self, args: mocks.MockCallArgs) -> tuple[dict, Optional[list]]:
        if args.token == "tls:index/getPublicKey:getPublicKey":
            return {"publicKeyOpenssh": public_key_of(args.args["privateKeyOpenssh"]), "algorithm": "ED25519"}, []
        return {}, []


def public_key_of(private_key: str) -> str:
    return f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5{_digest(private_key)[:40]}\n"


@dataclass
class Registered:
    urn: str
    id: str
    type: str
    name: str
    parent: str
    inputs: dict[str, Any]
    dependencies: set[str]
    secret_outputs: list[str]
    delete_before_replace: bool
    provider: str
    replace_on_changes: list[str]


class RecordingMonitor(mocks.MockMonitor):
    def __init__(self, m: pulumi.runtime.Mocks):
        super().__init__(m)
        self.registered: dict[str, Registered] = {}
        self.outputs: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        self.registered[response.urn] = Registered(
            urn=response.urn,
            id=response.id,
            type=request.type,
            name=request.name,
            parent=request.parent,
            inputs=rpc.deserialize_properties(request.object),
            dependencies=set(request.dependencies),
            secret_outputs=list(request.additionalSecretOutputs),
            delete_before_replace=request.deleteBeforeReplace,
            provider=request.provider,
            replace_on_changes=list(request.replaceOnChanges),
        )
        if not request.additionalSecretOutputs:
            return response
        state = rpc.deserialize_properties(response.object)  # the engine makes these outputs secret
        for key in request.additionalSecretOutputs:
            if key in state:
                state[key] = rpc.wrap_rpc_secret(state[key])
        obj = _sync_await(rpc.serialize_properties(state, {}))
        return resource_pb2.RegisterResourceResponse(urn=response.urn, id=response.id, object=obj)

    def RegisterResourceOutputs(self, request):
        self.outputs[request.urn] = rpc.deserialize_properties(request.outputs)
        return super().RegisterResourceOutputs(request)


# --------------------------------------------------------------------------- runs


@dataclass
class Recording:
    stack: str
    resources: dict[str, Registered]
    outputs: dict[str, Any]  # stack outputs, secrets wrapped as on the wire
    component_outputs: dict[str, dict[str, Any]]
    secret_values: set[str] = field(default_factory=set)

    def of_type(self, typ: str) -> dict[str, Registered]:
        return {r.name: r for r in self.resources.values() if r.type == typ}

    def named(self, typ: str, name: str) -> Registered:
        return self.of_type(typ)[name]

    def steps(self) -> dict[str, Registered]:
        return self.of_type(STEP_TYPE)

    def parent_of(self, r: Registered) -> Registered:
        return self.resources[r.parent]

    def component_output(self, typ: str, name: str) -> dict[str, Any]:
        """What a component registered with register_outputs."""
        return next(v for urn, v in self.component_outputs.items() if urn.endswith(f"{typ}::{name}"))

    def by_id(self, resource_id: str) -> Registered:
        return next(r for r in self.resources.values() if r.id == resource_id)

    def depends_on(self, r: Registered) -> set[str]:
        """Names of the resources `r` waits for directly."""
        return {self.resources[u].name for u in r.dependencies if u in self.resources}


def stack_config(stack: str) -> dict[str, Any]:
    """The `config:` mapping of Pulumi.<stack>.yaml."""
    doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()) or {}
    return dict(doc.get("config") or {})


def engine_config(config: Mapping[str, Any], secrets: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """What the CLI hands a program: namespaced keys, objects as JSON text, decrypted secrets and their keys."""
    out = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    for key, value in secrets.items():
        out[f"{PROJECT}:{key}"] = value
    return out, [f"{PROJECT}:{k}" for k in secrets]


def run_program(config: Mapping[str, Any], secrets: Mapping[str, str] | None = None, stack: str = "dev", provider_outputs: Optional[ProviderOutputs] = None) -> Recording:
    """Run __main__.py once under fresh mocks; raises whatever the program raises."""
    recording, error = attempt_program(config, secrets, stack, provider_outputs)
    if error is not None:
        raise error
    return recording


def attempt_program(
    config: Mapping[str, Any], secrets: Mapping[str, str] | None = None, stack: str = "dev", provider_outputs: Optional[ProviderOutputs] = None
) -> tuple[Recording, Optional[BaseException]]:
    """Run __main__.py once under fresh mocks; returns what was recorded and the error, if any."""
    secrets = dict(secrets or {})
    mock = ClusterMocks(provider_outputs)
    monitor = RecordingMonitor(mock)
    settings.ROOT.set(None)  # a fresh root Stack for this run
    pulumi.runtime.set_mocks(mock, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    values, secret_keys = engine_config(config, secrets)
    pulumi.runtime.set_all_config(values, secret_keys)

    @pulumi.runtime.test
    def program() -> None:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        root = settings.get_root_resource()
        root.register_outputs(dict(root.outputs))  # what the engine's run_in_stack does at the end

    error: Optional[BaseException] = None
    try:
        program()
    except Exception as exc:  # noqa: BLE001 - handed to the caller with what was recorded
        error = exc
    stack_urn = f"urn:pulumi:{stack}::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-{stack}"
    outputs = monitor.outputs.pop(stack_urn, {})
    recording = Recording(stack, dict(monitor.registered), outputs, dict(monitor.outputs), mock.generated_secrets | set(secrets.values()))
    return recording, error


def stack_with(stack: str, **overrides: Any) -> dict[str, Any]:
    """A stack file's config with keys (without the project prefix) set."""
    config = stack_config(stack)
    for key, value in overrides.items():
        config[f"{PROJECT}:{key}"] = value
    return config


def run_stack(stack: str, secrets: Mapping[str, str] | None = None, provider_outputs: Optional[ProviderOutputs] = None, **overrides: Any) -> Recording:
    """Run a stack file, with keys (without the project prefix) overridden."""
    return run_program(stack_with(stack, **overrides), secrets, stack, provider_outputs)


def scaled_cluster(backends: int, containers_per_host: int = 4) -> dict[str, Any]:
    """A `cluster` value with many Docker hosts (the seed's container layout on each): for scale tests and the benchmark."""
    hosts = []
    for i in range(backends):
        number = i + 2
        containers = [{"name": f"cluster{number}{k}p", "port": 8080 + k, "docroot": "nfs"} for k in range(1, containers_per_host)]
        containers.append({"name": f"cluster{number}{containers_per_host}p", "port": 8080 + containers_per_host, "docroot": "gv0"})
        address = f"10.0.100.{number}" if number <= 4 else f"10.0.100.{56 + number}"
        hosts.append({"name": f"cluster{number}", "address": address, "containers": containers})
    return {"backends": hosts}
