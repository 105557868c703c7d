"""The HTTP service: FastAPI routes over Recognizer, and the drawing page."""
