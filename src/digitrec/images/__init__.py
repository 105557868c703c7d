"""A user's file -> decoded pixels -> ink -> one MNIST-like 28x28 digit (OpenCV and NumPy, no torch)."""
