"""Shared vocabulary and utilities used by every part of the library."""
