"""Secrets stay out of diffs and archived pushes."""

from __future__ import annotations

import gzip
import json

from vragent.paths import Paths
from vragent.redact import secrets_hidden
from vragent.shims import _archive

KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"


def test_passwords_and_private_keys_are_hidden_and_nothing_else_changes():
    push = json.dumps({"type": "vmpassword", "ip_address": "192.0.2.11", "password": 'Xk3"r9\\pW'})
    hidden = secrets_hidden(push)
    assert 'Xk3' not in hidden and json.loads(hidden) == {"type": "vmpassword", "ip_address": "192.0.2.11",
                                                          "password": "(not shown)"}
    lb = json.dumps({"type": "loadbalancer", "ssl_certs": [{"cert": "-----BEGIN CERTIFICATE-----", "key": KEY}]})
    assert "MIIEvQ" not in secrets_hidden(lb) and "BEGIN CERTIFICATE" in secrets_hidden(lb)
    plain = json.dumps({"type": "firewallrules", "rules": [{"id": 1, "src_ip": "198.51.100.20"}]})
    assert secrets_hidden(plain) == plain


def test_an_archived_batch_keeps_everything_but_its_secrets(tmp_path):
    paths = Paths.from_root(tmp_path)
    paths.cache.mkdir(parents=True)
    batch = paths.cache / "VR-6f1c.cfg"
    password = json.dumps({"type": "vmpassword", "ip_address": "192.0.2.11", "password": "Xk3r9-pW"})
    batch.write_text(f"<file>\n/var/cache/cloud/vm_password.json\n{password}\n</file>\n"
                     "<script>\n/opt/cloud/bin/update_config.py vm_password.json\n</script>\n")
    _archive(paths, batch, succeeded=True)
    archived = paths.processed / "VR-6f1c.cfg.gz"
    text = gzip.decompress(archived.read_bytes()).decode()
    assert "Xk3r9-pW" not in text and '"password": "(not shown)"' in text and "update_config.py" in text
    assert archived.stat().st_mode & 0o077 == 0 and not batch.exists()


def test_the_archive_keeps_the_newest_pushes_within_its_caps(tmp_path, monkeypatch):
    import os

    from vragent import shims

    paths = Paths.from_root(tmp_path)
    paths.processed.mkdir(parents=True)
    for n in range(12):
        old = paths.processed / f"firewall_rules.json.{n:02d}.gz"
        old.write_bytes(b"x" * 100)
        os.utime(old, ns=(n * 10**9, n * 10**9))
    monkeypatch.setattr(shims, "ARCHIVE_KEEP_FILES", 5)
    paths.cache.mkdir(parents=True, exist_ok=True)
    push = paths.cache / "firewall_rules.json.new"
    push.write_text('{"type": "firewallrules", "rules": []}')
    _archive(paths, push, succeeded=True)
    kept = sorted(p.name for p in paths.processed.iterdir())
    assert kept == ["firewall_rules.json.08.gz", "firewall_rules.json.09.gz", "firewall_rules.json.10.gz",
                    "firewall_rules.json.11.gz", "firewall_rules.json.new.gz"]
    monkeypatch.setattr(shims, "ARCHIVE_KEEP_BYTES", 250)
    push.write_text('{"type": "firewallrules", "rules": []}')
    _archive(paths, push, succeeded=True)
    assert len(list(paths.processed.iterdir())) == 2  # the new one and one 100-byte file fit in 250 bytes


def test_an_archived_vpn_push_keeps_neither_its_key_nor_its_users_passwords(tmp_path):
    from vragent.lab import sample

    paths = Paths.from_root(tmp_path)
    paths.cache.mkdir(parents=True)
    batch = paths.cache / "VR-7a2d.cfg"
    batch.write_text(sample.batch_cfg(sample.named(sample.remote_access_vpn(psk="Sh4red-Key"),
                                                   sample.vpn_users(("alice", "al1ce-Pw9", True)))))
    _archive(paths, batch, succeeded=True)
    text = gzip.decompress((paths.processed / "VR-7a2d.cfg.gz").read_bytes()).decode()
    assert "Sh4red-Key" not in text and "al1ce-Pw9" not in text
    assert '"preshared_key":"(not shown)"' in text and '"user":"alice"' in text and '"vpn_server_ip"' in text
