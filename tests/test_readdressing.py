"""One-key re-addressing: addresses left at their default follow their network's CIDR."""

from __future__ import annotations

import ipaddress

import pytest

from webcluster.stackfile import load_values
from webcluster.topology import Topology
from webcluster.validation import ConfigError

KEY = "ha-web-cluster:cluster"


def _nodes_in(cfg, network: str) -> list[ipaddress.IPv4Address]:
    topo = Topology(cfg)
    return [nic.address for n in topo.nodes for nic in n.nics if nic.network == network]


@pytest.mark.parametrize("network,cidr", [("external", "192.168.123.0/24"), ("internal", "172.20.0.0/24"), ("heartbeat", "10.9.8.0/24")])
def test_changing_one_cidr_moves_every_default_address_of_that_network(network, cidr):
    cfg = load_values({KEY: {"networks": {network: {"cidr": cidr}}}}).config
    net = ipaddress.IPv4Network(cidr)
    addresses = _nodes_in(cfg, network) + [getattr(cfg.cluster.vips, network)]
    assert addresses and all(a in net for a in addresses)
    # host parts are the seed's: cluster1 stays .1/.101, the VIP stays .200
    assert int(getattr(cfg.cluster.vips, network)) - int(net.network_address) == 200
    others = [n for n in ("external", "internal", "heartbeat") if n != network]
    default = load_values({}).config
    for other in others:
        assert _nodes_in(cfg, other) == _nodes_in(default, other)


def test_external_gateway_follows_and_explicit_values_win():
    cfg = load_values({KEY: {"networks": {"external": {"cidr": "192.168.123.0/24"}}, "vips": {"external": "192.168.123.50"}}}).config
    assert str(cfg.cluster.networks.external.gateway) == "192.168.123.1"
    assert str(cfg.cluster.vips.external) == "192.168.123.50"
    assert [str(d.external) for d in Topology(cfg).directors] == ["192.168.123.101", "192.168.123.102", "192.168.123.103"]


def test_internal_move_carries_dhcp_range_and_reservations():
    cfg = load_values({KEY: {"networks": {"internal": {"cidr": "172.20.0.0/24"}}}}).config
    assert (str(cfg.cluster.dhcp.start), str(cfg.cluster.dhcp.end)) == ("172.20.0.2", "172.20.0.49")
    assert [str(n.internal_address) for n in Topology(cfg).dhcp_nodes] == ["172.20.0.5", "172.20.0.6", "172.20.0.7", "172.20.0.2", "172.20.0.3", "172.20.0.4"]


def test_a_network_too_small_for_the_seed_plan_is_reported_not_guessed():
    with pytest.raises(ConfigError) as err:
        load_values({KEY: {"networks": {"external": {"cidr": "192.168.123.0/26"}}}})
    paths = {p.path for p in err.value.problems}
    assert "cluster.vips.external" in paths and "cluster.directors[0].external" in paths
