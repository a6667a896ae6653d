"""The hypervisor switch: the `hypervisor` config key picks one platform, here and only here."""

from __future__ import annotations

from webcluster.model import Hypervisor, StackConfig

from .base import Machine, Platform, PlatformClass


def platform_class(config: StackConfig) -> PlatformClass:
    """The platform for this stack (imported lazily: a libvirt stack never loads the VirtualBox code)."""
    if config.hypervisor == Hypervisor.virtualbox:
        from .virtualbox import VirtualBoxPlatform

        return VirtualBoxPlatform
    from .libvirt import LibvirtPlatform

    return LibvirtPlatform


__all__ = ["Machine", "Platform", "PlatformClass", "platform_class"]
