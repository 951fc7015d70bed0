"""Permify's gRPC API (package base.v1) over the HTTP app's services: see server.py."""
