"""dotsctl app commands that name apps as parents do (no bus needed for
what is tested here: naming errors, the running programs of a real child,
the rows of ``app list``)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dots_cli.client import CliError
from dots_cli.commands.apps_by_identity import app, app_rows, pick_running, running_programs
from tests.helpers import popen_as, uid_of, wait_for


def test_a_name_that_resolves_to_nothing_is_an_error_before_any_call():
    result = CliRunner().invoke(app, ["block", "alice", "no-such-game-anywhere"])
    assert result.exit_code != 0
    assert isinstance(result.exception, CliError)
    assert "no app called 'no-such-game-anywhere'" in result.exception.message


@pytest.mark.bpf  # needs root to run as the child
def test_running_programs_of_the_child(child_user):
    proc = popen_as(child_user, ["/usr/bin/sleep", "30"])
    try:
        wait_for(lambda: "/usr/bin/sleep" in running_programs(uid_of(child_user)),
                 what="the child's sleep in its running programs")
        assert pick_running(child_user, "slee") == ["/usr/bin/sleep"]
        with pytest.raises(CliError, match="runs no program matching"):
            pick_running(child_user, "minecraft")
    finally:
        proc.kill()
        proc.wait()


def test_app_list_rows_by_identity(tmp_path):
    policy = {"blocked_apps": ["/usr/bin/sleep"], "app_limits_minutes": {"ls": 1},
              "always_allowed_apps": ["/usr/bin/true"]}
    usage = [{"app": "/usr/bin/ls", "active_seconds": 120, "launches": 1},
             {"app": "/usr/bin/true", "active_seconds": 600, "launches": 2},
             {"app": "/usr/bin/vim", "active_seconds": 30, "launches": 1}]
    rows = {r["app"]: r for r in app_rows(policy, usage, {"/usr/bin/vim"})}
    assert rows["/usr/bin/sleep"]["state"] == "blocked"
    assert (rows["ls"]["today_seconds"], rows["ls"]["state"]) == (120, "limit reached")
    assert rows["/usr/bin/true"]["rule"] == "always allowed"
    assert rows["/usr/bin/vim"]["state"] == "running"
