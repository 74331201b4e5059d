"""borgd."""
