"""`make demo`: real encoder (encoder.py) + real data (data.py) -> XLM-SWCM vs random decoder (pipeline.py)."""
