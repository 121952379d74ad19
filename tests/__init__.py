"""The test suite, a package so that its helpers are imported one way everywhere:
``from tests.clips import write_test_clip``."""
