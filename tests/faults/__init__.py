"""Fault injection: bad input gets a clear error, faults lose nothing, data never runs code."""
