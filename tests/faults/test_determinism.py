"""Two uninterrupted runs of the same suite on CPU — each with a cold alignment cache of its
own — give byte-identical scores and identical verification metrics (real LFW subset)."""

from __future__ import annotations

from .conftest import Background
from .kit import Ctx, Run, assert_same_results, reference, run_suite, scenario, scenario_name


@scenario(order=2)
def second_run(ctx: Ctx) -> Run:
    out = run_suite(ctx, ctx.lfw100, env={**ctx.env, "FACEBENCH_CACHE": str(ctx.dir / "cache")})
    return Run(out, 0.0)


def test_two_runs_are_identical(background: Background) -> None:
    first = background.result(scenario_name(reference))
    second = background.result(scenario_name(second_run))
    assert_same_results(second.out, first.out)
