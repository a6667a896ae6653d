"""The typed cluster model: every stack config key, its default (the seed's cluster) and meaning.

The model knows nothing about Pulumi, templates or the lab. Field docstrings
(``description=``) are the configuration reference: ``python -m webcluster docs``
turns them into docs/configuration.md, so a field is documented exactly once.
Cross-field rules live in :mod:`webcluster.validation`.
"""

from __future__ import annotations

import ipaddress
import re
from enum import Enum
from typing import Annotated, Any, Callable, ClassVar, Literal, Optional

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel


class Strict(BaseModel):
    """Base: camelCase keys in stack files, unknown keys rejected, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


def merged_with(default: Callable[[], dict[str, Any]]) -> BeforeValidator:
    """A map given partially keeps the default keys it does not mention; `key: null` removes one.

    `pulumi config set --path '...routerIds.external' 60` writes that one key, so replacing
    the whole default map would drop the others (e.g. Gluster's generated ping-timeout).
    """

    def merge(value: Any) -> Any:
        if not isinstance(value, dict):
            return value  # the field's own type check reports it
        return {k: v for k, v in {**default(), **value}.items() if v is not None}

    return BeforeValidator(merge)


MERGED_MAP_NOTE = "Given partially, it keeps the default keys you do not mention; `key: null` removes a default."


# --------------------------------------------------------------------------- choices


class Hypervisor(str, Enum):
    libvirt = "libvirt"
    virtualbox = "virtualbox"


class HaStack(str, Enum):
    keepalived = "keepalived"
    pacemaker = "pacemaker"


class BondMode(str, Enum):
    balance_rr = "balance-rr"
    active_backup = "active-backup"
    balance_xor = "balance-xor"
    broadcast = "broadcast"
    ieee8023ad = "802.3ad"
    balance_tlb = "balance-tlb"
    balance_alb = "balance-alb"


class ServiceMode(str, Enum):
    tcp = "tcp"
    http = "http"


# --------------------------------------------------------------------------- networks


class Network(Strict):
    cidr: ipaddress.IPv4Network = Field(description="Network address and prefix, e.g. `10.0.100.0/24`.")
    gateway: Optional[ipaddress.IPv4Address] = Field(
        None, description="Router of this network for the nodes on it (the hypervisor's NAT address on the external network); `null` for none."
    )


def _net(cidr: str, gateway: Optional[str] = None) -> Network:
    return Network(cidr=ipaddress.IPv4Network(cidr), gateway=gateway)


class Networks(Strict):
    external: Network = Field(
        default_factory=lambda: _net("192.168.1.0/24", "192.168.1.1"),
        description="Clients' network, NATed by the hypervisor. The seed's 192.168.1.0/24 collides with many home LANs: change `cidr` and `gateway` here (and the external addresses) if your host sits on it.",
    )
    internal: Network = Field(
        default_factory=lambda: _net("10.0.100.0/24"),
        description="Directors <-> backends, NAS and Gluster; DHCP/DNS from the master director; routed to the outside by the active director through the internal VIP.",
    )
    heartbeat: Network = Field(
        default_factory=lambda: _net("10.0.50.0/24"),
        description="Directors only: VRRP instance VI_3 (keepalived) or the corosync ring (pacemaker).",
    )


class Vips(Strict):
    external: ipaddress.IPv4Address = Field(
        ipaddress.IPv4Address("192.168.1.200"), description="Virtual IP the clients use; every HAProxy service binds on it."
    )
    internal: ipaddress.IPv4Address = Field(
        ipaddress.IPv4Address("10.0.100.200"), description="Virtual IP on the internal network: router and DNS server of the backends."
    )
    heartbeat: ipaddress.IPv4Address = Field(
        ipaddress.IPv4Address("10.0.50.200"),
        description="Address of VRRP instance VI_3 on the heartbeat network. The seed's VI_3 had none, which keepalived 2.2 rejects; it also shows on the heartbeat link which director is active.",
    )


class Dhcp(Strict):
    start: ipaddress.IPv4Address = Field(ipaddress.IPv4Address("10.0.100.2"), description="First address of dnsmasq's DHCP range (internal network).")
    end: ipaddress.IPv4Address = Field(ipaddress.IPv4Address("10.0.100.49"), description="Last address of dnsmasq's DHCP range.")
    lease: str = Field("infinite", pattern=r"^(infinite|\d+[smhd]?)$", description="Lease time, dnsmasq syntax (`infinite`, `12h`, ...).")


# --------------------------------------------------------------------------- machines


class Resources(Strict):
    vcpus: int = Field(1, ge=1, le=64, description="Virtual CPUs.")
    memory_mib: int = Field(1024, ge=256, le=262144, description="Memory in MiB.")


class Director(Strict):
    name: str = Field(description="Hostname.")
    aliases: list[str] = Field(default_factory=list, description="Extra names in /etc/hosts (the seed calls cluster1 `master` and `lb1`).")
    external: ipaddress.IPv4Address = Field(description="Address on the external network (NIC enp0s3).")
    internal: ipaddress.IPv4Address = Field(description="Address on the internal network (NIC enp0s8).")
    heartbeat: ipaddress.IPv4Address = Field(description="Address on the heartbeat network (NIC enp0s9).")
    priority: int = Field(ge=1, le=254, description="VRRP priority (highest is the master) and the Pacemaker location score order.")
    description: Optional[str] = Field(None, description="Text of HAProxy's `stats show-desc` (default `Nodo <name>`), so the stats page names the active director.")
    resources: Resources = Field(default_factory=Resources, description="vCPU and memory.")


def _seed_directors() -> list[Director]:
    rows = [
        ("cluster1", ["master", "lb1"], 101, "10.0.100.1", 1, 150, "Nodo cluster1"),
        ("standby1", [], 102, "10.0.100.50", 2, 100, "Nodo Standby1"),
        ("standby2", [], 103, "10.0.100.51", 3, 90, "Nodo Standby2"),
    ]
    return [
        Director(name=n, aliases=a, external=f"192.168.1.{e}", internal=i, heartbeat=f"10.0.50.{h}", priority=p, description=d)
        for n, a, e, i, h, p, d in rows
    ]


def _seed_router_ids() -> dict[str, int]:
    return {"external": 51, "internal": 52, "heartbeat": 53}


class Vrrp(Strict):
    version: Literal[2, 3] = Field(
        3,
        description="VRRP protocol version. 3 (default) allows sub-second adverts but has no authentication (RFC 5798); 2 is the seed's (whole-second adverts, `auth_type PASS` with the `vrrpAuthPass` secret, which travels in clear text).",
    )
    advert_interval: float = Field(
        0.1, gt=0, le=255, description="Seconds between adverts. A backup takes over after about 3 adverts are missed, so 0.1 gives ~0.35 s takeover. Version 2 rounds it to whole seconds (the seed used 1)."
    )
    router_ids: Annotated[dict[str, int], merged_with(_seed_router_ids)] = Field(
        default_factory=_seed_router_ids,
        description="`virtual_router_id` of VI_1 (external), VI_2 (internal) and VI_3 (heartbeat); unique, 1-255. " + MERGED_MAP_NOTE,
    )
    check_interval_ms: int = Field(
        100, ge=20, le=1000, description="How often keepalived's HAProxy check polls HAProxy's loopback health port, so the VIPs leave a director whose HAProxy died within about this time."
    )
    script_interval_s: int = Field(
        1,
        ge=1,
        le=30,
        description="How often keepalived starts each check script (vrrp_script `interval`: chk_haproxy, chk_backends). chk_haproxy polls HAProxy every `checkIntervalMs` for the whole interval inside one bash process, so a dead HAProxy is still noticed within about `checkIntervalMs`; chk_backends asks once a run (`fall 2`: a director that lost every backend drops in rank after 2 runs). Raise it on directors with little CPU: each run is a bash process, and under software emulation (the e2e stacks) two starts a second kept a director's vCPU saturated, its VRRP adverts late and its SSH sessions minutes long.",
    )
    check_timeout_s: int = Field(
        5,
        ge=1,
        le=60,
        description="keepalived kills a check run (chk_haproxy, chk_backends) slower than this and counts it as failed, which moves the VIPs. A dead HAProxy fails chk_haproxy at once (connection refused) whatever this is, and chk_backends gives up on a silent HAProxy after 1 s (unknown, passes), so this only bounds a hung check: it is generous because a director that is merely busy (seen in emulated guests: runs of 2-4 s) must not drop the VIPs.",
    )


class Pacemaker(Strict):
    cluster_name: str = Field(
        "cluster_tfm", pattern=r"^[A-Za-z0-9_-]{1,32}$", description="corosync `cluster_name`; also the subject of the quorum device's client certificate."
    )
    token_ms: int = Field(
        600,
        ge=200,
        le=60000,
        description="corosync token timeout: a lost director is noticed after about this long (corosync's default is 3000, plus 650 per node beyond two; here `token_coefficient` is 0 so this is the whole timeout). Keep it above the longest pause a director VM may see: corosync runs with real-time priority, so a busy CPU does not delay it, and knet's link pings (every token / 4, link down after token / 2) tolerate 100 ms of added latency (tests/test_lab_pacemaker.py). 1000 made takeover 4.4 s in the lab; see docs/pacemaker.md.",
    )
    consensus_ms: Optional[int] = Field(
        None,
        ge=200,
        le=72000,
        description="corosync `consensus`: after a lost token, how long the survivors wait for the silent director before they form the new membership without it (the other half of the time to notice a lost director). Default: 1.2 x `tokenMs`, the minimum corosync's documentation allows (a shorter one can leave a slow but live director out of the new membership, and Pacemaker fences it).",
    )
    knet_ping_timeout_ms: Optional[int] = Field(
        None,
        ge=100,
        le=60000,
        description="corosync `knet_ping_timeout` of the heartbeat link: knet declares the link down (and stops sending on it) when no pong came back for this long. corosync derives it from the token (token / 2 = 300 ms), so a sudden 200 ms more round trip (the gap between two pongs grows by it) took the link down in the lab and forced a new membership. The token, not the link state, is what notices a lost director, so the default is `tokenMs` + consensus: the link outlives any delay the membership survives.",
    )
    qdevice_timeout_ms: int = Field(
        1250,
        ge=1250,
        le=60000,
        description="corosync `quorum.device.timeout`: the quorum device's heartbeat to qnetd is 0.8 x this, and qnetd drops a silent director's connection (giving its votes to the survivors) 1.5 heartbeats after its last message, so a lost director's votes move after at most 1.2 x this. 1250 is the lowest (below it the heartbeat falls under the 1000 ms both corosync-qdevice and corosync-qnetd accept) and the default: the votes then usually move before corosync has formed the new membership (token + consensus), so Pacemaker learns of the lost director and of the kept quorum at once. Losing the device never fences anybody while every director is up (their own votes are a majority). corosync-qdevice's 10000 made takeover 12.5 s (median) in the lab, 3000 gave 4.4 s.",
    )
    qdevice_sync_timeout_ms: int = Field(
        30000,
        ge=1250,
        le=120000,
        description="corosync `quorum.device.sync_timeout`: at a membership change votequorum waits up to this long for the quorum device's vote on the new membership before it counts the partition without it (corosync's default 30000). A lost director's votes move after at most 1.2 x `qdeviceTimeoutMs`; the survivors only wait that long.",
    )
    haproxy_monitor_ms: int = Field(
        500,
        ge=250,
        le=300000,
        description="Pacemaker monitor interval of the HAProxy resource: a dead HAProxy is noticed within this time plus one run of the monitor (then the VIPs leave that director). On systemd:haproxy a monitor is one D-Bus query to systemd, cheap enough twice a second. The VIPs' own monitors use `monitorIntervalS`.",
    )
    load_threshold_pct: int = Field(
        1000,
        ge=10,
        le=100000,
        description="Pacemaker `load-threshold`, percent (its default is 80): once a director's load average passes 2 x this x its cores (Pacemaker 2.1), the whole cluster runs one action at a time. A failover is a handful of actions (fencing, then the fence devices and the VIPs moving, in parallel), so the throttle only delays it, and a loaded director is when failovers happen: at 80 the lab's takeover waited up to 1.1 s behind fence-device moves. 1000 keeps the throttle for a runaway load (40 on 2 cores).",
    )
    monitor_interval_s: int = Field(2, ge=1, le=300, description="Pacemaker monitor interval of the VIP resources.")
    failure_timeout_s: int = Field(
        60, ge=10, le=86400, description="After a failure of HAProxy a director is avoided for this long (the VIPs move at the first failure), then HAProxy is restarted there and the VIPs come back if it is the preferred director."
    )
    qnetd_host: Optional[str] = Field(
        "nas",
        description="Node running corosync-qnetd, the quorum arbitrator (algorithm `lms`): a director that still reaches it keeps quorum even when it is the last one, so the VIPs survive the loss of every other director. While the arbitrator itself is down, quorum needs every director: the VIPs stay where they are, and stop (never split) if a director fails too. Must not be a director. `null`: no quorum device; a majority of the directors is needed, so a last director alone stops the VIPs.",
    )
    fencing: Literal["auto", "virsh", "vbox", "none"] = Field(
        "auto",
        description="Fence agent: `auto` (the hypervisor's: fence_virsh on libvirt, fence_vbox on VirtualBox), `virsh` (SSH to the libvirt host, `virsh destroy`), `vbox` (SSH to the VirtualBox host, `VBoxManage`) or `none` (explicit opt-out; `validate` warns).",
    )
    fence_host: Optional[str] = Field(
        None, description="Address of the hypervisor host the fence agent logs into over SSH, as the directors reach it (default: the external network's gateway, the host's own address on a libvirt NAT network)."
    )
    fence_user: str = Field(
        "fence",
        pattern=r"^[a-z_][a-z0-9_-]*$",
        description="User the fence agent logs in as on the hypervisor host, with the `fenceSshKey` key (see `fenceLogin`). For fence_virsh it must be allowed to run `virsh` against qemu:///system (group `libvirt`); its `authorized_keys` takes the `fenceAuthorizedKey` stack output, which lets the key run nothing but the `fenceCommand` output (installed as `/usr/local/sbin/hawc-fence-virsh`): power operations on the director domains. For fence_vbox `VBoxManage` on the VMs.",
    )
    fence_login: Literal["key", "password"] = Field(
        "key",
        description="How the fence agent logs into the hypervisor host: `key` (the `fenceSshKey` secret, an SSH key generated when not set, as fence-agents' `identity_file`; no password anywhere) or `password` (the `fencePassword` secret through `password_script`, for hosts that cannot take a key).",
    )
    fence_vms: dict[str, str] = Field(
        default_factory=dict, description="Director name -> its VM's name on the hypervisor (the fence agent's `plug`), for directors whose VM is not named after them."
    )
    fence_params: dict[str, str] = Field(
        default_factory=dict,
        description="Extra parameters of every fence device, e.g. `{host_os: windows, vboxmanage_path: ...}` for fence_vbox on a Windows host or `{power_timeout: \"30\"}`; `use_sudo`, `sudo_path` and `cmd_prompt` only with `fenceLogin: password` or fence_vbox (fence_virsh's key runs the forced command, which takes fence_virsh's own commands only). The connection, credentials, plug and host list are set from the keys above.",
    )

    # The fence agent that can power off each hypervisor's VMs (what `fencing: auto` means).
    NATIVE_FENCING: ClassVar[dict[str, str]] = {"libvirt": "virsh", "virtualbox": "vbox"}

    @property
    def consensus(self) -> int:
        """corosync `consensus` as rendered: the configured one, or corosync's own default (1.2 x token)."""
        return self.consensus_ms if self.consensus_ms is not None else self.token_ms * 6 // 5

    @property
    def knet_ping_timeout(self) -> int:
        """knet_ping_timeout as rendered: the configured one, or token + consensus (see knet_ping_timeout_ms)."""
        return self.knet_ping_timeout_ms if self.knet_ping_timeout_ms is not None else self.token_ms + self.consensus

    @property
    def qdevice_handover_ms(self) -> int:
        """Longest time qnetd may take to give a lost director's votes to the survivors: its dead-peer
        detection (1.5 heartbeats of 0.8 x timeout) plus one run of its algorithm timer (a heartbeat / 4)."""
        heartbeat = self.qdevice_timeout_ms * 4 // 5
        return heartbeat * 3 // 2 + heartbeat // 4

    def fence_agent(self, hypervisor: Hypervisor) -> Optional[str]:
        """The fence agent's command (`auto` resolved for the hypervisor), or None when fencing is off."""
        if self.fencing == "none":
            return None
        kind = self.NATIVE_FENCING[hypervisor.value] if self.fencing == "auto" else self.fencing
        return f"fence_{kind}"


class ServingCheck(Strict):
    hold_s: int = Field(
        3,
        ge=1,
        le=60,
        description="How long a director whose HAProxy sees no server UP in a backend, while another director sees some, waits before giving up the VIPs (keepalived `preempt_delay`, one second more for each standby below the first so two never take them at once; Pacemaker attribute dampening). Directors noticing the same outage a moment apart (every container stopped) stay as they are, so keep it above the spread of HAProxy's health checks across directors.",
    )


class Stats(Strict):
    port: int = Field(7000, ge=1, le=65535, description="HAProxy stats listener port, bound on the external VIP and the director's own internal address (the seed bound 0.0.0.0); reachable only from `cluster.adminNetworks`.")
    uri: str = Field("/haproxy?stats", description="Stats page path.")
    user: str = Field("admin", pattern=r"^[A-Za-z0-9_.-]+$", description="Stats user; the password is the `statsPassword` secret (generated when not set).")
    refresh_s: int = Field(5, ge=1, le=3600, description="Auto-refresh of the stats page, seconds.")
    metrics_uri: Optional[str] = Field(
        "/metrics",
        pattern=r"^/[A-Za-z0-9/_.-]*$",
        description="Path of HAProxy's built-in Prometheus exporter on the stats listener: same port, same networks (`cluster.adminNetworks`), same user and password as the stats page (Prometheus: `basic_auth`). `null` turns it off.",
    )
    runtime_api_port: int = Field(
        9999,
        ge=1,
        le=65535,
        description="TCP port of HAProxy's runtime API (`stats socket ipv4@<director internal address>:<port> level admin`), which each Docker host's rolling container change uses to drain its own servers on every director and put them back (docs/rolling.md). The directors' firewall admits it only from the Docker hosts, and the Docker hosts' firewall keeps their containers from reaching it.",
    )
    admin_networks: list[str] = Field(
        default_factory=lambda: ["internal", "heartbeat"],
        description="Networks (by name) allowed to use the stats page's admin actions (besides localhost). The seed allowed everybody (`stats admin if TRUE`).",
    )


class HaproxyTuning(Strict):
    timeout_connect_ms: int = Field(1000, ge=100, le=60000, description="`timeout connect`. The seed's 5000 makes a client wait 5 s per try on a dead host; with retries + redispatch 1 s is enough on a LAN.")
    timeout_client_ms: int = Field(3000, ge=100, le=600000, description="`timeout client` (seed: 3000).")
    timeout_server_ms: int = Field(
        3000,
        ge=100,
        le=600000,
        description="`timeout server` (seed: 3000): how long a server may take to start answering. The slowest page is pi.php at its clamp (n = 10,000,000): 0.24 s on one core of the build machine, so 3 s leaves it a 12-fold margin (a loaded or slow host). A response timeout is never replayed, so raise this when your slowest page takes longer, rather than let it fail with a 504.",
    )
    timeout_queue_ms: int = Field(
        5000, ge=100, le=600000, description="`timeout queue`: how long a request may wait in HAProxy for a free slot (`serverMaxconn`) before it gets a 503."
    )
    timeout_http_request_ms: int = Field(
        5000,
        ge=100,
        le=600000,
        description="`timeout http-request`: the time a client has to send a complete request header (and between requests on a kept-alive connection), so slow clients (slowloris) cannot hold connections open.",
    )
    maxconn: int = Field(
        4096, ge=1, le=1_000_000, description="Global `maxconn`: connections one HAProxy accepts at once; beyond it, clients wait in the kernel's accept queue. `validate` warns when it is below `serverMaxconn` times the number of server lines (servers would stay idle while clients wait in the accept queue)."
    )
    server_maxconn: int = Field(
        64,
        ge=1,
        le=100_000,
        description="Per-server `maxconn` (`default-server maxconn`): requests one container gets at once; more wait in HAProxy's queue (at most `timeoutQueueMs`), where they go to the first free server instead of piling up in one Apache.",
    )
    retries: int = Field(3, ge=0, le=20, description="Connection retries; with `option redispatch 1` every retry goes to another server.")
    check_interval_ms: int = Field(500, ge=100, le=60000, description="Health-check interval (`inter`): a dead container is marked DOWN after `fall` failed checks.")
    fall: int = Field(2, ge=1, le=100, description="Failed checks before a server is DOWN.")
    rise: int = Field(2, ge=1, le=100, description="Good checks before a server is UP again.")
    health_port: int = Field(7001, ge=1, le=65535, description="Loopback-only port HAProxy listens on so keepalived can tell that it is alive.")

    @property
    def fastinter_ms(self) -> int:
        """`fastinter`: the check interval while a server is changing state (half of `inter`)."""
        return (self.check_interval_ms // 2) or 1

    @property
    def downinter_ms(self) -> int:
        """`downinter`: the check interval of a server that is DOWN (twice `inter`)."""
        return self.check_interval_ms * 2


class Service(Strict):
    name: str = Field(description="Frontend name; the backend is named after it (`haproxy-http` -> `http-servers`).")
    port: int = Field(ge=1, le=65535, description="Port bound on the external VIP.")
    tls_port: Optional[int] = Field(
        None,
        ge=1,
        le=65535,
        description="HTTP mode only: port of the service's TLS frontend on the external VIP (HTTP/2 and HTTP/1.1 by ALPN, TLS 1.2 minimum, the `haproxy.https` certificate). The seed's HTTP services get 443 (`haproxy-http`) and 9443 (`haproxy-http_g`); `null`: no TLS frontend.",
    )
    mode: ServiceMode = Field(description="`tcp` (layer 4, round robin per connection) or `http` (layer 7, X-Forwarded-For).")
    storage: str = Field("nfs", description="Docroot of the containers behind it: `nfs` or the name of a Gluster volume.")
    persistence: Optional[Literal["cookie"]] = Field(
        None, description="`cookie`: HTTP-mode stickiness through a `SERVERID` cookie (`insert indirect nocache`). Default: cookie for http, none for tcp."
    )
    containers: Optional[list[str]] = Field(
        None, description="Container names behind this service. Default: every container whose docroot is this service's storage."
    )
    backend: Optional[str] = Field(None, description="Backend section name (default: the seed's names for the seed's services, else `<name>-servers`).")


def _seed_services() -> list[Service]:
    return [
        Service(name="haproxy-http", port=8000, tls_port=443, mode="http", storage="nfs", backend="http-servers"),
        Service(name="haproxy-tcp", port=80, mode="tcp", storage="nfs", backend="tcp-servers"),
        Service(name="haproxy-http_g", port=9000, tls_port=9443, mode="http", storage="gv0", backend="http-servers-g"),
        Service(name="haproxy-tcp_g", port=90, mode="tcp", storage="gv0", backend="tcp-servers-g"),
    ]


class Https(Strict):
    dns_name: str = Field(
        "www.ha-web-cluster.test",
        pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$",
        description="DNS name the generated server certificate covers besides the external VIP (its subjectAltNames). Ignored when the certificate is given (`httpsCertificate` and `httpsKey` secrets).",
    )
    redirect: bool = Field(
        False,
        description="`true`: the plain HTTP ports answer every request with a 308 (permanent, method and body kept) to the service's TLS port, same host and URI (a request without a Host header: to `dnsName`), and the TLS frontends send `Strict-Transport-Security`. Off by default: the seed's plain ports keep serving.",
    )
    hsts_max_age_s: int = Field(31536000, ge=0, le=63072000, description="`Strict-Transport-Security: max-age` sent on the TLS frontends when `redirect` is on.")
    stats_port: Optional[int] = Field(
        7443, ge=1, le=65535, description="Port of the stats page (and the Prometheus `/metrics`) over TLS, beside `stats.port`: same addresses, networks and login. `null`: none."
    )


class Haproxy(Strict):
    services: list[Service] = Field(default_factory=_seed_services, description="Load-balanced services (frontend + backend pairs).")
    https: Https = Field(default_factory=Https, description="TLS frontends: the certificate's names, the HTTP-to-HTTPS redirect, the stats page over TLS.")
    stats: Stats = Field(default_factory=Stats, description="The stats page.")
    tuning: HaproxyTuning = Field(default_factory=HaproxyTuning, description="Timeouts, retries and health checks.")


class Container(Strict):
    name: str = Field(description="Container name (a valid hostname; it is also the HAProxy server name and cookie).")
    port: int = Field(ge=1, le=65535, description="Host port mapped to the container's port 80.")
    docroot: str = Field("nfs", description="`nfs` or a Gluster volume name; mounted on /var/www/html.")


class Backend(Strict):
    name: str = Field(description="Docker host's hostname.")
    aliases: list[str] = Field(default_factory=list, description="Extra /etc/hosts names (the seed's `server1`...).")
    address: ipaddress.IPv4Address = Field(description="Internal address, reserved for this host's MAC in dnsmasq.")
    containers: list[Container] = Field(default_factory=list, description="`php:apache` containers on this host.")
    resources: Resources = Field(default_factory=lambda: Resources(vcpus=2, memory_mib=2048), description="vCPU and memory.")


def _seed_backends() -> list[Backend]:
    out = []
    for host, gport in ((2, 8084), (3, 8085), (4, 8086)):
        containers = [Container(name=f"cluster{host}{i}p", port=8080 + i, docroot="nfs") for i in (1, 2, 3)]
        containers.append(Container(name=f"cluster{host}4p", port=gport, docroot="gv0"))
        out.append(Backend(name=f"cluster{host}", aliases=[f"server{host - 1}"], address=f"10.0.100.{host}", containers=containers))
    return out


class Raid(Strict):
    level: Literal[0, 1, 5, 6, 10] = Field(5, description="mdadm RAID level.")
    disks: int = Field(3, ge=1, le=16, description="Member disks (RAID5 needs 3 or more, RAID6 4, RAID1 2, RAID10 4).")
    disk_size_mib: int = Field(200, ge=20, le=10_000_000, description="Size of each member disk, MiB.")
    chunk_kib: int = Field(512, ge=4, le=65536, description="Chunk size, KiB (mdadm's default, as in the seed).")
    device: str = Field("/dev/md0", pattern=r"^/dev/md\d+$", description="md device.")
    mountpoint: str = Field("/raid", pattern=r"^/[A-Za-z0-9_./-]+$", description="Where the array's filesystem is mounted (and exported).")
    filesystem: Literal["ext4", "xfs"] = Field("ext4", description="Filesystem on the array.")
    spare_disks: int = Field(
        0,
        ge=0,
        le=8,
        description="Hot spare disks: the NAS VM gets this many more disks of `diskSizeMib`, and the array is created with them as spares (`mdadm --create --spare-devices`), so a failed member is rebuilt onto a spare at once. Raising it on an existing array adds blank disks as spares; lowering it removes none. Not with RAID0 (nothing to rebuild).",
    )
    alert_command: Optional[str] = Field(
        None,
        min_length=1,
        pattern=r"^[^\n\r\x00]+$",
        description="Shell command run on every RAID event, after the event is logged to syslog (tag `hawc-raid`; mdadm's own lines have tag `mdadm`). mdadm's monitor runs the rendered `/usr/local/sbin/hawc-raid-alert` as its `PROGRAM`, which runs this command with `/bin/sh -c`, the arguments mdadm passes as the positional parameters: `$1` the event (`Fail`, `DegradedArray`, `SpareActive`, `RebuildFinished`, ...), `$2` the md device, `$3` the member disk when the event has one. So `/usr/local/bin/page-ops \"$@\"` passes them on. It runs as root, at most 60 s (mdadm waits for it); a failure is logged. It is written into the script in plain text: read a token from a file rather than putting it here. `null` (default): syslog only.",
    )
    alert_mail: Optional[str] = Field(
        "root",
        pattern=r"^[A-Za-z0-9._%+-]+(@[A-Za-z0-9.-]+)?$",
        description="mdadm's `MAILADDR`: where mdadm mails Fail, DegradedArray, SparesMissing and TestMessage events. `root` (Debian's own default) is the NAS's local root mailbox: nothing leaves the machine (the cloud image has no mail server, so nothing is delivered at all). `null` drops the line (the alert command and syslog still get every event).",
    )


class Bond(Strict):
    mode: BondMode = Field(BondMode.active_backup, description="Linux bonding mode; active-backup works without switch support.")
    interfaces: list[str] = Field(default_factory=lambda: ["enp0s3", "enp0s8"], description="Slave NICs, in NIC order.")
    miimon_ms: int = Field(100, ge=0, le=10000, description="`bond-miimon`.")
    updelay_ms: int = Field(200, ge=0, le=100000, description="`bond-updelay`.")
    downdelay_ms: int = Field(200, ge=0, le=100000, description="`bond-downdelay`.")
    fail_over_mac: Literal["none", "active", "follow"] = Field("active", description="`fail_over_mac` (the seed's `1` is `active`).")


class Nas(Strict):
    name: str = Field("nas", description="Hostname.")
    address: ipaddress.IPv4Address = Field(ipaddress.IPv4Address("10.0.100.100"), description="Internal address (on bond0).")
    raid: Raid = Field(default_factory=Raid, description="Software RAID of the NFS share.")
    bond: Bond = Field(default_factory=Bond, description="NIC bonding.")
    export_options: str = Field(
        "ro,root_squash,sync,no_subtree_check,mp",
        description="/etc/exports options; the export goes to the Docker hosts that mount it, nobody else. The seed's `rw,no_root_squash` to the whole internal network let any node (or root on it) rewrite the web content; the containers only read it, and the content is published on the NAS itself. `mp`: nothing is exported while the array is not mounted (never the empty mount point).",
    )
    mount_options: str = Field("auto,nofail,bg,rsize=8192,wsize=8192", description="Clients' NFS mount options (the seed's).")
    resources: Resources = Field(default_factory=lambda: Resources(vcpus=1, memory_mib=512), description="vCPU and memory.")


class GlusterServer(Strict):
    name: str = Field(description="Hostname.")
    address: ipaddress.IPv4Address = Field(description="Internal address (NIC enp0s3), reserved in dnsmasq.")
    resources: Resources = Field(default_factory=Resources, description="vCPU and memory.")


# Gluster's own `metadata-cache` group (/var/lib/glusterd/groups/metadata-cache, glusterfs 10): the
# client keeps file metadata for 600 s and the bricks invalidate it on every change (upcall), so a
# page's path walk (html -> current -> releases/<digest>/index.php) stays in the client instead of
# a network round trip to three bricks per component.
METADATA_CACHE_GROUP = {
    "features.cache-invalidation": "on",
    "features.cache-invalidation-timeout": "600",
    "performance.stat-prefetch": "on",
    "performance.cache-invalidation": "on",
    "performance.md-cache-timeout": "600",
    "network.inode-lru-limit": "200000",
}


def _default_volume_options() -> dict[str, str]:
    return {"network.ping-timeout": "5", "cluster.heal-timeout": "10", **METADATA_CACHE_GROUP}


class GlusterVolume(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Volume name.")
    replica: int = Field(1, ge=1, le=16, description="Replica count (1 = pure distribute). Bricks must be a multiple of it.")
    brick: int = Field(ge=1, le=16, description="Which brick disk of every server holds this volume (1 -> /export/brick1/data).")
    mountpoint: str = Field(pattern=r"^/[A-Za-z0-9_./-]+$", description="Where Docker hosts mount it.")
    options: Annotated[dict[str, str], merged_with(_default_volume_options)] = Field(
        default_factory=_default_volume_options,
        description="`gluster volume set` options. Gluster's 42 s ping-timeout stalls clients ~45 s when a server vanishes; 5 s keeps a web request's stall short. Gluster's `metadata-cache` group (md-cache 600 s, invalidated by the bricks on change): each component of a page's path was a round trip to every brick. " + MERGED_MAP_NOTE,
    )


class Gluster(Strict):
    servers: list[GlusterServer] = Field(
        default_factory=lambda: [GlusterServer(name=f"gluster{i}", address=f"10.0.100.{4 + i}") for i in (1, 2, 3)],
        description="Gluster servers; the first one probes the others and creates the volumes.",
    )
    bricks_per_server: int = Field(2, ge=1, le=16, description="Brick disks per server (XFS, /export/brickN).")
    brick_size_mib: int = Field(500, ge=100, le=10_000_000, description="Size of each brick disk, MiB.")
    volumes: list[GlusterVolume] = Field(
        default_factory=lambda: [
            GlusterVolume(name="gv0", replica=3, brick=1, mountpoint="/gluster/gfs-r"),
            GlusterVolume(name="gv1", replica=1, brick=2, mountpoint="/gluster/gfs-d"),
        ],
        description="Volumes: gv0 replica 3 (the Gluster docroot), gv1 distribute.",
    )
    tls: bool = Field(
        True,
        description="TLS for Gluster's management (glusterd, `/var/lib/glusterd/secure-access`) and I/O (`server.ssl`, `client.ssl`) on every server and every Docker host that mounts a volume, each with its own key and a certificate for its name from a CA the program creates (pulumi-tls; the lab: openssl); `auth.ssl-allow` = those names. Without it anyone on the internal network who reaches the ports reads and writes the bricks' traffic in clear. Measured cost in docs/security.md.",
    )
    fuse_cache_s: int = Field(
        5, ge=0, le=600,
        description="The Docker hosts' kernel keeps a Gluster mount's names and attributes this long (mount options `entry-timeout`, `attribute-timeout`, `negative-timeout`; Gluster's defaults 1 s, 1 s, none). The kernel cache is not invalidated on change: a published release reaches a container up to this late (the one before stays whole for its grace time). 0 = no kernel cache.",
    )
    glusterd_start_timeout_s: int = Field(
        900, ge=60, le=3600,
        description="How long systemd lets glusterd start (Debian: 300 s). Every start runs the geo-replication helper (Python) about a dozen times, which took longer than 300 s on small emulated VMs.",
    )


# Docker's reference grammar (distribution/reference): [registry[:port]/]path[:tag][@digest].
_IMAGE_NAME = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::\d+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
IMAGE_REFERENCE = re.compile(rf"^{_IMAGE_NAME}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@sha256:[a-f0-9]{{64}})?$")
# Linux capabilities Docker's --cap-add knows (capabilities(7)), without the CAP_ prefix.
CAPABILITIES = frozenset({
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE", "CHOWN", "DAC_OVERRIDE",
    "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN",
    "MAC_OVERRIDE", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP",
    "SETGID", "SETPCAP", "SETUID", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT",
    "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "SYSLOG", "WAKE_ALARM",
})


def _image_reference(value: str) -> str:
    """A Docker image reference that names a version: a tag or a digest (none means `:latest`, which floats)."""
    if not IMAGE_REFERENCE.match(value):
        raise ValueError(f"{value!r} is not a Docker image reference ([registry/]name[:tag][@sha256:digest])")
    if ":" not in value.rsplit("/", 1)[-1] and "@" not in value:
        raise ValueError(f"{value!r} names no tag or digest, so Docker takes the floating `:latest`; give a version tag such as `php:8.2.29-apache-bookworm`")
    return value


def _capability(value: str) -> str:
    if value not in CAPABILITIES:
        raise ValueError(f"{value!r} is not a Linux capability; one of {', '.join(sorted(CAPABILITIES))} (without `CAP_`)")
    return value


Capability = Annotated[str, AfterValidator(_capability)]
TMPFS_PATH = r"^/[A-Za-z0-9_./-]+$"


class Docker(Strict):
    image: Annotated[str, AfterValidator(_image_reference)] = Field(
        "php:8.2.29-apache-bookworm",
        description="Container image of every web container: a version tag or digest, never the floating `php:apache` (the same reference on every host, and a rebuild on Docker Hub cannot change what runs unnoticed). Changing it pulls the new image on each Docker host (`docker pull` when absent) and replaces every container; the old containers keep serving until the pull succeeded.",
    )
    cap_add: list[Capability] = Field(
        default_factory=lambda: ["KILL", "SETGID", "SETUID"],
        description="The only capabilities a container keeps (`--cap-drop ALL`, then `--cap-add` these). Apache's root parent switches its children to www-data (`SETUID`, `SETGID`: setuid, setgroups) and signals them on a stop or graceful restart (`KILL`: they no longer share its user; without it a `SIGTERM` leaves them running, \"could not make child process exit\"). Port 80 needs no `NET_BIND_SERVICE`: Docker (20.10 and later) sets `net.ipv4.ip_unprivileged_port_start=0` in each container's network namespace; add it for an older Docker. Neither the entrypoint nor Apache chowns or reads anything root does not own, so `CHOWN`, `DAC_OVERRIDE`, `FOWNER` and the rest of Docker's default set stay dropped.",
    )
    no_new_privileges: bool = Field(
        True, description="`--security-opt no-new-privileges`: no process in a container gains privileges through a set-user-ID file or file capabilities. Apache changes user by setuid(2), which this does not touch."
    )
    memory_mib: int = Field(
        256, ge=16, le=262144,
        description="Memory limit of each container, MiB (`--memory`, and `--memory-swap` the same: no swap on top). Apache's prefork parent and its few idle children take tens of MiB; the rest is headroom for pages such as pi.php. Over the limit the kernel kills a child inside the container, not a process of the host.",
    )
    cpus: float = Field(
        1.0, ge=0.01, le=64,
        description="CPU limit of each container, in CPUs (`--cpus`, at most two decimals): one busy container cannot take its Docker host's other CPUs from its neighbours. At most the host's vCPUs (Docker refuses more).",
    )
    pids_limit: int = Field(
        256, ge=16, le=65536,
        description="Most processes and threads in one container (`--pids-limit`): a fork bomb in a page stays inside. Apache's prefork runs at most `MaxRequestWorkers` (150) children plus its parent.",
    )
    read_only: bool = Field(
        True,
        description="Read-only root filesystem (`--read-only`): a compromised page cannot change the image's files (Apache, PHP, their configuration). Apache writes only to `tmpfs`; logs go to the container's output (php:apache links them to stdout/stderr).",
    )
    tmpfs: list[Annotated[str, Field(pattern=TMPFS_PATH)]] = Field(
        default_factory=lambda: ["/var/run/apache2", "/var/lock/apache2", "/tmp"],
        description="Writable in-memory directories of each container (`--tmpfs PATH:rw,nosuid,nodev,noexec,size=...`): Apache's pid file and runtime directory, its lock directory, PHP's temporary files. Empty at every start.",
    )
    tmpfs_mib: int = Field(16, ge=1, le=4096, description="Size limit of each `tmpfs` directory, MiB (counted in the container's memory).")

    @field_validator("cpus")
    @classmethod
    def _cpus_in_hundredths(cls, value: float) -> float:
        """Docker parses `--cpus` exactly; two decimals keep the rendered value and `NanoCpus` exact."""
        if round(value, 2) != value:
            raise ValueError(f"{value} has more than two decimals (Docker's `--cpus` granularity is 0.01)")
        return value

    @property
    def nano_cpus(self) -> int:
        """`--cpus` as Docker stores it (HostConfig.NanoCpus)."""
        return round(self.cpus * 100) * 10_000_000

    @property
    def cpus_arg(self) -> str:
        """`--cpus` as rendered: shortest exact decimal (`1`, `0.5`)."""
        return f"{round(self.cpus * 100) / 100:g}"
    drain_timeout_s: int = Field(
        30, ge=1, le=3600,
        description="Rolling container change (docs/rolling.md): longest wait for a Docker host's drained servers to have no session left on every director before its containers are replaced anyway (a long-lived TCP connection then ends; the loss budget of TCP mode).",
    )
    ready_timeout_s: int = Field(
        120, ge=5, le=3600,
        description="Rolling container change: longest wait, after the containers are replaced, for every director's HTTP health check to see them UP; past it they are put back in rotation anyway (the health check still guards them) and the step fails, which stops the roll before the next Docker host.",
    )
    director_answer_s: int = Field(
        3, ge=1, le=60,
        description="Rolling container change: how long one runtime-API command may take on one director; a director that does not answer in time is asked again (3 tries in all), then skipped, and the step says so.",
    )
    keep_releases: int = Field(
        3, ge=1, le=100,
        description="Content releases kept in each docroot's `releases/` besides the current one (docs/content.md): a publish writes a new release directory and switches the `current` symlink in one rename, then removes the oldest releases beyond this many.",
    )
    docroot_subdir: str = Field("www", pattern=r"^[A-Za-z0-9_.-]+$", description="Folder inside each storage's mount used as docroot (`/nfs/raid/www`, `/gluster/gfs-r/www`).")
    nfs_mountpoint: str = Field("/nfs", description="Where Docker hosts mount the NAS's NFSv4 root.")


NOISY_COLLECTORS = ("btrfs", "bcache", "cpufreq", "edac", "fibrechannel", "hwmon", "infiniband", "ipvs", "nvme", "powersupplyclass", "rapl", "selinux", "tapestats", "thermal_zone", "zfs")
# Debian 12's node-exporter 1.5.0 enables its systemd collector, which crashed the exporter on an
# e2e director ("fatal error: concurrent map read and map write" in go-systemd's D-Bus subscription,
# under scrapes from several scrapers at once); it is also the costliest collector on a busy node.
CRASHING_COLLECTORS = ("systemd",)


class NodeMetrics(Strict):
    enabled: bool = Field(True, description="Run Debian's prometheus-node-exporter on every node (directors, NAS, Gluster servers, Docker hosts), with the directors' `hawc_vip_held` metric (docs/operations.md).")
    port: int = Field(9100, ge=1, le=65535, description="node-exporter's port, bound on the node's internal address only (never the external network or a VIP).")
    scrapers: list[str] = Field(
        default_factory=lambda: ["host", "directors"],
        description="Who may scrape node-exporter (every node's firewall drops it for anybody else): `host` (the hypervisor host, as in `cluster.adminNetworks`: on libvirt its internal address, where a Prometheus beside the hypervisor scrapes from), `directors` (their internal addresses: a Prometheus on a director, or an SSH tunnel through one; on VirtualBox the only way in), a network by name (`external`, `internal`, `heartbeat`), or an address or CIDR (a monitoring host of yours).",
    )
    disabled_collectors: list[str] = Field(
        default_factory=lambda: sorted(NOISY_COLLECTORS + CRASHING_COLLECTORS),
        description="node-exporter collectors turned off (`--no-collector.NAME`): hardware a VM does not have (sensors, RAPL, NVMe, InfiniBand, ...) and filesystems the nodes do not use, which cost scrape time on small emulated VMs for nothing; and `systemd`, which crashed Debian 12's exporter (1.5.0) on a director of the e2e (`concurrent map read and map write` in its D-Bus subscription). mdadm (the NAS's RAID), bonding, NFS, XFS, netdev, filesystem, pressure and textfile (the VIP metric) stay on.",
    )


class Cluster(Strict):
    domain: str = Field("cluster", pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", description="DNS domain of every node (`cluster2.cluster`).")
    networks: Networks = Field(default_factory=Networks, description="The three networks.")
    vips: Vips = Field(default_factory=Vips, description="Virtual IPs held by the active director.")
    dhcp: Dhcp = Field(default_factory=Dhcp, description="dnsmasq DHCP on the master director.")
    directors: list[Director] = Field(default_factory=_seed_directors, description="2 or 3 load-balancer nodes; the highest priority is the master.")
    vrrp: Vrrp = Field(default_factory=Vrrp, description="keepalived settings (haStack: keepalived).")
    pacemaker: Pacemaker = Field(default_factory=Pacemaker, description="Corosync/Pacemaker settings (haStack: pacemaker).")
    haproxy: Haproxy = Field(default_factory=Haproxy, description="Load balancer services, stats page and tuning.")
    serving_check: ServingCheck = Field(
        default_factory=ServingCheck,
        description="Both HA stacks move the VIPs away from a director that cannot serve: one that lost its external or internal link, or whose HAProxy sees no server UP in a backend while another director sees some (see docs/deviations.md).",
    )
    backends: list[Backend] = Field(default_factory=_seed_backends, description="Docker hosts and their containers.")
    nas: Nas = Field(default_factory=Nas, description="The NFS server.")
    gluster: Gluster = Field(default_factory=Gluster, description="The GlusterFS pool.")
    docker: Docker = Field(default_factory=Docker, description="Container settings shared by every Docker host.")
    node_metrics: NodeMetrics = Field(default_factory=NodeMetrics, description="Node-level metrics: prometheus-node-exporter on every node, internal network only.")
    admin_networks: list[str] = Field(
        default_factory=lambda: ["host", "internal", "heartbeat"],
        description="Who may reach the HAProxy stats page at all (every node's firewall drops it for anybody else): `host` (the hypervisor host: the external network's gateway, and `libvirt.hostAddress`), a network by name (`external`, `internal`, `heartbeat`), or an address or CIDR. The default keeps the rest of the external LAN out; `cluster.haproxy.stats.adminNetworks` further limits the admin actions.",
    )

    @model_validator(mode="before")
    @classmethod
    def _defaults_follow_their_network(cls, data: Any) -> Any:
        """Changing a network's CIDR moves every address left at its default (one-key re-addressing)."""
        return rebase_defaults(data) if isinstance(data, dict) else data


class Libvirt(Strict):
    uri: str = Field("qemu:///system", description="Default libvirt connection URI (`qemu+ssh://user@host/system` for a remote host: with a user and without a port, as the provider dials it).")
    domain_type: Literal["kvm", "qemu"] = Field("kvm", description="`kvm`, or `qemu` on hosts without /dev/kvm.")
    pool_path: str = Field("/var/lib/libvirt/images/ha-web-cluster", description="Directory of the storage pool.")
    host_address: Optional[ipaddress.IPv4Address] = Field(
        None, description="The hypervisor host's own address on the internal network, so Pulumi can SSH to internal-only nodes (default: the last usable address of the internal network)."
    )
    hosts: dict[str, str] = Field(default_factory=dict, description="Extra hypervisor hosts: name -> libvirt URI.")
    placement: dict[str, str] = Field(default_factory=dict, description="Node name -> host name from `hosts` (nodes not listed go to `uri`).")


class PortForward(Strict):
    name: str = Field(description="Rule name.")
    host_port: int = Field(ge=1, le=65535, description="Port on the VirtualBox host.")
    guest_port: int = Field(ge=1, le=65535, description="Port on the external VIP.")


def _seed_forwards() -> list[PortForward]:
    return [
        PortForward(name="HAProxy-HTTP", host_port=8000, guest_port=8000),
        PortForward(name="HAProxy-TCP", host_port=8800, guest_port=80),
        PortForward(name="HAProxy-HTTP-gluster", host_port=9000, guest_port=9000),
        PortForward(name="HAProxy-TCP-gluster", host_port=9900, guest_port=90),
        PortForward(name="HA-Estado", host_port=7000, guest_port=7000),
    ]


class Virtualbox(Strict):
    nat_network: str = Field("red-nat-1", description="Name of the VirtualBox NAT network (external).")
    base_folder: str = Field("~/VirtualBox VMs/ha-web-cluster", description="Where VMs and disks are created.")
    port_forwards: list[PortForward] = Field(default_factory=_seed_forwards, description="NAT-network port forwards to the external VIP (the seed's table 8).")
    ssh_base_port: int = Field(2200, ge=1024, le=65000, description="Host port of the first node's SSH forward (node i gets base+i), so Pulumi reaches every node.")


class StackConfig(Strict):
    """Everything under `ha-web-cluster:` in a stack file, secrets excluded."""

    hypervisor: Hypervisor = Field(Hypervisor.libvirt, description="`libvirt` or `virtualbox`.")
    ha_stack: HaStack = Field(HaStack.keepalived, description="`keepalived` (VRRP) or `pacemaker` (Corosync + Pacemaker).")
    base_image_url: str = Field(
        "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2",
        description="Debian 12 cloud image every VM is cloned from (URL or local path).",
    )
    ssh_user: str = Field("debian", pattern=r"^[a-z_][a-z0-9_-]*$", description="User created by cloud-init and used by Pulumi's SSH steps.")
    ssh_public_key: Optional[str] = Field(None, description="Public key for `sshUser`; by default derived from the `sshPrivateKey` secret (generated when not set).")
    libvirt: Libvirt = Field(default_factory=Libvirt, description="libvirt settings (hypervisor: libvirt).")
    virtualbox: Virtualbox = Field(default_factory=Virtualbox, description="VirtualBox settings (hypervisor: virtualbox).")
    cluster: Cluster = Field(default_factory=Cluster, description="The cluster's topology.")


# Secret stack keys: never part of the model, always `pulumi config set --secret`.
SECRET_KEYS: dict[str, str] = {
    "vrrpAuthPass": "VRRP `auth_pass` (only used with vrrp.version 2); 8 characters at most.",
    "statsPassword": "HAProxy stats page password.",
    "haclusterPassword": "Password of the `hacluster` user (pacemaker).",
    "corosyncKey": "corosync authkey, base64 of 128+ random bytes (pacemaker).",
    "fencePassword": "Password the fence agent uses on the hypervisor host (pacemaker, only with `fenceLogin: password`).",
    "fenceSshKey": "OpenSSH private key the fence agent logs into the hypervisor host with (pacemaker, `fenceLogin: key`, the default); generated when not set. Its public half is in the `fenceAuthorizedKey` output.",
    "qdeviceSeed": "Random text (16+ characters) from which the directors and the quorum arbitrator derive the quorum device's TLS keys (pacemaker).",
    "sshPrivateKey": "OpenSSH private key Pulumi uses to reach the nodes (its public half goes into cloud-init).",
    "httpsCertificate": "PEM certificate chain (server certificate first) of the TLS frontends, with `httpsKey`; when neither is set a CA and a server certificate for the external VIP and `haproxy.https.dnsName` are generated (the CA in the `httpsCaCert` output).",
    "httpsKey": "PEM private key of `httpsCertificate`.",
}


# --------------------------------------------------------------------------- re-addressing

SEED_CIDRS = {"external": "192.168.1.0/24", "internal": "10.0.100.0/24", "heartbeat": "10.0.50.0/24"}


def _moved_networks(data: dict) -> dict[str, tuple[ipaddress.IPv4Network, ipaddress.IPv4Network]]:
    moved = {}
    for name, seed in SEED_CIDRS.items():
        raw = (data.get("networks") or {}).get(name)
        if isinstance(raw, dict) and "cidr" in raw:
            try:
                new = ipaddress.IPv4Network(str(raw["cidr"]))
            except ValueError:
                continue  # the field's own validation reports it
            old = ipaddress.IPv4Network(seed)
            if new != old:
                moved[name] = (old, new)
    return moved


def rebase_defaults(data: dict) -> dict:
    """Seed addresses the user did not set are moved into the user's CIDRs, keeping their host part.

    So `cluster.networks.external.cidr: 192.168.123.0/24` alone moves the gateway, the
    external VIP and the directors' external addresses too. Addresses the user sets are
    never touched; ones that do not fit are reported by validation as usual.
    """
    moved = _moved_networks(data)
    if not moved:
        return data

    def rebase(addr: Any) -> str:
        ip = ipaddress.IPv4Address(str(addr))
        for old, new in moved.values():
            if ip in old and int(ip) - int(old.network_address) < new.num_addresses:
                return str(new.network_address + (int(ip) - int(old.network_address)))
        return str(ip)

    out = dict(data)
    nets = {k: dict(v) for k, v in (out.get("networks") or {}).items()}
    seed_nets = Networks()
    for name in moved:
        seed_gw = getattr(seed_nets, name).gateway
        if seed_gw is not None and "gateway" not in nets[name]:
            nets[name]["gateway"] = rebase(seed_gw)
    out["networks"] = nets
    vips = dict(out.get("vips") or {})
    for key, value in Vips().model_dump().items():
        vips.setdefault(key, rebase(value))
    out["vips"] = vips
    if "internal" in moved:
        dhcp = dict(out.get("dhcp") or {})
        for key in ("start", "end"):
            dhcp.setdefault(key, rebase(getattr(Dhcp(), key)))
        out["dhcp"] = dhcp
        nas = dict(out.get("nas") or {})
        nas.setdefault("address", rebase(Nas().address))
        out["nas"] = nas
        gluster = dict(out.get("gluster") or {})
        if "servers" not in gluster:
            gluster["servers"] = [{**g.model_dump(by_alias=True), "address": rebase(g.address)} for g in Gluster().servers]
        out["gluster"] = gluster
        if "backends" not in out:
            out["backends"] = [{**b.model_dump(by_alias=True), "address": rebase(b.address)} for b in _seed_backends()]
    if "directors" not in out:
        out["directors"] = [
            {**d.model_dump(by_alias=True), **{k: rebase(getattr(d, k)) for k in ("external", "internal", "heartbeat")}}
            for d in _seed_directors()
        ]
    return out
