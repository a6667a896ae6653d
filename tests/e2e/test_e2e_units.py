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


def test_docker_archive_is_loadable_shape(tmp_path) -> None:
    """The stand-in is a `docker save` archive: the manifest names the config, whose diff_id is the layer's hash."""
    import hashlib
    import json
    import tarfile

    from webcluster.e2e.image import docker_archive

    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as t:
        (tmp_path / "f").write_text("x")
        t.add(tmp_path / "f", arcname="./etc/f")
    out = tmp_path / "image.tar"
    docker_archive(layer, "hawc-e2e/php-apache:local", out)
    with tarfile.open(out) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))[0]
        config = json.load(archive.extractfile(manifest["Config"]))
        stored = archive.extractfile(manifest["Layers"][0]).read()
    assert manifest["RepoTags"] == ["hawc-e2e/php-apache:local"]
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(stored).hexdigest()}"]
    assert stored == layer.read_bytes()
    assert config["config"]["StopSignal"] == "SIGWINCH" and config["config"]["Cmd"] == ["apache2-foreground"]
