"""dotsctl doctor shows what the policy daemon refused to believe (issue 12)."""

from dots_cli.doctor import OK, PROBLEM, WARNING, trust_checks


def test_forged_signals_and_failures_are_shown():
    checks = {c.name: c for c in trust_checks({
        "signals_rejected": 7, "signals_rejected_by": {"forged-name-owner-changed": 2,
                                                       "not-from-the-collector": 5},
        "malformed_batches": 1, "storage_failing": True, "logind_failures": 3})}
    assert checks["forged signals"].state == WARNING
    assert "not-from-the-collector: 5" in checks["forged signals"].detail
    assert checks["malformed batches"].state == WARNING
    assert checks["storage"].state == PROBLEM
    assert checks["logind"].state == WARNING


def test_nothing_forged_is_ok():
    assert [(c.name, c.state) for c in trust_checks({"signals_rejected": 0})] == [
        ("forged signals", OK)]
