"""borgctl ui: the Jobs view (Textual).  Imported by that command only."""
