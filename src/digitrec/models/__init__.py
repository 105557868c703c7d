"""Models registered by name: the report's eight cases, digitnet, the piece model."""
