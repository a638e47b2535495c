"""The long mode's figures, from a small file counted by hand."""

from __future__ import annotations

import json

from tests.faults import summary


def line(**fields) -> str:
    return json.dumps(fields)


def test_the_summary_counts_kill_points_divergences_and_schedules(tmp_path, capsys):
    lines = [
        line(command="promote", seed=0, killed=True, rerun_code=0, divergences=[], locks_held=[]),
        line(command="promote", seed=1, killed=False, rerun_code=0, divergences=[], locks_held=[]),
        line(command="mine", seed=0, killed=True, rerun_code=1, divergences=["re-run exit 1"], locks_held=[]),
        line(pair="publish+publish", backend="sqlite", offset=0, exit=[0, 75], problems=[]),
        line(pair="publish+publish", backend="sqlite", offset=1, exit=[0, 0], problems=[]),
    ]
    assert summary.summarize(lines) == {
        "promote": {"kill_points": 2, "killed": 1, "finished_first": 1, "divergent": 0, "stale_locks": 0,
                    "rerun_failed": 0},
        "mine": {"kill_points": 1, "killed": 1, "finished_first": 0, "divergent": 1, "stale_locks": 0,
                 "rerun_failed": 1}}
    assert summary.summarize_pairs(lines) == {"publish+publish (sqlite)": {"schedules": 2, "refused": 1, "broken": 0}}
    path = tmp_path / "figures.jsonl"
    path.write_text("\n".join(lines))
    assert summary.main([str(path)]) == 1  # a divergence: the run failed
    printed = capsys.readouterr().out
    assert "publish+publish (sqlite)" in printed and "mine" in printed
