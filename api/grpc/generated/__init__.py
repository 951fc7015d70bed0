"""Modules generated from proto/ by `make protos`: do not edit."""
