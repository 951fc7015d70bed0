"""The schema language: parse and compile Permify's `.perm` text into a `Schema`.
"""
