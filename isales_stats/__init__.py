"""isales-stats: the toolbox around the engine and the API (settings, command line, local stack)."""
