"""macbdf_train: the training engine (trainer, DDP helpers, evaluation runner, ablations, demo).

The library (`macbdf`) never imports this package. The trainer's public entry point is
`macbdf_train.trainer.train(TrainConfig(...))`, also reachable as `macbdf train` on the command line.

Example:
    >>> from macbdf_train.trainer import TrainConfig, train
    >>> summary = train(TrainConfig(data="cache", model="tiny", out="runs/t", steps=20))  # doctest: +SKIP
    >>> summary["best_val_auc"]                                                          # doctest: +SKIP
"""
