"""The capacity sample and forecast on the fake executor: the least-squares line against known
lines, days until full, a steady disk fill that fails with the right days, too few samples, a
corrupt store line, the sample step in daily (check mode too), and the PNG plot attached to the
run: in result.json, linked from report.md, embedded in report.ipynb."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import nbformat
import pytest

from runbooks.engine.runner import run
from runbooks.executors.fake import FakeExecutor
from runbooks.library import get_runbook
from runbooks.library._capacity import (
    METRICS, append_sample, days_until, format_ts, linear_fit, read_samples, store_file,
)
from runbooks.library.capacity import parse_sample
from tests.unit.runbooks.conftest import make_host

GIB = 1024 ** 3
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _out(root_used=40 * GIB, root_avail=60 * GIB, db=50 * 1024 ** 2, redis_used=2 * 1024 ** 2, redis_max=256 * 1024 ** 2):
    """The sample command's output as a Debian 12 host prints it (df -PB1, psql -tA, INFO memory)."""
    total = root_used + root_avail
    return (f"#cap-root\noverlay {total} {root_used} {root_avail} 40% /\n"
            f"#cap-docker\noverlay {total} {root_used} {root_avail} 40% /\n"
            f"#cap-db\n{db}\n#cap-redis\n# Memory\r\nused_memory:{redis_used}\r\nused_memory_human:2.00M\r\n"
            f"maxmemory:{redis_max}\r\nmaxmemory_human:256.00M\r\n#cap-end\n")


def _result(res):
    return json.loads(open(f"{res.run_dir}/result.json").read())


def _hr(data, name, host="h1"):
    return next(s for s in data["steps"] if s["name"] == name)["results"][host]


def _fake(**kw):
    return FakeExecutor().on(r"#cap-root", _out(**kw))


def _executors(fake):
    return {"remote": fake, "local": fake, "pyinfra": fake}


def _write_steady_fill(store, host="h1", days=10, root_used=40 * GIB, avail_now=60 * GIB, per_day=3 * GIB, redis_max=0):
    """One sample a day for ``days`` days up to now: ``/`` grows ``per_day`` a day, the total stays."""
    now = datetime.now(timezone.utc)
    path = store_file(store, host)
    for i in range(days, -1, -1):
        grown = per_day * (days - i)
        append_sample(path, {"ts": format_ts(now - timedelta(days=i)), "host": host, "run_id": f"r{i}",
                             "root_used": root_used + grown, "root_total": root_used + avail_now + per_day * days,
                             "root_avail": avail_now + per_day * days - grown,
                             "docker_used": root_used + grown, "docker_total": root_used + avail_now + per_day * days,
                             "docker_avail": avail_now + per_day * days - grown,
                             "db_bytes": 100 * 1024 ** 2, "redis_used": 1024 ** 2, "redis_max": redis_max})
    return path


@pytest.mark.parametrize("slope,intercept", [(2.0, 1.0), (-0.5, 10.0), (0.0, 7.0), (1e9, 4e10)])
def test_linear_fit_recovers_known_lines(slope, intercept):
    fit = linear_fit([(x, intercept + slope * x) for x in (0, 0.5, 1, 3, 7.25)])
    assert fit.slope == pytest.approx(slope) and fit.intercept == pytest.approx(intercept) and fit.n == 5
    assert fit.r2 == pytest.approx(1.0)


def test_linear_fit_is_least_squares_on_noisy_points():
    # y = x + noise (+1, -1, -1, +1): the symmetric noise leaves the line y = x; r2 below 1
    fit = linear_fit([(0, 1), (1, 0), (2, 1), (3, 4)])
    assert fit.slope == pytest.approx(1.0) and fit.intercept == pytest.approx(0.0, abs=1e-12)
    assert 0 < fit.r2 < 1
    # (0,0) (1,1) (2,3) by hand: slope 3/2, intercept -1/6, r2 = 1 - (1/6) / (42/9) = 27/28
    fit = linear_fit([(0, 0), (1, 1), (2, 3)])
    assert (fit.slope, fit.intercept, fit.r2) == (pytest.approx(1.5), pytest.approx(-1 / 6), pytest.approx(27 / 28))


