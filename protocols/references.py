"""The conventional references beside a circuit's result on a data set with published ones
(MNIST-1D; issue 16): logistic regression and the reference MLP (:mod:`models.references`),
trained on the data set's raw values (no input code) over the run's train/test split, one
result per seed, cached on disk by the data's digest, the settings and the seed
(:mod:`neurosim.result_cache`), so that repeated runs read them back instead of training again.
Both protocols that train on MNIST-1D write them into their metrics as ``references``, beside
their same-architecture backprop baseline."""

from __future__ import annotations

from typing import Any

import torch

from models import references as refs
from neurosim import datasets as ds
from neurosim.result_cache import cached

#: published test accuracies of the references (Greydanus 2020, "Scaling down deep learning",
#: the MNIST-1D benchmark table), by data set
PUBLISHED: dict[str, dict[str, float]] = {"mnist1d": {"logistic_regression": 0.32, "mlp": 0.68}}
#: the code that trains them: editing it computes cached references again
CODE = ("models.references",)


def reference_key(
    model: str, data: ds.Dataset, settings: refs.ReferenceSettings, seed: int
) -> dict[str, Any]:
    """Everything a reference result depends on: the model, its settings, the seed, the data
    (arrays: hashed by value) and torch's version; the code's source is added by the cache."""
    return {
        "model": model,
        "settings": settings.as_dict(),
        "seed": int(seed),
        "data": [data.x_train, data.labels_train, data.x_test, data.labels_test],
        "torch": torch.__version__,
    }


def reference(
    model: str, data: ds.Dataset, seed: int, settings: refs.ReferenceSettings | None = None
) -> dict[str, Any]:
    """Reference ``model`` trained on ``data`` (its inputs as given) with ``seed``, from the cache
    when it holds the same inputs; ``cached`` says which."""
    settings = settings or refs.ReferenceSettings()
    if data.labels_train is None or data.labels_test is None:
        raise ValueError(f"references need a classification data set, {data.name!r} is not one.")

    def compute() -> dict[str, Any]:
        return refs.train_reference(
            model, data.x_train, data.labels_train, data.x_test, data.labels_test, settings, seed
        )

    result, hit = cached("references", reference_key(model, data, settings, seed), compute, CODE)
    return {**result, "cached": hit}


def references_for(
    dataset: str | None, seed: int, n_train: int | None, n_test: int | None
) -> dict[str, Any] | None:
    """Both references on data set ``dataset``'s raw values, cut to the run's split, with the
    published figures; None for a data set without published references."""
    if dataset not in PUBLISHED:
        return None
    raw = ds.load(dataset, seed=seed, code="identity").subset(n_train, n_test)
    out: dict[str, Any] = {model: reference(model, raw, seed) for model in refs.MODELS}
    out["published"] = dict(PUBLISHED[dataset])
    out["inputs"] = "the data set's raw values (no input code), the run's train/test split"
    out["n_train"], out["n_test"] = len(raw.x_train), len(raw.x_test)
    return out
