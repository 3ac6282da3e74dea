"""The use cases of the interview service; ``application.py`` composes them."""
