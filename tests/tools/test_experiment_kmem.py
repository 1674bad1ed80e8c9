"""``l4sim experiment kmem`` and the kernel-memory models in boot and scripts."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from l4sim.cli import main
from l4sim.kernel.kmem import KMEM_MODELS
from l4sim.tools.boot import boot
from l4sim.tools.experiment_kmem import RT_JOBS, kmem_experiment


def test_only_the_global_pool_lets_the_hostile_starve_the_victims() -> None:
    """Quotas and the faulting models keep the victims whole; the pool does not; only a kpager
    takes memory back from the live hostile."""
    rows = {r["model"]: r for r in kmem_experiment()}
    assert list(rows) == list(KMEM_MODELS)
    for m in ("quotas", "lend-to-kernel", "kpager"):
        assert rows[m]["victim_deadline_misses"] == 0 and rows[m]["victim_failed_ops"] == [0, 0], m
        assert rows[m]["victim_ops"][0] == RT_JOBS
    pool = rows["global-pool"]
    assert pool["victim_deadline_misses"] > RT_JOBS // 2 and pool["victim_failed_ops"][1] > 0
    assert pool["kernel_bytes"] > rows["quotas"]["kernel_bytes"] * 3
    lend = rows["lend-to-kernel"]
    assert lend["frames_lent"] == 16 and lend["kernel_bytes"] > rows["quotas"]["kernel_bytes"]
    assert [m for m, r in rows.items() if r["reclaimable"]] == ["kpager"]
    assert rows["kpager"]["reclaimed_bytes"] == 16 * 4096
    assert rows["kpager"]["kernel_bytes"] < lend["kernel_bytes"]


def test_the_experiment_is_deterministic_and_speaks_json() -> None:
    res = CliRunner().invoke(main, ["experiment", "kmem", "--json"])
    assert res.exit_code == 0, res.output
    table = json.loads(res.stdout.strip().splitlines()[-1])
    assert table == {"models": kmem_experiment()}
    assert {"model", "hostile_objects", "victim_ops", "victim_deadline_misses", "kernel_bytes",
            "reclaimable"} <= set(table["models"][0])


def test_boot_and_scripts_choose_the_models(tmp_path: Path) -> None:
    """``--kmem-model`` and a script's ``kernel(...)`` select the models; the CLI wins; mistakes
    are one line."""
    want = boot("default").kernel.machine.uart.text()
    for m in KMEM_MODELS[1:]:
        res = boot("default", kmem_model=m)
        assert res.kernel.machine.uart.text() == want and res.summary()["kmem_model"] == m
    script = tmp_path / "s.py"
    script.write_text('kernel(comm_model="redirectors", kmem_model="global-pool")\n'
                      'start("a", "l4sim.scenarios.programs.demo:hello")\n')
    res = boot(str(script))
    assert (res.kernel.comm_model, res.kernel.kmem_model) == ("redirectors", "global-pool")
    res = boot(str(script), kmem_model="kpager")
    assert res.kernel.kmem_model == "kpager", "the command line wins"
    bad = tmp_path / "bad.py"
    bad.write_text('start("a", "l4sim.scenarios.programs.demo:hello")\nkernel(kmem_model="infinite")\n')
    out = CliRunner().invoke(main, ["boot", str(bad)])
    assert out.exit_code == 2 and len(out.stderr.splitlines()) == 1
    assert "call it first" in out.stderr
    bad.write_text('kernel(kmem_model="infinite")\n')
    out = CliRunner().invoke(main, ["boot", str(bad)])
    assert out.exit_code == 2 and "unknown kernel-memory model 'infinite'" in out.stderr
