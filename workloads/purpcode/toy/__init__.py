"""The toy world: a tiny policy and a tiny judge warm-started on CPU on a synthetic corpus, so that the embedded
default run (manifests/samples/tiny-cpu.yaml) shows the recipe moving safety metrics in minutes.

Why: a random tiny model never passes the format gate and a random judge never gives a parseable verdict, so every
reward is 0 and nothing can be learned. The corpus is built from the project's own prompt templates and rules
corpus and answered in the recipe's format with a deliberate mixture of good and bad behaviour, so that the base
model is imperfect in every dimension the recipe trains. Nothing here is imported at package import time (torch).
"""