@pytest.mark.parametrize("points", [[], [(1, 1)], [(2, 1), (2, 5)]])
def test_linear_fit_refuses_what_is_no_line(points):
    with pytest.raises(ValueError):
        linear_fit(points)


def test_days_until_full():
    fit = linear_fit([(0, 10), (1, 12), (2, 14)])  # 2 a day
    assert days_until(fit, 20, 2) == pytest.approx(3.0)
    assert days_until(fit, 13, 2) == 0.0          # already past the limit
    assert days_until(fit, None, 2) is None       # no limit (Redis maxmemory 0)
    assert days_until(linear_fit([(0, 5), (1, 5)]), 20, 1) is None  # not growing
    assert days_until(linear_fit([(0, 5), (1, 4)]), 20, 1) is None  # shrinking


def test_parse_sample_reads_df_psql_and_redis_info():
    values, problems = parse_sample(_out())
    assert problems == []
    assert values == {"root_total": 100 * GIB, "root_used": 40 * GIB, "root_avail": 60 * GIB, "docker_total": 100 * GIB,
                      "docker_used": 40 * GIB, "docker_avail": 60 * GIB, "db_bytes": 50 * 1024 ** 2,
                      "redis_used": 2 * 1024 ** 2, "redis_max": 256 * 1024 ** 2}


def test_parse_sample_names_what_it_could_not_read():
    text = _out().replace("#cap-db\n52428800\n", "#cap-db\nservice \"postgres\" is not running\n")
    values, problems = parse_sample(text)
    assert values["db_bytes"] is None and values["root_used"] == 40 * GIB
    assert problems == ['database size unreadable: service "postgres" is not running']


def test_daily_samples_into_the_store_beside_the_runs_dir_also_in_check_mode(tmp_path):
    rb = get_runbook("daily")
    fake = _fake()
    runs = tmp_path / "state" / "runs"
    run(rb, [make_host("h1"), make_host("h2")], rb.params(drift=False), _executors(fake), runs_dir=runs)
    res = run(rb, [make_host("h1"), make_host("h2")], rb.params(drift=False), _executors(fake), runs_dir=runs, check=True)
    assert _hr(_result(res), "Capacity sample")["status"] == "ok"
    for host in ("h1", "h2"):
        samples, bad = read_samples(tmp_path / "state" / "capacity" / f"{host}.jsonl")
        assert bad == [] and len(samples) == 2
        assert samples[0]["host"] == host and samples[0]["root_used"] == 40 * GIB and samples[0]["ts"].endswith("Z")
    cmd = next(c for c in fake.commands("h1") if "#cap-root" in c)
    assert "pg_database_size" in cmd and "INFO memory" in cmd and "DockerRootDir" in cmd
    assert not (runs / "capacity").exists()  # outside the runs directory and its rotation


def test_sample_store_survives_rotation_and_honours_capacity_dir(tmp_path):
    rb = get_runbook("capacity")
    for _ in range(3):
        run(rb, [make_host("h1")], rb.params(capacity_dir=str(tmp_path / "store")), _executors(_fake()),
            runs_dir=tmp_path / "runs", keep_runs=1)
    assert len(list((tmp_path / "runs").iterdir())) == 1
    samples, _ = read_samples(tmp_path / "store" / "h1.jsonl")
    assert len(samples) == 3


