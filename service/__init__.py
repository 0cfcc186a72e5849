"""Query service: hybrid search, cited answers and decision records over a built index."""
