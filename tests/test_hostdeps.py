"""Every program the code runs on the host is in scripts/host-packages.txt with the Debian package
that provides it, and is installed here; so the next missing install step fails CI on the
machine that forgot it (as fence-agents once did), with the package's name."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT
from webcluster import hostdeps
from webcluster.cib import AGENT, crm_load, empty_quorate_cib, missing_agents
from webcluster.render import render_cluster
from webcluster.stackfile import load_values

PROGRAM = re.compile(r"^[A-Za-z0-9_.+-]+$|^/[A-Za-z0-9_./+-]+$")
RUNNERS = {"run", "Popen", "check_output", "check_call", "call", "run_inside", "inside", "on_host", "exec_argv", "run_command"}
# argv prefix -> index of the host program it runs (`chroot ROOT prog` runs the guest image's own)
WRAPPERS = {("ip", "netns", "exec"): 4}


def _program(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and PROGRAM.match(node.value):
        return node.value
    return None


def _argv_programs(elts: list[ast.AST]) -> list[str]:
    """argv[0], and the program a wrapper such as `ip netns exec NS prog` runs when it is a literal."""
    words = [_program(e) for e in elts]
    out = [words[0]] if words and words[0] else []
    for prefix, index in WRAPPERS.items():
        if index is not None and tuple(words[: len(prefix)]) == prefix and len(words) > index and words[index]:
            out.append(words[index])
    return out


def programs_the_code_runs() -> dict[str, str]:
    """program -> first place it is run: argv literals passed to a runner, `inside("prog", ...)`
    checkers, and argv-shaped literals (`["haproxy", "-f", ...]`) kept in constants."""
    found: dict[str, str] = {}
    for path in sorted([*ROOT.glob("webcluster/**/*.py"), *ROOT.glob("components/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            argv: list[ast.AST] = []
            if isinstance(node, ast.Call) and node.args and ast.unparse(node.func).split(".")[-1] in RUNNERS:
                first = node.args[0]
                argv = list(first.elts) if isinstance(first, (ast.List, ast.Tuple)) else [first]
            elif isinstance(node, (ast.List, ast.Tuple)) and len(node.elts) >= 2:
                flag = node.elts[1]
                if isinstance(flag, ast.Constant) and isinstance(flag.value, str) and re.match(r"^-[A-Za-z0-9-]", flag.value):
                    argv = list(node.elts)
            for program in _argv_programs(argv):
                found.setdefault(program, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_the_scan_sees_the_programs_we_know_about() -> None:
    """Guards the scanner itself: it must find calls of each shape."""
    found = programs_the_code_runs()
    for program in ("haproxy", "keepalived", "corosync", "crm_verify", "xsltproc", "qemu-img", "ab", "dhclient", "shellcheck"):
        assert program in found, program


def test_every_program_the_code_runs_is_listed_with_its_package() -> None:
    unlisted = {p: where for p, where in programs_the_code_runs().items() if hostdeps.package_of(p) is None}
    assert not unlisted, f"add these to scripts/host-packages.txt with their Debian package: {unlisted}"


def test_every_listed_program_is_installed() -> None:
    gaps = hostdeps.missing()
    assert not gaps, "; ".join(f"install {pkg} (missing {', '.join(progs)}): scripts/bootstrap.sh must install it" for pkg, progs in gaps.items())


def _owners(path: str) -> set[str]:
    """dpkg's owners of a file: the path as given and resolved (alternatives), each also under
    its merged-/usr alias (/usr/bin/sh is /bin/sh in dpkg's list); diversions skipped."""
    owners: set[str] = set()
    for candidate in {path, str(Path(path).resolve())}:
        for name in (candidate, candidate.removeprefix("/usr")):
            proc = subprocess.run(["dpkg-query", "-S", name], capture_output=True, text=True)
            for line in proc.stdout.splitlines():
                if not line.startswith("diversion by"):
                    owners |= {p.strip() for p in line.split(":", 1)[0].split(",")}
    return owners


def _depends(package: str) -> set[str]:
    text = subprocess.run(["dpkg-query", "-W", "-f=${Depends}", package], capture_output=True, text=True).stdout
    return {re.split(r"[\s(:]", alt.strip())[0] for dep in text.split(",") for alt in dep.split("|") if alt.strip()}


@pytest.mark.parametrize("package", sorted(hostdeps.PACKAGES))
def test_each_program_comes_from_the_package_named(package: str) -> None:
    """The list is right, not merely present: dpkg says the named package (or one it depends on,
    e.g. apache2 -> apache2-bin) owns each program."""
    for program in hostdeps.PACKAGES[package]:
        path = program if program.startswith("/") else shutil.which(program, path=hostdeps.SEARCH_PATH)
        assert path, f"{program} not installed (package {package})"
        owners = _owners(path)
        assert owners & ({package} | _depends(package)), (program, path, owners)


def test_bootstrap_installs_the_list() -> None:
    proc = subprocess.run(["bash", "-c", 'source <(sed -n "/^PYTHON=/,/^fi$/p" scripts/bootstrap.sh) --no-check; printf "%s\\n" "${PACKAGES[@]}"'],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == list(hostdeps.PACKAGES)


def test_the_check_names_the_package_of_a_missing_program(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(hostdeps.PACKAGES, "hawc-fake-package", ("hawc-no-such-program",))
    assert hostdeps.main(["check"]) == 2
    err = capsys.readouterr().err
    assert "hawc-no-such-program not found: install the Debian package hawc-fake-package" in err


# --------------------------------------------------------------------------- agents named in rendered CIBs


def _rendered_agents(hypervisor: str) -> set[str]:
    config = load_values({"ha-web-cluster:haStack": "pacemaker", "ha-web-cluster:hypervisor": hypervisor}).config
    plan = render_cluster(config)
    texts = [f.data.decode() for node in plan.nodes.values() for f in node.files.values() if f.path.endswith(".crm")]
    assert texts, "the pacemaker stack renders a crm file"
    return {a for text in texts for a in AGENT.findall(text)}


@pytest.mark.parametrize("hypervisor", ["libvirt", "virtualbox"])
def test_every_agent_a_rendered_cib_names_is_installed_from_a_listed_package(hypervisor: str) -> None:
    agents = _rendered_agents(hypervisor)
    assert any(a.startswith("stonith:") for a in agents)
    for agent in sorted(agents):
        if agent.startswith("systemd:"):
            continue
        executable, package = hostdeps.agent_executable(agent)
        assert package in hostdeps.PACKAGES, (agent, package)
        assert executable.is_file(), f"{agent}: install {package}"


def test_a_cib_agent_that_is_not_installed_is_an_error_with_its_package(tmp_path: Path) -> None:
    """crmsh only warns when it cannot read an agent's metadata; the check turns it into an error."""
    crm = tmp_path / "x.crm"
    crm.write_text("primitive fence-x stonith:fence_hawc_nosuch params plug=x\nprimitive vip ocf:heartbeat:HawcNoSuch params ip=10.0.0.1\n")
    errors = missing_agents(crm.read_text())
    assert len(errors) == 2
    assert any(e.startswith("stonith:fence_hawc_nosuch: ") and e.endswith("install the Debian package fence-agents") for e in errors)
    assert any(e.startswith("ocf:heartbeat:HawcNoSuch: ") and e.endswith("install the Debian package resource-agents") for e in errors)
    assert crm_load(empty_quorate_cib(tmp_path / "cib.xml"), crm)[: len(errors)] == errors
