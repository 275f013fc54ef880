"""One module per example: its views, its URLs, and a template under demo/templates/demo/."""
