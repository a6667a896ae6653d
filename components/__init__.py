"""The Pulumi side of ha-web-cluster: VMs on a hypervisor, one component per tier, one remote command per step.

program      the program: config -> model -> rendered plan -> resources -> outputs
settings     stack config read through the model's loader (same rules, same errors)
secrets      secrets from config, or generated (pulumi-random, pulumi-tls)
hypervisor/  the switch: libvirt or VirtualBox behind one small interface
tier         what every tier component does (VMs, step commands, dependencies)
directors, storage, backends   the tier components
steps        the shell text that runs one step (shared with replays)
registry     step resources by reference, for dependencies across tiers
outputs      stack outputs
bench        timing of the program under the mock engine
"""
