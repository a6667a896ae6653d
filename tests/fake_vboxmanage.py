"""A stand-in VBoxManage (and qemu-img) that keeps VirtualBox's state in a directory and refuses what VirtualBox refuses.

Only for the VBoxManage script tests: the scripts run for real under /bin/sh and bash with
this program first on PATH. It models what makes a retry fail against the real one: a
registered VM, settings file, NAT network, port-forward rule or medium "already exists";
a VM's session stays locked for a few calls after `poweroff` (`unregistervm` fails
meanwhile); a medium attached to a running VM cannot be resized or closed. `VBOX_FAIL`
names subcommands (e.g. `startvm`, `port-forward-4`, `convert`) that fail while it is set,
as a broken host would, to leave a half-done attempt behind.

State: $VBOX_STATE/state.json; media are real files whose content is `VDI <capacity MiB>`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

STATE_DIR = Path(os.environ["VBOX_STATE"])
STATE = STATE_DIR / "state.json"
LOCKED_CALLS = int(os.environ.get("VBOX_LOCKED_CALLS", "2"))


def load() -> dict[str, Any]:
    if STATE.exists():
        return json.loads(STATE.read_text())
    return {"vms": {}, "natnetworks": {}, "media": {}, "created_vms": 0}


def save(state: dict[str, Any]) -> None:
    STATE.write_text(json.dumps(state, indent=1, sort_keys=True))


def fail(message: str) -> NoReturn:
    print(f"VBoxManage: error: {message}", file=sys.stderr)
    sys.exit(1)


def opt(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def injected(*words: str) -> None:
    for word in os.environ.get("VBOX_FAIL", "").split():
        if word in words:
            fail(f"injected failure of {word}")


def capacity(path: str) -> int:
    p = Path(path)
    if not p.is_file():
        fail(f"Could not find file for the medium '{path}'")
    text = p.read_text(errors="replace").split()
    if len(text) != 2 or text[0] != "VDI":
        fail(f"Could not open the medium '{path}': VERR_VD_VDI_INVALID_HEADER")
    return int(text[1])


def write_medium(path: str, size: int) -> None:
    Path(path).write_text(f"VDI {size}\n")


def attached_to_running(state: dict[str, Any], path: str) -> bool:
    return any(path in vm["attached"].values() and vm["state"] == "running" for vm in state["vms"].values())


def attached_anywhere(state: dict[str, Any], path: str) -> bool:
    return any(path in vm["attached"].values() for vm in state["vms"].values())


def vm_of(state: dict[str, Any], name: str) -> dict[str, Any]:
    if name not in state["vms"]:
        fail(f"Could not find a registered machine named '{name}'")
    return state["vms"][name]


def vboxmanage(args: list[str]) -> None:
    state = load()
    cmd, rest = args[0], args[1:]
    injected(cmd)
    media = state["media"]
    if cmd == "showvminfo":
        vm = vm_of(state, rest[0])
        print(f'VMState="{vm["state"]}"' if "--machinereadable" in rest else f"Name: {rest[0]}\nState: {vm['state']}")
    elif cmd == "createvm":
        name, base = opt(rest, "--name"), opt(rest, "--basefolder")
        settings = Path(base) / name / f"{name}.vbox"
        if name in state["vms"]:
            fail(f"Machine '{name}' is already registered")
        if settings.exists():
            fail(f"Machine settings file '{settings}' already exists")
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text("<VirtualBox/>\n")
        state["vms"][name] = {"state": "poweroff", "locked": 0, "attached": {}, "controllers": [], "settings": str(settings)}
        state["created_vms"] += 1
    elif cmd == "modifyvm":
        vm_of(state, rest[0])
    elif cmd == "storagectl":
        vm = vm_of(state, rest[0])
        if opt(rest, "--name") in vm["controllers"]:
            fail("Storage controller named 'SATA' already exists")
        vm["controllers"].append(opt(rest, "--name"))
    elif cmd == "storageattach":
        vm = vm_of(state, rest[0])
        medium = opt(rest, "--medium")
        if not Path(medium).is_file():
            fail(f"Could not find file for the medium '{medium}'")
        vm["attached"][opt(rest, "--port")] = medium
        media.setdefault(medium, True)
    elif cmd == "startvm":
        vm = vm_of(state, rest[0])
        if vm["state"] == "running":
            fail(f"The machine '{rest[0]}' is already locked by a session (or being locked or unlocked)")
        vm["state"] = "running"
    elif cmd == "controlvm":
        vm = vm_of(state, rest[0])
        if vm["state"] != "running":
            fail(f"Machine '{rest[0]}' is not currently running")
        vm["state"], vm["locked"] = "poweroff", LOCKED_CALLS
    elif cmd == "discardstate":
        vm = vm_of(state, rest[0])
        if vm["state"] != "saved":
            fail("Cannot discard the saved state as the machine is not in the saved state")
        vm["state"] = "poweroff"
    elif cmd == "unregistervm":
        vm = vm_of(state, rest[0])
        if vm["locked"] > 0:
            vm["locked"] -= 1
            save(state)
            fail(f"Cannot unregister the machine '{rest[0]}' while it is locked")
        if vm["state"] == "running":
            fail(f"Cannot unregister the machine '{rest[0]}' while it is locked")
        del state["vms"][rest[0]]
    elif cmd == "natnetwork":
        natnetwork(state, rest)
    elif cmd in ("clonemedium", "createmedium"):
        target = rest[2] if cmd == "clonemedium" else opt(rest, "--filename")
        if Path(target).exists() or target in media:
            fail(f"Cannot create medium '{target}': it already exists")
        size = capacity(rest[1]) if cmd == "clonemedium" else int(opt(rest, "--size"))
        if cmd == "clonemedium":
            media[rest[1]] = True
        write_medium(target, size)
        media[target] = True
    elif cmd == "modifymedium":
        target = rest[1]
        capacity(target)
        if attached_to_running(state, target):
            fail(f"Cannot resize medium '{target}': it is locked for writing by a running machine")
        write_medium(target, int(opt(rest, "--resize")))
        media[target] = True
    elif cmd == "showmediuminfo":
        size = capacity(rest[1])
        print(f"UUID:           0000\nLocation:       {rest[1]}\nCapacity:       {size} MBytes\nSize on disk:   1 MBytes")
    elif cmd == "closemedium":
        target = rest[1]
        if attached_anywhere(state, target):
            fail(f"Cannot close medium '{target}' because it is still attached to a machine")
        if target not in media and not Path(target).exists():
            fail(f"Could not find file for the medium '{target}'")
        if Path(target).exists():
            capacity(target) if rest[0] == "disk" else None
        media.pop(target, None)
        if "--delete" in rest:
            Path(target).unlink(missing_ok=True)
    else:
        fail(f"unknown command {cmd}")
    save(state)


def natnetwork(state: dict[str, Any], rest: list[str]) -> None:
    nets = state["natnetworks"]
    action = rest[0]
    if action == "list":
        for name in nets:
            print(f"Name:         {name}")
        return
    name = opt(rest, "--netname")
    if action == "add":
        if name in nets:
            fail(f"NATNetwork server already exists: '{name}'")
        nets[name] = {"network": opt(rest, "--network"), "rules": {}}
        return
    if name not in nets:
        fail(f"Could not find a NAT network named '{name}'")
    if action == "remove":
        del nets[name]
    elif action == "modify":
        if "--network" in rest:
            nets[name]["network"] = opt(rest, "--network")
        if "--port-forward-4" in rest:
            spec = opt(rest, "--port-forward-4")
            rules = nets[name]["rules"]
            if spec == "delete":
                rule = opt(rest, "delete")
                if rule not in rules:
                    fail(f"NAT rule '{rule}' not found")
                del rules[rule]
            else:
                injected("port-forward-4")
                rule = spec.split(":", 1)[0]
                if rule in rules:
                    fail("A NAT rule of this name already exists")
                rules[rule] = spec


def qemu_img(args: list[str]) -> None:
    """`qemu-img convert -O vdi SRC DST`: a VDI of the source's size; fails under VBOX_FAIL=convert."""
    injected("convert")
    src, dst = args[-2], args[-1]
    Path(dst).write_text(f"VDI {len(Path(src).read_bytes())}\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--qemu-img"]:
        qemu_img(sys.argv[2:])
    else:
        vboxmanage(sys.argv[1:])