def test_steady_disk_fill_fails_with_the_right_days_and_plots(tmp_path):
    store = tmp_path / "store"
    # 3 GiB a day, 60 GiB left now: full in 20 days; the run's own sample (same values) adds a point on the line
    _write_steady_fill(store, per_day=3 * GIB, avail_now=60 * GIB)
    rb = get_runbook("capacity")
    last = 40 * GIB + 30 * GIB
    fake = _fake(root_used=last, root_avail=60 * GIB, db=100 * 1024 ** 2, redis_used=1024 ** 2)
    res = run(rb, [make_host("h1")], rb.params(capacity_dir=str(store)), _executors(fake), runs_dir=tmp_path / "runs")
    data = _result(res)
    hr = _hr(data, "Capacity forecast")
    assert hr["status"] == "failed", hr
    assert hr["message"].startswith("disk / full in 20.0 days; disk docker data full in 20.0 days (< 30)")
    disk = hr["data"]["metrics"]["disk /"]
    assert disk["samples"] == 12 and disk["days_until_full"] == pytest.approx(20.0, abs=0.01)
    assert disk["slope_bytes_per_day"] == pytest.approx(3 * GIB, rel=1e-4)
    assert hr["data"]["metrics"]["redis"]["days_until_full"] is None  # maxmemory 256 MiB, usage flat
    assert hr["data"]["metrics"]["database"]["days_until_full"] is None
    points = next(t for t in hr["tables"] if t["title"] == "data points (MiB)")
    assert len(points["rows"]) == 12 and points["columns"] == ["ts"] + [m.label for m in METRICS]
    assert points["rows"][0][1] == 40 * 1024 and points["rows"][-1][1] == 70 * 1024
    # the plot: attached (result.json), linked (report.md), embedded (report.ipynb)
    assert hr["files"] == ["capacity-h1.png"]
    png = (tmp_path / "runs" / data["run_id"] / "capacity-h1.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 5000
    assert "[capacity-h1.png](capacity-h1.png)" in (tmp_path / "runs" / data["run_id"] / "report.md").read_text()
    nb = nbformat.read(str(tmp_path / "runs" / data["run_id"] / "report.ipynb"), as_version=4)
    nbformat.validate(nb)
    images = [o["data"]["image/png"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.get("output_type") == "display_data" and "image/png" in o.get("data", {})]
    assert len(images) == 1 and base64.b64decode(images[0]) == png


def test_a_slow_fill_passes_and_a_warn_threshold_above_it_fails(tmp_path):
    store = tmp_path / "store"
    _write_steady_fill(store, per_day=GIB, avail_now=100 * GIB)  # 100 days left
    rb = get_runbook("capacity")
    params = {"capacity_dir": str(store)}
    ok = _result(run(rb, [make_host("h1")], rb.params(**params), _executors(FakeExecutor()), runs_dir=tmp_path / "r1"))
    hr = _hr(ok, "Capacity forecast")
    assert hr["status"] == "ok" and hr["message"] == "nothing full within 30 days (soonest in 100.0)"
    bad = _result(run(rb, [make_host("h1")], rb.params(capacity_warn_days=120, **params), _executors(FakeExecutor()),
                      runs_dir=tmp_path / "r2"))
    assert _hr(bad, "Capacity forecast")["message"].startswith("disk / full in 100.0 days")


def test_the_window_drops_old_samples(tmp_path):
    store = tmp_path / "store"
    _write_steady_fill(store, days=10)
    rb = get_runbook("capacity")
    res = run(rb, [make_host("h1")], rb.params(capacity_dir=str(store), capacity_window_days=3),
              _executors(FakeExecutor()), runs_dir=tmp_path / "runs")
    hr = _hr(_result(res), "Capacity forecast")
    assert hr["data"]["samples"] == 3  # days 2, 1, 0 ago (day 3 is a moment older than the window)


@pytest.mark.parametrize("days,expect", [(None, "too few samples: 1 in the last 30 days spanning 0.0 h"),
                                         (0, "too few samples: 2 in the last 30 days spanning 0.0 h")])
def test_too_few_samples_is_a_clear_skip(tmp_path, days, expect):
    store = tmp_path / "store"
    if days is not None:
        append_sample(store_file(store, "h1"), {"ts": format_ts(datetime.now(timezone.utc)), "root_used": 1})
    rb = get_runbook("capacity")
    res = run(rb, [make_host("h1")], rb.params(capacity_dir=str(store)), _executors(_fake()), runs_dir=tmp_path / "runs")
    hr = _hr(_result(res), "Capacity forecast")
    assert hr["status"] == "skipped" and hr["message"].startswith(expect), hr["message"]
    assert hr["message"].endswith("(need 2 or more over at least 1 day)")
    assert not list((tmp_path / "runs").glob("*/capacity-*.png"))


def test_a_corrupt_store_line_is_skipped_and_reported(tmp_path):
    store = tmp_path / "store"
    path = _write_steady_fill(store, per_day=GIB, avail_now=100 * GIB)
    lines = path.read_text().splitlines()
    lines.insert(3, '{"ts": "not a time", "root_used": 1}')
    path.write_text("\n".join(lines) + "\n" + '{"ts": "2026-12-0')  # + a crashed writer's partial last line
    samples, bad = read_samples(path)
    assert len(samples) == 11 and bad == ["line 4: no readable ts", "line 13: not JSON"]
    # the next append ends the broken line first: the new sample is whole
    append_sample(path, {"ts": format_ts(datetime.now(timezone.utc)), "root_used": 5})
    samples, bad = read_samples(path)
    assert len(samples) == 12 and samples[-1]["root_used"] == 5 and bad == ["line 4: no readable ts", "line 13: not JSON"]
    rb = get_runbook("capacity")
    res = run(rb, [make_host("h1")], rb.params(capacity_dir=str(store)), _executors(FakeExecutor()),
              runs_dir=tmp_path / "runs")
    hr = _hr(_result(res), "Capacity forecast")
    assert "skipped 2 bad store line(s): line 4: no readable ts, line 13: not JSON" in hr["message"]
    assert hr["data"]["bad_lines"] == ["line 4: no readable ts", "line 13: not JSON"]


def test_an_unreadable_sample_fails_the_step_and_writes_nothing(tmp_path):
    rb = get_runbook("capacity")
    res = run(rb, [make_host("h1")], rb.params(capacity_dir=str(tmp_path / "store")), _executors(FakeExecutor()),
              runs_dir=tmp_path / "runs")
    hr = _hr(_result(res), "Capacity sample")
    assert hr["status"] == "failed" and hr["message"].startswith("nothing readable")
    assert not (tmp_path / "store" / "h1.jsonl").exists()


def test_a_missing_attachment_is_reported_in_the_notebook_not_read(tmp_path):
    from runbooks.engine.notebook import build_notebook

    result = {"run_id": "r", "runbook": "x", "schema_version": 2, "title": "t", "status": "ok", "check": False,
              "started_at": "", "finished_at": "", "duration_s": 0.0, "inventory": "", "params": {}, "hosts": ["h1"],
              "steps": [{"name": "s", "doc": "", "target": "all", "executor": "local", "on_failure": "continue",
                         "results": {"h1": {"status": "ok", "message": "", "attempts": 1, "duration_s": 0.0,
                                            "files": ["gone.png", "../escape.png"]}}}]}
    (tmp_path.parent / "escape.png").write_bytes(PNG_MAGIC)
    nb = build_notebook(result, tmp_path)
    texts = [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert "h1: attachment gone.png not in the run directory\n" in texts
    assert "h1: attachment ../escape.png not in the run directory\n" in texts


def test_a_live_session_shows_the_plot_inline(tmp_path):
    from runbooks.engine.session import Session

    store = tmp_path / "store"
    _write_steady_fill(store, per_day=GIB, avail_now=100 * GIB)
    rb = get_runbook("capacity")
    session = Session(rb, [make_host("h1")], rb.params(capacity_dir=str(store)), _executors(FakeExecutor()),
                      runs_dir=tmp_path / "runs")
    view = session.run("Capacity forecast")
    session.close()
    png = (tmp_path / "runs" / session.run_id / "capacity-h1.png").read_bytes()
    assert f'src="data:image/png;base64,{base64.b64encode(png).decode()}"' in view._repr_html_()
