"""Fast checks of the e2e helpers that need no guest (run everywhere, unlike the e2e run itself)."""

from webcluster.e2e.image import _mbr, step_packages
from webcluster.e2e.recording import PlanRecording, RemoteStep


def _step(name: str, after: set[str]) -> RemoteStep:
    return RemoteStep(name, "g", "10.0.0.1", 22, "debian", None, None, "true", "", frozenset(after))


def test_ordered_follows_dependencies() -> None:
    plan = PlanRecording("x", {}, {"b": _step("b", {"a"}), "a": _step("a", set()), "c": _step("c", {"b"})})
    assert [s.name for s in plan.ordered()] == ["a", "b", "c"]


def test_mbr_is_one_sector_with_signature() -> None:
    mbr = _mbr(2048, 1000)
    assert len(mbr) == 512 and mbr[-2:] == b"\x55\xaa" and mbr[446 + 4] == 0x83


def test_step_packages_reads_apt_install_lines() -> None:
    class Plan:
        def all_steps(self):
            class S:
                script = "apt_install haproxy curl\n\tapt_install mdadm \"${extra}\"\n"
            return [S()]

    assert step_packages(Plan()) == ["curl", "haproxy", "mdadm"]
