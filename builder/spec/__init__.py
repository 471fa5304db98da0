"""The envspec: its models, loading with ``path:line`` errors, and the defaults every command
shares.
"""
