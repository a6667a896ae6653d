"""Reading HAProxy's Prometheus exporter: what every server's state is, as the exporter says.

The exporter is the directors' machine-readable view (issue #15): checks read it the way a
Prometheus server scrapes it, so what they pass is what a monitoring system would see."""

from __future__ import annotations

import re

# haproxy_server_status{proxy="http-servers",server="c0p",state="UP"} 1 : one line per state, 1 for the current one
SERVER_STATUS = re.compile(r'^haproxy_server_status\{proxy="([^"]+)",server="([^"]+)",state="([^"]+)"\} 1$', re.M)


def server_states(exposition: str) -> dict[tuple[str, str], str]:
    """(backend, server) -> state (UP, DOWN, MAINT, ...) from the exporter's text format."""
    return {(proxy, server): state for proxy, server, state in SERVER_STATUS.findall(exposition)}

# hawc_vip_held{instance_name="VI_1",vip="192.168.1.200"} 1 : a director's VIP-holder metric (node-exporter sorts the labels)
VIP_HELD = re.compile(r"^hawc_vip_held\{([^}]*)\} (\S+)$", re.M)
LABEL = re.compile(r'(\w+)="([^"]*)"')


def vip_held(exposition: str) -> dict[str, int]:
    """vip -> hawc_vip_held (1: this director holds it) from a node-exporter scrape or the textfile itself."""
    out = {}
    for labels, value in VIP_HELD.findall(exposition):
        vip = dict(LABEL.findall(labels)).get("vip")
        if vip is not None:
            out[vip] = int(float(value))
    return out
