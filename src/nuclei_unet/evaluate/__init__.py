"""The evaluate stage: metrics per split, tables and figures."""
