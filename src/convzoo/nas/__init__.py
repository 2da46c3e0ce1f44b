"""Neural architecture search tools that take a trained model (see DESIGN.md, "Layers").

:mod:`convzoo.nas.bignas`: BN calibration, coarse-to-fine selection and the optuna Pareto search over
children of a BigNAS supernet (seed paper 56). The training method itself is
:mod:`convzoo.methods.bignas` (the engine builds methods from ``convzoo.methods``).
"""
