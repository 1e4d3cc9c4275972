"""The pure parts of issue 14: monitor.conf and the cron schedule, the incumbent's DHCP and
DNS files, vragent's iptables_check on rule texts, get_haproxy_stats's arithmetic, and the
MTU document. The lab tests (tests/lab/test_health_checks.py, test_cloudstack_scripts.py)
run them against real routers with CloudStack's own scripts."""

from __future__ import annotations

import json
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

from vragent import healthchecks
from vragent.cloudscripts import haproxy_sessions
from vragent.model import DhcpHost, MonitoredService, Monitoring, RouterState
from vragent.paths import Paths
from vragent.subsystems.dhcp import incumbent_files
from vragent.subsystems.monitoring import render as monitoring
from vragent.subsystems.network import interfacemtu

SERVICES = (MonitoredService("ssh", (("processname", "sshd"), ("servicename", "ssh"), ("pidfile", "/var/run/sshd.pid"))),
            MonitoredService("dhcp", (("processname", "dnsmasq"), ("servicename", "dnsmasq"),
                                      ("pidfile", "/var/run/dnsmasq/dnsmasq.pid"))),
            MonitoredService("loadbalancing", (("processname", "haproxy"), ("servicename", "haproxy"),
                                               ("pidfile", "/var/run/haproxy.pid"))),
            MonitoredService("webserver", (("processname", "apache2"), ("servicename", "apache2"),
                                           ("pidfile", "/var/run/apache2/apache2.pid"))))
CMDLINE = (("type", "router"), ("name", "r-7-VM"), ("eth0ip", "192.0.2.1"), ("eth0mask", "255.255.255.0"))


def state(**changes) -> RouterState:
    base = RouterState(cmdline=CMDLINE, monitoring=Monitoring(services=SERVICES))
    return replace(base, **changes)


def test_monitor_conf_names_vragents_units_and_only_the_daemons_it_runs():
    text = monitoring.monitor_conf(state(), Paths(Path("/srv/lab")))
    assert "[dhcp]\nprocessname=dnsmasq\nservicename=vragent-dnsmasq\npidfile=/run/vragent/dnsmasq.pid\n" in text
    assert "[webserver]\n" in text and "servicename=vragent-metadata\npidfile=/run/vragent/metadata.pid" in text
    assert "[ssh]\nprocessname=sshd\nservicename=ssh\npidfile=/var/run/sshd.pid" in text  # the image's, as sent
    assert "[loadbalancing]" not in text  # no load balancer: vragent runs no HAProxy
    assert "apache2" not in text and "servicename=dnsmasq\n" not in text


def test_service_monitoring_off_lists_no_service():
    off = state(monitoring=Monitoring(services=SERVICES, disabled=True))
    assert monitoring.monitor_conf(off, Paths(Path("/"))).count("[") == 0


def test_the_cron_file_runs_each_check_type_on_its_interval():
    text = monitoring.cron_file(state(monitoring=Monitoring(basic_interval=3, advanced_interval=10)))
    assert "*/3 * * * * root cd /root && /usr/bin/python3 /root/monitorServices.py basic" in text
    assert "*/10 * * * * root cd /root && /usr/bin/python3 /root/monitorServices.py advanced" in text
    never = monitoring.cron_file(state(monitoring=Monitoring(basic_interval=120, advanced_interval=0)))
    assert "0 */2 * * * root" in never and "advanced" not in never
    # No interval pushed: the incumbent's defaults (basic every 3 minutes, advanced never).
    default = monitoring.cron_file(state(monitoring=Monitoring()))
    assert "*/3 * * * *" in default and "advanced" not in default


def test_the_incumbents_dhcp_files_and_hosts_in_their_formats():
    hosts = (DhcpHost("02:00:00:00:00:11", IPv4Address("192.0.2.11"), "web-01"),
             DhcpHost("02:00:00:00:00:13", IPv4Address("192.0.2.13"), "app-01", default_entry=False))
    router = state(dhcp_hosts=hosts)
    assert incumbent_files.dhcphosts(router) == ("02:00:00:00:00:11,192.0.2.11,web-01,infinite\n"
                                                 "02:00:00:00:00:13,set:192_0_2_13,192.0.2.13,app-01,infinite\n")
    assert incumbent_files.dhcpopts(router) == "192_0_2_13,3\n192_0_2_13,6\n192_0_2_13,15\n"
    text = incumbent_files.hosts(router)
    assert "127.0.0.1\tlocalhost\n" in text and "192.0.2.1\tr-7-VM data-server\n" in text
    assert "192.0.2.11\tweb-01\n" in text and "192.0.2.13\tapp-01\n" in text


