"""The memos that let a re-applied push skip work: they fit only their exact key."""

from __future__ import annotations

from vragent.shell import memo, netlink
from vragent.shell.netlink import RulesetGeneration
from vragent.paths import Paths
from vragent.tables import TableSpec

GENERATION = RulesetGeneration(boot="b1", netns=4096, generation=27)


def test_tables_memo_fits_only_the_generation_namespace_and_state_it_was_verified_at(tmp_path):
    tables = memo.TablesMemo(Paths.from_root(tmp_path))
    state = memo.digest("state one")
    verified = {"nat": TableSpec("nat", {}, {"PREROUTING": ["-A PREROUTING -j vr-dnat"]},
                                 {"vr-dnat": ["-A vr-dnat -d 198.51.100.21/32 -j DNAT --to-destination 192.0.2.12"]})}
    assert not tables.fits(GENERATION, state) and tables.running(GENERATION) is None
    tables.remember(GENERATION, state, verified)
    assert tables.fits(GENERATION, state)
    # What runs is known at that generation, whatever state a push now brings.
    assert tables.running(GENERATION) == {"nat": ({}, verified["nat"].jumps, verified["nat"].chains)}
    assert tables.running(GENERATION.advanced_by(1)) is None
    assert not tables.fits(GENERATION.advanced_by(1), state)  # somebody committed a change
    assert not tables.fits(GENERATION, memo.digest("state two"))
    assert not tables.fits(RulesetGeneration("b1", 8192, 27), state)  # another namespace, same count
    assert not tables.fits(RulesetGeneration("b2", 4096, 27), state)  # after a reboot
    assert not tables.fits(None, state)  # no generation to vouch (iptables-legacy)
    tables.remember(None, state, verified)
    assert not tables.fits(GENERATION, state) and tables.running(GENERATION) is None


def test_merge_memo_fits_only_the_same_push_onto_the_same_state(tmp_path):
    merges = memo.MergeMemo(Paths.from_root(tmp_path))
    state = memo.digest("state")
    merges.remember("push-1", state)
    assert merges.fits("push-1", state)
    assert not merges.fits("push-2", state)
    assert not merges.fits("push-1", memo.digest("other state"))
    assert not merges.fits(None, state)


def test_no_generation_when_iptables_is_not_the_nf_tables_one(tmp_path, monkeypatch):
    stand_in = tmp_path / "iptables-restore"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert netlink.ruleset_generation() is None


def test_tables_memo_does_not_fit_another_vragent(tmp_path, monkeypatch):
    tables = memo.TablesMemo(Paths.from_root(tmp_path))
    state = memo.digest("state")
    tables.remember(GENERATION, state, {})
    assert tables.fits(GENERATION, state)
    monkeypatch.setattr(memo, "_code_identity", lambda: "0.2.0:1:68")  # upgraded, or a renderer edited
    assert not tables.fits(GENERATION, state)
    assert tables.running(GENERATION) == {}  # what runs is still known: the kernel vouches for it
