"""What several test modules share: waiting, tick counting, fakes and fixtures.

Nothing here is a test; test modules import from here, never from each other.
"""
