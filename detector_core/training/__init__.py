"""Training tools: data, training, evaluation and the gates a release passes."""
