"""The `pardus` command line, and the generator of the RayService's serveConfigV2."""
