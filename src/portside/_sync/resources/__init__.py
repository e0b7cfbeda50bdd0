# Generated from portside/_async by scripts/unasync.py. Do not edit.
