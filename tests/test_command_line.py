"""Flags go anywhere on the command line: ``run FILE --inline k=v`` is ``run FILE k=v --inline``."""
from __future__ import annotations

import pytest

from orchestrator.cli import main, parser


@pytest.mark.parametrize("argv", [
    ["run", "s.yaml", "--inline", "grid.d=[16]", "seeds=[0]"],
    ["run", "s.yaml", "grid.d=[16]", "--inline", "seeds=[0]"],
    ["run", "--inline", "s.yaml", "grid.d=[16]", "seeds=[0]"],
    ["run", "s.yaml", "grid.d=[16]", "seeds=[0]", "--inline"],
])
def test_run_flags_anywhere(argv):
    args = parser().parse_args(argv)
    assert (args.sweep, args.overrides, args.inline) == ("s.yaml", ["grid.d=[16]", "seeds=[0]"], True)


def test_a_flag_with_a_value_between_overrides():
    args = parser().parse_args(["fit", "s.yaml", "a=1", "--bootstrap", "20", "b=2"])
    assert (args.overrides, args.bootstrap) == (["a=1", "b=2"], 20)


def test_an_unknown_flag_is_still_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["run", "s.yaml", "--inlined", "a=1"])
    assert exit_.value.code == 2 and "--inlined" in capsys.readouterr().err


def test_plan_with_an_override_after_a_flag_plans_the_overridden_grid(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\nexperiment: capacity\nfixed: {{method: gd, d: 16}}\ngrid: {{num_facts: [32]}}\n"
                    f"storage: {{root: '{tmp_path}'}}\n")
    assert main(["plan", str(path), "grid.num_facts=[32,512]"]) == 0
    out = capsys.readouterr().out
    assert "s: 2 cells" in out and "F = 512 > 272 = 2p" in out  # the plan's model-class warning
