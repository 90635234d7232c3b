"""seqarena: compare sequence models on long-range-memory benchmarks.

Subpackages: `cells` (the model zoo), `tasks` (benchmarks), `workers` (one training trial),
`platform` (searches, tracking, jobs) and `dashboard` (the Streamlit app).
"""

__version__ = "0.1.0"


def load_run(run_id: str, tracking_uri: str | None = None):
    """The trained model (backbone and task head, a `torch.nn.Module` in eval mode, on the CPU) of
    the trial recorded as MLflow run `run_id`, with its best validation weights.

    `tracking_uri` is the MLflow store (default: `MLFLOW_TRACKING_URI`, else the embedded store under
    `SEQARENA_HOME`). Each arm's best trial keeps its checkpoint in MLflow. The model is rebuilt from
    the run's recorded configuration and only tensors are read from the checkpoint (no unpickling);
    `seqarena.platform.trained` says why this is not MLflow's PyTorch model flavour.

        model = seqarena.load_run("3f2a...")
        logits = model(x)            # x: [B, T, input_size]
    """
    from seqarena.platform.trained import load_run as load_trained

    return load_trained(run_id, tracking_uri).net
