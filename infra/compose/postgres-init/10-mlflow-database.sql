-- Run once by the postgres image's entrypoint, on an empty data volume: MLflow's backend store gets a
-- database of its own, next to the platform database `seqarena` (POSTGRES_DB). Both belong to
-- POSTGRES_USER, which runs this script.
CREATE DATABASE mlflow;
