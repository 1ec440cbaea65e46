"""Top layer of Pardus: the Ray Serve application, HTTP API and command line."""
