"""ASHA for pack members (abl.search._asha.MemberRungs): Tune's own ASHA rule per member, a
member pruned once stays pruned, an ended report is never stopped, and rungs rebuilt from a
store decide as the rungs that saw the reports live."""

from __future__ import annotations

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from abl.search._asha import MemberRungs, _Member

ASHA = {"time_attr": "training_iteration", "max_t": 4, "grace_period": 1, "reduction_factor": 2}


def report(epoch: int, loss: float, **more: object) -> dict:
    return {"training_iteration": epoch, "val/loss": loss, **more}


# (member, epoch, val/loss) in arrival order: two packs of three, four epochs
REPORTS = [
    (f"p{p}.{i}", epoch, 1.0 / epoch + 0.1 * i + 0.05 * p)
    for epoch in (1, 2, 3, 4)
    for p in (0, 1)
    for i in range(3)
]


def test_members_are_pruned_as_tunes_asha_prunes_trials_of_the_same_reports():
    rungs = MemberRungs("val/loss", "min", **ASHA)
    tune_asha = AsyncHyperBandScheduler(metric="val/loss", mode="min", **ASHA)
    stopped: set[str] = set()
    expected: dict[str, str] = {}
    got: dict[str, str] = {}
    for member, epoch, loss in REPORTS:
        if member in stopped:
            continue
        if epoch == 1:
            tune_asha.on_trial_add(None, _Member(member))
        decision = tune_asha.on_trial_result(None, _Member(member), report(epoch, loss))
        if decision == TrialScheduler.STOP:
            stopped.add(member)
            expected[member] = "completed" if epoch >= ASHA["max_t"] else "pruned"
        got.update(rungs.decide({member: report(epoch, loss)}))
    assert got == expected
    assert "pruned" in got.values() and "completed" in got.values()
    assert got["p0.0"] == "completed"  # the best member reaches max_t


def test_a_pruned_member_stays_pruned_and_an_ended_report_is_never_stopped():
    rungs = MemberRungs("val/loss", "min", **ASHA)
    assert rungs.decide({"p.0": report(1, 0.1), "p.1": report(1, 0.9)}) == {"p.1": "pruned"}
    # a restored pack reports p.1 again: it stays stopped, whatever it reports now
    assert rungs.decide({"p.1": report(1, 0.0)}) == {"p.1": "pruned"}
    # worse than the cutoff, but it said it diverged: recorded, not stopped by ASHA
    assert rungs.decide({"p.2": report(1, 5.0, **{"trial/status": "diverged"})}) == {}


def test_rungs_replayed_from_a_store_decide_as_the_live_ones():
    live = MemberRungs("val/loss", "min", **ASHA)
    seen: list[tuple[str, dict]] = []
    pruned: set[str] = set()
    for member, epoch, loss in REPORTS[:9]:  # epoch 1 of both packs, epoch 2 of pack 0
        if member in pruned:
            continue
        seen.append((member, report(epoch, loss)))
        pruned |= {
            m for m, s in live.decide({member: report(epoch, loss)}).items() if s == "pruned"
        }
    assert pruned  # the replay has a pruned member to keep
    replayed = MemberRungs("val/loss", "min", **ASHA)
    replayed.replay(sorted(seen, key=lambda s: s[0]), pruned)  # the store's order: by member
    for member, epoch, loss in REPORTS[9:]:
        probe = {member: report(epoch, loss)}
        assert replayed.decide(dict(probe)) == live.decide(dict(probe)), member
