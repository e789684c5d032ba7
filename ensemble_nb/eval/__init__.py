"""Measuring the ensemble: accuracy, and how well each confidence signal predicts correctness."""
