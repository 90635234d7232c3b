"""The authors' training protocols around the cells (issue 16, docs/reference/protocols.md): readout
initialisations, weight decay's scope and placement, learning-rate schedules in epochs, dropout
placement and per-layer values. Each test fails on the protocol seqarena used before."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from seqarena import cells
from seqarena.cells.space import resolve
from seqarena.errors import BadInput
from seqarena.workers.config import make_config, prepare
from seqarena.workers.protocol import LRSchedule, init_readout, make_optimizer, weight_penalty
from seqarena.workers.results import EvalReport
from seqarena.workers.trial import Observer, Trainer, build_model, run_trial


def defaults(model: str, task: str) -> dict:
    return resolve(cells.space(model), {}, task=task)


def readout_of(model: str, task: str, seq_len: int = 10, **hparams) -> nn.Linear:
    torch.manual_seed(0)
    config = make_config(model=model, task=task, seq_len=seq_len, hparams=hparams,
                         task_options={"n_val": 4, "n_test": 4})
    return build_model(prepare(config)).head.linear.requires_grad_(False)


# --- readout initialisation ---------------------------------------------------------------------


def test_lem_reads_out_through_a_he_normal_layer() -> None:
    weight = readout_of("lem", "adding", hidden_size=128).weight
    # kaiming_normal_ at H = 128: std sqrt(2/128) = 0.125; torch's default U(±1/sqrt(128)) has std 0.051
    assert 0.10 < float(weight.std()) < 0.15


def test_unicornn_reads_out_through_a_he_normal_layer_with_zero_bias() -> None:
    linear = readout_of("unicornn", "adding", hidden_size=128, num_layers=1)
    assert 0.10 < float(linear.weight.std()) < 0.15
    assert torch.count_nonzero(linear.bias) == 0


def test_janet_reads_out_through_a_glorot_uniform_layer_with_zero_bias() -> None:
    linear = readout_of("janet", "adding", hidden_size=128)
    bound = math.sqrt(6 / (128 + 1))  # Glorot-uniform of a [1, 128] matrix: U(±0.2157), std 0.125
    assert float(linear.weight.abs().max()) <= bound and 0.10 < float(linear.weight.std()) < 0.15
    assert torch.count_nonzero(linear.bias) == 0


def test_tcn_reads_out_adding_and_copy_through_small_normal_weights_and_mnist_through_torchs_default() -> None:
    assert 0.005 < float(readout_of("tcn", "adding", hidden_size=30).weight.std()) < 0.015  # N(0, 0.01)
    copy_std = float(readout_of("tcn", "copy", hidden_size=30).weight.std())
    assert 0.007 < copy_std < 0.013  # 300 weights
    assert defaults("tcn", "smnist")["readout_init"] == "torch"


def test_the_other_models_keep_torchs_default_readout() -> None:
    weight = readout_of("cornn", "adding", hidden_size=128).weight
    assert float(weight.abs().max()) <= 1 / math.sqrt(128)  # nn.Linear: U(±1/sqrt(H))
    assert {defaults(name, "adding")["readout_init"] for name in ("rnn", "lstm", "gru", "cornn")} == {"torch"}


def test_each_readout_scheme_gives_its_statistics() -> None:
    torch.manual_seed(0)
    for scheme, std in (("kaiming_normal", math.sqrt(2 / 400)), ("normal_0.01", 0.01),
                        ("glorot_uniform_zero_bias", math.sqrt(2 / 410))):
        linear = nn.Linear(400, 10)
        init_readout(linear, scheme)
        assert abs(float(linear.weight.std()) / std - 1) < 0.05, scheme
    with pytest.raises(BadInput, match="readout_init"):
        init_readout(nn.Linear(4, 1), "xavier")


# --- weight decay ---------------------------------------------------------------------------------


def test_janet_decays_weights_only_on_mnist_and_pmnist_and_never_its_biases() -> None:
    assert defaults("janet", "adding")["weight_decay"] == 0.0  # main.py `--wd` default
    assert defaults("janet", "copy")["weight_decay"] == 0.0
    for task in ("smnist", "psmnist"):
        hp = defaults("janet", task)
        assert (hp["weight_decay"], hp["weight_decay_on"], hp["weight_decay_in"]) == (1e-5, "matrices", "loss")


def test_a_penalty_in_the_loss_acts_on_the_matrices_only_and_is_clipped_with_the_rest() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    hparams = {"weight_decay": 0.1, "weight_decay_on": "matrices", "weight_decay_in": "loss"}
    penalty = weight_penalty(model, hparams)
    by_hand = 0.1 * (model[0].weight.pow(2).sum() + model[1].weight.pow(2).sum()) / 2
    assert torch.allclose(penalty, by_hand)
    penalty.backward()
    assert torch.allclose(model[0].weight.grad, 0.1 * model[0].weight)  # d/dv wd·v²/2 = wd·v
    assert model[0].bias.grad is None and model[1].bias.grad is None  # biases untouched
    # in the optimiser instead: nothing in the loss, and the optimiser's groups split the same way
    assert weight_penalty(model, {**hparams, "weight_decay_in": "optimizer"}) is None
    optimizer = make_optimizer(model, {**hparams, "weight_decay_in": "optimizer", "optimizer": "adam", "lr": 1e-3})
    decays = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert decays[id(model[0].weight)] == 0.1 and decays[id(model[0].bias)] == 0.0


def test_janets_trainer_puts_its_decay_in_the_loss_not_the_optimizer(small_data: Path) -> None:
    config = make_config(model="janet", task="psmnist", seq_len=784, steps=1, eval_every=1,
                         hparams={"hidden_size": 4}, task_options={"n_val": 100, "n_test": 100})
    trainer = Trainer(prepare(config))
    assert all(group["weight_decay"] == 0.0 for group in trainer.optimizer.param_groups)
    penalty = weight_penalty(trainer.model, trainer.setup.hparams)
    chrono_bias = trainer.model.backbone.layers[0].b
    matrices = [p for p in trainer.model.parameters() if p.dim() >= 2]
    assert torch.allclose(penalty, 1e-5 * sum(p.pow(2).sum() for p in matrices) / 2)
    assert all(p is not chrono_bias for p in matrices)


# --- learning-rate schedules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "task", "epochs", "repeats"),
    [("cornn", "smnist", 100, True), ("cornn", "psmnist", 100, True), ("lem", "smnist", 100, True),
     ("lem", "psmnist", 100, True), ("lem", "ncifar", 100, True), ("unicornn", "psmnist", 650, False),
     ("unicornn", "ncifar", 250, True), ("tcn", "psmnist", 10, True), ("tcn", "smnist", 10, True)],
)
def test_the_authors_schedules_are_declared_per_task(model: str, task: str, epochs: int, repeats: bool) -> None:
    hp = defaults(model, task)
    assert (hp["lr_decay_epochs"], hp["lr_decay_repeats"], hp["lr_decay_factor"]) == (epochs, repeats, 0.1)
    assert defaults(model, "adding")["lr_decay_epochs"] == 0


def test_a_schedule_in_epochs_changes_the_rate_at_the_steps_of_its_epochs() -> None:
    every = LRSchedule.from_hparams({"lr_decay_epochs": 100, "lr_decay_repeats": True, "lr_decay_factor": 0.1}, 445)
    assert every.every_steps == 44_500  # coRNN sMNIST: 53,400 / 120 epochs = 445 steps per epoch
    assert [every.multiplier(s) for s in (0, 44_499, 44_500, 88_999, 89_000)] == pytest.approx(
        [1.0, 1.0, 0.1, 0.1, 0.01])
    once = LRSchedule.from_hparams({"lr_decay_epochs": 2, "lr_decay_repeats": False, "lr_decay_factor": 0.1}, 3)
    assert [once.multiplier(s) for s in range(9)] == pytest.approx([1] * 6 + [0.1] * 3)
    assert once.decay_steps(20) == [6] and every.decay_steps(100_000) == [44_500, 89_000]
    with pytest.raises(BadInput, match="lr_decay_epochs"):
        LRSchedule.from_hparams({"lr_decay_epochs": 5, "lr_decay_repeats": False, "lr_decay_factor": 0.1}, None)


def _scheduled(**overrides) -> dict:
    """A GRU on the MNIST subset whose epochs are 3 steps: 3,300 training images, batches of 1,000."""
    fields = {"model": "gru", "task": "smnist", "seq_len": 784, "steps": 8, "eval_every": 2, "seed": 1,
              "hparams": {"hidden_size": 2, "batch_size": 1000, "lr": 0.01, "lr_decay_epochs": 1,
                          "lr_decay_repeats": True},
              "task_options": {"n_val": 700, "n_test": 100}}
    return {**fields, **overrides}


def test_the_trainer_decays_the_rate_after_each_epoch_and_records_where(small_data: Path) -> None:
    trainer = Trainer(prepare(make_config(**_scheduled())))
    rates: list[float] = []
    trainer.observer = Observer(on_step=lambda step, loss: rates.append(trainer.optimizer.param_groups[0]["lr"]))
    result = trainer.run()
    # the rate after each step is the one the next update uses: 0.01 for steps 1-3, 0.001 for 4-6, ...
    assert rates == pytest.approx([0.01, 0.01, 0.001, 0.001, 0.001, 1e-4, 1e-4, 1e-4])
    assert result.extra["steps_per_epoch"] == 3 and result.extra["lr_decay_steps"] == [3, 6]


class _Killed(Exception):
    pass


def test_a_resumed_trial_continues_its_schedule_exactly(small_data: Path, tmp_path: Path) -> None:
    config = make_config(**_scheduled(checkpoint_dir=tmp_path / "ckpt"))
    straight = run_trial(config.model_copy(update={"checkpoint_dir": None}))

    def stop_after_step_4(report: EvalReport) -> None:  # killed after the first decay (step 3)
        if report.step == 4:
            raise _Killed

    with pytest.raises(_Killed):
        run_trial(config, Observer(on_eval=stop_after_step_4))
    resumed_trainer = Trainer(prepare(config))
    resumed = resumed_trainer.run()
    assert resumed_trainer.scheduler.last_epoch == 8
    assert resumed_trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert resumed.curve == straight.curve and resumed.metric == straight.metric


# --- dropout placement, per-layer values, layers ------------------------------------------------


def test_janet_drops_between_layers_with_a_fresh_mask_per_step_and_never_before_the_readout() -> None:
    torch.manual_seed(0)
    model = cells.build("janet", 1, 8, 2, dropout=0.5)
    model.train()
    ones = torch.ones(4, 50, 8)
    between = model.drop(ones, 0)
    assert not torch.equal(between[:, 0], between[:, 1])  # a new mask at every step
    assert torch.equal(model.drop(ones, 1), ones)  # the readout reads the undropped top layer
    x = torch.randn(2, 20, 1)
    one_layer = cells.build("janet", 1, 8, 1, dropout=0.5)
    one_layer.train()
    first = one_layer(x)
    one_layer.eval()
    assert torch.equal(first, one_layer(x))  # one layer: no dropout at all, as in the authors' code
    variational = cells.build("janet", 1, 8, 2, dropout=0.5, dropout_placement="variational")
    variational.train()
    masked = variational.drop(ones, 1)
    assert torch.equal(masked[:, 0], masked[:, 1])  # one mask per sequence, the last layer included


def test_janet_reads_pmnist_with_one_layer_and_mnist_with_two() -> None:
    assert defaults("janet", "psmnist")["num_layers"] == 1
    assert defaults("janet", "smnist")["num_layers"] == 2


def test_unicornn_on_imdb_gives_each_layer_its_own_time_step() -> None:
    hp = defaults("unicornn", "imdb")
    model = cells.build("unicornn", 4, 8, int(hp["num_layers"]), dt=hp["dt"], dt_upper=hp["dt_upper"])
    assert [layer.dt for layer in model.layers] == [0.0066, 0.205]  # IMDB_task.py `--dt [0.0066, 0.205]`
    same = cells.build("unicornn", 4, 8, 3, dt=0.19)
    assert [layer.dt for layer in same.layers] == [0.19, 0.19, 0.19]


def test_tcn_copy_is_not_clipped_as_the_authors_clip_call_precedes_backward() -> None:
    assert defaults("tcn", "copy")["grad_clip"] == 0.0


def test_the_protocol_lands_in_the_trials_hyperparameters() -> None:
    result = run_trial(make_config(model="tcn", task="adding", seq_len=10, steps=1, eval_every=1,
                                   hparams={"hidden_size": 4, "num_layers": 2},
                                   task_options={"n_val": 4, "n_test": 4}))
    assert result.hparams["readout_init"] == "normal_0.01"
    assert result.hparams["lr_decay_epochs"] == 0 and result.extra["lr_decay_steps"] == []
    assert result.extra["steps_per_epoch"] is None


def test_s4d_trains_a_and_delta_at_its_own_capped_rate_without_decay() -> None:
    """state-spaces/s4 example.py:177 and :247-276: A, Δ at lr min(0.001, lr), weight decay 0; the rest at the
    trial's lr and decay. At lr 0.01 those three tensors per layer get 0.001; at lr 0.0005, 0.0005."""
    from seqarena import cells

    model = cells.build("s4d", 2, 8, 2, state_size=4)
    hparams = {"weight_decay": 0.1, "weight_decay_on": "all", "weight_decay_in": "optimizer", "optimizer": "adam"}
    for lr, capped in ((0.01, 0.001), (0.0005, 0.0005)):
        groups = make_optimizer(model, {**hparams, "lr": lr}).param_groups
        own = {id(layer.ssm.log_dt) for layer in model.blocks} | {id(layer.ssm.log_A_real) for layer in model.blocks} \
            | {id(layer.ssm.A_imag) for layer in model.blocks}
        by_param = {id(p): (group["lr"], group["weight_decay"]) for group in groups for p in group["params"]}
        assert len(by_param) == len(list(model.parameters()))  # every parameter in exactly one group
        assert {by_param[i] for i in own} == {(capped, 0.0)} and len(own) == 6
        assert {v for k, v in by_param.items() if k not in own} == {(lr, 0.1)}
    assert weight_penalty(model, {**hparams, "weight_decay_in": "loss", "lr": 0.01}) is not None
