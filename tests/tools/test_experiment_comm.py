"""``l4sim experiment comm-control``: the models' table, measured, deterministic."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from l4sim.cli import main
from l4sim.kernel.comm import COMM_MODELS
from l4sim.tools.boot import boot
from l4sim.tools.experiment_comm import comm_control


def test_the_table_shows_what_each_model_costs_and_allows() -> None:
    """Hops per request as the paper has them, scanning only with global ids, revocation only
    where the kernel has a means for it."""
    rows = {r["model"]: r for r in comm_control()}
    assert list(rows) == list(COMM_MODELS)
    assert all(r["ok"] and r["intra_ok"] for r in rows.values())
    hops = {m: r["ipcs_per_request"] for m, r in rows.items()}
    assert hops == {"capabilities": 1, "global-ids": 1, "clans-chiefs": 3, "redirection": 2,
                    "redirectors": 2, "pclans": 2, "virtual-threads": 1}
    assert all(r["kernel_entries"] == 2 * r["ipcs_per_request"] for r in rows.values())
    assert rows["clans-chiefs"]["latency_ns"] > rows["redirection"]["latency_ns"] > rows["capabilities"]["latency_ns"]
    assert [m for m, r in rows.items() if r["scannable"]] == ["global-ids"]
    assert {m for m, r in rows.items() if r["policy_enforced"]} == {
        "capabilities", "redirection", "pclans", "virtual-threads"}
    assert rows["redirectors"]["intra_ipcs"] == 2, "a redirector sees its space's IPC inside the domain too"
    assert all(r["delivery_on_completion"] == (r["ipcs_per_request"] == 1) for r in rows.values())
    assert all(r["sender_authenticated"] for r in rows.values())


def test_the_experiment_is_deterministic() -> None:
    """Two runs give the same table."""
    assert comm_control() == comm_control()


def test_cli_json_and_traces(tmp_path: Path) -> None:
    """``--json`` ends with the table; ``--trace-dir`` writes a Perfetto trace per model."""
    res = CliRunner().invoke(main, ["experiment", "comm-control", "--json", "--trace-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    table = json.loads(res.stdout.strip().splitlines()[-1])
    assert [r["model"] for r in table["models"]] == list(COMM_MODELS)
    assert {"model", "ipcs_per_request", "kernel_entries", "latency_ns", "policy_change",
            "sender_authenticated", "scannable"} <= set(table["models"][0])
    for m in COMM_MODELS:
        trace = json.loads((tmp_path / f"comm-{m}.json").read_text())
        assert any(e.get("name", "").startswith("ipc") for e in trace["traceEvents"])
    bad = CliRunner().invoke(main, ["experiment", "comm-control", "--trace-dir", str(tmp_path / "nope")])
    assert bad.exit_code == 2 and "not a directory" in bad.stderr


def test_the_runtime_boots_the_same_under_every_model() -> None:
    """Capability-addressed IPC is unchanged under every model: the default system's console is
    the same."""
    want = boot("default").kernel.machine.uart.text()
    for m in COMM_MODELS[1:]:
        res = boot("default", comm_model=m)
        assert res.kernel.machine.uart.text() == want, m
        assert res.summary()["comm_model"] == m
    bad = CliRunner().invoke(main, ["boot", "--comm-model", "telepathy"])
    assert bad.exit_code == 2 and "unknown communication model" in bad.stderr
