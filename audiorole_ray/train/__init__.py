"""Model-agnostic training on Ray Train + ColossalAI: a task object supplies the model, the
collate and the loss; :func:`audiorole_ray.train.runner.run` does the rest (see TRAINING.md)."""
