"""Bad input ends in one clear line per problem and exit 2, never a traceback: stack files the
YAML reader cannot take, unknown stacks, misspelled namespaces, commands that need a running
lab, render folders; and partially given maps keep their defaults (CLI and Pulumi program)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_cli
from pulumi_harness import attempt_program, run_program, stack_with
from webcluster.model import METADATA_CACHE_GROUP, StackConfig
from webcluster.stackfile import load_values

PLACEHOLDER = "@@hawc:secret:"


def assert_one_clear_error(proc, *fragments: str) -> list[str]:
    """Exit 2, nothing on stdout, no traceback, and the fragments on the problem lines."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    for fragment in fragments:
        assert any(fragment in line for line in lines), (fragment, lines)
    return lines


def write_stack(tmp_path: Path, text: str | bytes, name: str = "Pulumi.x.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


# --------------------------------------------------------------------------- files the reader cannot take


@pytest.mark.parametrize("command", [["validate"], ["render", "--out", "OUT"], ["check"], ["lab", "up"]], ids=lambda c: " ".join(c[:2]))
def test_a_directory_as_file_is_named(tmp_path: Path, command: list[str]) -> None:
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in command]
    proc = run_cli(*argv, "--file", str(tmp_path), env={"HAWC_LAB_ROOT": str(tmp_path / "lab")})
    lines = assert_one_clear_error(proc, f"{tmp_path}: is a directory")
    assert lines[0] == "invalid stack config (1 error):"


def test_a_binary_file_is_named(tmp_path: Path) -> None:
    path = write_stack(tmp_path, bytes(range(256)) * 4)
    assert_one_clear_error(run_cli("validate", "--file", str(path)), f"{path}: is not a text file")


def test_config_written_as_a_list_is_named(tmp_path: Path) -> None:
    path = write_stack(tmp_path, "config:\n  - ha-web-cluster:haStack: pacemaker\n")
    assert_one_clear_error(run_cli("validate", "--file", str(path)), f"{path}: config: must be a mapping", "not a list")


def test_a_key_given_twice_is_named_with_its_lines(tmp_path: Path) -> None:
    path = write_stack(tmp_path, "config:\n  ha-web-cluster:haStack: pacemaker\n  ha-web-cluster:haStack: keepalived\n")
    assert_one_clear_error(run_cli("validate", "--file", str(path)), "'ha-web-cluster:haStack' appears twice (lines 2 and 3)")


def test_a_nested_key_given_twice_is_named(tmp_path: Path) -> None:
    path = write_stack(tmp_path, "config:\n  ha-web-cluster:cluster:\n    vrrp:\n      version: 2\n      version: 3\n")
    assert_one_clear_error(run_cli("validate", "--file", str(path)), "'version' appears twice (lines 4 and 5)")


def test_an_unknown_stack_lists_the_stacks_that_exist() -> None:
    lines = assert_one_clear_error(run_cli("validate", "--stack", "prod"), "Pulumi.prod.yaml: stack file not found")
    known = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))
    assert "dev" in known and f"stacks in {ROOT}: {', '.join(known)}" in lines[1]


def test_e2e_run_of_an_unknown_stack_is_a_clear_error(tmp_path: Path) -> None:
    assert_one_clear_error(run_cli("e2e", "run", "--stack", "prod", "--out", str(tmp_path / "e2e")), "stack file not found", "stacks in")
    assert not (tmp_path / "e2e").exists()


@pytest.mark.parametrize("namespace", ["ha-web-culster", "ha-wbe-cluster", "ha_web_cluster", "ha-web-clusters"])
def test_a_misspelled_namespace_is_an_error_not_ignored(tmp_path: Path, namespace: str) -> None:
    path = write_stack(tmp_path, f"config:\n  {namespace}:haStack: pacemaker\n  libvirt:uri: qemu:///system\n")
    lines = assert_one_clear_error(run_cli("validate", "--file", str(path)), f"{namespace}:haStack: namespace {namespace!r} looks like a misspelling")
    assert len(lines) == 2  # the provider's own namespace is not flagged


def test_other_providers_namespaces_stay_allowed() -> None:
    stack = load_values({"libvirt:uri": "qemu:///system", "command:x": "y", "pulumi:tags": {"a": "b"}, "random:x": 1})
    assert stack.config == StackConfig()


def test_the_pulumi_program_rejects_a_misspelled_namespace_before_any_resource() -> None:
    config = stack_with("dev")
    config["ha-web-clustr:haStack"] = "pacemaker"
    recording, error = attempt_program(config)
    assert error is not None and "looks like a misspelling of 'ha-web-cluster'" in str(error)
    assert recording.resources == {} or all(r.type.startswith("pulumi:") for r in recording.resources.values())


def test_the_error_count_is_singular_for_one() -> None:
    proc = run_cli("validate", "--stack", "prod")
    assert proc.stderr.startswith("invalid stack config (1 error):\n")


# --------------------------------------------------------------------------- a command that needs the lab


