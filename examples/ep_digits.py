"""Equilibrium Propagation on the digits, from Python: train, read the numbers, save the folder.

    python examples/ep_digits.py [--out results/ep-digits]

The same run as ``neurosim run equilibrium-propagation --dataset digits --epochs 2`` on a subset
of the data, so that it finishes in about a minute on a laptop core.
"""

from __future__ import annotations

import argparse

import neurosim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/ep-digits")
    args = parser.parse_args()

    result = neurosim.run(
        "equilibrium-propagation",
        dataset="digits",  # the default preset for digits: two-phase EP, rate read-out
        epochs=2,
        protocol={"n_train": 300, "n_test": 100, "grad_check": False, "traces": False},
        progress=False,
    )
    m = result.metrics
    print(f"preset {result.config['run']['preset']}: sizes {result.config['circuit']['sizes']}")
    print(f"test accuracy before training and after each epoch: {m['history']['test_accuracy']}")
    print(f"backprop baseline, same sizes: {m['backprop_baseline']['test_accuracy']:.3f}")
    print(f"builds: {len(m['builds'])} for {m['epochs']} epochs ({m['compilations']} compiled now)")
    print(
        f"spike trains in the recording: {sum(len(s.spiketrains) for s in result.block.segments)}"
    )
    print(f"results written to {result.save(args.out)}")


if __name__ == "__main__":
    main()
