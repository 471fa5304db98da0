"""Op sources: pinning (git commit + content digest), fetching and verifying them, and the
pinned form the lockfile keeps.
"""