def _health_data(tmp_path: Path, **config: str) -> Paths:
    (tmp_path / "root").mkdir(exist_ok=True)
    (tmp_path / "root/health_checks_data.json").write_text(json.dumps({"health_checks_config": config}))
    return Paths(tmp_path)


NAT = ["-A PREROUTING -j vr-dnat", "-A OUTPUT -j vr-dnat",
       "-A vr-dnat -d 198.51.100.20/32 -j vr-pf-198.51.100.20",
       "-A vr-pf-198.51.100.20 -p tcp -m tcp --dport 2222 -j DNAT --to-destination 192.0.2.11:22",
       "-A vr-pf-198.51.100.20 -p tcp -m tcp --dport 1020:1030 -j DNAT --to-destination 192.0.2.12:20-30/1020"]
FORWARDS = ("sourceIp=198.51.100.20,sourcePortStart=2222,sourcePortEnd=2222,destIp=192.0.2.11,destPortStart=22,"
            "destPortEnd=22;sourceIp=198.51.100.20,sourcePortStart=1020,sourcePortEnd=1030,destIp=192.0.2.12,"
            "destPortStart=20,destPortEnd=30;")


def test_iptables_check_finds_each_port_forward_in_vragents_layout(tmp_path):
    paths = _health_data(tmp_path, portForwarding=FORWARDS)
    result = healthchecks.iptables_check(paths, NAT)
    assert (result.code, result.message) == (0, "Found all entries (count 2) in iptables")


def test_iptables_check_fails_for_a_missing_forward_or_jump(tmp_path):
    paths = _health_data(tmp_path, portForwarding=FORWARDS)
    result = healthchecks.iptables_check(paths, NAT[:3] + NAT[4:])
    assert result.code == 1 and "198.51.100.20:2222 -> 192.0.2.11:22" in result.message
    result = healthchecks.iptables_check(paths, NAT[1:])
    assert result.code == 1 and "PREROUTING does not jump to vr-dnat" in result.message


def test_iptables_check_without_forwards_skips(tmp_path):
    result = healthchecks.iptables_check(_health_data(tmp_path, portForwarding=""), [])
    assert result.code == 0 and "skipping" in result.message


def test_a_check_is_silent_in_the_other_check_type(capsys):
    assert healthchecks.main("iptables_check", ["basic"]) == 0
    assert capsys.readouterr().out == ""


def test_get_haproxy_stats_averages_the_up_servers_of_the_pool():
    header = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status\n"

    def row(proxy, server, scur, status):
        return ",".join([proxy, server, "0", "0", str(scur)] + ["0"] * 12 + [status]) + ",\n"

    pool = "198_51_100_21-80"
    stats = (header + row(pool, "FRONTEND", 9, "OPEN") + row(pool, f"{pool}_0", 4, "UP")
             + row(pool, f"{pool}_1", 2, "UP 1/3") + row(pool, f"{pool}_2", 7, "DOWN")
             + row(pool, "BACKEND", 13, "UP") + row("other-80", "other-80_0", 50, "UP"))
    assert haproxy_sessions(stats, pool) == 3
    assert haproxy_sessions(header, pool) == 0


def test_an_mtu_change_goes_to_the_nic_holding_the_address():
    from vragent.model import GuestNetwork, PublicIp

    router = state(public_ips=(PublicIp(IPv4Address("198.51.100.10"), 24, "eth2", mtu=1500),
                               PublicIp(IPv4Address("198.51.100.20"), 24, "eth2", mtu=1500),
                               PublicIp(IPv4Address("203.0.113.130"), 25, "eth3", mtu=1500)),
                   guest_networks=(GuestNetwork("eth0", IPv4Address("192.0.2.1"), 24, IPv4Address("192.0.2.1")),))
    changed = interfacemtu.merge(router, interfacemtu.MtuChange(IPv4Address("198.51.100.20"), 1400))
    assert [p.mtu for p in changed.public_ips] == [1400, 1400, 1500]
    guest = interfacemtu.merge(router, interfacemtu.MtuChange(IPv4Address("192.0.2.1"), 1450))
    assert guest.guest_networks[0].mtu == 1450
    assert interfacemtu.device_of(router, IPv4Address("10.9.9.9")) is None
