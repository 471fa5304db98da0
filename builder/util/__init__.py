"""Small shared helpers: subprocess wrapper, atomic files, locks, hashing."""
