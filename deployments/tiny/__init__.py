"""Dev-only writers of tiny random-weight models in the official formats (tests, demo)."""
