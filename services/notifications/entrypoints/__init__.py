"""HTTP routes and the worker process of the notifications service."""
