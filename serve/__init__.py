"""The Ray Serve application: the HTTP ingress, the search service and the app builder."""
