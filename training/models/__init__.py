"""PyTorch models: frame classifier (backbone + metric head) and recurrent sequence classifiers."""
