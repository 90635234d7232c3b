"""The platform: search specs, orchestration, tracking, the database and the job store."""
