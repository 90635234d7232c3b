"""`SEQARENA_STORAGE` (issue 20): the forms it takes, the one-line refusals of the others, the probe of a
local folder, and an S3 filesystem that carries no credentials when Tune pickles it. The probe of a
real S3 server and a search resumed from one: tests/integration/test_storage_s3.py."""

from __future__ import annotations

import pickle
import secrets
import socket
from pathlib import Path

import pytest

from seqarena.errors import BadInput
from seqarena.platform import arm_study, storage


@pytest.fixture(autouse=True)
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SEQARENA_STORAGE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
                 "SEQARENA_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path / "home"))


@pytest.mark.parametrize("value", ["gs://bucket/prefix", "http://127.0.0.1:9000/bucket", "relative/folder",
                                   "s3://", "s3://Not_A_Bucket/x", "s3://bucket/x?region=eu"])
def test_other_forms_are_refused_in_one_line_naming_the_variable_and_the_allowed_forms(value: str) -> None:
    with pytest.raises(BadInput) as refused:
        storage.parse(value)
    message = str(refused.value)
    assert message.startswith("SEQARENA_STORAGE: got ") and "\n" not in message
    assert "s3://bucket/prefix" in message and "absolute folder path" in message


def test_credentials_written_into_the_value_are_refused_without_echoing_them() -> None:
    with pytest.raises(BadInput) as refused:
        storage.parse("s3://AKIAXYZ:topsecret@bucket/prefix")
    assert "topsecret" not in str(refused.value) and "no credentials" in str(refused.value)


def test_an_s3_url_names_its_bucket_prefix_and_the_experiments_in_it() -> None:
    store = storage.parse("s3://my-bucket/teams/seq/")
    assert (store.bucket, store.root, store.is_s3) == ("my-bucket", "my-bucket/teams/seq", True)
    assert store.experiment("abc") == "my-bucket/teams/seq/abc"
    assert store.location("abc") == "s3://my-bucket/teams/seq/abc"
    again, name = storage.at(store.location("abc"))
    assert (again, name) == (store, "abc")
    assert storage.parse("s3://my-bucket").root == "my-bucket"


def test_unset_is_the_folder_under_seqarena_home_and_a_folder_path_is_kept(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert storage.storage() == storage.Storage(str(tmp_path / "home" / "ray_results"))
    monkeypatch.setenv("SEQARENA_STORAGE", str(tmp_path / "shared") + "/")
    store = storage.storage()
    assert (store.root, store.is_s3, store.filesystem()) == (str(tmp_path / "shared"), False, None)
    assert storage.at(store.location("s1")) == (store, "s1")


def test_a_folder_is_probed_by_writing_and_deleting_a_file(tmp_path: Path) -> None:
    store = storage.Storage(str(tmp_path / "shared" / "runs"))
    store.check()
    assert (tmp_path / "shared" / "runs").is_dir() and list((tmp_path / "shared" / "runs").iterdir()) == []
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(BadInput, match=r"^SEQARENA_STORAGE: got '.*a-file/runs'.*a store seqarena can write to"):
        storage.Storage(str(tmp_path / "a-file" / "runs")).check()


def test_an_endpoint_where_nothing_listens_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("SEQARENA_CONNECT_TIMEOUT_S", "2")
    with pytest.raises(BadInput, match=rf"^AWS_ENDPOINT_URL: got 'http://127.0.0.1:{port}'.*nothing answers"):
        storage.parse("s3://bucket/prefix").check()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "ftp://127.0.0.1:21")
    with pytest.raises(BadInput, match=r"^AWS_ENDPOINT_URL: got 'ftp://127.0.0.1:21'; allowed: an http\(s\) URL"):
        storage.s3_filesystem()


def test_the_s3_filesystem_tune_pickles_holds_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    secret, key = f"secret-{secrets.token_hex(12)}", f"AKIA{secrets.token_hex(8).upper()}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    fs = storage.parse("s3://bucket/prefix").filesystem()
    dumped = pickle.dumps(fs)
    assert secret.encode() not in dumped and key.encode() not in dumped
    assert b"127.0.0.1:9000" in dumped  # the endpoint is there: the trials' nodes reach the same store


def test_studies_live_beside_a_sqlite_platform_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_DB_URL", f"sqlite:///{tmp_path / 'db' / 'platform.db'}")
    (tmp_path / "db").mkdir()
    study = arm_study.ArmStudy(None, "search-1/adding/T=10/gru", arm_study.optuna.samplers.RandomSampler(seed=0),
                               {"lr": arm_study.optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)})
    assert set(study.ask("t1")) == {"lr"}
    study.tell("t1", 0.5, error=False)
    assert (tmp_path / "db" / "platform-optuna.db").exists()
    loaded = arm_study.optuna.load_study(study_name="search-1/adding/T=10/gru",
                                         storage=f"sqlite:///{tmp_path / 'db' / 'platform-optuna.db'}")
    assert [trial.value for trial in loaded.trials] == [0.5]
    assert b"platform.db" not in pickle.dumps(study)  # the pickled study names no database: it is read at run time
    monkeypatch.setenv("SEQARENA_DB_URL", "mysql://user@host/db")
    with pytest.raises(BadInput, match=r"^SEQARENA_DB_URL: .*a PostgreSQL URL or a SQLite file"):
        arm_study.study_storage()
