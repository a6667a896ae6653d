"""End-to-end run in real Debian guests: the Pulumi program's own plan, replayed on QEMU VMs.

Modules, one job each: :mod:`.shell` (commands, bounded waits, progress), :mod:`.image`
(the guest image and the php:apache stand-in), :mod:`.network` (namespace and bridges),
:mod:`.guests` (QEMU processes, disks, seeds, snapshots), :mod:`.recording` (the program
under the mock engine), :mod:`.replay` (remote commands over SSH in graph order),
:mod:`.checks` (the seed's chapter-4.1 tests), :mod:`.run` (phases and the summary),
:mod:`.cli` (``python -m webcluster e2e``).
"""
