"""Recognizer: shipped models on onnxruntime (torch optional), test-time views, files in, answers out."""
