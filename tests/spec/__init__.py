"""The independent reader of bitstream/FORMAT.md (reader.py), used by tests/test_format_spec.py."""