@pytest.mark.parametrize("command", [["lab", "test"], ["lab", "bench", "--quick"]])
def test_lab_commands_without_a_lab_print_the_sentence_only(tmp_path: Path, command: list[str]) -> None:
    proc = run_cli(*command, env={"HAWC_LAB_ROOT": str(tmp_path / "no-lab")})
    lines = assert_one_clear_error(proc, "no complete lab is up: run `python -m webcluster lab up` first")
    assert len(lines) == 1


# --------------------------------------------------------------------------- render --out


def test_render_over_an_earlier_render_leaves_no_stale_node(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("render", "--stack", "dev", "--out", str(out)).returncode == 0
    assert (out / "standby2").is_dir()
    two = ROOT / "tests" / "topologies" / "two-directors.yaml"
    proc = run_cli("render", "--file", str(two), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    from webcluster.render import render_cluster
    from webcluster.stackfile import load_stack_file

    nodes = set(render_cluster(load_stack_file(two).config).nodes)
    assert {p.name for p in out.iterdir() if p.is_dir()} == nodes


def test_render_refuses_a_folder_that_is_not_a_render(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert_one_clear_error(run_cli("render", "--stack", "dev", "--out", str(out)), "is not empty and holds no earlier render")
    assert (out / "notes.txt").read_text() == "keep me"


# --------------------------------------------------------------------------- partial maps keep their defaults


def cluster_values(cluster: dict) -> dict:
    return {"ha-web-cluster:cluster": cluster}


def test_one_router_id_set_keeps_the_others() -> None:
    config = load_values(cluster_values({"vrrp": {"routerIds": {"external": 60}}})).config
    assert config.cluster.vrrp.router_ids == {"external": 60, "internal": 52, "heartbeat": 53}


def test_one_volume_option_set_keeps_the_generated_ones() -> None:
    seed = StackConfig().cluster.gluster.volumes
    volumes = [v.model_dump(by_alias=True, mode="json", exclude={"options"}) for v in seed]
    volumes[0]["options"] = {"performance.cache-size": "64MB"}
    config = load_values(cluster_values({"gluster": {"volumes": volumes}})).config
    assert config.cluster.gluster.volumes[0].options == {"network.ping-timeout": "5", "cluster.heal-timeout": "10", **METADATA_CACHE_GROUP, "performance.cache-size": "64MB"}


def test_a_default_key_is_removed_with_null_only() -> None:
    seed = StackConfig().cluster.gluster.volumes
    volumes = [v.model_dump(by_alias=True, mode="json") for v in seed]
    volumes[0]["options"] = {"network.ping-timeout": None, "cluster.heal-timeout": "20"}
    config = load_values(cluster_values({"gluster": {"volumes": volumes}})).config
    assert config.cluster.gluster.volumes[0].options == {"cluster.heal-timeout": "20", **METADATA_CACHE_GROUP}


def test_the_rendered_volume_keeps_the_ping_timeout_when_one_option_is_set() -> None:
    """Through the renderer, the file the Gluster step applies still sets the 5 s ping-timeout."""
    from webcluster.render import render_cluster
    from webcluster.render.storage import VOLUME_OPTIONS

    seed = StackConfig().cluster.gluster.volumes
    volumes = [v.model_dump(by_alias=True, mode="json", exclude={"options"}) for v in seed]
    volumes[0]["options"] = {"performance.cache-size": "64MB"}
    plan = render_cluster(load_values(cluster_values({"gluster": {"volumes": volumes}})).config)
    rows = {tuple(line.split()) for line in plan.nodes["gluster1"].files[VOLUME_OPTIONS].data.decode().splitlines() if not line.startswith("#")}
    assert {("gv0", "network.ping-timeout", "5"), ("gv0", "cluster.heal-timeout", "10"), ("gv0", "performance.cache-size", "64MB")} <= rows


def test_pulumi_config_set_path_of_one_router_id_deploys() -> None:
    """What `pulumi config set --path 'ha-web-cluster:cluster.vrrp.routerIds.external' 60` writes, run by the program."""
    config = stack_with("dev", cluster={"vrrp": {"routerIds": {"external": 60}}})
    recording = run_program(config)
    assert recording.resources  # declared, no config error


def test_stack_file_written_by_config_set_path_validates(tmp_path: Path) -> None:
    doc = {"config": {"ha-web-cluster:cluster": {"vrrp": {"routerIds": {"external": 60}}}}}
    path = write_stack(tmp_path, yaml.safe_dump(doc))
    proc = run_cli("validate", "--file", str(path))
    assert proc.returncode == 0, proc.stderr


def test_the_metadata_cache_options_are_glusters_own_group() -> None:
    """The default volume options carry Gluster's `metadata-cache` group as the installed glusterfs
    ships it (`gluster volume set VOL group metadata-cache` applies that file)."""
    group = Path("/var/lib/glusterd/groups/metadata-cache")
    shipped = dict(line.strip().split("=", 1) for line in group.read_text().splitlines() if line.strip())
    assert METADATA_CACHE_GROUP == shipped
    assert StackConfig().cluster.gluster.volumes[0].options.items() >= shipped.items()
