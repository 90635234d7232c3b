"""Secrets never in output (issue 18 §3): one `redact` for the CLI's errors, `status --json`, `jobs --json`,
the logs and the error texts stored in the database."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import update

from seqarena.platform import database, jobs
from seqarena.platform.redaction import RedactingFilter, redact
from seqarena.platform.schema import Job

PASSWORD, TOKEN = "pg-Pa55word", "mlflow-T0ken-abc"
SPEC = ("name: r\ntask: adding\nseq_lens: [20]\nmodels: [gru]\nbudget: {max_steps: 2, eval_every: 1}\n"
        "search: {algorithm: random, num_samples: 1, scheduler: none}\n")


@pytest.fixture
def secret_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    monkeypatch.delenv("SEQARENA_DB_URL", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"https://seqarena:{TOKEN}@mlflow.example.org")
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    return tmp_path


def test_redact_masks_url_passwords_and_secret_values(secret_env: Path) -> None:
    text = (f"MlflowException: https://seqarena:{TOKEN}@mlflow.example.org/api failed; "
            f"postgresql://u:other-pw@db/x; token {TOKEN}; {PASSWORD}; tok%2Den")
    assert redact(text) == ("MlflowException: https://seqarena:***@mlflow.example.org/api failed; "
                            "postgresql://u:***@db/x; token ***; ***; tok%2Den")


def test_status_and_jobs_json_and_errors_hold_no_secret(secret_env: Path, run_cli) -> None:
    engine = database.get_engine()
    job_id = jobs.submit(engine, SPEC)
    leaked = f"MlflowException: API request to https://seqarena:{TOKEN}@mlflow.example.org failed"
    with database.session_scope(engine) as session:  # a row written before errors were redacted
        session.execute(update(Job).where(Job.id == job_id).values(error=leaked))
    for args in (["status", job_id, "--json"], ["jobs", "--json"]):
        code, out, err = run_cli(args)
        assert code == 0 and job_id in out and "mlflow.example.org" in out
        assert TOKEN not in out + err
    claimed = jobs.claim(engine, "w1", 60)
    assert claimed is not None and jobs.finish(engine, job_id, "w1", "failed", error=leaked)
    with engine.connect() as conn:  # the stored text is redacted as it is written
        assert TOKEN not in conn.execute(Job.__table__.select()).mappings().one()["error"]
    code, out, err = run_cli(["status", f"nosuch-{TOKEN}"])
    assert code == 2 and TOKEN not in out + err and "***" in err


def test_log_records_are_redacted(secret_env: Path) -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "MLflow at %s failed", (f"https://a:{TOKEN}@h",),
                               None)
    assert RedactingFilter().filter(record) and record.getMessage() == "MLflow at https://a:***@h failed"
