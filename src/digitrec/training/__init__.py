"""Training: TrainConfig, fit(), augmentation, checkpoints, distributed runs, the piece model, export."""
