"""
Ratio benchmarks: reconnect against Twisted and against the bare floor.
"""
